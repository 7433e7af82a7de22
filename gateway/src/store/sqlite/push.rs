//! [`PushStore`] on SQLite: the VAPID key pair, volunteers' push subscriptions, what became
//! of each push, and patrol check-ins.

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::domain::AlertId;
use crate::store::push::{
    Checkin, NewPushSubscription, PushStore, PushSubscriptionRecord, VapidKeyPair, VolunteerProfile,
};
use crate::store::{StoreError, StoreResult};

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
        sqlx::query_as::<_, (i64, String, String, String)>(
            "SELECT s.id, s.endpoint, s.p256dh, s.auth FROM push_subscriptions s \
             JOIN accounts a ON a.id = s.account \
             WHERE a.name = ? AND a.disabled = 0 ORDER BY s.id",
        )
        .bind(name)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)
        .map(|rows| {
            rows.into_iter()
                .map(|(id, endpoint, p256dh, auth)| PushSubscriptionRecord {
                    id,
                    endpoint,
                    p256dh,
                    auth,
                })
                .collect()
        })
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
        sqlx::query_as::<_, (i64, f64, f64, String, i64)>(
            "SELECT id, lat, lon, note, at_ms FROM checkins WHERE account = ? \
             ORDER BY at_ms DESC, id DESC LIMIT ?",
        )
        .bind(account)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)
        .map(|rows| {
            rows.into_iter()
                .map(|(id, lat, lon, note, at_ms)| Checkin {
                    id,
                    lat,
                    lon,
                    note,
                    at_ms,
                })
                .collect()
        })
    }
}
