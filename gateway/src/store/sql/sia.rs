//! [`SiaStore`] in shared SQL: panel accounts and their device rows.

use async_trait::async_trait;
use sqlx::Row as _;

use super::super::{Backend, Row};
use crate::domain::{DeviceId, HouseholdId};
use crate::store::sia::{SiaAccount, SiaAccountId, SiaKey, SiaStore};
use crate::store::sqlx_error::refused_naming;
use crate::store::{corrupt, StoreError, StoreResult};

macro_rules! sia_select {
    ($tail:literal) => {
        concat!(
            "SELECT account, household, device, key_hex FROM sia_accounts ",
            $tail
        )
    };
}

fn account_row(row: &Row) -> StoreResult<SiaAccount> {
    let text = |col: &str| -> StoreResult<String> { Ok(row.try_get::<String, _>(col)?) };
    let key: Option<String> = row.try_get("key_hex")?;
    Ok(SiaAccount {
        account: SiaAccountId::parse(&text("account")?).map_err(|e| corrupt("SIA account", e))?,
        household: HouseholdId::parse(&text("household")?).map_err(|e| corrupt("household", e))?,
        device: DeviceId::parse(&text("device")?).map_err(|e| corrupt("device", e))?,
        key: key
            .as_deref()
            .map(SiaKey::parse_hex)
            .transpose()
            .map_err(|e| corrupt("SIA key", e))?,
    })
}

#[async_trait]
impl SiaStore for Backend {
    async fn add_sia_account(
        &self,
        account: &SiaAccount,
        secret_hash: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let (name, household) = (
            format!("SIA account {}", account.account),
            format!("household {}", account.household),
        );
        sqlx::query("INSERT INTO devices (id, household, secret_hash) VALUES ($1, $2, $3)")
            .bind(account.device.as_str())
            .bind(account.household.as_str())
            .bind(secret_hash)
            .execute(&mut *tx)
            .await
            .map_err(|e| refused_naming(e, name.clone(), household.clone()))?;
        sqlx::query(
            "INSERT INTO sia_accounts (account, household, device, key_hex, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(account.account.as_str())
        .bind(account.household.as_str())
        .bind(account.device.as_str())
        .bind(account.key.as_ref().map(SiaKey::to_hex))
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| refused_naming(e, name, household))?;
        tx.commit().await.map_err(StoreError::from)
    }

    async fn sia_account(&self, account: &SiaAccountId) -> StoreResult<Option<SiaAccount>> {
        let row = sqlx::query(sia_select!("WHERE account = $1"))
            .bind(account.as_str())
            .fetch_optional(self.reads())
            .await?;
        row.as_ref().map(account_row).transpose()
    }

    async fn list_sia_accounts(&self) -> StoreResult<Vec<SiaAccount>> {
        let rows = sqlx::query(sia_select!("ORDER BY account"))
            .fetch_all(self.reads())
            .await?;
        rows.iter().map(account_row).collect()
    }
}
