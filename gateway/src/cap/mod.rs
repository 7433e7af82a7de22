//! CAP 1.2 out: the OASIS Common Alerting Protocol messages of the alerts a station made
//! public, and the Atom feed that lists them, written with quick-xml (every text and
//! attribute escaped by the writer). Pure functions of a stored [`AlertSummary`]: the same
//! alert always gives the same messages, so an identifier is stable and a later message can
//! name an earlier one in `references`.
//!
//! # What a public alert says over its life
//! 1. `Alert` when the station made it public (`public_at_ms`);
//! 2. `Update` when someone first got there after that (`first_on_scene_at_ms`);
//! 3. when it closed (`closed_at_ms`): `Cancel` if the presser cancelled it or the station
//!    found a false alarm, else `Update` with `responseType` `AllClear`.
//!
//! Each later message references every earlier one (`sender,identifier,sent`), and all share
//! `incidents`. Times are whole seconds with the station's UTC offset, as CAP's schema asks.
//!
//! # Privacy
//! Nothing of the household goes out: no id, label, address, contacts, notes, device, the
//! station's resolution note, nor its position. The area is a circle of [`AREA_RADIUS_KM`]
//! around the centre of the [`GRID_DEG`] grid cell the house lies in (about 550 m × 430 m
//! in Beijing): the circle holds the whole cell, and every house of the cell gives the same
//! circle. The zone code is the only other place given.

use std::fmt;

use chrono::TimeZone;
use chrono_tz::Tz;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use crate::domain::{AlertId, AlertState};
use crate::store::notices::Notice;
use crate::store::AlertSummary;

pub mod notice;

/// CAP 1.2's XML namespace.
pub const CAP_NS: &str = "urn:oasis:names:tc:emergency:cap:1.2";
/// Atom's XML namespace.
pub const ATOM_NS: &str = "http://www.w3.org/2005/Atom";
/// The side of the grid a house's position is snapped to, in degrees.
pub const GRID_DEG: f64 = 0.005;
/// The area's radius around the grid cell's centre, in kilometres: more than half the cell's
/// diagonal anywhere (0.39 km at the equator, less towards the poles).
pub const AREA_RADIUS_KM: f64 = 0.5;

/// Who sends the messages (CAP `sender`, `--cap-sender`): globally unique, such as
/// `tenwatch@station.example.org`. CAP forbids spaces, commas and the XML-reserved `<` and
/// `&` in it; this also refuses anything outside printable ASCII.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapSender(String);

impl CapSender {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, ',' | '<' | '&' | '>' | '"' | '\''));
        match ok {
            true => Ok(CapSender(s.to_owned())),
            false => Err(format!(
                "--cap-sender must be 1 to 128 printable ASCII characters without spaces, \
                 commas, quotes, < > or & (e.g. tenwatch@station.example.org); got {:?}",
                s.chars().take(40).collect::<String>()
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for CapSender {
    fn default() -> Self {
        CapSender("tenwatch@localhost".to_owned())
    }
}

impl fmt::Display for CapSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// CAP's `msgType` of the messages tenwatch sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    Alert,
    Update,
    Cancel,
}

impl MsgType {
    pub fn as_str(self) -> &'static str {
        match self {
            MsgType::Alert => "Alert",
            MsgType::Update => "Update",
            MsgType::Cancel => "Cancel",
        }
    }
}

/// Where the alert stood when a message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Pressed; told to neighbours and volunteers, nobody there yet.
    Raised,
    /// Someone said they are coming, or the station took it.
    Taken,
    /// Someone is there.
    OnScene,
    /// The station closed it as a real call.
    Resolved,
    /// The presser cancelled it, or the station found a false alarm.
    Withdrawn,
}

/// One CAP message of a public alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// 1 for the first message, counting up.
    pub n: u32,
    pub msg_type: MsgType,
    pub phase: Phase,
    pub sent_ms: i64,
}

/// The CAP identifier of message `n` of `alert` (unique for the sender, stable).
pub fn identifier(alert: AlertId, n: u32) -> String {
    format!("tenwatch-{alert}-{n}")
}

/// The messages of an alert, oldest first; empty if it is not public.
pub fn messages(a: &AlertSummary) -> Vec<Message> {
    let Some(public) = a.public_at_ms else {
        return Vec::new();
    };
    let at = |t: Option<i64>| t.is_some_and(|t| t <= public);
    let first = if at(a.first_on_scene_at_ms) {
        Phase::OnScene
    } else if at(a.acknowledged_at_ms) || at(a.first_coming_at_ms) {
        Phase::Taken
    } else {
        Phase::Raised
    };
    let mut out = vec![Message {
        n: 1,
        msg_type: MsgType::Alert,
        phase: first,
        sent_ms: public,
    }];
    let closed = (!a.state.is_open()).then_some(a.closed_at_ms.unwrap_or(a.updated_at_ms));
    if let Some(t) = a.first_on_scene_at_ms {
        if t > public && closed.is_none_or(|c| t <= c) {
            out.push(Message {
                n: 2,
                msg_type: MsgType::Update,
                phase: Phase::OnScene,
                sent_ms: t,
            });
        }
    }
    if let Some(c) = closed {
        let withdrawn = a.state == AlertState::Cancelled
            || a.category.as_deref() == Some(crate::lifecycle::Category::FalseAlarm.as_str());
        let (msg_type, phase) = match withdrawn {
            true => (MsgType::Cancel, Phase::Withdrawn),
            false => (MsgType::Update, Phase::Resolved),
        };
        out.push(Message {
            n: out.len() as u32 + 1,
            msg_type,
            phase,
            // Never before what it follows (a close racing the publish).
            sent_ms: c.max(public),
        });
    }
    out
}

/// CAP's `sent` form: whole seconds with the offset, never `Z` (`2026-12-05T23:10:00+08:00`).
pub fn cap_time(ms: i64, tz: Tz) -> String {
    let secs = ms.div_euclid(1000);
    match tz.timestamp_opt(secs, 0).single() {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        None => chrono::DateTime::from_timestamp(secs, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S+00:00")
            .to_string(),
    }
}

/// The centre of the grid cell `lat`, `lon` lies in, as CAP's `circle` writes it
/// (`lat,lon radius`).
pub fn coarse_circle(lat: f64, lon: f64) -> String {
    let centre = |v: f64| ((v / GRID_DEG).floor() + 0.5) * GRID_DEG;
    let lat = centre(lat).clamp(-90.0, 90.0);
    let lon = centre(lon).clamp(-180.0, 180.0);
    format!("{lat:.4},{lon:.4} {AREA_RADIUS_KM:.1}")
}

/// What people are told of a kind, in Chinese and English, and CAP's category for it.
struct KindText {
    category: &'static str,
    event: (&'static str, &'static str),
    /// What residents nearby should do while it is open.
    instruction: (&'static str, &'static str),
    /// How much it threatens the public while open (CAP `severity`).
    severity: &'static str,
    /// What CAP's `responseType` asks of the public while open.
    response: &'static str,
}

fn kind_text(kind: &str) -> KindText {
    match kind {
        "fire" => KindText {
            category: "Fire",
            event: ("火警", "Fire"),
            instruction: (
                "请远离该区域，为消防车让出通道；发现火情请拨打 119。",
                "Keep away from the area and make way for fire engines; call 119 if you see fire.",
            ),
            severity: "Severe",
            response: "Avoid",
        },
        "intrusion" => KindText {
            category: "Security",
            event: ("入室警情", "Intrusion"),
            instruction: (
                "请关好门窗，留意可疑人员；有线索请拨打 110。",
                "Lock doors and windows and watch for strangers; call 110 with anything you see.",
            ),
            severity: "Moderate",
            response: "Monitor",
        },
        "medical" => KindText {
            category: "Health",
            event: ("医疗求助", "Medical emergency"),
            instruction: (
                "请为救护车让出通道；需要急救请拨打 120。",
                "Make way for the ambulance; call 120 for a medical emergency.",
            ),
            severity: "Minor",
            response: "Monitor",
        },
        _ => KindText {
            category: "Safety",
            event: ("居民求助", "Call for help"),
            instruction: (
                "附近居民请留意；紧急情况请拨打 110。",
                "Neighbours, please stay alert; call 110 in an emergency.",
            ),
            severity: "Minor",
            response: "Monitor",
        },
    }
}

/// One language's text of a message.
struct Info {
    language: &'static str,
    event: &'static str,
    sender_name: String,
    headline: String,
    description: String,
    instruction: &'static str,
    area: String,
}

fn infos(a: &AlertSummary, m: &Message) -> [Info; 2] {
    let k = kind_text(&a.kind);
    let zone = a.zone.as_str();
    let category = a
        .category
        .as_deref()
        .and_then(|c| crate::lifecycle::Category::parse(c).ok());
    let (zh_state, en_state) = match m.phase {
        Phase::Raised => (
            "邻里和巡逻队员已收到通知。".to_owned(),
            "Its neighbours and the patrol volunteers have been told.".to_owned(),
        ),
        Phase::Taken => (
            "已有人响应，正在赶往现场。".to_owned(),
            "Someone has answered and is on the way.".to_owned(),
        ),
        Phase::OnScene => (
            "已有人到达现场。".to_owned(),
            "Someone is on scene.".to_owned(),
        ),
        Phase::Resolved => match category {
            Some(c) => (
                format!("警情已处置完毕（{}）。", c.chinese()),
                format!(
                    "The alert was dealt with and closed ({}).",
                    c.as_str().replace('_', " ")
                ),
            ),
            None => (
                "警情已处置完毕。".to_owned(),
                "The alert was dealt with and closed.".to_owned(),
            ),
        },
        Phase::Withdrawn => match a.state {
            AlertState::Cancelled => (
                "报警户已取消此警情。".to_owned(),
                "The household that raised it cancelled it.".to_owned(),
            ),
            _ => (
                "经核实为误报。".to_owned(),
                "It was found to be a false alarm.".to_owned(),
            ),
        },
    };
    let closed = matches!(m.phase, Phase::Resolved | Phase::Withdrawn);
    let (zh_instruction, en_instruction) = match closed {
        true => ("无需采取行动。", "No action is needed."),
        false => k.instruction,
    };
    let (zh_head, en_head) = match closed {
        true => ("已解除", "over"),
        false => ("", ""),
    };
    [
        Info {
            language: "zh-CN",
            event: k.event.0,
            sender_name: format!("十户联防 · 责任区 {zone}"),
            headline: format!("{}{}：责任区 {zone}", k.event.0, zh_head),
            description: format!(
                "责任区 {zone} 内一户居民按下了{}按钮。{zh_state}",
                k.event.0
            ),
            instruction: zh_instruction,
            area: format!("责任区 {zone}，约 {AREA_RADIUS_KM} 公里范围内（不指明住户）"),
        },
        Info {
            language: "en-US",
            event: k.event.1,
            sender_name: format!("tenwatch neighbourhood watch, zone {zone}"),
            headline: match closed {
                true => format!("{} {en_head}: zone {zone}", k.event.1),
                false => format!("{}: zone {zone}", k.event.1),
            },
            description: format!(
                "A household in zone {zone} pressed its {} button. {en_state}",
                a.kind
            ),
            instruction: en_instruction,
            area: format!("Zone {zone}, within about {AREA_RADIUS_KM} km (no household named)"),
        },
    ]
}

type W = Writer<Vec<u8>>;

fn text(w: &mut W, name: &str, value: &str) -> std::io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

fn value_pair(w: &mut W, name: &str, value_name: &str, value: &str) -> std::io::Result<()> {
    w.create_element(name).write_inner_content(|w| {
        text(w, "valueName", value_name)?;
        text(w, "value", value)
    })?;
    Ok(())
}

fn new_writer() -> std::io::Result<W> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    Ok(w)
}

/// The writer's `io::Result`s come from its `Write` target; a `Vec` never fails, so the
/// callers' fallback to an empty document is never taken.
fn finish(w: W) -> String {
    // The writer was given only `&str`s: its bytes are UTF-8.
    String::from_utf8_lossy(&w.into_inner()).into_owned()
}

/// The CAP 1.2 document of message `m` of the public alert `a` (one of [`messages`]`(a)`).
pub fn cap_document(
    a: &AlertSummary,
    m: &Message,
    all: &[Message],
    sender: &CapSender,
    tz: Tz,
) -> String {
    write_cap(a, m, all, sender, tz).map_or_else(|_| String::new(), finish)
}

fn write_cap(
    a: &AlertSummary,
    m: &Message,
    all: &[Message],
    sender: &CapSender,
    tz: Tz,
) -> std::io::Result<W> {
    let mut w = new_writer()?;
    let k = kind_text(&a.kind);
    let references = all
        .iter()
        .filter(|e| e.n < m.n)
        .map(|e| {
            format!(
                "{sender},{},{}",
                identifier(a.id, e.n),
                cap_time(e.sent_ms, tz)
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let closed = matches!(m.phase, Phase::Resolved | Phase::Withdrawn);
    let (urgency, severity, certainty, response) = match m.phase {
        Phase::Raised => ("Immediate", k.severity, "Likely", k.response),
        Phase::Taken | Phase::OnScene => ("Immediate", k.severity, "Observed", k.response),
        Phase::Resolved => ("Past", "Minor", "Observed", "AllClear"),
        Phase::Withdrawn => ("Past", "Minor", "Unlikely", "AllClear"),
    };
    let note = match (m.phase, a.state) {
        (Phase::Withdrawn, AlertState::Cancelled) => {
            Some("报警户已取消 / cancelled by the household that raised it")
        }
        (Phase::Withdrawn, _) => Some("误报 / a false alarm"),
        _ => None,
    };
    let circle = coarse_circle(a.lat, a.lon);
    let infos = infos(a, m);
    w.create_element("alert")
        .with_attribute(("xmlns", CAP_NS))
        .write_inner_content(|w| {
            text(w, "identifier", &identifier(a.id, m.n))?;
            text(w, "sender", sender.as_str())?;
            text(w, "sent", &cap_time(m.sent_ms, tz))?;
            text(w, "status", "Actual")?;
            text(w, "msgType", m.msg_type.as_str())?;
            text(w, "scope", "Public")?;
            if let Some(note) = note {
                text(w, "note", note)?;
            }
            if !references.is_empty() {
                text(w, "references", &references)?;
            }
            text(w, "incidents", &format!("tenwatch-{}", a.id))?;
            for info in &infos {
                w.create_element("info").write_inner_content(|w| {
                    text(w, "language", info.language)?;
                    text(w, "category", k.category)?;
                    text(w, "event", info.event)?;
                    text(w, "responseType", response)?;
                    text(w, "urgency", urgency)?;
                    text(w, "severity", severity)?;
                    text(w, "certainty", certainty)?;
                    value_pair(w, "eventCode", "tenwatch:kind", &a.kind)?;
                    text(w, "senderName", &info.sender_name)?;
                    text(w, "headline", &info.headline)?;
                    text(w, "description", &info.description)?;
                    text(w, "instruction", info.instruction)?;
                    value_pair(w, "parameter", "tenwatch:state", a.state.as_str())?;
                    if closed {
                        if let Some(c) = &a.category {
                            value_pair(w, "parameter", "tenwatch:category", c)?;
                        }
                    }
                    w.create_element("area").write_inner_content(|w| {
                        text(w, "areaDesc", &info.area)?;
                        text(w, "circle", &circle)?;
                        value_pair(w, "geocode", "tenwatch:zone", a.zone.as_str())
                    })?;
                    Ok(())
                })?;
            }
            Ok(())
        })?;
    Ok(w)
}

/// Atom's date form (RFC 3339) with the station's offset.
fn atom_time(ms: i64, tz: Tz) -> String {
    cap_time(ms, tz)
}

/// The Atom feed of the public alerts' latest messages and of the notices, the most recent
/// first; each entry links its document under `/cap/alerts/` or `/cap/notices/`, relative to
/// the feed's own address. `now_ms` is the feed's `updated` when it has no entry.
pub fn atom_feed(
    alerts: &[AlertSummary],
    notices: &[Notice],
    sender: &CapSender,
    tz: Tz,
    now_ms: i64,
) -> String {
    write_atom(alerts, notices, sender, tz, now_ms).map_or_else(|_| String::new(), finish)
}

/// One entry of the feed.
struct Entry {
    /// `A42`, `N7`.
    id: String,
    title: String,
    published_ms: i64,
    updated_ms: i64,
    msg_type: MsgType,
    summary: String,
    href: String,
}

fn alert_entry(a: &AlertSummary) -> Option<Entry> {
    let all = messages(a);
    let first = all.first()?.sent_ms;
    let m = all.last()?;
    let [zh, en] = infos(a, m);
    Some(Entry {
        id: a.id.to_string(),
        title: format!("{} / {}", zh.headline, en.headline),
        published_ms: first,
        updated_ms: m.sent_ms,
        msg_type: m.msg_type,
        summary: format!("{} {}", zh.description, en.description),
        href: format!("/cap/alerts/{}.xml", a.id),
    })
}

fn notice_entry(n: &Notice) -> Entry {
    let (zh, en) = n.kind.names();
    Entry {
        id: format!("N{}", n.id),
        title: format!("{zh}：{} / {en}", n.title),
        published_ms: n.created_at_ms,
        updated_ms: n.created_at_ms,
        msg_type: MsgType::Alert,
        summary: n.body.clone(),
        href: format!("/cap/notices/N{}.xml", n.id),
    }
}

fn write_atom(
    alerts: &[AlertSummary],
    notices: &[Notice],
    sender: &CapSender,
    tz: Tz,
    now_ms: i64,
) -> std::io::Result<W> {
    let mut latest: Vec<Entry> = alerts
        .iter()
        .filter_map(alert_entry)
        .chain(notices.iter().map(notice_entry))
        .collect();
    latest.sort_by(|x, y| y.updated_ms.cmp(&x.updated_ms).then(y.id.cmp(&x.id)));
    let updated = latest.first().map_or(now_ms, |e| e.updated_ms);
    let mut w = new_writer()?;
    w.create_element("feed")
        .with_attribute(("xmlns", ATOM_NS))
        .with_attribute(("xml:lang", "zh-CN"))
        .write_inner_content(|w| {
            text(w, "id", &format!("urn:tenwatch:{sender}:cap"))?;
            text(
                w,
                "title",
                "十户联防公开警情 / tenwatch public alerts (CAP 1.2)",
            )?;
            text(w, "updated", &atom_time(updated, tz))?;
            w.create_element("author")
                .write_inner_content(|w| text(w, "name", sender.as_str()))?;
            w.create_element("link")
                .with_attribute(("rel", "self"))
                .with_attribute(("href", "/cap/feed.atom"))
                .write_empty()?;
            for e in &latest {
                w.create_element("entry").write_inner_content(|w| {
                    text(w, "id", &format!("urn:tenwatch:{sender}:{}", e.id))?;
                    text(w, "title", &e.title)?;
                    text(w, "published", &atom_time(e.published_ms, tz))?;
                    text(w, "updated", &atom_time(e.updated_ms, tz))?;
                    w.create_element("category")
                        .with_attribute(("term", e.msg_type.as_str()))
                        .write_empty()?;
                    text(w, "summary", &e.summary)?;
                    w.create_element("link")
                        .with_attribute(("rel", "alternate"))
                        .with_attribute(("type", "application/cap+xml"))
                        .with_attribute(("href", e.href.as_str()))
                        .write_empty()?;
                    Ok(())
                })?;
            }
            Ok(())
        })?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClusterId, DeviceId, HouseholdId, ZoneCode};

    fn alert() -> AlertSummary {
        AlertSummary {
            id: AlertId(42),
            device: DeviceId::parse("d-c001-03").unwrap(),
            seq: 1,
            household: HouseholdId::parse("c001-03").unwrap(),
            label: "和平路12号".into(),
            address: "北京市东城区和平路12号 <3楼> & 后院".into(),
            lat: 39.91234,
            lon: 116.40321,
            cluster: ClusterId::parse("c001").unwrap(),
            zone: ZoneCode::parse("11010501").unwrap(),
            kind: "fire".into(),
            state: AlertState::Notified,
            raised_at_ms: 1_000_000,
            notified_at_ms: Some(1_000_010),
            updated_at_ms: 1_005_000,
            responders: 0,
            ring: 0,
            critical: false,
            next_ring_at_ms: None,
            category: None,
            resolution_note: Some("张三 13800000000".into()),
            acknowledged_at_ms: None,
            first_delivered_at_ms: None,
            first_coming_at_ms: None,
            first_on_scene_at_ms: None,
            closed_at_ms: None,
            boot: None,
            presses: 1,
            last_press_at_ms: 1_000_000,
            public_at_ms: Some(1_005_000),
        }
    }

    #[test]
    fn a_public_alert_goes_alert_update_then_cancel_or_all_clear() {
        let mut a = alert();
        a.public_at_ms = None;
        assert!(messages(&a).is_empty(), "not public: no message");
        a.public_at_ms = Some(1_005_000);
        let m = messages(&a);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].msg_type, m[0].phase), (MsgType::Alert, Phase::Raised));

        a.state = AlertState::OnScene;
        a.first_on_scene_at_ms = Some(1_009_000);
        let m = messages(&a);
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[1].n, m[1].msg_type, m[1].phase),
            (2, MsgType::Update, Phase::OnScene)
        );

        let mut resolved = a.clone();
        resolved.state = AlertState::Resolved;
        resolved.category = Some("help".into());
        resolved.closed_at_ms = Some(1_020_000);
        let m = messages(&resolved);
        assert_eq!(
            (m[2].n, m[2].msg_type, m[2].phase),
            (3, MsgType::Update, Phase::Resolved)
        );
        assert_eq!(m[2].sent_ms, 1_020_000);

        resolved.category = Some("false_alarm".into());
        assert_eq!(messages(&resolved)[2].msg_type, MsgType::Cancel);

        let mut cancelled = alert();
        cancelled.state = AlertState::Cancelled;
        cancelled.closed_at_ms = Some(1_006_000);
        let m = messages(&cancelled);
        assert_eq!(m.len(), 2);
        assert_eq!((m[1].n, m[1].msg_type), (2, MsgType::Cancel));
    }

    #[test]
    fn published_after_someone_got_there_the_first_message_says_so() {
        let mut a = alert();
        a.state = AlertState::OnScene;
        a.first_on_scene_at_ms = Some(1_001_000);
        let m = messages(&a);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].phase, Phase::OnScene);
    }

    #[test]
    fn the_area_is_a_grid_cell_that_holds_the_house_and_no_more_detail() {
        assert_eq!(coarse_circle(39.91234, 116.40321), "39.9125,116.4025 0.5");
        assert_eq!(coarse_circle(39.91499, 116.40001), "39.9125,116.4025 0.5");
        assert_eq!(coarse_circle(-33.861, 151.21), "-33.8625,151.2125 0.5");
        // The circle holds the house, wherever in its cell.
        for (lat, lon) in [
            (39.91001, 116.40001),
            (39.91499, 116.40499),
            (0.0049, 0.0049),
        ] {
            let c = coarse_circle(lat, lon);
            let (centre, _) = c.split_once(' ').unwrap();
            let (clat, clon) = centre.split_once(',').unwrap();
            let (clat, clon): (f64, f64) = (clat.parse().unwrap(), clon.parse().unwrap());
            let dy = (lat - clat) * 111.32;
            let dx = (lon - clon) * 111.32 * clat.to_radians().cos();
            assert!((dx * dx + dy * dy).sqrt() < AREA_RADIUS_KM, "{lat},{lon}");
        }
    }

    #[test]
    fn sent_is_whole_seconds_with_the_offset() {
        assert_eq!(
            cap_time(1_764_975_000_123, chrono_tz::Asia::Shanghai),
            "2025-12-06T06:50:00+08:00"
        );
        assert_eq!(
            cap_time(1_764_975_000_999, chrono_tz::UTC),
            "2025-12-05T22:50:00+00:00"
        );
    }

    #[test]
    fn the_document_names_no_household_and_references_the_first_message() {
        let mut a = alert();
        a.state = AlertState::Resolved;
        a.category = Some("false_alarm".into());
        a.closed_at_ms = Some(1_020_000);
        let all = messages(&a);
        let sender = CapSender::parse("tenwatch@station.example.org").unwrap();
        let doc = cap_document(&a, &all[1], &all, &sender, chrono_tz::UTC);
        assert!(doc.contains("<msgType>Cancel</msgType>"), "{doc}");
        assert!(doc.contains(
            "<references>tenwatch@station.example.org,tenwatch-A42-1,1970-01-01T00:16:45+00:00</references>"
        ), "{doc}");
        for secret in [
            "和平路",
            "c001-03",
            "d-c001-03",
            "张三",
            "138",
            "39.91234",
            "116.40321",
            "c001",
        ] {
            assert!(!doc.contains(secret), "{secret} in {doc}");
        }
        assert!(
            doc.contains("<language>zh-CN</language>")
                && doc.contains("<language>en-US</language>")
        );
    }

    #[test]
    fn a_sender_with_what_cap_forbids_is_refused() {
        for bad in ["", "a b", "a,b", "a<b", "a&b", "站"] {
            assert!(CapSender::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CapSender::parse("tenwatch@pcs-dongcheng.example.cn").is_ok());
    }

    #[test]
    fn the_feed_lists_the_latest_message_of_each_public_alert_newest_first() {
        let first = alert();
        let mut second = alert();
        second.id = AlertId(43);
        second.public_at_ms = Some(2_000_000);
        let mut hidden = alert();
        hidden.id = AlertId(44);
        hidden.public_at_ms = None;
        let feed = atom_feed(
            &[first, second, hidden],
            &[],
            &CapSender::default(),
            chrono_tz::UTC,
            0,
        );
        let a43 = feed.find("/cap/alerts/A43.xml").unwrap();
        let a42 = feed.find("/cap/alerts/A42.xml").unwrap();
        assert!(a43 < a42, "{feed}");
        assert!(!feed.contains("A44"), "{feed}");
    }
}
