//! A small MQTT 3.1.1 codec: just what the edge needs to find frame boundaries, read
//! CONNECT / PUBLISH / SUBSCRIBE / UNSUBSCRIBE / PUBACK, and write the packets it sends devices.
//!
//! The packets the edge writes come from rumqttc's `mqttbytes::v4`. What stays here, and why:
//! - [`next_frame`]: rumqttc's `check` caps the body, not the frame, and hides the header length.
//! - The parsers: rumqttc's make each frame an owned packet; the edge views it, checks it and
//!   copies out only what the router needs (topic and payload of an allowed publish).
//! - [`parse_connect`]: stricter (level 4 only, reserved flag, NUL, trailing bytes), byte password.
//! - [`parse_publish`], [`parse_subscribe`], [`parse_unsubscribe`]: refuse NUL, bad flags and
//!   option bits.
//! - [`parse_connack`]: refuses a body that is not 2 bytes (for clients of the edge: tests, tools).
//!
//! Every parser returns an error, never panics, on truncated or garbage input.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self, v4, Protocol, QoS};

pub use rumqttc::mqttbytes::v4::{ConnectReturnCode, SubscribeReasonCode};

/// MQTT control packet types (the high nibble of the first byte).
pub mod packet {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
}

/// CONNACK return codes of MQTT 3.1.1 as they are on the wire, for reading a CONNACK
/// ([`parse_connack`]); the edge writes its own with [`ConnectReturnCode`].
pub mod connack {
    use super::ConnectReturnCode;

    pub const ACCEPTED: u8 = ConnectReturnCode::Success as u8;
    pub const UNACCEPTABLE_PROTOCOL: u8 = ConnectReturnCode::RefusedProtocolVersion as u8;
    pub const IDENTIFIER_REJECTED: u8 = ConnectReturnCode::BadClientId as u8;
    pub const SERVER_UNAVAILABLE: u8 = ConnectReturnCode::ServiceUnavailable as u8;
    pub const BAD_CREDENTIALS: u8 = ConnectReturnCode::BadUserNamePassword as u8;
    pub const NOT_AUTHORIZED: u8 = ConnectReturnCode::NotAuthorized as u8;
}

/// The largest value the 4-byte remaining length can carry.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Why bytes could not be read as MQTT 3.1.1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("remaining length longer than 4 bytes")]
    MalformedRemainingLength,
    #[error("frame of type {packet_type} is {len} bytes, over the {max} byte cap")]
    FrameTooLarge {
        packet_type: u8,
        len: usize,
        max: usize,
    },
    #[error("packet truncated while reading {0}")]
    Truncated(&'static str),
    #[error("string is not valid UTF-8 or contains NUL")]
    InvalidString,
    #[error("protocol {name:?} level {level} is not MQTT 3.1.1")]
    UnsupportedProtocol { name: String, level: u8 },
    #[error("invalid flags: {0}")]
    InvalidFlags(&'static str),
    #[error("expected packet type {expected}, found {found}")]
    UnexpectedPacket { expected: u8, found: u8 },
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    #[error("cannot encode: {0}")]
    Unencodable(String),
}

/// One complete frame cut from a read buffer: the whole packet, fixed header included, so it
/// can be forwarded untouched.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The whole packet as received.
    pub bytes: Bytes,
    /// Length of the fixed header (1 type byte + 1..=4 length bytes).
    header_len: usize,
}

impl Frame {
    /// The packet type (high nibble of the first byte).
    pub fn packet_type(&self) -> u8 {
        self.bytes[0] >> 4
    }

    /// The low nibble of the first byte (PUBLISH: dup, qos, retain).
    pub fn flags(&self) -> u8 {
        self.bytes[0] & 0x0f
    }

    /// The variable header and payload.
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.header_len..]
    }
}

/// Reads a fixed header at the start of `buf`: `Ok(None)` if more bytes are needed,
/// `Ok(Some((header_len, remaining_len)))` otherwise.
pub fn parse_fixed_header(buf: &[u8]) -> Result<Option<(usize, usize)>, CodecError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut remaining: usize = 0;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((2 + i, remaining)));
        }
    }
    Err(CodecError::MalformedRemainingLength)
}

/// Cuts the next complete frame off `buf`, if one is there. A frame whose announced size is
/// over `max_frame` is refused from its header alone, before its body is read, so a
/// device cannot make the edge buffer more than the cap.
pub fn next_frame(buf: &mut BytesMut, max_frame: usize) -> Result<Option<Frame>, CodecError> {
    let Some((header_len, remaining)) = parse_fixed_header(buf)? else {
        return Ok(None);
    };
    let len = header_len + remaining;
    if len > max_frame {
        return Err(CodecError::FrameTooLarge {
            packet_type: buf[0] >> 4,
            len,
            max: max_frame,
        });
    }
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(Frame {
        bytes: buf.split_to(len).freeze(),
        header_len,
    }))
}

/// A cursor over a packet body; every read checks bounds.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        let b = *self.buf.get(self.pos).ok_or(CodecError::Truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        let hi = self.u8(what)?;
        let lo = self.u8(what)?;
        Ok(u16::from_be_bytes([hi, lo]))
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], CodecError> {
        let len = usize::from(self.u16(what)?);
        let end = self
            .pos
            .checked_add(len)
            .ok_or(CodecError::Truncated(what))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(CodecError::Truncated(what))?;
        self.pos = end;
        Ok(out)
    }

    fn string(&mut self, what: &'static str) -> Result<&'a str, CodecError> {
        let raw = self.bytes(what)?;
        let s = std::str::from_utf8(raw).map_err(|_| CodecError::InvalidString)?;
        if s.contains('\0') {
            return Err(CodecError::InvalidString);
        }
        Ok(s)
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos.min(self.buf.len())..];
        self.pos = self.buf.len();
        out
    }

    fn is_done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// A CONNECT's last will (read only so it can be dropped: the edge reports presence instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
}

/// A parsed MQTT 3.1.1 CONNECT.
#[derive(Clone, PartialEq, Eq)]
pub struct Connect {
    pub clean_session: bool,
    pub keep_alive: u16,
    pub client_id: String,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
}

impl std::fmt::Debug for Connect {
    // The password is a device secret: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("clean_session", &self.clean_session)
            .field("keep_alive", &self.keep_alive)
            .field("client_id", &self.client_id)
            .field("will", &self.will.as_ref().map(|w| &w.topic))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Parses a CONNECT body. The protocol name and level are checked first, so a client speaking
/// another version gets [`CodecError::UnsupportedProtocol`] (answer: CONNACK 1) even when the
/// rest of its packet has another layout (MQTT 5 properties).
pub fn parse_connect(body: &[u8]) -> Result<Connect, CodecError> {
    let mut r = Reader::new(body);
    let name = r.string("protocol name")?;
    let level = r.u8("protocol level")?;
    if name != "MQTT" || level != 4 {
        return Err(CodecError::UnsupportedProtocol {
            name: name.to_owned(),
            level,
        });
    }
    let flags = r.u8("connect flags")?;
    if flags & 0x01 != 0 {
        return Err(CodecError::InvalidFlags("reserved connect flag set"));
    }
    let clean_session = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    if will_qos == 3 {
        return Err(CodecError::InvalidFlags("will qos 3"));
    }
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(CodecError::InvalidFlags("will qos/retain without will"));
    }
    if has_password && !has_username {
        return Err(CodecError::InvalidFlags("password without user name"));
    }
    let keep_alive = r.u16("keep alive")?;
    let client_id = r.string("client id")?.to_owned();
    let will = if will_flag {
        let topic = r.string("will topic")?.to_owned();
        let payload = r.bytes("will payload")?.to_vec();
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string("user name")?.to_owned())
    } else {
        None
    };
    let password = if has_password {
        Some(r.bytes("password")?.to_vec())
    } else {
        None
    };
    if !r.is_done() {
        return Err(CodecError::Malformed("trailing bytes after CONNECT"));
    }
    Ok(Connect {
        clean_session,
        keep_alive,
        client_id,
        will,
        username,
        password,
    })
}

/// Runs one of rumqttc's packet writers. They fail only on what MQTT cannot carry (a remaining
/// length over 256 MiB, a QoS 1 or 2 PUBLISH with packet id 0).
fn written(
    write: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>,
) -> Result<Vec<u8>, CodecError> {
    let mut out = BytesMut::new();
    write(&mut out).map_err(|e| CodecError::Unencodable(e.to_string()))?;
    Ok(out.into())
}

/// Runs one of rumqttc's writers for a packet of at most 4 bytes, which cannot fail (see
/// [`written`]), so there is no error to pass on.
fn small(write: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(4);
    let _ = write(&mut out);
    out.into()
}

/// rumqttc writes a field's length as `len as u16`: refuse what would not fit instead.
fn fits_u16(field: &[u8]) -> Result<(), CodecError> {
    match u16::try_from(field.len()) {
        Ok(_) => Ok(()),
        Err(_) => Err(CodecError::Malformed("field over 65535 bytes")),
    }
}

/// A string field as MQTT 3.1.1 allows it (section 1.5.3): one that fits, without U+0000,
/// which the parsers here refuse, so the edge never writes what it would not read.
fn mqtt_string(s: &str) -> Result<(), CodecError> {
    fits_u16(s.as_bytes())?;
    if s.contains('\0') {
        return Err(CodecError::InvalidString);
    }
    Ok(())
}

fn to_qos(qos: u8) -> Result<QoS, CodecError> {
    mqttbytes::qos(qos).map_err(|_| CodecError::InvalidFlags("qos over 2"))
}

/// Encodes a CONNECT (MQTT 3.1.1). rumqttc's `Login` holds strings and leaves empty ones out,
/// so a password that is not UTF-8, or an empty user name or password, is refused rather than
/// written otherwise than asked.
pub fn encode_connect(c: &Connect) -> Result<Vec<u8>, CodecError> {
    let password = c
        .password
        .as_deref()
        .map(std::str::from_utf8)
        .transpose()
        .map_err(|_| CodecError::InvalidString)?;
    let login = match (c.username.as_deref(), password) {
        (None, None) => None,
        (None, Some(_)) => return Err(CodecError::InvalidFlags("password without user name")),
        (Some(""), _) | (_, Some("")) => {
            return Err(CodecError::Malformed("empty user name or password"))
        }
        (Some(username), password) => {
            mqtt_string(username)?;
            fits_u16(password.unwrap_or_default().as_bytes())?;
            Some(v4::Login::new(username, password.unwrap_or_default()))
        }
    };
    mqtt_string(&c.client_id)?;
    let last_will = match &c.will {
        Some(w) => {
            mqtt_string(&w.topic)?;
            fits_u16(&w.payload)?;
            Some(v4::LastWill::new(
                w.topic.as_str(),
                w.payload.as_slice(),
                to_qos(w.qos)?,
                w.retain,
            ))
        }
        None => None,
    };
    let connect = v4::Connect {
        protocol: Protocol::V4,
        keep_alive: c.keep_alive,
        client_id: c.client_id.clone(),
        clean_session: c.clean_session,
        last_will,
        login,
    };
    written(|out| connect.write(out))
}

/// Encodes a CONNACK.
pub fn encode_connack(session_present: bool, code: ConnectReturnCode) -> Vec<u8> {
    small(|out| v4::ConnAck::new(code, session_present).write(out))
}

/// Parses a CONNACK body into (session present, return code).
pub fn parse_connack(body: &[u8]) -> Result<(bool, u8), CodecError> {
    match body {
        [flags, code] => Ok((flags & 0x01 != 0, *code)),
        _ => Err(CodecError::Malformed("CONNACK body is not 2 bytes")),
    }
}

/// A PUBLISH seen through its frame: topic and payload borrow the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishView<'a> {
    pub topic: &'a str,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    /// Present for QoS 1 and 2.
    pub packet_id: Option<u16>,
    pub payload: &'a [u8],
}

/// Parses a PUBLISH from its first-byte flags and body, without copying the payload.
pub fn parse_publish(flags: u8, body: &[u8]) -> Result<PublishView<'_>, CodecError> {
    let qos = (flags >> 1) & 0x03;
    if qos == 3 {
        return Err(CodecError::InvalidFlags("publish qos 3"));
    }
    let mut r = Reader::new(body);
    let topic = r.string("topic")?;
    let packet_id = if qos > 0 {
        let id = r.u16("packet id")?;
        if id == 0 {
            return Err(CodecError::Malformed("packet id 0"));
        }
        Some(id)
    } else {
        None
    };
    Ok(PublishView {
        topic,
        qos,
        retain: flags & 0x01 != 0,
        dup: flags & 0x08 != 0,
        packet_id,
        payload: r.rest(),
    })
}

/// Encodes a PUBLISH (what the edge delivers to a device; tests and tools use it too).
pub fn encode_publish(
    topic: &str,
    qos: u8,
    retain: bool,
    packet_id: Option<u16>,
    payload: &[u8],
) -> Result<Vec<u8>, CodecError> {
    mqtt_string(topic)?;
    let mut publish = v4::Publish::new(topic, to_qos(qos)?, payload);
    publish.retain = retain;
    if publish.qos != QoS::AtMostOnce {
        publish.pkid = packet_id.ok_or(CodecError::Malformed("qos > 0 needs a packet id"))?;
    }
    written(|out| publish.write(out))
}

/// A parsed SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    /// (filter, requested QoS) in packet order.
    pub filters: Vec<(String, u8)>,
}

/// Parses a SUBSCRIBE from its first-byte flags and body.
pub fn parse_subscribe(flags: u8, body: &[u8]) -> Result<Subscribe, CodecError> {
    if flags != 0x02 {
        return Err(CodecError::InvalidFlags("SUBSCRIBE flags must be 0010"));
    }
    let mut r = Reader::new(body);
    let packet_id = r.u16("packet id")?;
    let mut filters = Vec::new();
    while !r.is_done() {
        let filter = r.string("filter")?.to_owned();
        let qos = r.u8("requested qos")?;
        if qos > 2 {
            return Err(CodecError::InvalidFlags("requested qos over 2"));
        }
        filters.push((filter, qos));
    }
    if filters.is_empty() {
        return Err(CodecError::Malformed("SUBSCRIBE without filters"));
    }
    Ok(Subscribe { packet_id, filters })
}

/// Encodes a SUBSCRIBE.
pub fn encode_subscribe(packet_id: u16, filters: &[(&str, u8)]) -> Result<Vec<u8>, CodecError> {
    if filters.is_empty() {
        return Err(CodecError::Malformed("SUBSCRIBE without filters"));
    }
    let filters = filters
        .iter()
        .map(|(filter, q)| {
            mqtt_string(filter)?;
            Ok(v4::SubscribeFilter::new((*filter).to_owned(), to_qos(*q)?))
        })
        .collect::<Result<Vec<_>, CodecError>>()?;
    let subscribe = v4::Subscribe {
        pkid: packet_id,
        filters,
    };
    written(|out| subscribe.write(out))
}

/// A parsed UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    /// The filters, in packet order.
    pub filters: Vec<String>,
}

/// Parses an UNSUBSCRIBE from its first-byte flags and body.
pub fn parse_unsubscribe(flags: u8, body: &[u8]) -> Result<Unsubscribe, CodecError> {
    if flags != 0x02 {
        return Err(CodecError::InvalidFlags("UNSUBSCRIBE flags must be 0010"));
    }
    let mut r = Reader::new(body);
    let packet_id = r.u16("packet id")?;
    let mut filters = Vec::new();
    while !r.is_done() {
        filters.push(r.string("filter")?.to_owned());
    }
    if filters.is_empty() {
        return Err(CodecError::Malformed("UNSUBSCRIBE without filters"));
    }
    Ok(Unsubscribe { packet_id, filters })
}

/// Encodes a SUBACK.
pub fn encode_suback(packet_id: u16, codes: &[SubscribeReasonCode]) -> Result<Vec<u8>, CodecError> {
    written(|out| v4::SubAck::new(packet_id, codes.to_vec()).write(out))
}

/// Encodes a PUBACK.
pub fn encode_puback(packet_id: u16) -> Vec<u8> {
    small(|out| v4::PubAck::new(packet_id).write(out))
}

/// Encodes an UNSUBACK.
pub fn encode_unsuback(packet_id: u16) -> Vec<u8> {
    small(|out| v4::UnsubAck::new(packet_id).write(out))
}

/// Encodes a PINGRESP.
pub fn encode_pingresp() -> Vec<u8> {
    small(|out| v4::PingResp.write(out))
}

/// Reads the packet id that starts a body (PUBACK, SUBSCRIBE, UNSUBSCRIBE, ...).
pub fn packet_id(body: &[u8]) -> Result<u16, CodecError> {
    Reader::new(body).u16("packet id")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_frame(bytes: &[u8]) -> Frame {
        let mut buf = BytesMut::from(bytes);
        let f = next_frame(&mut buf, 1 << 20)
            .expect("valid")
            .expect("complete");
        assert!(buf.is_empty());
        f
    }

    fn sample_connect() -> Connect {
        Connect {
            clean_session: true,
            keep_alive: 30,
            client_id: "dev1".into(),
            will: Some(Will {
                topic: "tw/d/dev1/up/lwt".into(),
                payload: b"gone".to_vec(),
                qos: 1,
                retain: true,
            }),
            username: Some("dev1".into()),
            password: Some(b"secret".to_vec()),
        }
    }

    #[test]
    fn remaining_length_as_in_the_spec() {
        // MQTT 3.1.1, table 2.4: the edges of each encoded size.
        let table: [(usize, &[u8]); 9] = [
            (0, &[0x00]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (MAX_REMAINING_LENGTH, &[0xff, 0xff, 0xff, 0x7f]),
        ];
        for (len, encoded) in table {
            let mut out = vec![0x30];
            out.extend_from_slice(encoded);
            assert_eq!(
                parse_fixed_header(&out),
                Ok(Some((out.len(), len))),
                "{len}"
            );
        }
    }

    #[test]
    fn fixed_header_needs_more_or_fails() {
        assert_eq!(parse_fixed_header(&[]), Ok(None));
        assert_eq!(parse_fixed_header(&[0x30]), Ok(None));
        assert_eq!(parse_fixed_header(&[0x30, 0x80, 0x80]), Ok(None));
        assert_eq!(
            parse_fixed_header(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(CodecError::MalformedRemainingLength)
        );
    }

    #[test]
    fn next_frame_splits_and_waits() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&encode_pingresp());
        buf.extend_from_slice(&encode_puback(7)[..3]);
        let f = next_frame(&mut buf, 100).expect("ok").expect("frame");
        assert_eq!(f.packet_type(), packet::PINGRESP);
        assert!(next_frame(&mut buf, 100).expect("ok").is_none());
        buf.extend_from_slice(&[7]);
        let f = next_frame(&mut buf, 100).expect("ok").expect("frame");
        assert_eq!(packet_id(f.body()), Ok(7));
    }

    #[test]
    fn next_frame_refuses_oversize_from_header() {
        let mut buf = BytesMut::from(&[0x30u8, 0xff, 0x7f][..]);
        assert_eq!(
            next_frame(&mut buf, 1000).err(),
            Some(CodecError::FrameTooLarge {
                packet_type: packet::PUBLISH,
                len: 3 + 16_383,
                max: 1000
            })
        );
    }

    #[test]
    fn connect_round_trip() {
        let c = sample_connect();
        let f = one_frame(&encode_connect(&c).expect("encode"));
        assert_eq!(f.packet_type(), packet::CONNECT);
        assert_eq!(parse_connect(f.body()), Ok(c.clone()));

        let bare = Connect {
            will: None,
            username: None,
            password: None,
            client_id: String::new(),
            ..c
        };
        let f = one_frame(&encode_connect(&bare).expect("encode"));
        assert_eq!(parse_connect(f.body()), Ok(bare));
    }

    #[test]
    fn connect_debug_redacts_password() {
        let s = format!("{:?}", sample_connect());
        assert!(!s.contains("secret"));
        assert!(s.contains("redacted"));
    }

    #[test]
    fn connect_other_protocol_levels() {
        let mut bytes = encode_connect(&sample_connect()).expect("encode");
        // Byte 8 is the protocol level (after type, length, name length and "MQTT").
        bytes[8] = 5;
        let f = one_frame(&bytes);
        assert!(matches!(
            parse_connect(f.body()),
            Err(CodecError::UnsupportedProtocol { level: 5, .. })
        ));
        // MQTT 3.1 ("MQIsdp", level 3).
        let body = [
            0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60, 0, 1, b'x',
        ];
        assert!(matches!(
            parse_connect(&body),
            Err(CodecError::UnsupportedProtocol { level: 3, .. })
        ));
    }

    #[test]
    fn connect_bad_flags() {
        let base = [0, 4, b'M', b'Q', b'T', b'T', 4];
        for flags in [0x01u8, 0x08, 0x20, 0x40, 0x1c] {
            let mut body = base.to_vec();
            body.extend_from_slice(&[flags, 0, 60, 0, 1, b'x']);
            assert!(
                matches!(parse_connect(&body), Err(CodecError::InvalidFlags(_))),
                "{flags:#x}"
            );
        }
    }

    #[test]
    fn connect_truncated_everywhere_is_an_error() {
        let bytes = encode_connect(&sample_connect()).expect("encode");
        let f = one_frame(&bytes);
        let body = f.body();
        for cut in 0..body.len() {
            assert!(parse_connect(&body[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = body.to_vec();
        long.push(0);
        assert!(parse_connect(&long).is_err());
    }

    #[test]
    fn connect_rejects_bad_utf8_and_nul() {
        let mut c = sample_connect();
        c.will = None;
        c.client_id = "ab".into();
        let mut bytes = encode_connect(&c).expect("encode");
        let pos = bytes
            .windows(2)
            .position(|w| w == b"ab")
            .expect("client id in frame");
        bytes[pos] = 0xff;
        assert_eq!(
            parse_connect(one_frame(&bytes).body()),
            Err(CodecError::InvalidString)
        );
        bytes[pos] = 0;
        assert_eq!(
            parse_connect(one_frame(&bytes).body()),
            Err(CodecError::InvalidString)
        );
    }

    #[test]
    fn encoders_refuse_nul_as_the_parsers_do() {
        // Found by the fuzz targets (broker/tests/fuzz_codec.rs): a string with U+0000 was
        // written, and then refused by the edge's own parser.
        let mut c = sample_connect();
        c.client_id = "\0".into();
        assert_eq!(encode_connect(&c), Err(CodecError::InvalidString));
        let mut c = sample_connect();
        c.username = Some("dev\0x".into());
        assert_eq!(encode_connect(&c), Err(CodecError::InvalidString));
        let mut c = sample_connect();
        if let Some(will) = c.will.as_mut() {
            will.topic = "tw/\0".into();
        }
        assert_eq!(encode_connect(&c), Err(CodecError::InvalidString));
        assert_eq!(
            encode_publish("\0", 0, true, None, b""),
            Err(CodecError::InvalidString)
        );
        assert_eq!(
            encode_subscribe(1, &[("tw/c/\0/#", 1)]),
            Err(CodecError::InvalidString)
        );
        // A password is binary data: a NUL in it is fine.
        let mut c = sample_connect();
        c.password = Some(b"se\0cret".to_vec());
        let f = one_frame(&encode_connect(&c).expect("encode"));
        assert_eq!(parse_connect(f.body()), Ok(c));
    }

    #[test]
    fn connack_round_trip() {
        let f = one_frame(&encode_connack(
            true,
            ConnectReturnCode::BadUserNamePassword,
        ));
        assert_eq!(f.packet_type(), packet::CONNACK);
        assert_eq!(parse_connack(f.body()), Ok((true, 4)));
        assert!(parse_connack(&[0]).is_err());
        assert!(parse_connack(&[0, 0, 0]).is_err());
    }

    #[test]
    fn publish_views_without_copy() {
        let bytes =
            encode_publish("tw/d/dev1/up/press", 1, true, Some(9), b"{\"seq\":1}").expect("encode");
        let f = one_frame(&bytes);
        let p = parse_publish(f.flags(), f.body()).expect("parse");
        assert_eq!(p.topic, "tw/d/dev1/up/press");
        assert_eq!(p.qos, 1);
        assert!(p.retain);
        assert!(!p.dup);
        assert_eq!(p.packet_id, Some(9));
        assert_eq!(p.payload, b"{\"seq\":1}");
        // The payload is a slice of the received frame, not a copy.
        let range = f.bytes.as_ptr_range();
        assert!(range.contains(&p.payload.as_ptr()));

        let q0 = encode_publish("t", 0, false, None, b"").expect("encode");
        let f = one_frame(&q0);
        let p = parse_publish(f.flags(), f.body()).expect("parse");
        assert_eq!((p.qos, p.packet_id, p.payload), (0, None, &b""[..]));
    }

    #[test]
    fn publish_errors() {
        assert!(parse_publish(0x06, &[0, 1, b't', 0, 1]).is_err()); // qos 3
        assert!(parse_publish(0x02, &[0, 1, b't', 0, 0]).is_err()); // packet id 0
        assert!(parse_publish(0x02, &[0, 1, b't', 0]).is_err()); // truncated id
        assert!(parse_publish(0x00, &[0, 5, b't']).is_err()); // truncated topic
        assert!(parse_publish(0x00, &[]).is_err());
    }

    #[test]
    fn subscribe_round_trip_and_errors() {
        let bytes = encode_subscribe(3, &[("tw/c/cl1/#", 1), ("#", 0)]).expect("encode");
        let f = one_frame(&bytes);
        assert_eq!(f.packet_type(), packet::SUBSCRIBE);
        let s = parse_subscribe(f.flags(), f.body()).expect("parse");
        assert_eq!(s.packet_id, 3);
        assert_eq!(
            s.filters,
            vec![("tw/c/cl1/#".to_owned(), 1), ("#".to_owned(), 0)]
        );
        for cut in 0..f.body().len() {
            // Every prefix is either a (shorter) valid packet ending on a filter boundary or an
            // error; none panics.
            let _ = parse_subscribe(f.flags(), &f.body()[..cut]);
        }
        assert!(parse_subscribe(0x02, &[0, 1]).is_err());
        assert!(parse_subscribe(0x00, f.body()).is_err());
        assert!(parse_subscribe(0x02, &[0, 1, 0, 1, b'a', 3]).is_err());
        assert!(encode_subscribe(1, &[]).is_err());
    }

    #[test]
    fn suback_encoding() {
        use SubscribeReasonCode::{Failure, Success};
        let codes = [Success(QoS::AtMostOnce), Failure, Success(QoS::AtLeastOnce)];
        let f = one_frame(&encode_suback(5, &codes).expect("encode"));
        assert_eq!(f.packet_type(), packet::SUBACK);
        assert_eq!(f.body(), &[0, 5, 0, 0x80, 1]);
    }

    #[test]
    fn unsubscribe_parsing_and_unsuback() {
        // rumqttc writes the UNSUBSCRIBE a device would send.
        let mut bytes = BytesMut::new();
        let mut unsubscribe = v4::Unsubscribe::new("tw/c/cl1/#");
        unsubscribe.topics.push("tw/d/dev1/down/ack".into());
        unsubscribe.pkid = 4;
        unsubscribe.write(&mut bytes).expect("encode");
        let f = one_frame(&bytes);
        assert_eq!(f.packet_type(), packet::UNSUBSCRIBE);
        let u = parse_unsubscribe(f.flags(), f.body()).expect("parse");
        assert_eq!(u.packet_id, 4);
        assert_eq!(u.filters, vec!["tw/c/cl1/#", "tw/d/dev1/down/ack"]);
        for cut in 0..f.body().len() {
            let _ = parse_unsubscribe(f.flags(), &f.body()[..cut]);
        }
        assert!(parse_unsubscribe(0x02, &[0, 4]).is_err());
        assert!(parse_unsubscribe(0x00, f.body()).is_err());
        assert!(parse_unsubscribe(0x02, &[0, 4, 0, 1, 0]).is_err());

        let f = one_frame(&encode_unsuback(4));
        assert_eq!(f.packet_type(), packet::UNSUBACK);
        assert_eq!(packet_id(f.body()), Ok(4));
        assert_eq!(
            one_frame(&encode_pingresp()).packet_type(),
            packet::PINGRESP
        );
    }

    #[test]
    fn puback_encoding() {
        let f = one_frame(&encode_puback(0x1234));
        assert_eq!(f.packet_type(), packet::PUBACK);
        assert_eq!(packet_id(f.body()), Ok(0x1234));
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic generator keeps the test dependency-free and reproducible.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(f)) = next_frame(&mut buf, 64) {
                let _ = parse_connect(f.body());
                let _ = parse_publish(f.flags(), f.body());
                let _ = parse_subscribe(f.flags(), f.body());
                let _ = parse_unsubscribe(f.flags(), f.body());
                let _ = parse_connack(f.body());
                let _ = packet_id(f.body());
            }
            let _ = parse_connect(&bytes);
            let _ = parse_publish(bytes.first().copied().unwrap_or(0), &bytes);
        }
    }
}
