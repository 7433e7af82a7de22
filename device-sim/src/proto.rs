//! The device side of the MQTT contract in `docs/protocol.md`: topic names and JSON payloads.
//!
//! Everything a device receives is parsed here into typed values before any logic looks at it;
//! a payload that does not parse is refused with a reason ([`ProtoError`]) and never panics.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why an identifier or an incoming payload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("empty {0}")]
    Empty(&'static str),
    #[error(
        "{what} {value:?} contains a character not allowed in an MQTT topic level (+ # / or NUL)"
    )]
    BadTopicLevel { what: &'static str, value: String },
    #[error("malformed JSON on {topic}: {source}")]
    Json {
        topic: String,
        #[source]
        source: serde_json::Error,
    },
}

fn check_level(what: &'static str, value: &str) -> Result<(), ProtoError> {
    if value.is_empty() {
        return Err(ProtoError::Empty(what));
    }
    if value.contains(['+', '#', '/', '\0']) {
        return Err(ProtoError::BadTopicLevel {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

macro_rules! topic_id {
    ($(#[$m:meta])* $name:ident, $what:literal) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Accepts a non-empty string usable as one MQTT topic level.
            pub fn parse(value: impl Into<String>) -> Result<Self, ProtoError> {
                let value = value.into();
                check_level($what, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = StringOrNumber::deserialize(d)?.0;
                Self::parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

topic_id!(
    /// A device id: also its MQTT client id and username.
    DeviceId,
    "device id"
);
topic_id!(
    /// A cluster id: the `{cluster}` level of `tw/c/{cluster}/alert`.
    ClusterId,
    "cluster id"
);

/// Accepts `"A12"` or `12`: ids are strings in the contract, but a numeric id is not worth
/// refusing an otherwise valid message for.
#[derive(Debug)]
pub(crate) struct StringOrNumber(pub String);

impl<'de> Deserialize<'de> for StringOrNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            U(u64),
            I(i64),
        }
        Ok(StringOrNumber(match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::U(u) => u.to_string(),
            Raw::I(i) => i.to_string(),
        }))
    }
}

impl<'de> Deserialize<'de> for AlertId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = StringOrNumber::deserialize(d)?.0;
        if raw.is_empty() {
            return Err(serde::de::Error::custom("empty alert id"));
        }
        Ok(AlertId(raw))
    }
}

/// The gateway's id for one alert; links the presser's ack to its neighbours' cluster alerts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AlertId(pub String);

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the button asks for. `cancel` withdraws the household's own recent alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
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
}

impl fmt::Display for PressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PressKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "help" => Ok(PressKind::Help),
            "medical" => Ok(PressKind::Medical),
            "fire" => Ok(PressKind::Fire),
            "intrusion" => Ok(PressKind::Intrusion),
            "cancel" => Ok(PressKind::Cancel),
            other => Err(format!(
                "unknown kind {other:?} (help, medical, fire, intrusion, cancel)"
            )),
        }
    }
}

/// Lifecycle state of an alert as the gateway reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Resolved or cancelled: nothing left to sound for.
    pub fn is_closed(self) -> bool {
        matches!(self, AlertState::Resolved | AlertState::Cancelled)
    }

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
}

/// `tw/d/{device}/up/press`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Press {
    /// Counted from 1 at each power-up.
    pub seq: u64,
    pub kind: PressKind,
    /// Unix time in milliseconds when the button was pressed (the same on every repeat).
    pub ts: u64,
    /// This power-up's random id: with it the gateway tells a press after a reboot (seq 1
    /// again) from an old one. Units of an older firmware send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
}

/// A new power-up's boot id: 64 random bits in hex.
pub fn new_boot_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// `tw/d/{device}/up/heartbeat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub seq: u64,
    pub battery: u8,
    pub tamper: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rssi: Option<i16>,
}

/// `tw/d/{device}/up/delivered`: the unit sounded for a neighbour's alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    pub alert: AlertId,
}

/// A neighbour's answer to an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Coming,
    Declined,
}

/// `tw/d/{device}/up/respond`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Respond {
    pub alert: AlertId,
    pub answer: Answer,
}

/// `tw/d/{device}/down/ack`: feedback to the presser, possibly re-sent on each state change.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Ack {
    pub seq: u64,
    /// The boot id of the press answered, if it had one (a gateway that knows none sends
    /// none: the seq alone then matches).
    #[serde(default)]
    pub boot: Option<String>,
    pub alert: AlertId,
    pub state: AlertState,
    #[serde(default)]
    pub responders: u32,
    /// Presses the household made on the alert (a press joining an open alert makes it 2, 3…).
    #[serde(default = "one")]
    pub presses: u32,
    /// On the ack of a resolved alert: the gateway asks the household whether it is
    /// satisfied; the unit answers once on `up/satisfaction`.
    #[serde(default)]
    pub survey: bool,
}

/// `tw/d/{device}/up/satisfaction`: the household's answer on its resolved alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SatisfactionAnswer {
    pub alert: AlertId,
    /// `satisfied` (满意) or `unsatisfied` (不满意).
    pub answer: &'static str,
}

/// A notice's id as the gateway writes it (`"N7"`; a number is read the same).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct NoticeId(pub String);

impl<'de> Deserialize<'de> for NoticeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = StringOrNumber::deserialize(d)?.0;
        if raw.is_empty() {
            return Err(serde::de::Error::custom("empty notice id"));
        }
        Ok(NoticeId(raw))
    }
}

impl fmt::Display for NoticeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `tw/c/{cluster}/notice` and `tw/d/{device}/down/notice`: a notice from the station for the
/// residents (a prevention tip, a wanted warning, a weather or fire warning).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Notice {
    pub notice: NoticeId,
    #[serde(default)]
    pub kind: String,
    pub title: String,
    #[serde(default)]
    pub body: String,
}

/// `tw/d/{device}/up/notice`: the unit showed the notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NoticeDelivered {
    pub notice: NoticeId,
}

fn one() -> u32 {
    1
}

/// `tw/c/{cluster}/alert`: what every unit of the cluster (the presser's included) receives.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ClusterAlert {
    pub alert: AlertId,
    #[serde(default)]
    pub from_label: String,
    #[serde(default)]
    pub kind: PressKind,
    pub state: AlertState,
    /// How many neighbours are coming (the gateway re-sends the alert when it changes).
    #[serde(default)]
    pub responders: u32,
    /// Presses the household made on it: the gateway re-sends the alert when the household
    /// presses again, and units sound again.
    #[serde(default = "one")]
    pub presses: u32,
    /// Enough people are coming (the gateway's `--enough-help` for the alert's kind): the unit
    /// shows "enough help is on the way", and its resident need not go.
    #[serde(default)]
    pub enough: bool,
    /// Not in the contract; used to recognise the unit's own alert if a gateway sends it.
    #[serde(default)]
    pub from_device: Option<String>,
}

/// The topics one device uses, computed once.
#[derive(Clone, Debug)]
pub struct Topics {
    pub press: String,
    pub heartbeat: String,
    pub delivered: String,
    pub respond: String,
    /// `tw/d/{device}/up/notice`: receipt of a notice.
    pub notice_delivered: String,
    /// `tw/d/{device}/up/satisfaction`: the answer on a resolved alert of the household.
    pub satisfaction: String,
    /// `tw/c/{cluster}/notice` and `tw/d/{device}/down/notice` (the second for a unit that
    /// was away when it went out).
    pub cluster_notice: String,
    pub down_notice: String,
    /// `tw/d/{device}/up/subscribed`: sent once both subscriptions are granted; behind an
    /// external broker the gateway answers with what the unit missed (on `down/alert`).
    pub subscribed: String,
    pub down_filter: String,
    pub down_ack: String,
    pub down_prefix: String,
    pub cluster_filter: String,
    pub cluster_alert: String,
    /// `tw/d/{device}/down/alert`: a cluster alert sent to this unit alone, when it is back
    /// online after the alert went out.
    pub down_alert: String,
}

impl Topics {
    pub fn new(device: &DeviceId, cluster: &ClusterId) -> Self {
        let d = format!("tw/d/{device}");
        let c = format!("tw/c/{cluster}");
        Topics {
            press: format!("{d}/up/press"),
            heartbeat: format!("{d}/up/heartbeat"),
            delivered: format!("{d}/up/delivered"),
            respond: format!("{d}/up/respond"),
            notice_delivered: format!("{d}/up/notice"),
            satisfaction: format!("{d}/up/satisfaction"),
            cluster_notice: format!("{c}/notice"),
            down_notice: format!("{d}/down/notice"),
            subscribed: format!("{d}/up/subscribed"),
            down_filter: format!("{d}/down/#"),
            down_ack: format!("{d}/down/ack"),
            down_prefix: format!("{d}/down/"),
            cluster_filter: format!("{c}/#"),
            cluster_alert: format!("{c}/alert"),
            down_alert: format!("{d}/down/alert"),
        }
    }
}

/// A message a device received, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    Ack(Ack),
    ClusterAlert(ClusterAlert),
    Notice(Notice),
    /// A topic under our subscriptions that the contract does not define yet: ignored.
    Other(String),
}

impl Topics {
    /// Parses a publish received on one of this device's subscriptions.
    pub fn parse_inbound(&self, topic: &str, payload: &[u8]) -> Result<Inbound, ProtoError> {
        let json = |source| ProtoError::Json {
            topic: topic.to_owned(),
            source,
        };
        if topic == self.down_ack {
            serde_json::from_slice(payload)
                .map(Inbound::Ack)
                .map_err(json)
        } else if topic == self.cluster_alert || topic == self.down_alert {
            serde_json::from_slice(payload)
                .map(Inbound::ClusterAlert)
                .map_err(json)
        } else if topic == self.cluster_notice || topic == self.down_notice {
            serde_json::from_slice(payload)
                .map(Inbound::Notice)
                .map_err(json)
        } else {
            Ok(Inbound::Other(topic.to_owned()))
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn topics() -> Topics {
        Topics::new(
            &DeviceId::parse("tw-0001-07").expect("valid"),
            &ClusterId::parse("11010501-03").expect("valid"),
        )
    }

    #[test]
    fn ids_refuse_topic_wildcards() {
        assert!(DeviceId::parse("a/b").is_err());
        assert!(DeviceId::parse("a+").is_err());
        assert!(ClusterId::parse("#").is_err());
        assert!(ClusterId::parse("").is_err());
        assert_eq!(DeviceId::parse("tw-1").expect("valid").as_str(), "tw-1");
    }

    #[test]
    fn topics_follow_the_contract() {
        let t = topics();
        assert_eq!(t.press, "tw/d/tw-0001-07/up/press");
        assert_eq!(t.heartbeat, "tw/d/tw-0001-07/up/heartbeat");
        assert_eq!(t.delivered, "tw/d/tw-0001-07/up/delivered");
        assert_eq!(t.respond, "tw/d/tw-0001-07/up/respond");
        assert_eq!(t.subscribed, "tw/d/tw-0001-07/up/subscribed");
        assert_eq!(t.down_filter, "tw/d/tw-0001-07/down/#");
        assert_eq!(t.down_ack, "tw/d/tw-0001-07/down/ack");
        assert_eq!(t.cluster_filter, "tw/c/11010501-03/#");
        assert_eq!(t.cluster_alert, "tw/c/11010501-03/alert");
    }

    #[test]
    fn uplink_payloads_serialise_as_specified() {
        let press = Press {
            seq: 17,
            kind: PressKind::Medical,
            ts: 1_700_000_000_000,
            boot: None,
        };
        assert_eq!(
            serde_json::to_value(&press).expect("serialises"),
            json!({"seq":17,"kind":"medical","ts":1_700_000_000_000u64})
        );
        let booted = Press {
            boot: Some("00ff00ff00ff00ff".into()),
            ..press
        };
        assert_eq!(
            serde_json::to_value(&booted).expect("serialises")["boot"],
            "00ff00ff00ff00ff"
        );
        assert_ne!(new_boot_id(), new_boot_id());
        let hb = Heartbeat {
            seq: 3,
            battery: 88,
            tamper: false,
            rssi: Some(-60),
        };
        assert_eq!(
            serde_json::to_value(&hb).expect("serialises"),
            json!({"seq":3,"battery":88,"tamper":false,"rssi":-60})
        );
        let d = Delivered {
            alert: AlertId("A12".into()),
        };
        assert_eq!(
            serde_json::to_value(&d).expect("serialises"),
            json!({"alert":"A12"})
        );
        let r = Respond {
            alert: AlertId("A12".into()),
            answer: Answer::Coming,
        };
        assert_eq!(
            serde_json::to_value(&r).expect("serialises"),
            json!({"alert":"A12","answer":"coming"})
        );
    }

    #[test]
    fn ack_parses_and_tolerates_extras_and_numeric_ids() {
        let t = topics();
        let got = t
            .parse_inbound(
                &t.down_ack,
                br#"{"seq":5,"alert":"A12","state":"on_scene","responders":2,"extra":1}"#,
            )
            .expect("parses");
        assert_eq!(
            got,
            Inbound::Ack(Ack {
                seq: 5,
                boot: None,
                alert: AlertId("A12".into()),
                state: AlertState::OnScene,
                responders: 2,
                presses: 1,
                survey: false,
            })
        );
        let got = t
            .parse_inbound(&t.down_ack, br#"{"seq":5,"alert":42,"state":"raised"}"#)
            .expect("parses");
        match got {
            Inbound::Ack(a) => {
                assert_eq!(a.alert.0, "42");
                assert_eq!(a.responders, 0);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bad_payloads_are_refused_with_a_reason() {
        let t = topics();
        for bad in [
            &b"not json"[..],
            br#"{"seq":5,"alert":"A1","state":"exploded"}"#,
            br#"{"alert":"A1","state":"raised"}"#,
            br#"{"seq":-1,"alert":"A1","state":"raised"}"#,
            br#"{"seq":1,"alert":"","state":"raised"}"#,
        ] {
            let err = t.parse_inbound(&t.down_ack, bad).expect_err("refused");
            assert!(err.to_string().contains("down/ack"), "{err}");
        }
        assert!(t
            .parse_inbound(
                &t.cluster_alert,
                br#"{"alert":"A1","kind":"party","state":"raised"}"#
            )
            .is_err());
    }

    #[test]
    fn notices_parse_on_both_topics_and_receipts_serialise() {
        let t = topics();
        let body = r#"{"notice":"N7","kind":"fire","title":"防火","body":"注意用电","ts":1}"#;
        for topic in [&t.cluster_notice, &t.down_notice] {
            let Inbound::Notice(n) = t.parse_inbound(topic, body.as_bytes()).unwrap() else {
                panic!("a notice on {topic}");
            };
            assert_eq!((n.notice.0.as_str(), n.title.as_str()), ("N7", "防火"));
        }
        assert!(t.parse_inbound(&t.cluster_notice, b"{}").is_err());
        let receipt = serde_json::to_value(NoticeDelivered {
            notice: NoticeId("N7".into()),
        })
        .unwrap();
        assert_eq!(receipt, serde_json::json!({"notice": "N7"}));
        let answer = serde_json::to_value(SatisfactionAnswer {
            alert: AlertId("A3".into()),
            answer: "satisfied",
        })
        .unwrap();
        assert_eq!(
            answer,
            serde_json::json!({"alert": "A3", "answer": "satisfied"})
        );
    }

    #[test]
    fn cluster_alert_parses() {
        let t = topics();
        let got = t
            .parse_inbound(
                &t.cluster_alert,
                r#"{"alert":"A12","from_label":"和平路12号","kind":"fire","state":"raised","responders":2,"ts":1700000000000,"zone":"11010501"}"#
                    .as_bytes(),
            )
            .expect("parses");
        match got {
            Inbound::ClusterAlert(a) => {
                assert_eq!(a.alert.0, "A12");
                assert_eq!(a.from_label, "和平路12号");
                assert_eq!(a.kind, PressKind::Fire);
                assert_eq!(a.state, AlertState::Raised);
                assert_eq!(a.responders, 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            t.parse_inbound("tw/c/11010501-03/roster", b"whatever")
                .expect("ignored"),
            Inbound::Other("tw/c/11010501-03/roster".into())
        );
    }

    #[test]
    fn kinds_round_trip_from_the_command_line() {
        for k in ["help", "medical", "fire", "intrusion", "cancel"] {
            let kind: PressKind = k.parse().expect("known kind");
            assert_eq!(kind.as_str(), k);
        }
        assert!("party".parse::<PressKind>().is_err());
    }
}
