//! The SIA DC-09 frame, as pure functions: parse a panel's message, check its length and CRC,
//! read the data inside the brackets (decrypted first if it came encrypted), and write the
//! receiver's answers (ACK, NAK, DUH).
//!
//! A message is `<LF> CRC 0LLL "ID" seq [Rrcvr] Lpref #acct [data] [x-data] _timestamp <CR>`:
//! the CRC (CRC-16/ARC, four hex digits) and the length (`0LLL`, hex) both cover everything
//! from the first `"` to the last character before the `<CR>`. An encrypted message has `*`
//! before its ID (`"*ADM-CID"`) and everything after the first `[` is the hex of AES-CBC (zero
//! IV) over `pad|data]…_timestamp`, where the pad (any characters but `|`, `[` and `]`) makes
//! the length a multiple of 16.

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::store::sia::SiaKey;

/// Longest message read (between `<LF>` and `<CR>`). A DC-09 length field can say at most
/// 0x0FFF; an ADM-CID event, encrypted and with a timestamp, is under 150 bytes. Anything past
/// this is refused unread, so a sender cannot make the receiver buffer without bound.
pub const MAX_FRAME: usize = 1024;

/// CRC-16/ARC (polynomial 0x8005 reflected, initial value 0), DC-09's frame check.
pub fn crc16(data: &[u8]) -> u16 {
    const ARC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_ARC);
    ARC.checksum(data)
}

/// Why a message could not be read; each is answered NAK (see `docs/protocol.md`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a DC-09 message: {0}")]
    Syntax(&'static str),
    #[error("message of {0} bytes is over the limit of {MAX_FRAME}")]
    TooLong(usize),
    #[error("the length field says {said} bytes but {got} arrived")]
    Length { said: usize, got: usize },
    #[error("CRC {sent:04X} sent, {computed:04X} computed: the message was damaged")]
    Crc { sent: u16, computed: u16 },
}

/// A message's header, borrowed from the bytes read. The data is still as sent (encrypted
/// or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// `*` before the ID: the data is encrypted.
    pub encrypted: bool,
    /// The ID token without its `*`: `ADM-CID`, `NULL`, `SIA-DCS`, …
    pub token: &'a str,
    /// Four digits, echoed in the answer so the panel can match it.
    pub seq: &'a str,
    /// `Rrcvr`'s hex digits, if sent.
    pub receiver: Option<&'a str>,
    /// `Lpref`'s hex digits (the account prefix).
    pub prefix: &'a str,
    /// `#acct`'s hex digits, as sent (any case).
    pub account: &'a str,
    /// Everything after the first `[`.
    pub data: &'a str,
}

fn hex_digits(s: &str, min: usize, max: usize) -> Option<usize> {
    let n = s.bytes().take_while(u8::is_ascii_hexdigit).count().min(max);
    (n >= min).then_some(n)
}

/// Reads one message: `raw` is what came between `<LF>` and `<CR>` (either may still be
/// there). Checks the length and the CRC before it believes anything else in it.
pub fn parse(raw: &[u8]) -> Result<Frame<'_>, FrameError> {
    let raw = raw.strip_prefix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.len() > MAX_FRAME {
        return Err(FrameError::TooLong(raw.len()));
    }
    let text = std::str::from_utf8(raw)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or(FrameError::Syntax("not ASCII"))?;
    if text.len() < 8 {
        return Err(FrameError::Syntax("shorter than its CRC and length fields"));
    }
    let (crc_field, rest) = text.split_at(4);
    let (len_field, body) = rest.split_at(4);
    let field = |f: &str, what| {
        (hex_digits(f, 4, 4) == Some(4))
            .then(|| u16::from_str_radix(f, 16).ok())
            .flatten()
            .ok_or(FrameError::Syntax(what))
    };
    let sent = field(crc_field, "the CRC field is not 4 hex digits")?;
    let said = usize::from(field(len_field, "the length field is not 0LLL in hex")?);
    if said != body.len() {
        return Err(FrameError::Length {
            said,
            got: body.len(),
        });
    }
    let computed = crc16(body.as_bytes());
    if computed != sent {
        return Err(FrameError::Crc { sent, computed });
    }
    header(body)
}

/// The header after the CRC and length: `"ID"seq[Rrcvr]Lpref#acct[…`.
fn header(body: &str) -> Result<Frame<'_>, FrameError> {
    let rest = body
        .strip_prefix('"')
        .ok_or(FrameError::Syntax("no opening quote before the ID token"))?;
    let close = rest[..rest.len().min(18)]
        .find('"')
        .ok_or(FrameError::Syntax("no closing quote after the ID token"))?;
    let (id, rest) = (&rest[..close], &rest[close + 1..]);
    let (encrypted, token) = match id.strip_prefix('*') {
        Some(t) => (true, t),
        None => (false, id),
    };
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(FrameError::Syntax(
            "the ID token is not letters, digits and '-'",
        ));
    }
    if rest.len() < 4 || !rest.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        return Err(FrameError::Syntax("no 4-digit sequence number"));
    }
    let (seq, mut rest) = rest.split_at(4);
    let mut receiver = None;
    if let Some(r) = rest.strip_prefix('R') {
        let n = hex_digits(r, 1, 6).ok_or(FrameError::Syntax("R without receiver digits"))?;
        receiver = Some(&r[..n]);
        rest = &r[n..];
    }
    let l = rest
        .strip_prefix('L')
        .ok_or(FrameError::Syntax("no account prefix (Lpref)"))?;
    let n = hex_digits(l, 1, 6).ok_or(FrameError::Syntax("L without prefix digits"))?;
    let (prefix, rest) = l.split_at(n);
    let a = rest
        .strip_prefix('#')
        .ok_or(FrameError::Syntax("no account (#acct) in the header"))?;
    let n =
        hex_digits(a, 3, 16).ok_or(FrameError::Syntax("the account is not 3 to 16 hex digits"))?;
    let (account, rest) = a.split_at(n);
    let data = rest
        .strip_prefix('[')
        .ok_or(FrameError::Syntax("no '[' after the account"))?;
    Ok(Frame {
        encrypted,
        token,
        seq,
        receiver,
        prefix,
        account,
        data,
    })
}

/// Why the data inside the brackets could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("encrypted data that does not decrypt with the account's key: {0}")]
    Decrypt(&'static str),
    #[error("data not understood: {0}")]
    Syntax(&'static str),
    #[error("the data names account {inner}, the header {header}")]
    Account { inner: String, header: String },
}

/// The data of a message once decrypted: the event text (`1120 01 015` for ADM-CID, empty
/// for NULL) and the timestamp, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    pub event: String,
    /// As sent, without its `_`.
    pub timestamp: Option<String>,
}

/// Reads the data after the first `[`: decrypts it with `key` if the frame is encrypted, drops
/// the pad, checks the account inside it (if any) against the header's, skips extended data
/// blocks (`[X…]`) and takes the timestamp.
pub fn data(frame: &Frame<'_>, key: Option<&SiaKey>) -> Result<Data, DataError> {
    let plain;
    let mut text = frame.data;
    if frame.encrypted {
        let key = key.ok_or(DataError::Decrypt("the account has no key"))?;
        plain = super::crypt::decrypt(key, frame.data).map_err(DataError::Decrypt)?;
        let bar = plain
            .find('|')
            .ok_or(DataError::Decrypt("no '|' after the pad"))?;
        text = &plain[bar + 1..];
    }
    let mut event = text;
    if let Some(a) = text.strip_prefix('#') {
        let bar = a.find('|').ok_or(DataError::Syntax(
            "an account in the data without '|' after it",
        ))?;
        if !a[..bar].eq_ignore_ascii_case(frame.account) {
            return Err(DataError::Account {
                inner: a[..bar].chars().take(16).collect(),
                header: frame.account.to_owned(),
            });
        }
        event = &a[bar + 1..];
    }
    let close = event
        .find(']')
        .ok_or(DataError::Syntax("no ']' closing the data"))?;
    let (event, mut rest) = (&event[..close], &event[close + 1..]);
    // Extended data (`[Vverification]`, `[Hhistory]`, …) is not used: skipped whole.
    while let Some(x) = rest.strip_prefix('[') {
        let end = x
            .find(']')
            .ok_or(DataError::Syntax("extended data without its ']'"))?;
        rest = &x[end + 1..];
    }
    let timestamp = match rest {
        "" => None,
        t => Some(
            t.strip_prefix('_')
                .ok_or(DataError::Syntax(
                    "text after the data that is not _timestamp",
                ))?
                .to_owned(),
        ),
    };
    Ok(Data {
        event: event.to_owned(),
        timestamp,
    })
}

/// DC-09's timestamp: `HH:MM:SS,MM-DD-YYYY`, in UTC.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s, "%H:%M:%S,%m-%d-%Y")
        .ok()
        .map(|t| t.and_utc())
}

/// `_HH:MM:SS,MM-DD-YYYY`, as the receiver's answers carry it.
pub fn timestamp(now: DateTime<Utc>) -> String {
    now.format("_%H:%M:%S,%m-%d-%Y").to_string()
}

/// `<LF> CRC 0LLL body <CR>`.
pub fn wrap(body: &str) -> Vec<u8> {
    format!("\n{:04X}{:04X}{body}\r", crc16(body.as_bytes()), body.len()).into_bytes()
}

/// What the answer repeats of the message: sequence, receiver, prefix and account, so that
/// the panel matches it to the message it sent.
fn route(frame: &Frame<'_>) -> String {
    let receiver = frame.receiver.map(|r| format!("R{r}")).unwrap_or_default();
    format!("{}{receiver}L{}#{}", frame.seq, frame.prefix, frame.account)
}

/// ACK: the message was received and acted on. To an encrypted message the ACK is encrypted
/// too, with the same key, carrying the receiver's timestamp after a pad (`pad` gives its
/// characters).
pub fn ack(
    frame: &Frame<'_>,
    key: Option<&SiaKey>,
    now: DateTime<Utc>,
    pad: impl FnMut() -> char,
) -> Vec<u8> {
    match (frame.encrypted, key) {
        (true, Some(key)) => {
            let inner = format!("|]{}", timestamp(now));
            let sealed = super::crypt::encrypt(key, &inner, pad);
            wrap(&format!("\"*ACK\"{}[{sealed}", route(frame)))
        }
        _ => wrap(&format!("\"ACK\"{}[]", route(frame))),
    }
}

/// DUH: the message was received whole but cannot be processed (a message type or data this
/// receiver does not handle). Never encrypted.
pub fn duh(frame: &Frame<'_>) -> Vec<u8> {
    wrap(&format!("\"DUH\"{}[]", route(frame)))
}

/// NAK: the message is refused (damaged, unknown account, wrong key, timestamp outside the
/// window); it carries the receiver's time, so a panel with a drifting clock can correct it.
/// Never encrypted, and names no account: nothing in a refused message is trusted.
pub fn nak(now: DateTime<Utc>) -> Vec<u8> {
    wrap(&format!("\"NAK\"0000R0L0A0[]{}", timestamp(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `body` with its CRC and length in front.
    fn framed(body: &str) -> String {
        format!("{:04X}{:04X}{body}", crc16(body.as_bytes()), body.len())
    }

    #[test]
    fn crc_is_crc16_arc() {
        // The catalogue's check value: CRC-16/ARC of "123456789".
        assert_eq!(crc16(b"123456789"), 0xBB3D);
        // The same message's CRC as pysiaalarm's `_crc_calc` computes it (a bit-by-bit
        // implementation of its own).
        assert_eq!(crc16(b"\"NULL\"0000R0L0A0[]_20:13:00,01-22-2013"), 0xBD3C);
    }

    #[test]
    fn a_message_is_read_with_its_route() {
        let line = framed("\"ADM-CID\"0007R1L0#1234[#1234|1120 01 015]_12:00:01,06-15-2025");
        let frame = parse(line.as_bytes()).unwrap();
        assert_eq!(
            (
                frame.encrypted,
                frame.token,
                frame.seq,
                frame.receiver,
                frame.prefix
            ),
            (false, "ADM-CID", "0007", Some("1"), "0")
        );
        assert_eq!(frame.account, "1234");
        let d = data(&frame, None).unwrap();
        assert_eq!(d.event, "1120 01 015");
        assert_eq!(d.timestamp.as_deref(), Some("12:00:01,06-15-2025"));
        assert_eq!(
            parse_timestamp(d.timestamp.as_deref().unwrap()),
            DateTime::from_timestamp(1_749_988_801, 0)
        );
    }

    #[test]
    fn damage_is_refused_with_what_was_wrong() {
        let good = framed("\"NULL\"0001L0#AAA[]");
        assert!(parse(good.as_bytes()).is_ok());
        let mut bad_crc = good.clone().into_bytes();
        bad_crc[0] = if bad_crc[0] == b'0' { b'1' } else { b'0' };
        assert!(matches!(parse(&bad_crc), Err(FrameError::Crc { .. })));
        let short = &good[..good.len() - 1];
        assert!(matches!(
            parse(short.as_bytes()),
            Err(FrameError::Length { .. })
        ));
        for garbage in [
            &b""[..],
            b"hello",
            b"\xff\xfe\x00\x01garbage!",
            b"ZZZZ0010\"NULL\"0001",
            &[b'A'; 2000],
        ] {
            let e = parse(garbage).unwrap_err();
            assert!(!e.to_string().is_empty());
        }
        for body in [
            "NULL\"0001L0#AAA[]",
            "\"NULL\"01L0#AAA[]",
            "\"NULL\"0001#AAA[]",
            "\"NULL\"0001L0[]",
            "\"NULL\"0001L0#AA[]",
            "\"NULL\"0001L0#AAA",
            "\"N/LL\"0001L0#AAA[]",
        ] {
            assert!(
                matches!(parse(framed(body).as_bytes()), Err(FrameError::Syntax(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn answers_are_framed_and_echo_the_route() {
        let line = framed("\"ADM-CID\"0042R12L3#1234[#1234|1120 01 015]");
        let frame = parse(line.as_bytes()).unwrap();
        let now = DateTime::from_timestamp(1_749_988_801, 0).unwrap();
        let ack = String::from_utf8(ack(&frame, None, now, || 'x')).unwrap();
        assert_eq!(ack, format!("\n{}\r", framed("\"ACK\"0042R12L3#1234[]")));
        let duh = String::from_utf8(duh(&frame)).unwrap();
        assert!(duh.contains("\"DUH\"0042R12L3#1234[]"), "{duh}");
        let nak = String::from_utf8(nak(now)).unwrap();
        assert_eq!(
            nak,
            format!("\n{}\r", framed("\"NAK\"0000R0L0A0[]_12:00:01,06-15-2025"))
        );
        // ACK and DUH read back as frames of their own (a NAK names no account).
        for answer in [ack, duh] {
            assert!(parse(answer.as_bytes()).is_ok(), "{answer:?}");
        }
    }

    #[test]
    fn the_data_account_must_match_the_header() {
        let line = framed("\"ADM-CID\"0001L0#1234[#9999|1120 01 015]");
        let frame = parse(line.as_bytes()).unwrap();
        assert!(matches!(data(&frame, None), Err(DataError::Account { .. })));
        let line = framed("\"ADM-CID\"0001L0#1234[1120 01 015][Vvideo]_12:00:01,06-15-2025");
        let frame = parse(line.as_bytes()).unwrap();
        assert_eq!(data(&frame, None).unwrap().event, "1120 01 015");
        let line = framed("\"ADM-CID\"0001L0#1234[1120 01 015]trailing");
        let frame = parse(line.as_bytes()).unwrap();
        assert!(matches!(data(&frame, None), Err(DataError::Syntax(_))));
    }
}
