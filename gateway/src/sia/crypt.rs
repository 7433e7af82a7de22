//! DC-09's encryption: AES-128 in CBC mode with an all-zero IV over the data after the first
//! `[`, sent as upper-case hex. The standard pads the plaintext itself (characters before a
//! `|`), so the cipher runs without padding of its own.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};

use crate::store::sia::SiaKey;

type Decryptor = cbc::Decryptor<aes::Aes128>;
type Encryptor = cbc::Encryptor<aes::Aes128>;

const IV: [u8; 16] = [0; 16];

/// Decrypts the hex after `[`. A wrong key gives bytes that are not ASCII, or ASCII without
/// the `|` after the pad, which the caller refuses. The caller bounds the text: it is part of
/// a frame already held to the frame's limit.
pub fn decrypt(key: &SiaKey, hex_text: &str) -> Result<String, &'static str> {
    let mut buf = hex::decode(hex_text).map_err(|_| "not hex")?;
    if buf.is_empty() || buf.len() % 16 != 0 {
        return Err("not whole 16-byte blocks");
    }
    let plain = Decryptor::new(&key.0.into(), &IV.into())
        .decrypt_padded::<NoPadding>(&mut buf)
        .map_err(|_| "not whole 16-byte blocks")?;
    let text = std::str::from_utf8(plain).map_err(|_| "not text once decrypted")?;
    if !text.is_ascii() || text.bytes().any(|b| b.is_ascii_control()) {
        return Err("not ASCII once decrypted");
    }
    Ok(text.to_owned())
}

/// Encrypts `text` (which starts with its `|`) after a pad of `pad()` characters that makes
/// it whole blocks (at least one character), and gives the hex.
pub fn encrypt(key: &SiaKey, text: &str, mut pad: impl FnMut() -> char) -> String {
    let pad_len = 16 - text.len() % 16;
    let mut plain: String = (0..pad_len).map(|_| pad()).collect();
    plain.push_str(text);
    let mut buf = plain.into_bytes();
    let len = buf.len();
    match Encryptor::new(&key.0.into(), &IV.into()).encrypt_padded::<NoPadding>(&mut buf, len) {
        Ok(sealed) => hex::encode_upper(sealed),
        // Unreachable: the pad made whole blocks; an empty answer is refused by the panel.
        Err(_) => String::new(),
    }
}

/// A pad character: printable, never `|`, `[` or `]`.
pub fn pad_char() -> char {
    const PAD: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let i = rand::random::<usize>() % PAD.len();
    char::from(PAD[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pysiaalarm's account with key `AAAAAAAAAAAAAAAA` (it takes the key's characters as the
    /// key's bytes, 0x41 each) and its `encrypt_content` of an ADM-CID panic (its pad is
    /// zeros).
    const PYSIA_KEY: &str = "41414141414141414141414141414141";
    const PYSIA_SEALED: &str = "0490059072224D4B792C79B6EEBCCDE0FE3F89456D1C6DD93653F89A7096C1\
                                66D9FF84837FC09568E2835269A4C0F5C3";

    #[test]
    fn decrypts_what_pysiaalarm_encrypted() {
        let key = SiaKey::parse_hex(PYSIA_KEY).unwrap();
        assert_eq!(
            decrypt(&key, PYSIA_SEALED).unwrap(),
            "000000000|#1234|1120 01 015]_12:00:01,06-15-2025"
        );
        let wrong = SiaKey::parse_hex("42414141414141414141414141414141").unwrap();
        assert!(decrypt(&wrong, PYSIA_SEALED).map_or(true, |t| !t.contains('|')));
        assert!(decrypt(&key, "0490").is_err());
        assert!(decrypt(&key, "not hex at all!!").is_err());
    }

    #[test]
    fn encrypts_with_a_pad_and_reads_back() {
        let key = SiaKey::parse_hex(PYSIA_KEY).unwrap();
        let sealed = encrypt(&key, "|#1234|1120 01 015]_12:00:01,06-15-2025", || '0');
        assert_eq!(sealed, PYSIA_SEALED);
        let text = "|]_12:00:01,06-15-2025";
        let sealed = encrypt(&key, text, pad_char);
        let plain = decrypt(&key, &sealed).unwrap();
        assert!(
            plain.ends_with(text) && plain.len().is_multiple_of(16),
            "{plain}"
        );
        assert!(!plain[..plain.len() - text.len()].contains(['|', '[', ']']));
    }
}
