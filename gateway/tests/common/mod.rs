//! The backends the store tests run on: SQLite always, PostgreSQL when
//! `TENWATCH_TEST_POSTGRES_URL` names a server (scripts/test.sh starts a throwaway one).
//!
//! Each test gets a fresh database: a file in a temporary directory, or a database of its own
//! (`tw_test_<name>_<random>`) created on the server and dropped when the test ends, failed or
//! not. With `CI=true` and no server the PostgreSQL variants fail, so that CI never passes
//! with half the suite skipped; elsewhere they print a SKIPPED line and pass.
//!
//! [`store_tests!`] turns `async fn name(db: TestDb)` functions into one test per backend:
//! `sqlite::name` and `postgres::name`.

// Each test binary uses some of this.
#![allow(dead_code)]

use std::io::Write;
use std::sync::Arc;

use sqlx::Connection;
use tenwatch_gateway::store::{self, Store};

/// Names the PostgreSQL server the store tests create their databases on.
pub const POSTGRES_URL_VAR: &str = "TENWATCH_TEST_POSTGRES_URL";

/// One test's fresh database, removed when dropped.
pub struct TestDb {
    /// What `store::open` takes.
    pub url: String,
    /// `sqlite` or `postgres`, for messages.
    pub backend: &'static str,
    /// The SQLite file's directory.
    _dir: Option<tempfile::TempDir>,
    /// The server's administrative URL and the database to drop there.
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        TestDb {
            url: store::sqlite_url_in(dir.path()),
            backend: "sqlite",
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A fresh database on the test server; `None` (after a SKIPPED line) when there is no
    /// server outside CI. Panics in CI without a server.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let admin = match std::env::var(POSTGRES_URL_VAR) {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
                "{POSTGRES_URL_VAR} is not set, and CI=true: the PostgreSQL store tests must \
                 run in CI (scripts/test.sh starts a server with \
                 scripts/postgres-test-server.sh)"
            ),
            _ => {
                // Past the test harness's capture, so that it shows in a passing run.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED postgres::{test}: {POSTGRES_URL_VAR} is not set"
                );
                return None;
            }
        };
        let mut name: String = format!("tw_test_{test}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(50)
            .collect();
        name.push_str(&format!("_{:08x}", rand::random::<u32>()));
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("connecting to {POSTGRES_URL_VAR}: {e}"));
        // The name is made of [a-z0-9_] above.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin).expect("TENWATCH_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{name}"));
        Some(TestDb {
            url: url.to_string(),
            backend: "postgres",
            _dir: None,
            postgres: Some((admin, name)),
        })
    }

    /// Opens (and migrates) a store on this database; each call is another store, as a second
    /// gateway on the same database would have.
    pub async fn open(&self) -> Arc<dyn Store> {
        store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("opening the {} store: {e}", self.backend))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on: the database is
        // dropped from a thread with a runtime of its own. FORCE ends the connections the
        // test's stores still hold.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = writeln!(std::io::stderr(), "test database not dropped: {e}");
            }
            Err(_) => {
                let _ = writeln!(std::io::stderr(), "test database not dropped: panicked");
            }
        }
    }
}

/// One test per backend for each `async fn name(db: TestDb)` named: `sqlite::name` and
/// `postgres::name`, on a multi-threaded runtime (stores on two gateways really run at once).
macro_rules! store_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::TestDb::sqlite().await).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = crate::common::TestDb::postgres(stringify!($name)).await {
                        super::$name(db).await
                    }
                }
            )+
        }
    };
}
