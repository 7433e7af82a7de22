//! Fuzz targets for the uplink parser, `Uplink::parse(topic, payload)`: what every device's
//! publish goes through before any logic runs.
//!
//! The properties, for every topic and payload: nothing panics or loops; a payload over the
//! limit is refused; an uplink that parses is one of `tw/d/{device}/up/…` for that device, and
//! written back as the protocol's JSON (`docs/protocol.md`) it parses to the same value.
//!
//! `cargo test` runs each on a bounded number of random inputs; `scripts/fuzz.sh` runs them
//! under a coverage-guided engine for a set time.

use bolero::{check, TypeGenerator};
use serde_json::json;

use super::{ParseError, Uplink, MAX_UPLINK_PAYLOAD};
use crate::fuzz_json::{self, Vocabulary};

/// Random inputs per target in the smoke run (`BOLERO_RANDOM_ITERATIONS` overrides).
const SMOKE: usize = 5_000;

/// The uplink as a device would send it, from the parsed value.
fn written(uplink: &Uplink) -> serde_json::Value {
    match uplink {
        Uplink::Press(p) => json!({ "seq": p.seq, "kind": p.kind.as_str(), "ts": p.device_ts_ms }),
        Uplink::Respond { alert, answer } => {
            json!({ "alert": alert.to_string(), "answer": answer })
        }
        Uplink::Delivered { alert } => json!({ "alert": alert.to_string() }),
        Uplink::Heartbeat(h) => json!({
            "seq": h.seq, "battery": h.battery, "tamper": h.tamper, "rssi": h.rssi, "fw": h.firmware,
        }),
        Uplink::Subscribed => json!({}),
        Uplink::NoticeDelivered { notice } => json!({ "notice": notice.to_string() }),
        Uplink::Satisfaction { alert, satisfied } => json!({
            "alert": alert.to_string(),
            "answer": if *satisfied { "satisfied" } else { "unsatisfied" },
        }),
    }
}

fn what(uplink: &Uplink) -> &'static str {
    match uplink {
        Uplink::Press(_) => "press",
        Uplink::Respond { .. } => "respond",
        Uplink::Delivered { .. } => "delivered",
        Uplink::Heartbeat(_) => "heartbeat",
        Uplink::Subscribed => "subscribed",
        Uplink::NoticeDelivered { .. } => "notice",
        Uplink::Satisfaction { .. } => "satisfaction",
    }
}

/// The property every target checks on one topic and payload.
fn parses_or_refuses(topic: &str, payload: &[u8]) {
    match Uplink::parse(topic, payload) {
        Ok((device, uplink)) => {
            assert!(payload.len() <= MAX_UPLINK_PAYLOAD);
            let expected = format!("tw/d/{}/up/{}", device.as_str(), what(&uplink));
            assert_eq!(topic, expected);
            let again = serde_json::to_vec(&written(&uplink)).expect("JSON of plain values");
            assert_eq!(
                Uplink::parse(topic, &again).map(|(_, u)| u),
                Ok(uplink),
                "{}",
                String::from_utf8_lossy(&again)
            );
        }
        Err(ParseError::Payload { why, .. }) => assert!(!why.is_empty()),
        Err(_) => {}
    }
}

/// Any topic, any bytes.
#[test]
fn uplink_bytes() {
    check!()
        .with_type::<(String, Vec<u8>)>()
        .with_iterations(SMOKE)
        .for_each(|(topic, payload)| parses_or_refuses(topic, payload));
}

/// A topic that is one of the uplinks, any bytes: the payload readers at their rawest.
#[test]
fn uplink_payload_bytes() {
    check!()
        .with_type::<(What, Vec<u8>)>()
        .with_iterations(SMOKE)
        .for_each(|(what, payload)| {
            parses_or_refuses(&format!("tw/d/dev-1/up/{}", what.as_str()), payload)
        });
}

/// A JSON document made of the protocol's fields with values of every type, on an uplink
/// topic of a valid or invalid device id: the fuzzer reaches the field checks, not only the
/// JSON syntax errors.
#[test]
fn uplink_documents() {
    check!()
        .with_type::<Document>()
        .with_iterations(SMOKE)
        .for_each(|doc| {
            let topic = format!("tw/d/{}/up/{}", doc.device.text(), doc.what.as_str());
            parses_or_refuses(&topic, doc.render().as_bytes())
        });
}

/// The uplinks and one that no one reads.
#[derive(Debug, TypeGenerator)]
enum What {
    Press,
    Respond,
    Delivered,
    Heartbeat,
    Subscribed,
    Notice,
    Satisfaction,
    Other,
}

impl What {
    fn as_str(&self) -> &'static str {
        match self {
            What::Press => "press",
            What::Respond => "respond",
            What::Delivered => "delivered",
            What::Heartbeat => "heartbeat",
            What::Subscribed => "subscribed",
            What::Notice => "notice",
            What::Satisfaction => "satisfaction",
            What::Other => "ack",
        }
    }
}

#[derive(Debug, TypeGenerator)]
enum Device {
    Valid,
    Any(String),
}

impl Device {
    fn text(&self) -> &str {
        match self {
            Device::Valid => "d-11010501-001-03",
            Device::Any(s) => s,
        }
    }
}

/// A document on an uplink topic of a valid or any device id.
#[derive(Debug, TypeGenerator)]
struct Document {
    device: Device,
    what: What,
    body: fuzz_json::Document,
}

impl Document {
    fn render(&self) -> String {
        self.body.render(&VOCABULARY)
    }
}

/// The protocol's field names, the strings the parser gives a meaning to, and near misses.
const VOCABULARY: Vocabulary = Vocabulary {
    keys: &[
        "seq", "kind", "ts", "alert", "answer", "battery", "tamper", "rssi", "fw", "notice",
    ],
    words: &[
        "help",
        "medical",
        "fire",
        "intrusion",
        "cancel",
        "coming",
        "declined",
        "satisfied",
        "unsatisfied",
        "N1",
        "N0",
        "A1",
        "12",
        "A0",
        "A-1",
        "A18446744073709551616",
        "",
        "HELP",
        " help",
    ],
};
