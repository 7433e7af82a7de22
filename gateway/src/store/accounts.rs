//! Accounts, the zones each may see, volunteers' duty and position, and sessions: the
//! [`AccountStore`] trait, its types, and the rules both backends apply.
//!
//! Sessions are looked up by the SHA-256 of their token and slide forward as they are used;
//! to spare the single writer, a session's expiry is moved at most about once a minute.

use async_trait::async_trait;

use super::{StoreError, StoreResult};
use crate::domain::ZoneCode;
use crate::identity::{AccountKind, AccountName, Principal, Role};

#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The login name, unique regardless of case.
    pub name: AccountName,
    pub kind: AccountKind,
    /// Operators have one, volunteers none (the schema refuses anything else).
    pub role: Option<Role>,
    /// What colleagues and the station see, and how to reach the person.
    pub display_name: String,
    pub phone: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Operators: at least one; volunteers: exactly one.
    pub zones: Vec<ZoneCode>,
}

/// What a login needs to know of an account.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    pub principal: Principal,
    /// Argon2id PHC string, checked against the password given.
    pub password_hash: String,
    /// A disabled account cannot log in.
    pub disabled: bool,
}

/// An on-duty volunteer, for escalation ("nearest first").
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OnDutyVolunteer {
    pub account_id: i64,
    /// The account name (a recipient's `who`) and what the station sees.
    pub name: String,
    pub display_name: String,
    /// `None` until the volunteer's phone has sent a position since going on duty.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub position_at_ms: Option<i64>,
}

#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates the account with its zones (and, for a volunteer, its off-duty state) in one
    /// transaction; returns its id. A taken name is [`StoreError::Conflict`], an unknown zone
    /// [`StoreError::NotFound`].
    async fn create_account(&self, account: &NewAccount, now_ms: i64) -> StoreResult<i64>;
    /// The account with this name (any case), with its password hash.
    async fn account_by_name(&self, name: &AccountName) -> StoreResult<Option<AccountRecord>>;
    async fn create_session(
        &self,
        token_hash: &str,
        account: i64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> StoreResult<()>;
    /// The account of an open session of an enabled account; moves the session's expiry to
    /// `now_ms + lifetime_ms`.
    async fn session_principal(
        &self,
        token_hash: &str,
        now_ms: i64,
        lifetime_ms: i64,
    ) -> StoreResult<Option<Principal>>;
    /// Whether a session is open for an enabled account, without touching it.
    async fn session_open(&self, token_hash: &str, now_ms: i64) -> StoreResult<bool>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Puts a volunteer on or off duty; going off duty forgets the position.
    /// [`StoreError::NotFound`] if `account` is not a volunteer.
    async fn set_on_duty(&self, account: i64, on_duty: bool, now_ms: i64) -> StoreResult<()>;
    /// Records an on-duty volunteer's position; returns false (and keeps nothing) when the
    /// volunteer is off duty.
    async fn update_position(
        &self,
        account: i64,
        lat: f64,
        lon: f64,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// The enabled, on-duty volunteers of a zone with their last positions.
    async fn on_duty_volunteers(&self, zone: &ZoneCode) -> StoreResult<Vec<OnDutyVolunteer>>;

    // --- administration (`tenwatch admin`) ---
    /// Every account, by name, with whether it is disabled.
    async fn list_accounts(&self) -> StoreResult<Vec<(Principal, bool)>>;
    /// Disables (or enables again) an account; disabling ends its sessions at once. False if
    /// there is no such account.
    async fn set_account_disabled(&self, name: &AccountName, disabled: bool) -> StoreResult<bool>;
    /// Sets a new password (its Argon2id hash) and ends the account's sessions. False if there
    /// is no such account.
    async fn set_password_hash(&self, name: &AccountName, password_hash: &str)
        -> StoreResult<bool>;
    /// Removes an account that never responded to an alert nor checked in; one with a history
    /// is refused, naming it: disable it instead. False if there is no such account.
    async fn delete_account(&self, name: &AccountName) -> StoreResult<bool>;
}

/// A position as a volunteer's phone reports it: refused unless it is a latitude and a
/// longitude.
pub(crate) fn check_position(lat: f64, lon: f64) -> StoreResult<()> {
    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "position {lat}, {lon} is not a latitude and longitude"
        )))
    }
}

/// An account's zones as the schema wants them: exactly one for a volunteer, at least one
/// for an operator.
pub(crate) fn check_account_zones(a: &NewAccount) -> StoreResult<()> {
    match (a.kind, a.zones.len()) {
        (AccountKind::Volunteer, 1) | (AccountKind::Operator, 1..) => Ok(()),
        (AccountKind::Volunteer, n) => Err(StoreError::Invalid(format!(
            "a volunteer belongs to exactly one zone, not {n}"
        ))),
        (AccountKind::Operator, _) => Err(StoreError::Invalid(
            "an operator needs at least one zone".into(),
        )),
    }
}

/// Below this, a session's expiry is not moved on use (one write per minute at most), unless
/// the lifetime itself is short.
pub(crate) const SLIDE_STEP_MS: i64 = 60_000;
