//! Domain types: identifiers, presses and alert states, parsed at the edge of the gateway.
//!
//! Everything that arrives from a device or a browser becomes one of these types before any
//! logic runs; a value that does not parse is refused with a reason (`ParseError`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier, topic or payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid {what}: {value:?} ({why})")]
    Invalid {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("malformed payload on {topic}: {why}")]
    Payload { topic: String, why: String },
    #[error("topic {0:?} is not a tenwatch uplink topic")]
    Topic(String),
}

fn invalid(what: &'static str, value: &str, why: &'static str) -> ParseError {
    ParseError::Invalid {
        what,
        value: value.chars().take(80).collect(),
        why,
    }
}

/// Ids used in MQTT topics (devices, clusters, households): `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`,
/// so that they can never carry a wildcard, a level separator or a `$` prefix.
fn check_topic_id(what: &'static str, s: &str) -> Result<(), ParseError> {
    let mut chars = s.chars();
    match chars.next() {
        None => return Err(invalid(what, s, "empty")),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err(invalid(what, s, "must start with a letter or digit"))
        }
        _ => {}
    }
    if s.len() > 64 {
        return Err(invalid(what, s, "longer than 64 characters"));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(invalid(
            what,
            s,
            "only letters, digits, '-' and '_' are allowed",
        ));
    }
    Ok(())
}

/// What every text newtype (`struct Name(String)`, checked when parsed) offers: `as_str` and
/// `Display`, both the text as given.
macro_rules! text_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use text_newtype;

macro_rules! topic_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                check_topic_id($what, s)?;
                Ok(Self(s.to_owned()))
            }
        }
        text_newtype!($name);

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

topic_id!(
    /// A device: client id = MQTT username = this id.
    DeviceId,
    "device id"
);
topic_id!(
    /// A cluster of about ten neighbouring households.
    ClusterId,
    "cluster id"
);
topic_id!(
    /// A household (one address, one or more devices).
    HouseholdId,
    "household id"
);

/// The 8-digit code of district, street, community and responsibility area (2 digits each).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ZoneCode(String);

impl ZoneCode {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("zone code", s, "must be exactly 8 digits"));
        }
        Ok(Self(s.to_owned()))
    }
}
text_newtype!(ZoneCode);

/// An alert, shown to people as `A{n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertId(pub i64);

impl AlertId {
    /// Accepts `A42` and `42`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let digits = s.strip_prefix('A').unwrap_or(s);
        match digits.parse::<i64>() {
            Ok(n) if n > 0 => Ok(AlertId(n)),
            _ => Err(invalid("alert id", s, "expected A followed by a number")),
        }
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "A{}", self.0)
    }
}

impl Serialize for AlertId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AlertId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AlertId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What the resident pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PressKind {
    #[default]
    Help,
    Medical,
    Fire,
    Intrusion,
    Cancel,
}

impl PressKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PressKind::Help => "help",
            PressKind::Medical => "medical",
            PressKind::Fire => "fire",
            PressKind::Intrusion => "intrusion",
            PressKind::Cancel => "cancel",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Ok(match s {
            "help" => PressKind::Help,
            "medical" => PressKind::Medical,
            "fire" => PressKind::Fire,
            "intrusion" => PressKind::Intrusion,
            "cancel" => PressKind::Cancel,
            _ => {
                return Err(invalid(
                    "press kind",
                    s,
                    "expected help, medical, fire, intrusion or cancel",
                ))
            }
        })
    }
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Raised,
    Notified,
    Acknowledged,
    OnScene,
    Resolved,
    Cancelled,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Raised => "raised",
            AlertState::Notified => "notified",
            AlertState::Acknowledged => "acknowledged",
            AlertState::OnScene => "on_scene",
            AlertState::Resolved => "resolved",
            AlertState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Ok(match s {
            "raised" => AlertState::Raised,
            "notified" => AlertState::Notified,
            "acknowledged" => AlertState::Acknowledged,
            "on_scene" => AlertState::OnScene,
            "resolved" => AlertState::Resolved,
            "cancelled" => AlertState::Cancelled,
            _ => return Err(invalid("alert state", s, "unknown state")),
        })
    }

    /// Open alerts still need someone; closed ones are history.
    pub fn is_open(self) -> bool {
        !matches!(self, AlertState::Resolved | AlertState::Cancelled)
    }
}

/// A unit's power-up id, sent with its presses (`boot`): random at every power-up, so that a
/// press is told apart by (device, boot, seq) and a counter that starts again after a battery
/// change or a replacement never makes a new press look like an old one. 1 to 32 letters,
/// digits, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct BootId(String);

impl BootId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() || s.len() > 32 {
            return Err(invalid("boot id", s, "must be 1 to 32 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                "boot id",
                s,
                "only letters, digits, '-' and '_' are allowed",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// As stored: the id, or `""` for a press without one.
    pub fn stored(boot: Option<&BootId>) -> &str {
        boot.map_or("", |b| b.as_str())
    }

    /// From its stored form (`""`: none).
    pub fn from_stored(s: &str) -> Result<Option<Self>, ParseError> {
        match s {
            "" => Ok(None),
            s => Self::parse(s).map(Some),
        }
    }
}
text_newtype!(BootId);

/// `tw/d/{device}/up/press`: `{seq, kind, ts, boot}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Press {
    pub seq: u64,
    /// The unit's power-up id, if it sends one; without it a press is told apart by its `seq`
    /// alone, for a bounded time (`PressRules::repeat_window_ms`).
    pub boot: Option<BootId>,
    pub kind: PressKind,
    /// The device's clock (unix ms), informational only: devices' clocks drift.
    pub device_ts_ms: Option<i64>,
}

impl Press {
    /// What tells it apart on its device, as its `down/ack` names it: (seq, boot).
    pub fn identity(&self) -> (u64, Option<&BootId>) {
        (self.seq, self.boot.as_ref())
    }
}

/// `tw/d/{device}/up/heartbeat`: `{seq, battery, tamper, rssi?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub seq: u64,
    pub battery: Option<u8>,
    pub tamper: bool,
    pub rssi: Option<i16>,
    pub firmware: Option<String>,
}

/// A neighbour's answer from the in-home unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Coming,
    Declined,
}

/// One parsed message from a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uplink {
    Press(Press),
    Respond {
        alert: AlertId,
        answer: Answer,
    },
    Delivered {
        alert: AlertId,
    },
    Heartbeat(Heartbeat),
    /// `tw/d/{device}/up/subscribed`: the unit's subscriptions are in place after a
    /// (re)connection; behind an external broker, it asks for what it missed.
    Subscribed,
    /// `tw/d/{device}/up/notice`: the unit showed a notice to its residents.
    NoticeDelivered {
        notice: NoticeId,
    },
    /// `tw/d/{device}/up/satisfaction`: the presser's household on its resolved alert.
    Satisfaction {
        alert: AlertId,
        satisfied: bool,
    },
}

/// A notice's id: `"N"` followed by a positive number (`"N7"`); `"7"` is accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NoticeId(pub i64);

impl NoticeId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let digits = s.strip_prefix('N').unwrap_or(s);
        match digits.parse::<i64>() {
            Ok(n) if n > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(Self(n)),
            _ => Err(invalid(
                "notice id",
                s,
                "must be N followed by a positive number",
            )),
        }
    }
}

impl fmt::Display for NoticeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "N{}", self.0)
    }
}

impl Serialize for NoticeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A household's answer on its resolved alert: 满意 / 不满意.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SatisfactionAnswer {
    Satisfied,
    Unsatisfied,
}

/// Largest uplink payload the gateway reads; the edge refuses larger ones before they get here.
pub const MAX_UPLINK_PAYLOAD: usize = 2048;

impl Uplink {
    /// Parses `tw/d/{device}/up/{what}` and its JSON payload. Each payload is a derived
    /// `serde` type; a refusal names the field and why (`battery: invalid value …`).
    /// Informational fields (`ts`, `tamper`, `rssi`, `fw`) of the wrong type are ignored rather
    /// than refused: a press must never be lost over a device's clock or firmware string.
    pub fn parse(topic: &str, payload: &[u8]) -> Result<(DeviceId, Uplink), ParseError> {
        let mut parts = topic.split('/');
        let (Some("tw"), Some("d"), Some(device), Some("up"), Some(what), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(ParseError::Topic(topic.chars().take(120).collect()));
        };
        let device = DeviceId::parse(device)?;
        let bad = |why: String| ParseError::Payload {
            topic: topic.to_owned(),
            why,
        };
        if payload.len() > MAX_UPLINK_PAYLOAD {
            return Err(bad(format!("{} bytes is over the limit", payload.len())));
        }
        let alert = |s: &str| AlertId::parse(s).map_err(|e| bad(e.to_string()));
        let uplink = match what {
            "press" => {
                let p: wire::Press = wire::read(payload).map_err(bad)?;
                let kind = match p.kind.as_deref() {
                    None => PressKind::Help,
                    Some(s) => PressKind::parse(s).map_err(|e| bad(e.to_string()))?,
                };
                Uplink::Press(Press {
                    seq: p.seq,
                    // A boot id that is not one is ignored, not refused: the press is then
                    // told apart by its seq, as an older unit's, and is never lost over it.
                    boot: p.boot.as_deref().and_then(|b| BootId::parse(b).ok()),
                    kind,
                    device_ts_ms: p.ts,
                })
            }
            "respond" => {
                let r: wire::Respond = wire::read(payload).map_err(bad)?;
                Uplink::Respond {
                    alert: alert(&r.alert)?,
                    answer: r.answer,
                }
            }
            "delivered" => {
                let d: wire::Delivered = wire::read(payload).map_err(bad)?;
                Uplink::Delivered {
                    alert: alert(&d.alert)?,
                }
            }
            "heartbeat" => {
                let h: wire::Heartbeat = wire::read(payload).map_err(bad)?;
                if h.battery.is_some_and(|b| b > 100) {
                    return Err(bad("`battery` must be 0..=100".into()));
                }
                Uplink::Heartbeat(Heartbeat {
                    seq: h.seq,
                    battery: h.battery,
                    tamper: h.tamper.unwrap_or(false),
                    rssi: h.rssi.and_then(|v| i16::try_from(v).ok()),
                    firmware: h.fw.map(|s| s.chars().take(32).collect()),
                })
            }
            "subscribed" => {
                let _: wire::Subscribed = wire::read(payload).map_err(bad)?;
                Uplink::Subscribed
            }
            "notice" => {
                let n: wire::NoticeDelivered = wire::read(payload).map_err(bad)?;
                Uplink::NoticeDelivered {
                    notice: NoticeId::parse(&n.notice).map_err(|e| bad(e.to_string()))?,
                }
            }
            "satisfaction" => {
                let s: wire::Satisfaction = wire::read(payload).map_err(bad)?;
                Uplink::Satisfaction {
                    alert: alert(&s.alert)?,
                    satisfied: s.answer == SatisfactionAnswer::Satisfied,
                }
            }
            _ => return Err(ParseError::Topic(topic.chars().take(120).collect())),
        };
        Ok((device, uplink))
    }
}

/// The uplink payloads as they travel (docs/protocol.md), before the checks `Uplink::parse`
/// adds. Unknown fields are ignored so devices can grow.
mod wire {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer};

    use super::{Answer, SatisfactionAnswer};

    #[derive(Deserialize)]
    pub(super) struct Press {
        pub seq: u64,
        /// `help` when absent or null.
        #[serde(default)]
        pub kind: Option<String>,
        #[serde(default, deserialize_with = "lenient")]
        pub ts: Option<i64>,
        #[serde(default, deserialize_with = "lenient")]
        pub boot: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct Respond {
        pub alert: String,
        pub answer: Answer,
    }

    #[derive(Deserialize)]
    pub(super) struct Delivered {
        pub alert: String,
    }

    #[derive(Deserialize)]
    pub(super) struct NoticeDelivered {
        pub notice: String,
    }

    #[derive(Deserialize)]
    pub(super) struct Satisfaction {
        pub alert: String,
        pub answer: SatisfactionAnswer,
    }

    /// `up/subscribed`: a JSON object; nothing in it is read yet.
    #[derive(Deserialize)]
    pub(super) struct Subscribed {}

    #[derive(Deserialize)]
    pub(super) struct Heartbeat {
        pub seq: u64,
        #[serde(default)]
        pub battery: Option<u8>,
        #[serde(default, deserialize_with = "lenient")]
        pub tamper: Option<bool>,
        #[serde(default, deserialize_with = "lenient")]
        pub rssi: Option<i64>,
        #[serde(default, deserialize_with = "lenient")]
        pub fw: Option<String>,
    }

    /// A JSON object of type `T`; the error names the field that is wrong
    /// (`seq: invalid type: string "x", expected u64`).
    pub(super) fn read<T: DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
        let mut de = serde_json::Deserializer::from_slice(payload);
        if !payload.trim_ascii_start().starts_with(b"{") {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(payload) {
                    Err(e) => format!("not JSON: {e}"),
                    Ok(_) => "expected a JSON object".into(),
                },
            );
        }
        let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            match inner.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    format!("not JSON: {inner}")
                }
                _ if path == "." => inner.to_string(),
                _ => format!("{path}: {inner}"),
            }
        })?;
        de.end().map_err(|e| format!("not JSON: {e}"))?;
        Ok(value)
    }

    /// An informational field: its value if it has the right type, else nothing.
    fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: DeserializeOwned,
    {
        let value = serde_json::Value::deserialize(d)?;
        Ok(serde_json::from_value(value).ok())
    }
}

/// Milliseconds since the unix epoch, the one time format stored and sent.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Great-circle distance in metres.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const R: f64 = 6_371_000.0;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * R * a.sqrt().asin()
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_wildcards_and_separators() {
        assert!(DeviceId::parse("tw-11010501-01-03").is_ok());
        for bad in ["", "#", "a/b", "a+b", "$SYS", "-x", "a b", &"x".repeat(65)] {
            assert!(DeviceId::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn zone_code_is_eight_digits() {
        assert!(ZoneCode::parse("11010501").is_ok());
        assert!(ZoneCode::parse("1101050").is_err());
        assert!(ZoneCode::parse("1101050a").is_err());
    }

    #[test]
    fn notice_receipts_and_satisfaction_answers_parse_or_say_why_not() {
        let (device, up) = Uplink::parse("tw/d/dev1/up/notice", br#"{"notice":"N7"}"#).unwrap();
        assert_eq!(device.as_str(), "dev1");
        assert_eq!(
            up,
            Uplink::NoticeDelivered {
                notice: NoticeId(7)
            }
        );
        let up = Uplink::parse(
            "tw/d/dev1/up/satisfaction",
            br#"{"alert":"A3","answer":"unsatisfied"}"#,
        )
        .unwrap()
        .1;
        assert_eq!(
            up,
            Uplink::Satisfaction {
                alert: AlertId(3),
                satisfied: false
            }
        );
        for (topic, payload, why) in [
            (
                "tw/d/dev1/up/notice",
                &br#"{"notice":"X7"}"#[..],
                "notice id",
            ),
            ("tw/d/dev1/up/notice", b"{}", "missing field `notice`"),
            (
                "tw/d/dev1/up/satisfaction",
                br#"{"alert":"A3","answer":"meh"}"#,
                "answer: unknown variant",
            ),
        ] {
            let err = Uplink::parse(topic, payload).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn alert_id_round_trips() {
        let id = AlertId::parse("A42").unwrap();
        assert_eq!(id.to_string(), "A42");
        assert_eq!(AlertId::parse("42").unwrap(), id);
        assert!(AlertId::parse("A-1").is_err());
        assert!(AlertId::parse("x").is_err());
    }

    #[test]
    fn press_parses_with_default_kind() {
        let (dev, up) = Uplink::parse("tw/d/dev1/up/press", br#"{"seq":7,"ts":1}"#).unwrap();
        assert_eq!(dev.as_str(), "dev1");
        assert_eq!(
            up,
            Uplink::Press(Press {
                seq: 7,
                boot: None,
                kind: PressKind::Help,
                device_ts_ms: Some(1)
            })
        );
    }

    #[test]
    fn a_press_carries_its_boot_id_and_a_bad_one_is_ignored() {
        let (_, up) =
            Uplink::parse("tw/d/dev1/up/press", br#"{"seq":1,"boot":"9f3a-01"}"#).unwrap();
        let Uplink::Press(press) = up else {
            panic!("a press")
        };
        assert_eq!(press.boot.as_ref().map(BootId::as_str), Some("9f3a-01"));
        for bad in [
            r#""""#,
            r#""a/b""#,
            r#"7"#,
            &format!("{:?}", "x".repeat(33)),
        ] {
            let payload = format!(r#"{{"seq":1,"boot":{bad}}}"#);
            let (_, up) = Uplink::parse("tw/d/dev1/up/press", payload.as_bytes()).unwrap();
            assert!(
                matches!(
                    up,
                    Uplink::Press(Press {
                        seq: 1,
                        boot: None,
                        ..
                    })
                ),
                "{payload}"
            );
        }
        assert_eq!(BootId::stored(None), "");
        assert_eq!(BootId::from_stored("").unwrap(), None);
    }

    #[test]
    fn informational_fields_of_the_wrong_type_never_lose_a_press() {
        let (_, up) =
            Uplink::parse("tw/d/dev1/up/press", br#"{"seq":3,"ts":"yesterday","x":1}"#).unwrap();
        assert_eq!(
            up,
            Uplink::Press(Press {
                seq: 3,
                boot: None,
                kind: PressKind::Help,
                device_ts_ms: None
            })
        );
        let (_, up) = Uplink::parse(
            "tw/d/dev1/up/heartbeat",
            br#"{"seq":1,"battery":null,"tamper":"yes","rssi":99999,"fw":7}"#,
        )
        .unwrap();
        assert_eq!(
            up,
            Uplink::Heartbeat(Heartbeat {
                seq: 1,
                battery: None,
                tamper: false,
                rssi: None,
                firmware: None
            })
        );
    }

    #[test]
    fn a_unit_says_it_is_subscribed_with_any_object() {
        let (device, up) = Uplink::parse("tw/d/dev1/up/subscribed", br#"{"boot":3}"#).unwrap();
        assert_eq!((device.as_str(), up), ("dev1", Uplink::Subscribed));
        let err = Uplink::parse("tw/d/dev1/up/subscribed", b"[]").unwrap_err();
        assert!(err.to_string().contains("JSON object"), "{err}");
    }

    #[test]
    fn bad_payloads_are_refused_with_a_reason() {
        let cases: [(&str, &[u8], &str); 8] = [
            ("tw/d/dev1/up/press", b"not json", "not JSON"),
            ("tw/d/dev1/up/press", b"[7]", "expected a JSON object"),
            ("tw/d/dev1/up/press", br#"{"seq":1} {}"#, "not JSON"),
            ("tw/d/dev1/up/press", br#"{"seq":-1}"#, "seq: invalid value"),
            ("tw/d/dev1/up/press", br#"{"kind":"help"}"#, "seq"),
            (
                "tw/d/dev1/up/press",
                br#"{"seq":1,"kind":"party"}"#,
                "press kind",
            ),
            (
                "tw/d/dev1/up/respond",
                br#"{"alert":"A1","answer":"maybe"}"#,
                "answer",
            ),
            (
                "tw/d/dev1/up/heartbeat",
                br#"{"seq":1,"battery":300}"#,
                "battery",
            ),
        ];
        for (topic, payload, needle) in cases {
            let err = Uplink::parse(topic, payload).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
        assert!(matches!(
            Uplink::parse("tw/d/dev1/down/ack", b"{}"),
            Err(ParseError::Topic(_))
        ));
    }
}
