//! Fuzz targets for the DC-09 reader: what every byte a panel (or anyone) sends to
//! `--sia-listen` goes through before any logic runs.
//!
//! The properties, for every input: nothing panics or loops; a message that reads has a valid
//! CRC and length by construction; its data reads or is refused with a reason, with or without
//! a key; the ACK and DUH to a message that reads read back as messages with its route.
//!
//! `cargo test` runs each on a bounded number of random inputs; `scripts/fuzz.sh` runs them
//! under a coverage-guided engine for a set time.

use bolero::check;

use super::cid::{self, Cid};
use super::frame;
use crate::store::sia::SiaKey;

/// Random inputs per target in the smoke run (`BOLERO_RANDOM_ITERATIONS` overrides).
const SMOKE: usize = 5_000;

fn reads_or_refuses(raw: &[u8]) {
    let Ok(f) = frame::parse(raw) else {
        return;
    };
    assert!(!f.account.is_empty() && f.seq.len() == 4);
    let key = SiaKey([7; 16]);
    for key in [None, Some(&key)] {
        if let Ok(data) = frame::data(&f, key) {
            if let Ok(c) = Cid::parse(&data.event) {
                let _ = cid::map(&c);
            }
            if let Some(t) = data.timestamp.as_deref() {
                let _ = frame::parse_timestamp(t);
            }
        }
    }
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    for answer in [frame::ack(&f, Some(&key), now, || 'x'), frame::duh(&f)] {
        let back = frame::parse(&answer).expect("an answer reads as a message");
        assert_eq!((back.seq, back.account), (f.seq, f.account));
    }
}

/// Any bytes.
#[test]
fn sia_bytes() {
    check!()
        .with_type::<Vec<u8>>()
        .with_iterations(SMOKE)
        .for_each(|raw| reads_or_refuses(raw));
}

/// Any text behind a CRC and length that fit it: the header and data readers at their rawest.
#[test]
fn sia_framed_text() {
    check!()
        .with_type::<(bool, String)>()
        .with_iterations(SMOKE)
        .for_each(|(header, body)| {
            // Half the inputs start as a message does, so the data reader is reached.
            let body = if *header {
                format!("\"ADM-CID\"0001R0L0#1234[{body}")
            } else {
                body.clone()
            };
            let framed = frame::wrap(&body);
            reads_or_refuses(&framed);
        });
}
