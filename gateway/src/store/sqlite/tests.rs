//! SQLite-only tests of the store: what only a look into the file shows (expired sessions
//! swept), and the console's map. The story every backend must tell, presses to receipts to
//! accounts, is `gateway/tests/store.rs`, run on SQLite and on PostgreSQL.

use super::*;
use crate::identity::{AccountKind, AccountName, Role};
use crate::store::accounts::{AccountStore, NewAccount};
use crate::store::map::{MapStore, ZoneMap};
use crate::store::{sqlite_url_in, Store};

#[tokio::test]
async fn a_login_sweeps_expired_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&sqlite_url_in(dir.path())).await.unwrap();
    let zone = ZoneCode::parse("11010501").unwrap();
    s.add_zone(&zone, "一区").await.unwrap();
    let id = s
        .create_account(
            &NewAccount {
                name: AccountName::parse("m").unwrap(),
                kind: AccountKind::Operator,
                role: Some(Role::Monitor),
                display_name: String::new(),
                phone: String::new(),
                password_hash: "$argon2id$fake".into(),
                zones: vec![zone],
            },
            0,
        )
        .await
        .unwrap();
    let hour = 3_600_000;
    s.create_session("h1", id, 0, hour).await.unwrap();
    s.create_session("h2", id, 200 * 60_000, 260 * 60_000)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(&s.reader)
        .await
        .unwrap();
    assert_eq!(left, 1, "the session expired at 1 h is gone");
}

#[tokio::test]
async fn map_shows_only_the_asked_zones() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&sqlite_url_in(dir.path())).await?;
    crate::seed::seed_demo(&store, 2).await?;
    let other = ZoneCode::parse("11010502")?;
    store.add_zone(&other, "第二责任区").await?;

    let demo = ZoneCode::parse(crate::seed::DEMO_ZONE)?;
    let map = store.zone_map(std::slice::from_ref(&demo)).await?;
    assert_eq!(map.zones.len(), 1);
    assert_eq!(map.clusters.len(), 2);
    assert_eq!(map.households.len(), 20);
    assert_eq!(map.devices.len(), 20);
    assert!(map.devices.iter().all(|d| !d.online && d.enabled));

    let map = store.zone_map(&[other]).await?;
    assert_eq!(map.zones.len(), 1);
    assert!(map.households.is_empty() && map.devices.is_empty());
    assert_eq!(store.zone_map(&[]).await?, ZoneMap::default());
    Ok(())
}
