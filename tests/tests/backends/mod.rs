//! A gateway on a fresh SQLite file or a fresh PostgreSQL database, for the end-to-end tests
//! that run on both backends (a folder module: not a test binary of its own).

// The gateway store tests' helper for a fresh PostgreSQL database (its macro is not used here).
#[allow(unused_macros)]
#[path = "../../../gateway/tests/common/mod.rs"]
pub mod common;

use tenwatch_tests::{spawn_app_on_database, TestApp};

/// A gateway with `clusters` clusters on `backend` (`sqlite` or `postgres`); none when
/// PostgreSQL is not configured (skipped outside CI, as the store tests are). The database is
/// dropped last.
pub async fn app_on(
    backend: &str,
    test: &str,
    clusters: usize,
) -> anyhow::Result<Option<(common::TestDb, TestApp)>> {
    let db = match backend {
        "sqlite" => common::TestDb::sqlite().await,
        _ => match common::TestDb::postgres(test).await {
            Some(db) => db,
            None => return Ok(None),
        },
    };
    let app = spawn_app_on_database(&db.url, clusters, |_| {}).await?;
    Ok(Some((db, app)))
}
