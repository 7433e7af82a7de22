//! The PostgreSQL backend of [`crate::store::Store`]: a pool of connections, migrations
//! embedded from `migrations/postgres`, every multi-statement operation in one transaction.
//! It is the store for deployments that outgrow one machine: several gateways share one
//! database.
//!
//! # How it differs from the SQLite backend
//! - **No group-commit writer.** PostgreSQL commits concurrent transactions together by
//!   itself, so each write is its own transaction on a pooled connection. Writes that must
//!   keep their call order (`sql::Commit::InOrder`: an alert's fan-out record, actions and
//!   receipts) keep that promise to callers through *lanes*: a fixed set of tasks, each
//!   running its writes one after another, and every write about one alert goes to the same
//!   lane. Writes about one alert therefore commit in the order they were queued; writes
//!   about different alerts run in parallel.
//! - **Row locks instead of one writer.** SQLite serialises all writes; here two gateways (or
//!   two pooled connections) really run at once, so every transaction that reads a row and then
//!   writes from what it read locks that row first, always the alert before its recipients:
//!   a press locks its device (dedup on (device, seq) cannot race), an action, a ring or a
//!   receipt locks the alert (`fire_ring` keeps its compare-and-set on the ring number as well,
//!   so each ring fires once), supervision locks the device and then, in a fixed order, each
//!   cluster whose coverage it recounts; the supervisor's sweep skips devices another gateway
//!   is handling (`SKIP LOCKED`).
//! - **Types.** Booleans are `BOOLEAN`, integers and times `BIGINT`, positions `DOUBLE
//!   PRECISION`; identifiers are `COLLATE "C"` so they sort byte by byte as in SQLite.
//!   Account names are unique on `lower(name)` (SQLite: `COLLATE NOCASE`, which folds ASCII
//!   only; `lower` also folds other scripts' letters). Lists of zones are bound as arrays
//!   (`= ANY($1)`) where SQLite reads a JSON list with `json_each`.
//! - **Receipts** are written one transaction each, not several to a statement: each is
//!   cheap, and the first receipt of an alert is still the one told, by an
//!   `UPDATE … WHERE first_delivered_at_ms IS NULL` that only one transaction can win.
//!
//! The SQL itself is shared with SQLite in `store/sql/`, built here with PostgreSQL's types
//! and phrases (see the macros below).
//!
//! # Tests
//! The store tests in `gateway/tests/` (accounts, escalation, supervision, store) run on both
//! backends: on PostgreSQL when `TENWATCH_TEST_POSTGRES_URL` names a server, each test in a
//! database of its own. `scripts/postgres-test-server.sh start DIR` starts a throwaway server
//! and prints that URL; `scripts/test.sh` does so for every run.

use std::str::FromStr;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Transaction};
use tokio::sync::{mpsc, oneshot};

use self::sql::alerts::{alert_in, insert_event, lock_alert};
use self::sql::Commit;
use crate::domain::{AlertId, DeviceId, Press, ZoneCode};
use crate::store::supervision::{FastHeartbeat, RSSI_STEP};
use crate::store::{
    alerts, queue, spawn_then, AlertSummary, PressOutcome, PressRules, RingPlan, StoreError,
    StoreResult, Then,
};

/// The store the shared SQL implements every trait for, and the sqlx types it is built with.
type Backend = PgStore;
type Db = Postgres;
type Args = <Postgres as sqlx::Database>::Arguments;
type Conn = PgConnection;
type Row = PgRow;
/// A list of zones, bound as a `text[]`.
type ZoneList = Vec<String>;

/// Locks the rows a transaction read before it writes from them (`OF` one table of a join).
macro_rules! lock {
    () => {
        " FOR NO KEY UPDATE"
    };
    ($of:literal) => {
        concat!(" FOR NO KEY UPDATE OF ", $of)
    };
}
/// Locks the rows no other transaction holds, and passes over the rest.
macro_rules! skip_locked {
    () => {
        " FOR NO KEY UPDATE SKIP LOCKED"
    };
}
/// A zone in the `text[]` [`PgStore::zone_list`] binds.
macro_rules! in_list {
    ($p:literal) => {
        concat!("= ANY(", $p, ")")
    };
}
/// Names are unique on `lower(name)`: compared the same way, through that index.
macro_rules! name_is {
    ($col:literal, $p:literal) => {
        concat!("lower(", $col, ") = lower(", $p, ")")
    };
}

// The shared SQL, built again for SQLite in `sqlite/mod.rs`: on purpose (see `sql/mod.rs`
// for why a module compiled per backend).
mod press;
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

/// Connections per store. Lanes hold at most one each; the rest serve reads, presses,
/// supervision and the API.
const POOL_SIZE: u32 = 16;
/// Tasks that run queued writes, one write at a time each (see the module header).
const LANES: usize = 8;
/// Writes queued in one lane before callers wait to enqueue.
const LANE_QUEUE: usize = 8192;

/// A queued write: it runs its own transaction and answers its caller itself.
type LaneJob = BoxFuture<'static, ()>;

pub struct PgStore {
    pool: PgPool,
    /// The lanes' queues; an alert's writes go to lane `id % LANES`.
    lanes: Vec<mpsc::Sender<LaneJob>>,
}

fn lanes_gone() -> StoreError {
    StoreError::Backend("the database write lanes stopped".into())
}

/// Runs a lane's writes one after another until the store is dropped.
async fn run_lane(mut queue: mpsc::Receiver<LaneJob>) {
    while let Some(job) = queue.recv().await {
        job.await;
    }
}

/// How long a gateway's session may sit idle inside a transaction before the server ends it.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "5s";

impl PgStore {
    /// Connects to `url` (`postgres://…` or `postgresql://…`) and applies the migrations.
    /// Several gateways may start at once: sqlx takes an advisory lock while migrating.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?
            // A replica that hangs inside a transaction (a stopped process, a frozen machine)
            // would hold its row locks, and with them the other replicas' writes about those
            // devices and alerts, until it died: the server ends such a session instead.
            // Ours never wait on the network inside a transaction, so 5 s idle is a hung one.
            .options([(
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_TIMEOUT,
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let lanes = (0..LANES)
            .map(|_| {
                let (jobs, queue) = mpsc::channel(LANE_QUEUE);
                tokio::spawn(run_lane(queue));
                jobs
            })
            .collect();
        Ok(Self { pool, lanes })
    }

    /// Runs `work` as `commit` asks and returns the future of its result (after the commit).
    fn write<T, F>(&self, commit: Commit, work: F) -> BoxFuture<'static, StoreResult<T>>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let pool = self.pool.clone();
        match commit {
            Commit::InOrder(alert) => self.queued(alert, work),
            Commit::Transaction => Box::pin(async move { in_transaction(&pool, work).await }),
            // Autocommit: a BEGIN and a COMMIT would double the round trips of a heartbeat.
            Commit::Statement => Box::pin(async move {
                let mut conn = pool.acquire().await?;
                work(&mut conn).await
            }),
        }
    }

    /// Queues `work` now on the alert's lane, in one transaction, and returns the future of
    /// its result (after the commit).
    fn queued<T, F>(&self, alert: AlertId, work: F) -> BoxFuture<'static, StoreResult<T>>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<StoreResult<T>>();
        let pool = self.pool.clone();
        let job: LaneJob = Box::pin(async move {
            let _ = reply.send(in_transaction(&pool, work).await);
        });
        let lane = &self.lanes[alert.0.rem_euclid(LANES as i64) as usize];
        queue::in_order(lane, job, answer, lanes_gone)
    }

    /// A press, in a transaction of its own (see [`press::record_press_in`]).
    fn press(
        &self,
        device: &DeviceId,
        press: &Press,
        plan: &RingPlan,
        rules: &PressRules,
        now_ms: i64,
    ) -> BoxFuture<'static, StoreResult<PressOutcome>> {
        let (device, press, plan, rules) = (device.clone(), press.clone(), *plan, *rules);
        self.write(Commit::Transaction, move |tx| {
            Box::pin(async move {
                press::record_press_in(tx, &device, &press, &plan, &rules, now_ms).await
            })
        })
    }

    /// The record of an alert's fan-out, in its alert's lane.
    fn notified(
        &self,
        alert: AlertId,
        now_ms: i64,
    ) -> BoxFuture<'static, StoreResult<AlertSummary>> {
        self.write(Commit::InOrder(alert), move |tx| {
            Box::pin(async move { press::mark_notified_in(tx, alert, now_ms).await })
        })
    }

    /// A unit's receipt, in its alert's lane (see [`delivery_in`]).
    fn delivery(
        &self,
        alert: AlertId,
        device: &DeviceId,
        now_ms: i64,
    ) -> BoxFuture<'static, StoreResult<Option<AlertSummary>>> {
        let device = device.clone();
        self.queued(alert, move |tx| {
            Box::pin(async move { delivery_in(tx, alert, &device, now_ms).await })
        })
    }

    /// The record of an alert's fan-out for a caller that only reacts to it: PostgreSQL's lanes
    /// answer on tokio's threads, so a task awaits it.
    fn notified_then(&self, alert: AlertId, now_ms: i64, then: Then<AlertSummary>) {
        spawn_then(self.notified(alert, now_ms), then)
    }

    /// A unit's receipt for a caller that only reacts to it (see [`Self::notified_then`]).
    fn delivery_then(
        &self,
        alert: AlertId,
        device: &DeviceId,
        now_ms: i64,
        then: Then<Option<AlertSummary>>,
    ) {
        spawn_then(self.delivery(alert, device, now_ms), then)
    }

    /// A busy-path heartbeat: one statement, committed by itself.
    fn fast_heartbeat(&self, hb: FastHeartbeat) -> BoxFuture<'static, StoreResult<bool>> {
        self.write(Commit::Statement, move |conn| {
            Box::pin(async move { fast_heartbeat_in(conn, &hb).await })
        })
    }

    /// A flush of kept heartbeats ([`crate::heartbeats`]): one statement for all of them.
    fn fast_heartbeats(
        &self,
        beats: Vec<FastHeartbeat>,
    ) -> BoxFuture<'static, StoreResult<std::collections::HashSet<String>>> {
        self.write(Commit::Statement, move |conn| {
            Box::pin(async move { fast_heartbeats_in(conn, &beats).await })
        })
    }

    fn reads(&self) -> &PgPool {
        &self.pool
    }

    fn writes(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(StoreError::from)
    }

    /// Reads that see one moment: a repeatable-read, read-only transaction.
    async fn snapshot(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Zones as `in_list!` binds them.
    fn zone_list(zones: &[ZoneCode]) -> StoreResult<ZoneList> {
        Ok(zones.iter().map(|z| z.as_str().to_owned()).collect())
    }
}

/// Runs `work` in one transaction: committed if it succeeds, rolled back if it fails.
async fn in_transaction<T, F>(pool: &PgPool, work: F) -> StoreResult<T>
where
    F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, StoreResult<T>>,
{
    let mut tx = pool.begin().await?;
    let out = work(&mut tx).await?;
    tx.commit().await?;
    Ok(out)
}

/// A unit's receipt: its recipient moves to `delivered` (only from `notified`: a late or
/// repeated receipt changes nothing) with a timeline event; the alert when this was its first
/// delivery.
async fn delivery_in(
    tx: &mut Conn,
    alert: AlertId,
    device: &DeviceId,
    now_ms: i64,
) -> StoreResult<Option<AlertSummary>> {
    if !lock_alert(tx, alert.0).await? {
        return Ok(None);
    }
    let moved = sqlx::query(
        "UPDATE recipients SET state = 'delivered', updated_at_ms = $1 \
         WHERE alert = $2 AND kind = 'unit' AND who = $3 AND state = 'notified'",
    )
    .bind(now_ms)
    .bind(alert.0)
    .bind(device.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Ok(None);
    }
    insert_event(
        tx,
        alert.0,
        &alerts::device_actor(device),
        "delivered",
        "",
        now_ms,
    )
    .await?;
    let first: Option<i64> = sqlx::query_scalar(
        "UPDATE alerts SET first_delivered_at_ms = $1 \
         WHERE id = $2 AND first_delivered_at_ms IS NULL RETURNING id",
    )
    .bind(now_ms)
    .bind(alert.0)
    .fetch_optional(&mut *tx)
    .await?;
    match first {
        Some(id) => Ok(Some(alert_in(tx, id).await?)),
        None => Ok(None),
    }
}

/// Many [`FastHeartbeat`]s in one statement, each as [`fast_heartbeat_in`] applies it alone;
/// returns the devices whose beat applied.
async fn fast_heartbeats_in(
    conn: &mut PgConnection,
    beats: &[FastHeartbeat],
) -> StoreResult<std::collections::HashSet<String>> {
    let ids: Vec<&str> = beats.iter().map(|b| b.device.as_str()).collect();
    let nows: Vec<i64> = beats.iter().map(|b| b.now_ms).collect();
    let rssis: Vec<Option<i64>> = beats.iter().map(|b| b.rssi).collect();
    let batteries: Vec<Option<i64>> = beats.iter().map(|b| b.battery).collect();
    let tampers: Vec<bool> = beats.iter().map(|b| b.tamper).collect();
    let firmwares: Vec<Option<&str>> = beats.iter().map(|b| b.firmware.as_deref()).collect();
    let applied: Vec<String> = sqlx::query_scalar(
        "UPDATE devices AS d SET last_heartbeat_ms = j.now, last_seen_ms = j.now, \
         evidence_ms = j.now, rssi = j.rssi \
         FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BOOLEAN[], \
                     $6::TEXT[]) AS j(id, now, rssi, battery, tamper, fw) \
         WHERE d.id = j.id AND d.sup_state = 'online' \
         AND (j.battery IS NULL OR d.battery IS NOT DISTINCT FROM j.battery) \
         AND d.tamper IS NOT DISTINCT FROM j.tamper \
         AND (j.fw IS NULL OR d.firmware IS NOT DISTINCT FROM j.fw) \
         AND (j.rssi IS NULL OR abs(j.rssi - d.rssi_recorded) < $7) \
         RETURNING d.id",
    )
    .bind(&ids)
    .bind(&nows)
    .bind(&rssis)
    .bind(&batteries)
    .bind(&tampers)
    .bind(&firmwares)
    .bind(i64::from(RSSI_STEP))
    .fetch_all(&mut *conn)
    .await?;
    Ok(applied.into_iter().collect())
}

/// One [`FastHeartbeat`] by itself: whether it applied (the device is online and its health did
/// not move). SQLite's writer applies many at once instead (`sqlite::fast_heartbeats_in`).
async fn fast_heartbeat_in(conn: &mut PgConnection, hb: &FastHeartbeat) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE devices SET last_heartbeat_ms = $1, last_seen_ms = $1, \
         evidence_ms = $1, rssi = $2 WHERE id = $3 AND sup_state = 'online' \
         AND (CAST($4 AS BIGINT) IS NULL OR battery IS NOT DISTINCT FROM $4) \
         AND tamper IS NOT DISTINCT FROM $5 \
         AND (CAST($6 AS TEXT) IS NULL OR firmware IS NOT DISTINCT FROM $6) \
         AND (CAST($2 AS BIGINT) IS NULL OR abs($2 - rssi_recorded) < $7)",
    )
    .bind(hb.now_ms)
    .bind(hb.rssi)
    .bind(hb.device.as_str())
    .bind(hb.battery)
    .bind(hb.tamper)
    .bind(hb.firmware.as_deref())
    .bind(i64::from(RSSI_STEP))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
