//! [`AccountStore`] on SQLite: accounts, their zones, volunteers' duty and position, and
//! sessions. Names are found regardless of case through `COLLATE NOCASE`.

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::accounts::{AccountKind, AccountName, Principal, Role};
use crate::domain::ZoneCode;
use crate::store::accounts::{
    check_account_zones, AccountRecord, AccountStore, NewAccount, OnDutyVolunteer, SLIDE_STEP_MS,
};
use crate::store::rows;
use crate::store::{StoreError, StoreResult};

fn backend(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::NotFound("a referenced account or zone".into())
        }
        sqlx::Error::Database(db) if db.is_check_violation() => {
            StoreError::Invalid(db.message().to_owned())
        }
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// The columns of [`Principal`], from `accounts a`; `concat!` keeps every query a `&'static str`.
macro_rules! principal_columns {
    () => {
        "SELECT a.id, a.name, a.display_name, a.kind, a.role, \
         (SELECT group_concat(z.zone, ',') FROM account_zones z WHERE z.account = a.id) AS zones"
    };
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(&self, a: &NewAccount, now_ms: i64) -> StoreResult<i64> {
        check_account_zones(a)?;
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (name, kind, role, display_name, phone, password_hash, \
             created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(a.name.as_str())
        .bind(a.kind.as_str())
        .bind(a.role.map(Role::as_str))
        .bind(&a.display_name)
        .bind(&a.phone)
        .bind(&a.password_hash)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match backend(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("account {}", a.name)),
            other => other,
        })?;
        for zone in &a.zones {
            sqlx::query("INSERT INTO account_zones (account, zone) VALUES (?, ?)")
                .bind(id)
                .bind(zone.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| match backend(e) {
                    StoreError::NotFound(_) => StoreError::NotFound(format!("zone {zone}")),
                    StoreError::Conflict(_) => {
                        StoreError::Invalid(format!("zone {zone} is listed twice"))
                    }
                    other => other,
                })?;
        }
        if a.kind == AccountKind::Volunteer {
            sqlx::query("INSERT INTO volunteers (account, on_duty) VALUES (?, 0)")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(id)
    }

    async fn account_by_name(&self, name: &AccountName) -> StoreResult<Option<AccountRecord>> {
        let row = sqlx::query(concat!(
            principal_columns!(),
            ", a.password_hash, a.disabled FROM accounts a WHERE a.name = ?"
        ))
        .bind(name.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        row.map(|row| {
            Ok(AccountRecord {
                principal: rows::principal(&row)?,
                password_hash: row.try_get("password_hash").map_err(backend)?,
                disabled: row.try_get::<i64, _>("disabled").map_err(backend)? != 0,
            })
        })
        .transpose()
    }

    async fn create_session(
        &self,
        token_hash: &str,
        account: i64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        // Expired sessions are swept here rather than by a background task: logins are rare,
        // and the index on expires_at_ms makes this cheap.
        sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= ?")
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, account, created_at_ms, expires_at_ms, \
             last_seen_ms) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(account)
        .bind(now_ms)
        .bind(expires_at_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| match backend(e) {
            StoreError::NotFound(_) => StoreError::NotFound(format!("account {account}")),
            other => other,
        })?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn session_principal(
        &self,
        token_hash: &str,
        now_ms: i64,
        lifetime_ms: i64,
    ) -> StoreResult<Option<Principal>> {
        let Some(row) = sqlx::query(concat!(
            principal_columns!(),
            ", s.last_seen_ms FROM sessions s JOIN accounts a ON a.id = s.account \
             WHERE s.token_hash = ? AND s.expires_at_ms > ? AND a.disabled = 0"
        ))
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?
        else {
            return Ok(None);
        };
        let principal = rows::principal(&row)?;
        let last_seen_ms: i64 = row.try_get("last_seen_ms").map_err(backend)?;
        let step = SLIDE_STEP_MS.min(lifetime_ms / 10);
        if now_ms - last_seen_ms >= step {
            // Guarded on expiry again: a logout or expiry in between must not be undone.
            sqlx::query(
                "UPDATE sessions SET last_seen_ms = ?, expires_at_ms = MAX(expires_at_ms, ?) \
                 WHERE token_hash = ? AND expires_at_ms > ?",
            )
            .bind(now_ms)
            .bind(now_ms + lifetime_ms)
            .bind(token_hash)
            .bind(now_ms)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        }
        Ok(Some(principal))
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn set_on_duty(&self, account: i64, on_duty: bool, now_ms: i64) -> StoreResult<()> {
        let sql = if on_duty {
            "UPDATE volunteers SET on_duty = 1, duty_changed_at_ms = ? \
             WHERE account = ? AND on_duty = 0"
        } else {
            "UPDATE volunteers SET on_duty = 0, duty_changed_at_ms = ?, \
             lat = NULL, lon = NULL, position_at_ms = NULL WHERE account = ?"
        };
        let mut tx = self.writer.begin().await.map_err(backend)?;
        sqlx::query(sql)
            .bind(now_ms)
            .bind(account)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let known: Option<i64> = sqlx::query_scalar("SELECT 1 FROM volunteers WHERE account = ?")
            .bind(account)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        match known {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("volunteer {account}"))),
        }
    }

    async fn update_position(
        &self,
        account: i64,
        lat: f64,
        lon: f64,
        now_ms: i64,
    ) -> StoreResult<bool> {
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return Err(StoreError::Invalid(format!(
                "position {lat}, {lon} is not a latitude and longitude"
            )));
        }
        let updated = sqlx::query(
            "UPDATE volunteers SET lat = ?, lon = ?, position_at_ms = ? \
             WHERE account = ? AND on_duty = 1",
        )
        .bind(lat)
        .bind(lon)
        .bind(now_ms)
        .bind(account)
        .execute(&self.writer)
        .await
        .map_err(backend)?
        .rows_affected();
        Ok(updated > 0)
    }

    async fn on_duty_volunteers(&self, zone: &ZoneCode) -> StoreResult<Vec<OnDutyVolunteer>> {
        let rows = sqlx::query(
            "SELECT a.id, a.name, a.display_name, v.lat, v.lon, v.position_at_ms \
             FROM account_zones z \
             JOIN volunteers v ON v.account = z.account \
             JOIN accounts a ON a.id = z.account \
             WHERE z.zone = ? AND v.on_duty = 1 AND a.disabled = 0 ORDER BY a.id",
        )
        .bind(zone.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(OnDutyVolunteer {
                    account_id: row.try_get("id").map_err(backend)?,
                    name: row.try_get("name").map_err(backend)?,
                    display_name: row.try_get("display_name").map_err(backend)?,
                    lat: row.try_get("lat").map_err(backend)?,
                    lon: row.try_get("lon").map_err(backend)?,
                    position_at_ms: row.try_get("position_at_ms").map_err(backend)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{sqlite_url_in, Store};

    async fn store() -> (tempfile::TempDir, SqliteStore, ZoneCode, ZoneCode) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&sqlite_url_in(dir.path())).await.unwrap();
        let z1 = ZoneCode::parse("11010501").unwrap();
        let z2 = ZoneCode::parse("11010502").unwrap();
        store.add_zone(&z1, "一区").await.unwrap();
        store.add_zone(&z2, "二区").await.unwrap();
        (dir, store, z1, z2)
    }

    fn account(name: &str, kind: AccountKind, zones: &[&ZoneCode]) -> NewAccount {
        NewAccount {
            name: AccountName::parse(name).unwrap(),
            kind,
            role: (kind == AccountKind::Operator).then_some(Role::Monitor),
            display_name: format!("{name} display"),
            phone: String::new(),
            password_hash: "$argon2id$fake".into(),
            zones: zones.iter().map(|z| (*z).clone()).collect(),
        }
    }

    #[tokio::test]
    async fn accounts_with_zones() {
        let (_dir, s, z1, z2) = store().await;
        let id = s
            .create_account(&account("Wang", AccountKind::Operator, &[&z2, &z1]), 1)
            .await
            .unwrap();
        let found = s
            .account_by_name(&AccountName::parse("wang").unwrap())
            .await
            .unwrap()
            .expect("found regardless of case");
        assert_eq!(found.principal.account_id, id);
        assert_eq!(found.principal.name, "Wang");
        assert_eq!(found.principal.zones, vec![z1.clone(), z2.clone()]);
        assert_eq!(found.principal.role, Some(Role::Monitor));
        assert!(!found.disabled);

        let taken = s
            .create_account(&account("WANG", AccountKind::Volunteer, &[&z1]), 1)
            .await;
        assert!(matches!(taken, Err(StoreError::Conflict(ref m)) if m.contains("WANG")));
        let nowhere = ZoneCode::parse("99999999").unwrap();
        let unknown_zone = s
            .create_account(&account("li", AccountKind::Operator, &[&nowhere]), 1)
            .await;
        assert!(matches!(unknown_zone, Err(StoreError::NotFound(ref m)) if m.contains("99999999")));
        // Nothing of the failed account was kept.
        assert!(s
            .account_by_name(&AccountName::parse("li").unwrap())
            .await
            .unwrap()
            .is_none());
        let two_zones = s
            .create_account(&account("v2", AccountKind::Volunteer, &[&z1, &z2]), 1)
            .await;
        assert!(matches!(two_zones, Err(StoreError::Invalid(_))));
    }

    #[tokio::test]
    async fn sessions_expire_and_slide() {
        let (_dir, s, z1, _) = store().await;
        let id = s
            .create_account(&account("m", AccountKind::Operator, &[&z1]), 0)
            .await
            .unwrap();
        let hour = 3_600_000;
        s.create_session("h1", id, 0, hour).await.unwrap();
        assert!(s.session_principal("h1", 10, hour).await.unwrap().is_some());
        assert!(s
            .session_principal("nope", 10, hour)
            .await
            .unwrap()
            .is_none());
        // Used at 50 min: now good until 1 h 50 min.
        assert!(s
            .session_principal("h1", 50 * 60_000, hour)
            .await
            .unwrap()
            .is_some());
        assert!(s
            .session_principal("h1", 100 * 60_000, hour)
            .await
            .unwrap()
            .is_some());
        assert!(s
            .session_principal("h1", 161 * 60_000, hour)
            .await
            .unwrap()
            .is_none());
        // A new login sweeps expired sessions.
        s.create_session("h2", id, 200 * 60_000, 260 * 60_000)
            .await
            .unwrap();
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(&s.reader)
            .await
            .unwrap();
        assert_eq!(left, 1);
        s.delete_session("h2").await.unwrap();
        assert!(s
            .session_principal("h2", 200 * 60_000, hour)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn on_duty_volunteers_of_a_zone() {
        let (_dir, s, z1, z2) = store().await;
        let a = s
            .create_account(&account("va", AccountKind::Volunteer, &[&z1]), 0)
            .await
            .unwrap();
        let b = s
            .create_account(&account("vb", AccountKind::Volunteer, &[&z1]), 0)
            .await
            .unwrap();
        let c = s
            .create_account(&account("vc", AccountKind::Volunteer, &[&z2]), 0)
            .await
            .unwrap();
        let op = s
            .create_account(&account("op", AccountKind::Operator, &[&z1]), 0)
            .await
            .unwrap();
        assert!(s.on_duty_volunteers(&z1).await.unwrap().is_empty());
        // Off duty: the position is not kept.
        assert!(!s.update_position(a, 39.9, 116.4, 5).await.unwrap());
        s.set_on_duty(a, true, 10).await.unwrap();
        s.set_on_duty(b, true, 10).await.unwrap();
        s.set_on_duty(c, true, 10).await.unwrap();
        assert!(matches!(
            s.set_on_duty(op, true, 10).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(s.update_position(a, 39.9, 116.4, 20).await.unwrap());
        assert!(matches!(
            s.update_position(a, 91.0, 0.0, 20).await,
            Err(StoreError::Invalid(_))
        ));
        let on = s.on_duty_volunteers(&z1).await.unwrap();
        assert_eq!(on.len(), 2);
        assert_eq!(on[0].name, "va");
        assert_eq!(
            (on[0].lat, on[0].lon, on[0].position_at_ms),
            (Some(39.9), Some(116.4), Some(20))
        );
        assert_eq!(on[1].name, "vb");
        assert_eq!(on[1].lat, None);
        s.set_on_duty(a, false, 30).await.unwrap();
        s.set_on_duty(a, true, 40).await.unwrap();
        let on = s.on_duty_volunteers(&z1).await.unwrap();
        assert_eq!(
            on[0].position_at_ms, None,
            "going off duty forgets the position"
        );
    }
}
