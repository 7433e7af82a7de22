//! [`PushStore`] in shared SQL: the VAPID key pair, volunteers' push subscriptions, what
//! became of each push, and patrol check-ins.

use async_trait::async_trait;

use super::super::Backend;
use crate::domain::AlertId;
use crate::store::push::{
    Checkin, NewPushSubscription, PushStore, PushSubscriptionRecord, VapidKeyPair,
    VolunteerProfile, MAX_SUBSCRIPTIONS,
};
use crate::store::sqlx_error::refused;
use crate::store::{rows, StoreError, StoreResult};

/// What a push write's foreign key points at.
const ACCOUNT: &str = "the account";

#[async_trait]
impl PushStore for Backend {
    async fn vapid_key_or_insert(
        &self,
        candidate: &VapidKeyPair,
        now_ms: i64,
    ) -> StoreResult<VapidKeyPair> {
        sqlx::query(
            "INSERT INTO vapid_key (id, private_key, public_key, created_at_ms) \
             VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&candidate.private_key)
        .bind(&candidate.public_key)
        .bind(now_ms)
        .execute(self.writes())
        .await?;
        // Read where it was written: the key stored first is the one to sign with.
        let (private_key, public_key) =
            sqlx::query_as("SELECT private_key, public_key FROM vapid_key WHERE id = 1")
                .fetch_one(self.writes())
                .await?;
        Ok(VapidKeyPair {
            private_key,
            public_key,
        })
    }

    async fn add_push_subscription(
        &self,
        account: i64,
        sub: &NewPushSubscription<'_>,
        now_ms: i64,
    ) -> StoreResult<i64> {
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO push_subscriptions \
             (account, endpoint, p256dh, auth, user_agent, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
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
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| refused(e, ACCOUNT))?;
        // The newest few stay: a phone or browser that has not registered again for longest
        // is the one given up.
        sqlx::query(
            "DELETE FROM push_subscriptions WHERE account = $1 AND id NOT IN \
             (SELECT id FROM push_subscriptions WHERE account = $1 \
              ORDER BY created_at_ms DESC, id DESC LIMIT $2)",
        )
        .bind(account)
        .bind(MAX_SUBSCRIPTIONS as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn remove_push_subscription(&self, account: i64, endpoint: &str) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM push_subscriptions WHERE account = $1 AND endpoint = $2")
                .bind(account)
                .bind(endpoint)
                .execute(self.writes())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn forget_push_endpoint(&self, endpoint: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM push_subscriptions WHERE endpoint = $1")
            .bind(endpoint)
            .execute(self.writes())
            .await?;
        Ok(())
    }

    async fn push_subscriptions_of(&self, name: &str) -> StoreResult<Vec<PushSubscriptionRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT s.id, s.endpoint, s.p256dh, s.auth FROM push_subscriptions s \
             JOIN accounts a ON a.id = s.account WHERE ",
            name_is!("a.name", "$1"),
            " AND a.disabled = FALSE ORDER BY s.id"
        ))
        .bind(name)
        .fetch_all(self.reads())
        .await?;
        rows.iter().map(rows::push_subscription).collect()
    }

    async fn push_sent(
        &self,
        subscription: i64,
        error: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<()> {
        let q = match error {
            None => sqlx::query(
                "UPDATE push_subscriptions SET last_ok_ms = $1, last_error = NULL WHERE id = $2",
            )
            .bind(now_ms),
            Some(e) => {
                sqlx::query("UPDATE push_subscriptions SET last_error = $1 WHERE id = $2").bind(e)
            }
        };
        q.bind(subscription).execute(self.writes()).await?;
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
            "UPDATE recipients SET push = $1, push_at_ms = $2 \
             WHERE alert = $3 AND kind = 'volunteer' AND who = $4 \
             AND (push IS NULL OR push <> 'accepted' OR $1 = 'accepted')",
        )
        .bind(outcome)
        .bind(now_ms)
        .bind(alert.0)
        .bind(volunteer)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    async fn volunteer_profile(&self, account: i64) -> StoreResult<VolunteerProfile> {
        let (on_duty, lat, lon, position_at_ms, subscriptions) = sqlx::query_as(
            "SELECT v.on_duty, v.lat, v.lon, v.position_at_ms, \
             (SELECT count(*) FROM push_subscriptions s WHERE s.account = v.account) \
             FROM volunteers v WHERE v.account = $1",
        )
        .bind(account)
        .fetch_optional(self.reads())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("volunteer {account}")))?;
        Ok(VolunteerProfile {
            on_duty,
            lat,
            lon,
            position_at_ms,
            subscriptions,
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
            "INSERT INTO checkins (account, lat, lon, note, at_ms) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id",
        )
        .bind(account)
        .bind(lat)
        .bind(lon)
        .bind(note)
        .bind(now_ms)
        .fetch_one(self.writes())
        .await
        .map_err(|e| refused(e, ACCOUNT))?;
        Ok(Checkin {
            id,
            lat,
            lon,
            note: note.to_owned(),
            at_ms: now_ms,
        })
    }

    async fn checkins(
        &self,
        account: i64,
        window: &crate::store::ListWindow,
    ) -> StoreResult<Vec<Checkin>> {
        let query = sqlx::query(concat!(
            "SELECT id, lat, lon, note, at_ms FROM checkins WHERE account = $1 AND ",
            in_window!("at_ms", "id", "$2", "$3", "$4", "$5"),
            " ORDER BY at_ms DESC, id DESC LIMIT $6"
        ))
        .bind(account);
        let rows = super::bind_window(query, window)
            .bind(i64::from(window.limit))
            .fetch_all(self.reads())
            .await?;
        rows.iter().map(rows::checkin).collect()
    }
}
