//! Storage for Web Push and patrol check-ins: the [`PushStore`] trait and its types. The
//! VAPID key pair is made once and kept here, so every gateway on the database signs with the
//! key the browsers subscribed with.

use async_trait::async_trait;
use serde::Serialize;

use super::StoreResult;
use crate::domain::AlertId;

/// The gateway's VAPID key pair, base64url without padding.
#[derive(Clone, PartialEq)]
pub struct VapidKeyPair {
    /// The raw P-256 private scalar (32 bytes).
    pub private_key: String,
    /// The uncompressed public point (65 bytes): the browsers' `applicationServerKey`.
    pub public_key: String,
}

impl std::fmt::Debug for VapidKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKeyPair")
            .field("private_key", &"<redacted>")
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// A browser's push subscription, as registered by a volunteer.
#[derive(Debug, Clone, PartialEq)]
pub struct PushSubscriptionRecord {
    pub id: i64,
    /// The push service's URL for that browser.
    pub endpoint: String,
    /// The browser's ECDH public key and auth secret (base64url), for aes128gcm.
    pub p256dh: String,
    pub auth: String,
}

/// A subscription to register (already checked by the HTTP layer).
#[derive(Debug, Clone)]
pub struct NewPushSubscription<'a> {
    /// As [`PushSubscriptionRecord`]'s.
    pub endpoint: &'a str,
    pub p256dh: &'a str,
    pub auth: &'a str,
    /// Which browser, so that the volunteer can tell their phones apart.
    pub user_agent: &'a str,
}

/// A volunteer as the phone app shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolunteerProfile {
    pub on_duty: bool,
    /// The last position sent while on duty (`None` off duty).
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub position_at_ms: Option<i64>,
    /// Phones that will be pushed an alert; 0 means none will.
    pub subscriptions: i64,
}

/// A patrol check-in (巡逻签到).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checkin {
    pub id: i64,
    /// Where the volunteer was, and what they noted there.
    pub lat: f64,
    pub lon: f64,
    pub note: String,
    pub at_ms: i64,
}

/// Push subscriptions one volunteer keeps at most (phones and browsers); registering one
/// more gives up the one registered longest ago. Each is a request on every dispatch.
pub const MAX_SUBSCRIPTIONS: usize = 10;

#[async_trait]
pub trait PushStore: Send + Sync + 'static {
    /// The stored key pair, or `candidate` stored now if there is none yet. Two gateways
    /// starting together both end up with the one that was stored first.
    async fn vapid_key_or_insert(
        &self,
        candidate: &VapidKeyPair,
        now_ms: i64,
    ) -> StoreResult<VapidKeyPair>;
    /// Registers a subscription for a volunteer; an endpoint registered before (by anyone)
    /// now belongs to this account with the new keys. Returns its id.
    async fn add_push_subscription(
        &self,
        account: i64,
        sub: &NewPushSubscription<'_>,
        now_ms: i64,
    ) -> StoreResult<i64>;
    /// Removes the account's subscription with this endpoint; false if it had none.
    async fn remove_push_subscription(&self, account: i64, endpoint: &str) -> StoreResult<bool>;
    /// Removes a subscription the push service said is gone (404/410).
    async fn forget_push_endpoint(&self, endpoint: &str) -> StoreResult<()>;
    /// The subscriptions of the volunteer with this account name.
    async fn push_subscriptions_of(&self, name: &str) -> StoreResult<Vec<PushSubscriptionRecord>>;
    /// Notes a send's outcome on the subscription (`error` None: accepted).
    async fn push_sent(
        &self,
        subscription: i64,
        error: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<()>;
    /// Records what became of the push to a volunteer recipient. An `accepted` push is never
    /// overwritten by a later failure (of another of the volunteer's phones).
    async fn record_push_outcome(
        &self,
        alert: AlertId,
        volunteer: &str,
        outcome: &str,
        now_ms: i64,
    ) -> StoreResult<()>;
    /// Duty, position and how many subscriptions a volunteer has.
    async fn volunteer_profile(&self, account: i64) -> StoreResult<VolunteerProfile>;
    async fn add_checkin(
        &self,
        account: i64,
        lat: f64,
        lon: f64,
        note: &str,
        now_ms: i64,
    ) -> StoreResult<Checkin>;
    /// The account's latest check-ins, newest first.
    async fn checkins(&self, account: i64, window: &super::ListWindow)
        -> StoreResult<Vec<Checkin>>;
}
