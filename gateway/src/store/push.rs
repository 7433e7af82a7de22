//! Storage for Web Push and patrol check-ins: the [`PushStore`] trait and its SQLite
//! implementation. The VAPID key pair is made once and kept here, so every gateway on the
//! database signs with the key the browsers subscribed with.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::Row;

use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};
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
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PushSubscriptionRecord {
    pub id: i64,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// A subscription to register (already checked by the HTTP layer).
#[derive(Debug, Clone)]
pub struct NewPushSubscription<'a> {
    pub endpoint: &'a str,
    pub p256dh: &'a str,
    pub auth: &'a str,
    pub user_agent: &'a str,
}

/// A volunteer as the phone app shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolunteerProfile {
    pub on_duty: bool,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub position_at_ms: Option<i64>,
    pub subscriptions: i64,
}

/// A patrol check-in (巡逻签到).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Checkin {
    pub id: i64,
    pub lat: f64,
    pub lon: f64,
    pub note: String,
    pub at_ms: i64,
}

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
    async fn checkins(&self, account: i64, limit: u32) -> StoreResult<Vec<Checkin>>;
}

fn backend(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::NotFound("the account".into())
        }
        sqlx::Error::Database(db) if db.is_check_violation() => {
            StoreError::Invalid(db.message().to_owned())
        }
        _ => StoreError::Backend(Box::new(e)),
    }
}

#[async_trait]
impl PushStore for SqliteStore {
    async fn vapid_key_or_insert(
        &self,
        candidate: &VapidKeyPair,
        now_ms: i64,
    ) -> StoreResult<VapidKeyPair> {
        sqlx::query(
            "INSERT OR IGNORE INTO vapid_key (id, private_key, public_key, created_at_ms) \
             VALUES (1, ?, ?, ?)",
        )
        .bind(&candidate.private_key)
        .bind(&candidate.public_key)
        .bind(now_ms)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        let row = sqlx::query("SELECT private_key, public_key FROM vapid_key WHERE id = 1")
            .fetch_one(&self.writer)
            .await
            .map_err(backend)?;
        Ok(VapidKeyPair {
            private_key: row.try_get("private_key").map_err(backend)?,
            public_key: row.try_get("public_key").map_err(backend)?,
        })
    }

    async fn add_push_subscription(
        &self,
        account: i64,
        sub: &NewPushSubscription<'_>,
        now_ms: i64,
    ) -> StoreResult<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO push_subscriptions \
             (account, endpoint, p256dh, auth, user_agent, created_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (endpoint) DO UPDATE SET account = excluded.account, \
             p256dh = excluded.p256dh, auth = excluded.auth, user_agent = excluded.user_agent, \
             created_at_ms = excluded.created_at_ms, last_error = NULL \
             RETURNING id",
        )
        .bind(account)
        .bind(sub.endpoint)
        .bind(sub.p256dh)
        .bind(sub.auth)
        .bind(sub.user_agent)
        .bind(now_ms)
        .fetch_one(&self.writer)
        .await
        .map_err(backend)?;
        Ok(id)
    }

    async fn remove_push_subscription(&self, account: i64, endpoint: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM push_subscriptions WHERE account = ? AND endpoint = ?")
            .bind(account)
            .bind(endpoint)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn forget_push_endpoint(&self, endpoint: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM push_subscriptions WHERE endpoint = ?")
            .bind(endpoint)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn push_subscriptions_of(&self, name: &str) -> StoreResult<Vec<PushSubscriptionRecord>> {
        sqlx::query_as(
            "SELECT s.id, s.endpoint, s.p256dh, s.auth FROM push_subscriptions s \
             JOIN accounts a ON a.id = s.account \
             WHERE a.name = ? AND a.disabled = 0 ORDER BY s.id",
        )
        .bind(name)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)
    }

    async fn push_sent(
        &self,
        subscription: i64,
        error: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<()> {
        let sql = match error {
            None => "UPDATE push_subscriptions SET last_ok_ms = ?, last_error = NULL WHERE id = ?",
            Some(_) => "UPDATE push_subscriptions SET last_error = ? WHERE id = ?",
        };
        let q = sqlx::query(sql);
        let q = match error {
            None => q.bind(now_ms),
            Some(e) => q.bind(e),
        };
        q.bind(subscription)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn record_push_outcome(
        &self,
        alert: AlertId,
        volunteer: &str,
        outcome: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE recipients SET push = ?, push_at_ms = ? \
             WHERE alert = ? AND kind = 'volunteer' AND who = ? \
             AND (push IS NULL OR push != 'accepted' OR ? = 'accepted')",
        )
        .bind(outcome)
        .bind(now_ms)
        .bind(alert.0)
        .bind(volunteer)
        .bind(outcome)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn volunteer_profile(&self, account: i64) -> StoreResult<VolunteerProfile> {
        let row = sqlx::query(
            "SELECT v.on_duty, v.lat, v.lon, v.position_at_ms, \
             (SELECT count(*) FROM push_subscriptions s WHERE s.account = v.account) AS subs \
             FROM volunteers v WHERE v.account = ?",
        )
        .bind(account)
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?
        .ok_or_else(|| StoreError::NotFound(format!("volunteer {account}")))?;
        Ok(VolunteerProfile {
            on_duty: row.try_get::<i64, _>("on_duty").map_err(backend)? != 0,
            lat: row.try_get("lat").map_err(backend)?,
            lon: row.try_get("lon").map_err(backend)?,
            position_at_ms: row.try_get("position_at_ms").map_err(backend)?,
            subscriptions: row.try_get("subs").map_err(backend)?,
        })
    }

    async fn add_checkin(
        &self,
        account: i64,
        lat: f64,
        lon: f64,
        note: &str,
        now_ms: i64,
    ) -> StoreResult<Checkin> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO checkins (account, lat, lon, note, at_ms) VALUES (?, ?, ?, ?, ?) \
             RETURNING id",
        )
        .bind(account)
        .bind(lat)
        .bind(lon)
        .bind(note)
        .bind(now_ms)
        .fetch_one(&self.writer)
        .await
        .map_err(backend)?;
        Ok(Checkin {
            id,
            lat,
            lon,
            note: note.to_owned(),
            at_ms: now_ms,
        })
    }

    async fn checkins(&self, account: i64, limit: u32) -> StoreResult<Vec<Checkin>> {
        sqlx::query_as(
            "SELECT id, lat, lon, note, at_ms FROM checkins WHERE account = ? \
             ORDER BY at_ms DESC, id DESC LIMIT ?",
        )
        .bind(account)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)
    }
}
