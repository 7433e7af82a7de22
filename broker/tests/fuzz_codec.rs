//! Fuzz targets for the MQTT 3.1.1 codec the edge speaks with devices (`codec.rs`): the frame
//! cutter and the CONNECT, PUBLISH, SUBSCRIBE and UNSUBSCRIBE parsers.
//!
//! The properties, for every input: nothing panics or loops; a frame is exactly the length its
//! header announces, and what follows it in the buffer is left as it was; what a parser returns
//! is made of the frame's own bytes; and whatever parses is written back by the encoder into a
//! packet that parses to the same value, or the encoder refuses it with an error.
//!
//! `cargo test` runs each target on a bounded number of random inputs (the smoke run, also in
//! CI); `scripts/fuzz.sh` runs them under a coverage-guided engine for a set time.

use bolero::check;
use bytes::BytesMut;
use rumqttc::mqttbytes::v4;
use tenwatch_broker::codec::{self, CodecError, Frame};

/// Random inputs per target in the smoke run: enough to reach every parser's error paths, few
/// enough that all targets together take about a second. `BOLERO_RANDOM_ITERATIONS` overrides.
const SMOKE: usize = 20_000;

/// A frame cap small enough that random headers often announce more than it.
const FRAME_CAP: usize = 4096;

fn one_frame(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = codec::next_frame(&mut buf, usize::MAX)
        .expect("an encoded packet has a valid header")
        .expect("an encoded packet is complete");
    assert!(buf.is_empty(), "an encoded packet is one frame");
    frame
}

/// True when `inner` lies within `outer` (the same memory, not a copy).
fn within(inner: &[u8], outer: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr_range(), inner.as_ptr_range());
    i.start >= o.start && i.end <= o.end
}

/// Runs every parser on a frame; none may panic, and a PUBLISH borrows only the frame's body.
fn parse_all(frame: &Frame) {
    let body = frame.body();
    let _ = codec::parse_connect(body);
    if let Ok(p) = codec::parse_publish(frame.flags(), body) {
        assert!(within(p.topic.as_bytes(), body) && within(p.payload, body));
    }
    let _ = codec::parse_subscribe(frame.flags(), body);
    let _ = codec::parse_unsubscribe(frame.flags(), body);
    let _ = codec::parse_connack(body);
    let _ = codec::packet_id(body);
}

/// A stream of bytes as a device sends it, arriving in pieces: frames are cut as the pieces
/// come, each exactly as long as its header says, never more than the cap, and the frames
/// plus what is left are the stream, byte for byte.
#[test]
fn frames() {
    check!()
        .with_type::<(Vec<u8>, Vec<u8>)>()
        .with_iterations(SMOKE)
        .for_each(|(stream, cuts)| {
            let mut buf = BytesMut::new();
            let mut cut = Vec::new();
            let mut fed = 0;
            let mut pieces = cuts.iter().map(|&c| usize::from(c) + 1);
            let refused = loop {
                let piece = pieces.next().unwrap_or(stream.len());
                let end = (fed + piece).min(stream.len());
                buf.extend_from_slice(&stream[fed..end]);
                fed = end;
                let mut refused = None;
                loop {
                    let before = buf.len();
                    match codec::next_frame(&mut buf, FRAME_CAP) {
                        Ok(Some(frame)) => {
                            let (header_len, remaining) = codec::parse_fixed_header(&frame.bytes)
                                .expect("a frame's header parses")
                                .expect("a frame's header is complete");
                            assert_eq!(frame.bytes.len(), header_len + remaining);
                            assert_eq!(frame.body().len(), remaining);
                            assert!(frame.bytes.len() <= FRAME_CAP);
                            assert_eq!(buf.len(), before - frame.bytes.len());
                            parse_all(&frame);
                            cut.extend_from_slice(&frame.bytes);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            // Refused from the header alone: nothing was taken off the buffer.
                            assert_eq!(buf.len(), before);
                            refused = Some(e);
                            break;
                        }
                    }
                }
                if refused.is_some() || fed == stream.len() {
                    break refused;
                }
            };
            cut.extend_from_slice(&buf);
            assert_eq!(cut, stream[..fed]);
            if let Some(e) = refused {
                assert!(
                    matches!(
                        e,
                        CodecError::MalformedRemainingLength | CodecError::FrameTooLarge { .. }
                    ),
                    "{e:?}"
                );
            }
        });
}

/// A fixed header reads at most five bytes and returns a length MQTT can carry.
#[test]
fn fixed_header() {
    check!()
        .with_type::<Vec<u8>>()
        .with_iterations(SMOKE)
        .for_each(|bytes| match codec::parse_fixed_header(bytes) {
            Ok(Some((header_len, remaining))) => {
                assert!((2..=5).contains(&header_len));
                assert!(remaining <= codec::MAX_REMAINING_LENGTH);
                // The same answer with nothing after the header: it read no further.
                assert_eq!(
                    codec::parse_fixed_header(&bytes[..header_len]),
                    Ok(Some((header_len, remaining)))
                );
            }
            Ok(None) => assert!(bytes.len() < 5),
            Err(_) => assert!(bytes.len() >= 5),
        });
}

/// Any CONNECT body: refused, or written back to a CONNECT that reads the same. Half the
/// bodies start as MQTT 3.1.1's do (name and level): libFuzzer did not guess the string `MQTT`
/// in 18 million runs, and behind it are the flags and fields.
#[test]
fn connect_bytes() {
    check!()
        .with_type::<(bool, Vec<u8>)>()
        .with_iterations(SMOKE)
        .for_each(|(mqtt_3_1_1, rest)| {
            let mut body = Vec::with_capacity(7 + rest.len());
            if *mqtt_3_1_1 {
                body.extend_from_slice(b"\0\x04MQTT\x04");
            }
            body.extend_from_slice(rest);
            let Ok(connect) = codec::parse_connect(&body) else {
                return;
            };
            if let Ok(bytes) = codec::encode_connect(&connect) {
                let again = codec::parse_connect(one_frame(&bytes).body());
                assert_eq!(again.as_ref(), Ok(&connect));
            }
        });
}

/// A CONNECT made of any fields: the encoder writes what the parser reads back, or refuses.
#[test]
fn connect_fields() {
    type Fields = (
        (bool, u16, String),
        Option<(String, Vec<u8>, u8, bool)>,
        Option<String>,
        Option<Vec<u8>>,
    );
    check!()
        .with_type::<Fields>()
        .with_iterations(SMOKE)
        .for_each(
            |((clean_session, keep_alive, client_id), will, username, password)| {
                let connect = codec::Connect {
                    clean_session: *clean_session,
                    keep_alive: *keep_alive,
                    client_id: client_id.clone(),
                    will: will
                        .as_ref()
                        .map(|(topic, payload, qos, retain)| codec::Will {
                            topic: topic.clone(),
                            payload: payload.clone(),
                            qos: qos % 4,
                            retain: *retain,
                        }),
                    username: username.clone(),
                    password: password.clone(),
                };
                if let Ok(bytes) = codec::encode_connect(&connect) {
                    let again = codec::parse_connect(one_frame(&bytes).body());
                    assert_eq!(again.as_ref(), Ok(&connect));
                }
            },
        );
}

/// Any PUBLISH: refused, or a view into its own body that the encoder writes back to the same.
#[test]
fn publish() {
    check!()
        .with_type::<(u8, Vec<u8>)>()
        .with_iterations(SMOKE)
        .for_each(|(flags, body)| {
            let flags = flags & 0x0f;
            let Ok(p) = codec::parse_publish(flags, body) else {
                return;
            };
            assert!(within(p.topic.as_bytes(), body) && within(p.payload, body));
            assert_eq!(p.packet_id.is_some(), p.qos > 0);
            if let Ok(bytes) =
                codec::encode_publish(p.topic, p.qos, p.retain, p.packet_id, p.payload)
            {
                let frame = one_frame(&bytes);
                let again = codec::parse_publish(frame.flags(), frame.body());
                // The edge never sets DUP on what it writes.
                let expected = codec::PublishView { dup: false, ..p };
                assert_eq!(again, Ok(expected));
            }
        });
}

/// A PUBLISH made of any fields: the encoder writes what the parser reads back, or refuses.
#[test]
fn publish_fields() {
    check!()
        .with_type::<(String, u8, bool, Option<u16>, Vec<u8>)>()
        .with_iterations(SMOKE)
        .for_each(|(topic, qos, retain, packet_id, payload)| {
            let qos = qos % 4;
            if let Ok(bytes) = codec::encode_publish(topic, qos, *retain, *packet_id, payload) {
                let frame = one_frame(&bytes);
                let p = codec::parse_publish(frame.flags(), frame.body())
                    .expect("what the edge writes, it reads");
                assert_eq!(
                    (p.topic, p.qos, p.retain, p.payload),
                    (topic.as_str(), qos, *retain, payload.as_slice())
                );
                if qos > 0 {
                    assert_eq!(p.packet_id, *packet_id);
                }
            }
        });
}

/// Any SUBSCRIBE: refused, or written back to a SUBSCRIBE that reads the same.
#[test]
fn subscribe() {
    check!()
        .with_type::<(u8, Vec<u8>)>()
        .with_iterations(SMOKE)
        .for_each(|(flags, body)| {
            let flags = flags & 0x0f;
            let Ok(s) = codec::parse_subscribe(flags, body) else {
                return;
            };
            let filters: Vec<(&str, u8)> =
                s.filters.iter().map(|(f, q)| (f.as_str(), *q)).collect();
            if let Ok(bytes) = codec::encode_subscribe(s.packet_id, &filters) {
                let frame = one_frame(&bytes);
                assert_eq!(codec::parse_subscribe(frame.flags(), frame.body()), Ok(s));
            }
        });
}

/// Any UNSUBSCRIBE: refused, or what a device's client (rumqttc) would write for it reads the
/// same.
#[test]
fn unsubscribe() {
    check!()
        .with_type::<(u8, Vec<u8>)>()
        .with_iterations(SMOKE)
        .for_each(|(flags, body)| {
            let flags = flags & 0x0f;
            let Ok(u) = codec::parse_unsubscribe(flags, body) else {
                return;
            };
            let packet = v4::Unsubscribe {
                pkid: u.packet_id,
                topics: u.filters.clone(),
            };
            let mut bytes = BytesMut::new();
            if packet.write(&mut bytes).is_ok() {
                let frame = one_frame(&bytes);
                assert_eq!(codec::parse_unsubscribe(frame.flags(), frame.body()), Ok(u));
            }
        });
}
