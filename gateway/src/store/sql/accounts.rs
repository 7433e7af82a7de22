//! [`AccountStore`] in shared SQL: accounts, their zones, volunteers' duty and position, and
//! sessions. Names are found regardless of case (`name_is!`).

use async_trait::async_trait;

use super::super::Backend;
use crate::domain::ZoneCode;
use crate::identity::{AccountKind, AccountName, Principal, Role};
use crate::store::accounts::{
    check_account_zones, check_position, AccountRecord, AccountStore, NewAccount, OnDutyVolunteer,
    SLIDE_STEP_MS,
};
use crate::store::rows::{self, Columns};
use crate::store::sqlx_error::refused;
use crate::store::{StoreError, StoreResult};

/// What an account write's foreign keys point at.
const ACCOUNTS: &str = "a referenced account or zone";

/// The columns of [`Principal`], from `accounts a`; `concat!` keeps every query a `&'static str`.
macro_rules! principal_columns {
    () => {
        "SELECT a.id, a.name, a.display_name, a.kind, a.role, \
         (SELECT string_agg(z.zone, ',') FROM account_zones z WHERE z.account = a.id) AS zones"
    };
}

#[async_trait]
impl AccountStore for Backend {
    async fn create_account(&self, a: &NewAccount, now_ms: i64) -> StoreResult<i64> {
        check_account_zones(a)?;
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (name, kind, role, display_name, phone, password_hash, \
             created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
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
        .map_err(|e| match refused(e, ACCOUNTS) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("account {}", a.name)),
            other => other,
        })?;
        for zone in &a.zones {
            sqlx::query("INSERT INTO account_zones (account, zone) VALUES ($1, $2)")
                .bind(id)
                .bind(zone.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| match refused(e, ACCOUNTS) {
                    StoreError::NotFound(_) => StoreError::NotFound(format!("zone {zone}")),
                    StoreError::Conflict(_) => {
                        StoreError::Invalid(format!("zone {zone} is listed twice"))
                    }
                    other => other,
                })?;
        }
        if a.kind == AccountKind::Volunteer {
            sqlx::query("INSERT INTO volunteers (account, on_duty) VALUES ($1, FALSE)")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| refused(e, ACCOUNTS))?;
        }
        tx.commit().await?;
        Ok(id)
    }

    async fn account_by_name(&self, name: &AccountName) -> StoreResult<Option<AccountRecord>> {
        let row = sqlx::query(concat!(
            principal_columns!(),
            ", a.password_hash, a.disabled FROM accounts a WHERE ",
            name_is!("a.name", "$1")
        ))
        .bind(name.as_str())
        .fetch_optional(self.reads())
        .await?;
        row.map(|row| {
            Ok(AccountRecord {
                principal: rows::principal(&row)?,
                password_hash: row.text("password_hash")?,
                disabled: row.flag("disabled")?,
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
        let mut tx = self.begin_write().await?;
        // Expired sessions are swept here rather than by a background task: logins are rare,
        // and the index on expires_at_ms makes this cheap.
        sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, account, created_at_ms, expires_at_ms, \
             last_seen_ms) VALUES ($1, $2, $3, $4, $3)",
        )
        .bind(token_hash)
        .bind(account)
        .bind(now_ms)
        .bind(expires_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| match refused(e, ACCOUNTS) {
            StoreError::NotFound(_) => StoreError::NotFound(format!("account {account}")),
            other => other,
        })?;
        tx.commit().await?;
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
             WHERE s.token_hash = $1 AND s.expires_at_ms > $2 AND a.disabled = FALSE"
        ))
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(self.reads())
        .await?
        else {
            return Ok(None);
        };
        let principal = rows::principal(&row)?;
        let step = SLIDE_STEP_MS.min(lifetime_ms / 10);
        if now_ms - row.int("last_seen_ms")? >= step {
            // Guarded on expiry again: a logout or expiry in between must not be undone.
            sqlx::query(
                "UPDATE sessions SET last_seen_ms = $1, expires_at_ms = \
                 CASE WHEN expires_at_ms > $2 THEN expires_at_ms ELSE $2 END \
                 WHERE token_hash = $3 AND expires_at_ms > $1",
            )
            .bind(now_ms)
            .bind(now_ms + lifetime_ms)
            .bind(token_hash)
            .execute(self.writes())
            .await?;
        }
        Ok(Some(principal))
    }

    async fn session_open(&self, token_hash: &str, now_ms: i64) -> StoreResult<bool> {
        let open: Option<(i64,)> = sqlx::query_as(
            "SELECT s.expires_at_ms FROM sessions s JOIN accounts a ON a.id = s.account \
             WHERE s.token_hash = $1 AND s.expires_at_ms > $2 AND a.disabled = FALSE",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(self.reads())
        .await?;
        Ok(open.is_some())
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.writes())
            .await?;
        Ok(())
    }

    async fn set_on_duty(&self, account: i64, on_duty: bool, now_ms: i64) -> StoreResult<()> {
        let sql = if on_duty {
            "UPDATE volunteers SET on_duty = TRUE, duty_changed_at_ms = $1 \
             WHERE account = $2 AND on_duty = FALSE"
        } else {
            // Off duty, the position is not kept: it is only kept while it is used.
            "UPDATE volunteers SET on_duty = FALSE, duty_changed_at_ms = $1, \
             lat = NULL, lon = NULL, position_at_ms = NULL WHERE account = $2"
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(sql)
            .bind(now_ms)
            .bind(account)
            .execute(&mut *tx)
            .await?;
        let known: Option<i64> =
            sqlx::query_scalar("SELECT account FROM volunteers WHERE account = $1")
                .bind(account)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
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
        check_position(lat, lon)?;
        let updated = sqlx::query(
            "UPDATE volunteers SET lat = $1, lon = $2, position_at_ms = $3 \
             WHERE account = $4 AND on_duty = TRUE",
        )
        .bind(lat)
        .bind(lon)
        .bind(now_ms)
        .bind(account)
        .execute(self.writes())
        .await
        .map_err(|e| refused(e, ACCOUNTS))?
        .rows_affected();
        Ok(updated > 0)
    }

    async fn on_duty_volunteers(&self, zone: &ZoneCode) -> StoreResult<Vec<OnDutyVolunteer>> {
        let rows = sqlx::query(
            "SELECT a.id, a.name, a.display_name, v.lat, v.lon, v.position_at_ms \
                 FROM account_zones z \
                 JOIN volunteers v ON v.account = z.account \
                 JOIN accounts a ON a.id = z.account \
                 WHERE z.zone = $1 AND v.on_duty = TRUE AND a.disabled = FALSE ORDER BY a.id",
        )
        .bind(zone.as_str())
        .fetch_all(self.reads())
        .await?;
        rows.iter().map(rows::on_duty_volunteer).collect()
    }

    async fn list_accounts(&self) -> StoreResult<Vec<(Principal, bool)>> {
        let found = sqlx::query(concat!(
            principal_columns!(),
            ", a.disabled FROM accounts a ORDER BY a.name"
        ))
        .fetch_all(self.reads())
        .await?;
        found
            .iter()
            .map(|row| Ok((rows::principal(row)?, row.flag("disabled")?)))
            .collect()
    }

    async fn set_account_disabled(&self, name: &AccountName, disabled: bool) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(concat!(
            "UPDATE accounts SET disabled = $1 WHERE ",
            name_is!("name", "$2")
        ))
        .bind(disabled)
        .bind(name.as_str())
        .execute(&mut *tx)
        .await?;
        if disabled {
            end_sessions(&mut tx, name).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_password_hash(
        &self,
        name: &AccountName,
        password_hash: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(concat!(
            "UPDATE accounts SET password_hash = $1 WHERE ",
            name_is!("name", "$2")
        ))
        .bind(password_hash)
        .bind(name.as_str())
        .execute(&mut *tx)
        .await?;
        end_sessions(&mut tx, name).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_account(&self, name: &AccountName) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let found: Option<(i64, String, i64, i64)> = sqlx::query_as(concat!(
            "SELECT a.id, a.name, \
             (SELECT COUNT(*) FROM recipients r WHERE r.kind = 'volunteer' AND r.who = a.name \
              AND (r.kind <> 'unit' OR r.ring > 0)), \
             (SELECT COUNT(*) FROM checkins c WHERE c.account = a.id) \
             FROM accounts a WHERE ",
            name_is!("a.name", "$1")
        ))
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, stored, alerts, checkins)) = found else {
            return Ok(false);
        };
        if alerts + checkins > 0 {
            return Err(StoreError::Invalid(format!(
                "account {stored} was sent {alerts} alert(s) and checked in {checkins} time(s): \
                 its history stays; disable it instead (tenwatch admin disable-account --name \
                 {stored})"
            )));
        }
        // Zones, duty, sessions and push subscriptions go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Ends every session of the account named `name`.
async fn end_sessions(tx: &mut super::super::Conn, name: &AccountName) -> StoreResult<()> {
    sqlx::query(concat!(
        "DELETE FROM sessions WHERE account IN (SELECT id FROM accounts WHERE ",
        name_is!("name", "$1"),
        ")"
    ))
    .bind(name.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
