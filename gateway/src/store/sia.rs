//! Alarm panels reporting over SIA DC-09: which household a panel account belongs to, the
//! panel's own device row, and its AES key. The [`SiaStore`] trait and its types.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::{DeviceId, HouseholdId, ParseError};

/// A DC-09 account number: 3 to 16 hex digits, kept upper case (panels send either case).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SiaAccountId(String);

impl SiaAccountId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if !(3..=16).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseError::Invalid {
                what: "SIA account",
                value: s.chars().take(20).collect(),
                why: "must be 3 to 16 hex digits",
            });
        }
        Ok(Self(s.to_ascii_uppercase()))
    }

    /// The panel's device: `sia-{ACCOUNT}`, a valid [`DeviceId`] by construction.
    pub fn device(&self) -> Result<DeviceId, ParseError> {
        DeviceId::parse(&format!("sia-{}", self.0))
    }
}
crate::domain::text_newtype!(SiaAccountId);

/// An AES-128 key as DC-09 uses it (CBC, zero IV). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SiaKey(pub [u8; 16]);

impl SiaKey {
    /// 32 hex digits.
    pub fn parse_hex(s: &str) -> Result<Self, ParseError> {
        let bad = |why| ParseError::Invalid {
            what: "SIA key",
            value: "<redacted>".into(),
            why,
        };
        let bytes = hex::decode(s.trim()).map_err(|_| bad("must be hex digits"))?;
        let key: [u8; 16] = bytes
            .try_into()
            .map_err(|_| bad("must be 32 hex digits: an AES-128 key"))?;
        Ok(Self(key))
    }

    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.0)
    }
}

impl std::fmt::Debug for SiaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A panel account as registered.
#[derive(Debug, Clone, PartialEq)]
pub struct SiaAccount {
    pub account: SiaAccountId,
    /// The household whose press a panel's alarm is.
    pub household: HouseholdId,
    /// The panel's own device row: its presses, cancels and link tests.
    pub device: DeviceId,
    /// `Some`: the panel must encrypt (`*ADM-CID`, `*NULL`); a message in the clear is refused.
    pub key: Option<SiaKey>,
}

#[async_trait]
pub trait SiaStore: Send + Sync + 'static {
    /// Registers a panel account for a household, with its device row (`secret_hash` of a
    /// secret nobody is shown: the panel never logs in over MQTT), in one transaction.
    async fn add_sia_account(
        &self,
        account: &SiaAccount,
        secret_hash: &str,
        now_ms: i64,
    ) -> StoreResult<()>;
    /// The account, if registered.
    async fn sia_account(&self, account: &SiaAccountId) -> StoreResult<Option<SiaAccount>>;
    /// Every registered account, by account number.
    async fn list_sia_accounts(&self) -> StoreResult<Vec<SiaAccount>>;
}
