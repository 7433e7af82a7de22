//! The SQLite backend of [`Store`]: one file in WAL mode, `synchronous = FULL` so that a
//! committed press survives a power cut, migrations embedded from `migrations/sqlite`.
//!
//! Writes of the alert path go through one writer task with **group commit**: every write is a
//! job on a queue; the task takes all jobs waiting, runs each in its own savepoint inside one
//! transaction, commits once (one fsync for the lot) and only then answers each caller. A press
//! is therefore still durable before it is fanned out, but a thousand presses and their
//! delivery receipts share a handful of fsyncs instead of needing one each. A job that fails
//! rolls back its savepoint alone. Jobs run in queue order, so one device's messages keep
//! their order. Rare registry writes use the single-connection writer pool directly; reads use
//! their own pool and never wait on writes.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};
use tokio::sync::{mpsc, oneshot};

mod accounts;
mod map;
mod push;
mod supervision;

use super::alerts::{self, AlertChange, RecipientMove};
use super::rows::{self, Columns};
use super::*;
use crate::lifecycle::alert_next;

/// A job's outcome, delivered to its caller once the batch's commit is known.
type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A unit of work for the writer task: runs on the batch's connection inside a savepoint and
/// says whether it succeeded (else its savepoint is rolled back).
type Job =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Finish)> + Send>;

/// What the writer task runs: a general job, or a unit's delivery receipt. Receipts are nine
/// a press; consecutive ones in the queue are written together in three statements.
enum Work {
    Job(Job),
    Delivery(Delivery),
}

struct Delivery {
    alert: AlertId,
    device: DeviceId,
    now_ms: i64,
    reply: oneshot::Sender<StoreResult<Option<AlertSummary>>>,
}

/// Jobs queued before callers wait to enqueue.
const WRITE_QUEUE: usize = 65_536;
/// Jobs committed together at most.
const MAX_BATCH: usize = 1024;

pub struct SqliteStore {
    /// The writer task's queue.
    jobs: mpsc::Sender<Work>,
    /// The single writer connection.
    writer: SqlitePool,
    /// Readers for the API and the edge's logins.
    reader: SqlitePool,
}

fn backend(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::NotFound("a referenced zone, cluster or household".into())
        }
        sqlx::Error::Database(db) if db.is_check_violation() => {
            StoreError::Invalid(db.message().to_owned())
        }
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// The shared row parsers ([`rows`]) read a SqliteRow through this.
impl Columns for SqliteRow {
    fn text(&self, col: &str) -> StoreResult<String> {
        self.try_get(col).map_err(backend)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        self.try_get(col).map_err(backend)
    }
    fn int(&self, col: &str) -> StoreResult<i64> {
        self.try_get(col).map_err(backend)
    }
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
        self.try_get(col).map_err(backend)
    }
    fn real(&self, col: &str) -> StoreResult<f64> {
        self.try_get(col).map_err(backend)
    }
    fn opt_real(&self, col: &str) -> StoreResult<Option<f64>> {
        self.try_get(col).map_err(backend)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        self.try_get(col).map_err(backend)
    }
    fn opt_flag(&self, col: &str) -> StoreResult<Option<bool>> {
        self.try_get(col).map_err(backend)
    }
}

/// The columns of [`AlertSummary`]; `concat!` keeps every query a `&'static str`.
macro_rules! alert_select {
    () => {
        "SELECT a.id, a.device, a.seq, a.household, h.label, h.address, h.lat, h.lon, \
         a.cluster, a.zone, a.kind, a.state, a.raised_at_ms, a.notified_at_ms, a.updated_at_ms, \
         a.ring, a.critical, a.next_ring_at_ms, a.category, a.resolution_note, \
         a.acknowledged_at_ms, a.first_delivered_at_ms, a.first_coming_at_ms, \
         a.first_on_scene_at_ms, a.closed_at_ms, \
         (SELECT COUNT(*) FROM recipients r WHERE r.alert = a.id \
          AND r.state IN ('coming', 'on_scene')) AS responders \
         FROM alerts a JOIN households h ON h.id = a.household "
    };
}

pub use crate::domain::haversine_m;

async fn insert_recipient(
    tx: &mut SqliteConnection,
    alert: i64,
    r: &Recipient,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO recipients \
         (alert, kind, who, label, ring, state, distance_m, notified_at_ms, updated_at_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(alert)
    .bind(r.kind.as_str())
    .bind(&r.who)
    .bind(&r.label)
    .bind(r.ring as i64)
    .bind(r.state.as_str())
    .bind(r.distance_m)
    .bind(r.notified_at_ms)
    .bind(r.updated_at_ms)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    Ok(done.rows_affected() == 1)
}

async fn alert_in(tx: &mut SqliteConnection, id: i64) -> StoreResult<AlertSummary> {
    let row = sqlx::query(concat!(alert_select!(), "WHERE a.id = ?"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
    rows::alert(&row)
}

async fn insert_event(
    tx: &mut SqliteConnection,
    alert: i64,
    actor: &str,
    action: &str,
    detail: &str,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO alert_events (alert, at_ms, actor, action, detail) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(alert)
    .bind(now_ms)
    .bind(actor)
    .bind(action)
    .bind(detail)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// The alert an earlier press with this (device, seq) made or cancelled.
async fn earlier_press(
    tx: &mut SqliteConnection,
    device: &DeviceId,
    seq: u64,
) -> StoreResult<Option<AlertSummary>> {
    let alert: Option<i64> =
        sqlx::query_scalar("SELECT alert FROM presses WHERE device = ? AND seq = ?")
            .bind(device.as_str())
            .bind(seq as i64)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
    match alert {
        Some(id) => Ok(Some(alert_in(tx, id).await?)),
        None => Ok(None),
    }
}

async fn insert_press(
    tx: &mut SqliteConnection,
    device: &DeviceId,
    press: &Press,
    alert: i64,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO presses (device, seq, kind, alert, at_ms) VALUES (?, ?, ?, ?, ?)")
        .bind(device.as_str())
        .bind(press.seq as i64)
        .bind(press.kind.as_str())
        .bind(alert)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    Ok(())
}

fn writer_gone() -> StoreError {
    StoreError::Backend("the database writer stopped".into())
}

/// The writer task: group commit of queued jobs until the store is dropped.
async fn run_writer(pool: SqlitePool, mut queue: mpsc::Receiver<Work>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let mut finishes = Vec::with_capacity(jobs.len());
        let outcome = run_batch(&pool, jobs.drain(..), &mut finishes).await;
        if let Err(e) = &outcome {
            tracing::error!(error = %e, jobs = finishes.len(), "write batch failed");
        }
        for finish in finishes {
            finish(outcome.as_ref().err());
        }
    }
}

async fn run_batch(
    pool: &SqlitePool,
    jobs: impl Iterator<Item = Work>,
    finishes: &mut Vec<Finish>,
) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(backend)?;
    let run = async {
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        let mut jobs = jobs.peekable();
        while let Some(work) = jobs.next() {
            sqlx::query("SAVEPOINT job")
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            let ok = match work {
                Work::Job(job) => {
                    let (ok, finish) = job(&mut conn).await;
                    finishes.push(finish);
                    ok
                }
                Work::Delivery(first) => {
                    let mut group = vec![first];
                    while let Some(Work::Delivery(_)) = jobs.peek() {
                        if let Some(Work::Delivery(d)) = jobs.next() {
                            group.push(d);
                        }
                    }
                    let (ok, finish) = deliveries(&mut conn, group).await;
                    finishes.push(finish);
                    ok
                }
            };
            let end = if ok {
                "RELEASE job"
            } else {
                "ROLLBACK TO job; RELEASE job"
            };
            sqlx::raw_sql(end)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
        }
        sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .map_err(backend)
    };
    let result = run.await;
    if result.is_err() {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    result.map(|_| ())
}

/// Writes consecutive delivery receipts together: the units' recipients move to `delivered`
/// (only from `notified`: a late receipt changes nothing), one timeline event each, and the
/// alerts' first delivery time. Each receipt is answered with its alert when it was that
/// alert's first delivery, for the station feed.
async fn deliveries(conn: &mut SqliteConnection, group: Vec<Delivery>) -> (bool, Finish) {
    let result = deliveries_in(conn, &group).await;
    let ok = result.is_ok();
    let finish: Finish = Box::new(move |commit_error| {
        let error = match (commit_error, &result) {
            (Some(e), _) => Some(e.to_string()),
            (None, Err(e)) => Some(e.to_string()),
            (None, Ok(_)) => None,
        };
        let mut firsts = result.unwrap_or_default();
        for d in group {
            let answer = match &error {
                Some(e) => Err(StoreError::Backend(
                    format!("delivery not stored: {e}").into(),
                )),
                None => Ok(match firsts.get(&d.alert.0) {
                    Some((device, _)) if *device == d.device => {
                        firsts.remove(&d.alert.0).map(|(_, alert)| alert)
                    }
                    _ => None,
                }),
            };
            let _ = d.reply.send(answer);
        }
    });
    (ok, finish)
}

/// The first delivery of each alert in the group: alert id → (the device whose receipt it was,
/// the alert as it is now).
async fn deliveries_in(
    conn: &mut SqliteConnection,
    group: &[Delivery],
) -> StoreResult<std::collections::HashMap<i64, (DeviceId, AlertSummary)>> {
    // One time for the group: the earliest receipt's (they are at most one batch apart).
    let now_ms = group.iter().map(|d| d.now_ms).min().unwrap_or(0);
    let pairs: Vec<(i64, &str)> = group
        .iter()
        .map(|d| (d.alert.0, d.device.as_str()))
        .collect();
    let json = serde_json::to_string(&pairs).map_err(|e| StoreError::Backend(Box::new(e)))?;
    let moved: Vec<(i64, String)> = sqlx::query_as(
        // Driven from the (small) JSON list into the primary key: a row-value IN over a
        // subquery would scan every recipient ever stored.
        "UPDATE recipients SET state = 'delivered', updated_at_ms = ?1 WHERE rowid IN \
         (SELECT r.rowid FROM json_each(?2) j JOIN recipients r \
          ON r.alert = json_extract(j.value, '$[0]') AND r.kind = 'unit' \
          AND r.who = json_extract(j.value, '$[1]') WHERE r.state = 'notified') \
         RETURNING alert, who",
    )
    .bind(now_ms)
    .bind(&json)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    if moved.is_empty() {
        return Ok(Default::default());
    }
    let moved_json = serde_json::to_string(&moved).map_err(|e| StoreError::Backend(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO alert_events (alert, at_ms, actor, action, detail) \
         SELECT json_extract(value, '$[0]'), ?1, 'device:' || json_extract(value, '$[1]'), \
         'delivered', '' FROM json_each(?2)",
    )
    .bind(now_ms)
    .bind(&moved_json)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    let firsts: Vec<i64> = sqlx::query_scalar(
        "UPDATE alerts SET first_delivered_at_ms = ?1 WHERE first_delivered_at_ms IS NULL \
         AND id IN (SELECT json_extract(value, '$[0]') FROM json_each(?2)) RETURNING id",
    )
    .bind(now_ms)
    .bind(&moved_json)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    let mut out = std::collections::HashMap::new();
    for id in firsts {
        // The first receipt of this alert in queue order gets the news.
        let Some((_, who)) = moved.iter().find(|(a, _)| *a == id) else {
            continue;
        };
        let device = DeviceId::parse(who).map_err(|e| corrupt("device", e))?;
        out.insert(id, (device, alert_in(&mut *conn, id).await?));
    }
    Ok(out)
}

impl SqliteStore {
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database URL {url:?}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(backend)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(backend)?;
        let (jobs, queue) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(run_writer(writer.clone(), queue));
        Ok(Self {
            jobs,
            writer,
            reader,
        })
    }

    /// Queues a write now and returns the future of its result, so that a caller can keep
    /// its order in the queue without waiting for the commit.
    fn enqueue<T, F>(&self, work: F) -> BoxFuture<'static, StoreResult<T>>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = work(conn).await;
                let ok = result.is_ok();
                let finish: Finish = Box::new(move |commit_error| {
                    let _ = reply.send(match commit_error {
                        None => result,
                        Some(e) => Err(StoreError::Backend(format!("commit failed: {e}").into())),
                    });
                });
                (ok, finish)
            })
        });
        self.submit(Work::Job(job), answer)
    }

    /// Puts work on the writer's queue now (keeping the caller's order) and returns the
    /// future of its answer.
    fn submit<T: Send + 'static>(
        &self,
        work: Work,
        answer: oneshot::Receiver<StoreResult<T>>,
    ) -> BoxFuture<'static, StoreResult<T>> {
        let queued = match self.jobs.try_send(work) {
            Ok(()) => None,
            // A full queue: wait for room (order may then interleave with other callers).
            Err(mpsc::error::TrySendError::Full(work)) => Some((self.jobs.clone(), work)),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Box::pin(async { Err(writer_gone()) })
            }
        };
        Box::pin(async move {
            if let Some((jobs, work)) = queued {
                jobs.send(work).await.map_err(|_| writer_gone())?;
            }
            answer.await.map_err(|_| writer_gone())?
        })
    }

    /// Runs `work` in the next group commit and waits for the commit.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + 'static,
    {
        self.enqueue(work).await
    }

    /// A write transaction. IMMEDIATE takes the write lock up front: a deferred one that
    /// reads first and writes later fails at once with SQLITE_BUSY when another process (a
    /// second gateway on the same file) wrote in between, instead of waiting its turn.
    async fn begin(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn add_zone(&self, code: &ZoneCode, name: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO zones (code, name) VALUES (?, ?)")
            .bind(code.as_str())
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(|e| match backend(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("zone {code}")),
                other => other,
            })?;
        Ok(())
    }

    async fn add_cluster(&self, c: &NewCluster) -> StoreResult<()> {
        sqlx::query("INSERT INTO clusters (id, zone, name, leader_household) VALUES (?, ?, ?, ?)")
            .bind(c.id.as_str())
            .bind(c.zone.as_str())
            .bind(&c.name)
            .bind(c.leader_household.as_ref().map(|h| h.as_str().to_owned()))
            .execute(&self.writer)
            .await
            .map_err(|e| match backend(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("cluster {}", c.id)),
                StoreError::NotFound(_) => StoreError::NotFound(format!("zone {}", c.zone)),
                other => other,
            })?;
        Ok(())
    }

    async fn add_household(&self, h: &NewHousehold) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_household(&mut tx, h).await?;
        tx.commit().await.map_err(backend)
    }

    async fn add_device(
        &self,
        device: &DeviceId,
        household: &HouseholdId,
        secret_hash: &str,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_device(&mut tx, device, household, secret_hash).await?;
        tx.commit().await.map_err(backend)
    }

    async fn add_households_with_devices(
        &self,
        rows: &[(NewHousehold, DeviceId, String)],
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        for (h, device, hash) in rows {
            insert_household(&mut tx, h).await?;
            insert_device(&mut tx, device, &h.id, hash).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn set_cluster_leader(
        &self,
        cluster: &ClusterId,
        household: &HouseholdId,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE clusters SET leader_household = ? WHERE id = ? \
             AND EXISTS (SELECT 1 FROM households WHERE id = ? AND cluster = ?)",
        )
        .bind(household.as_str())
        .bind(cluster.as_str())
        .bind(household.as_str())
        .bind(cluster.as_str())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "household {household} in cluster {cluster}"
            )));
        }
        Ok(())
    }

    async fn device_credential(&self, device: &DeviceId) -> StoreResult<Option<DeviceCredential>> {
        let row = sqlx::query(
            "SELECT d.secret_hash, d.enabled, h.cluster FROM devices d \
             JOIN households h ON h.id = d.household WHERE d.id = ?",
        )
        .bind(device.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let cluster: String = row.try_get("cluster").map_err(backend)?;
        Ok(Some(DeviceCredential {
            secret_hash: row.try_get("secret_hash").map_err(backend)?,
            enabled: row.try_get::<i64, _>("enabled").map_err(backend)? != 0,
            cluster: ClusterId::parse(&cluster).map_err(|e| corrupt("cluster", e))?,
        }))
    }

    async fn counts(&self) -> StoreResult<RegistryCounts> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM zones) AS zones, (SELECT COUNT(*) FROM clusters) AS clusters, \
             (SELECT COUNT(*) FROM households) AS households, (SELECT COUNT(*) FROM devices) AS devices, \
             (SELECT COUNT(*) FROM devices WHERE online = 1) AS online",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(backend)?;
        let n = |c: &str| row.try_get::<i64, _>(c).map(|v| v as u64).map_err(backend);
        Ok(RegistryCounts {
            zones: n("zones")?,
            clusters: n("clusters")?,
            households: n("households")?,
            devices: n("devices")?,
            devices_online: n("online")?,
        })
    }

    async fn record_press(
        &self,
        device: &DeviceId,
        press: &Press,
        plan: &RingPlan,
        now_ms: i64,
    ) -> StoreResult<PressOutcome> {
        let (device, press, plan) = (device.clone(), press.clone(), *plan);
        self.write(move |tx| {
            Box::pin(async move {
                let (device, press, plan) = (&device, &press, &plan);
                if let Some(earlier) = earlier_press(&mut *tx, device, press.seq).await? {
                    return Ok(PressOutcome::Duplicate(earlier));
                }
                let id: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO alerts (device, seq, household, cluster, zone, kind, state, raised_at_ms, \
                     device_ts_ms, updated_at_ms, next_ring_at_ms) \
                     SELECT d.id, ?, d.household, h.cluster, c.zone, ?, 'raised', ?, ?, ?, ? \
                     FROM devices d JOIN households h ON h.id = d.household \
                     JOIN clusters c ON c.id = h.cluster WHERE d.id = ? RETURNING id",
                )
                .bind(press.seq as i64)
                .bind(press.kind.as_str())
                .bind(now_ms)
                .bind(press.device_ts_ms)
                .bind(now_ms)
                .bind(now_ms + plan.ring1_after_ms)
                .bind(device.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
                let Some(id) = id else {
                    return Ok(PressOutcome::UnknownDevice);
                };
                insert_press(&mut *tx, device, press, id, now_ms).await?;
                // Ring 0: every unit of the cluster's other households, and the zone's station.
                sqlx::query(
                    "INSERT INTO recipients \
                     (alert, kind, who, label, ring, state, notified_at_ms, updated_at_ms) \
                     SELECT a.id, 'unit', d.id, h.label, 0, 'notified', a.raised_at_ms, a.raised_at_ms \
                     FROM alerts a JOIN households h ON h.cluster = a.cluster AND h.id <> a.household \
                     JOIN devices d ON d.household = h.id WHERE a.id = ? \
                     UNION ALL \
                     SELECT a.id, 'station', a.zone, z.name, 0, 'notified', a.raised_at_ms, a.raised_at_ms \
                     FROM alerts a JOIN zones z ON z.code = a.zone WHERE a.id = ?",
                )
                .bind(id)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                insert_event(
                    &mut *tx,
                    id,
                    &alerts::device_actor(device),
                    "raised",
                    press.kind.as_str(),
                    now_ms,
                )
                .await?;
                let alert = alert_in(&mut *tx, id).await?;
                Ok(PressOutcome::Raised(alert))
            })
        })
        .await
    }

    fn mark_notified_queued(
        &self,
        alert: AlertId,
        now_ms: i64,
    ) -> BoxFuture<'static, StoreResult<AlertSummary>> {
        self.enqueue(move |tx| {
            Box::pin(async move {
                let was_raised = sqlx::query(
                    "UPDATE alerts SET notified_at_ms = ?, updated_at_ms = ?, state = 'notified' \
                     WHERE id = ? AND notified_at_ms IS NULL AND state = 'raised'",
                )
                .bind(now_ms)
                .bind(now_ms)
                .bind(alert.0)
                .execute(&mut *tx)
                .await
                .map_err(backend)?
                .rows_affected()
                    == 1;
                if was_raised {
                    insert_event(&mut *tx, alert.0, "gateway", "notified", "", now_ms).await?;
                } else {
                    // Cancelled (or further along) before the fan-out was recorded: only note the time.
                    sqlx::query(
                        "UPDATE alerts SET notified_at_ms = ? WHERE id = ? AND notified_at_ms IS NULL",
                    )
                    .bind(now_ms)
                    .bind(alert.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                }
                let summary = alert_in(&mut *tx, alert.0).await?;
                Ok(summary)
            })
        })
    }

    async fn cancel_press(
        &self,
        device: &DeviceId,
        press: &Press,
        window_ms: i64,
        now_ms: i64,
    ) -> StoreResult<CancelOutcome> {
        let (device, press) = (device.clone(), press.clone());
        self.write(move |tx| {
            Box::pin(async move {
                let (device, press) = (&device, &press);
                if let Some(earlier) = earlier_press(&mut *tx, device, press.seq).await? {
                    return Ok(CancelOutcome::Duplicate(earlier));
                }
                let open: Option<(i64, i64)> = sqlx::query_as(
                    "SELECT id, raised_at_ms FROM alerts WHERE device = ? \
                     AND state NOT IN ('resolved', 'cancelled') ORDER BY raised_at_ms DESC, id DESC LIMIT 1",
                )
                .bind(device.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
                let Some((id, raised_at_ms)) = open else {
                    let known: Option<i64> = sqlx::query_scalar("SELECT 1 FROM devices WHERE id = ?")
                        .bind(device.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(backend)?;
                    return Ok(if known.is_some() {
                        CancelOutcome::NothingOpen
                    } else {
                        CancelOutcome::UnknownDevice
                    });
                };
                insert_press(&mut *tx, device, press, id, now_ms).await?;
                let actor = alerts::device_actor(device);
                let late = alerts::cancel_too_late(raised_at_ms, now_ms, window_ms);
                if let Some(detail) = &late {
                    insert_event(&mut *tx, id, &actor, "cancel_refused", detail, now_ms).await?;
                } else {
                    sqlx::query(
                        "UPDATE alerts SET state = 'cancelled', updated_at_ms = ?, closed_at_ms = ?, \
                         next_ring_at_ms = NULL WHERE id = ?",
                    )
                    .bind(now_ms)
                    .bind(now_ms)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                    insert_event(&mut *tx, id, &actor, "cancelled", "", now_ms).await?;
                }
                let alert = alert_in(&mut *tx, id).await?;
                Ok(if late.is_some() {
                    CancelOutcome::TooLate(alert)
                } else {
                    CancelOutcome::Cancelled(alert)
                })
            })
        })
        .await
    }

    async fn apply(
        &self,
        alert: AlertId,
        actor: &str,
        action: Action,
        target: Option<(RecipientKind, &str)>,
        detail: &str,
        now_ms: i64,
    ) -> StoreResult<Applied> {
        self.apply_queued(alert, actor, action, target, detail, now_ms)
            .await
    }

    fn apply_queued(
        &self,
        alert: AlertId,
        actor: &str,
        action: Action,
        target: Option<(RecipientKind, &str)>,
        detail: &str,
        now_ms: i64,
    ) -> BoxFuture<'static, StoreResult<Applied>> {
        let (actor, detail) = (actor.to_owned(), detail.to_owned());
        let target = target.map(|(kind, who)| (kind, who.to_owned()));
        self.enqueue(move |tx| {
            Box::pin(async move {
                let (actor, detail) = (actor.as_str(), detail.as_str());
                let target = target.as_ref().map(|(kind, who)| (*kind, who.as_str()));
                let row: Option<(String, i64)> =
                    sqlx::query_as("SELECT state, ring FROM alerts WHERE id = ?")
                        .bind(alert.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(backend)?;
                let Some((state, ring)) = row else {
                    return Err(StoreError::NotFound(format!("alert {alert}")));
                };
                let current = AlertState::parse(&state).map_err(|e| corrupt("state", e))?;
                let next = alert_next(current, action)?;
                let recipient_changed = match (target, alerts::wanted_of(action)) {
                    (Some((kind, who)), Some(wanted)) => {
                        move_recipient(&mut *tx, alert.0, kind, who, wanted, ring, now_ms).await?
                    }
                    _ => false,
                };
                let change = AlertChange::of(
                    current,
                    next,
                    action,
                    target.map(|(_, who)| who),
                    detail,
                    recipient_changed,
                );
                sqlx::query(
                    "UPDATE alerts SET state = ?1, updated_at_ms = ?2, \
                             acknowledged_at_ms = CASE WHEN ?3 AND acknowledged_at_ms IS NULL THEN ?2 ELSE acknowledged_at_ms END, \
                             first_delivered_at_ms = CASE WHEN ?4 AND first_delivered_at_ms IS NULL THEN ?2 ELSE first_delivered_at_ms END, \
                             first_coming_at_ms = CASE WHEN ?5 AND first_coming_at_ms IS NULL THEN ?2 ELSE first_coming_at_ms END, \
                             first_on_scene_at_ms = CASE WHEN ?6 AND first_on_scene_at_ms IS NULL THEN ?2 ELSE first_on_scene_at_ms END, \
                             next_ring_at_ms = CASE WHEN ?7 THEN NULL ELSE next_ring_at_ms END, \
                             category = COALESCE(?8, category), resolution_note = COALESCE(?9, resolution_note), \
                             closed_at_ms = CASE WHEN ?10 THEN ?2 ELSE closed_at_ms END \
                             WHERE id = ?11",
                )
                .bind(change.next.as_str())
                .bind(now_ms)
                .bind(change.acknowledged)
                .bind(change.first_delivered)
                .bind(change.first_coming)
                .bind(change.first_on_scene)
                .bind(change.stop_rings)
                .bind(change.category)
                .bind(change.resolution_note)
                .bind(change.closed)
                .bind(alert.0)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                if let Some((event, event_detail)) = &change.event {
                    insert_event(&mut *tx, alert.0, actor, event, event_detail, now_ms).await?;
                }
                let summary = alert_in(&mut *tx, alert.0).await?;
                let state_changed = change.state_changed;
                Ok(Applied {
                    alert: summary,
                    state_changed,
                    recipient_changed,
                })
            })
        })
    }

    fn record_delivery_queued(
        &self,
        alert: AlertId,
        device: &DeviceId,
        now_ms: i64,
    ) -> BoxFuture<'static, StoreResult<Option<AlertSummary>>> {
        let (reply, answer) = oneshot::channel();
        let delivery = Delivery {
            alert,
            device: device.clone(),
            now_ms,
            reply,
        };
        self.submit(Work::Delivery(delivery), answer)
    }

    async fn recipients(&self, alert: AlertId) -> StoreResult<Vec<Recipient>> {
        let rows = sqlx::query(
            "SELECT kind, who, label, ring, state, distance_m, notified_at_ms, updated_at_ms, \
             push, push_at_ms FROM recipients WHERE alert = ? ORDER BY ring, distance_m, kind, who",
        )
        .bind(alert.0)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(rows::recipient).collect()
    }

    async fn alert_clusters(&self, alert: AlertId) -> StoreResult<Vec<ClusterId>> {
        let clusters: Vec<String> = sqlx::query_scalar(
            "SELECT cluster FROM alerts WHERE id = ?1 UNION ALL \
             SELECT DISTINCT h.cluster FROM recipients r JOIN devices d ON d.id = r.who \
             JOIN households h ON h.id = d.household \
             WHERE r.alert = ?1 AND r.kind = 'unit' AND r.ring > 0",
        )
        .bind(alert.0)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        clusters
            .iter()
            .map(|c| ClusterId::parse(c).map_err(|e| corrupt("cluster", e)))
            .collect()
    }

    async fn next_ring_deadline(&self) -> StoreResult<Option<i64>> {
        sqlx::query_scalar(
            "SELECT MIN(next_ring_at_ms) FROM alerts WHERE next_ring_at_ms IS NOT NULL \
             AND state NOT IN ('resolved', 'cancelled')",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(backend)
    }

    async fn due_rings(&self, now_ms: i64) -> StoreResult<Vec<AlertId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM alerts WHERE next_ring_at_ms IS NOT NULL AND next_ring_at_ms <= ? \
             AND state NOT IN ('resolved', 'cancelled') ORDER BY next_ring_at_ms, id",
        )
        .bind(now_ms)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        Ok(ids.into_iter().map(AlertId).collect())
    }

    async fn fire_ring(
        &self,
        alert: AlertId,
        plan: &RingPlan,
        now_ms: i64,
    ) -> StoreResult<Option<RingFired>> {
        let plan = *plan;
        self.write(move |tx| {
            Box::pin(async move {
                let plan = &plan;
                let current = alert_in(&mut *tx, alert.0).await?;
                let Some((ring, next_ring_at)) = rings::next_ring(&current, plan, now_ms) else {
                    return Ok(None);
                };
                // Compare-and-set on the ring: of two gateways sharing the database, one fires it.
                let won = sqlx::query(
                    "UPDATE alerts SET ring = ?, next_ring_at_ms = ?, critical = ?, updated_at_ms = ? \
                     WHERE id = ? AND ring = ?",
                )
                .bind(ring as i64)
                .bind(next_ring_at)
                .bind((ring >= 2) as i64)
                .bind(now_ms)
                .bind(alert.0)
                .bind(current.ring as i64)
                .execute(&mut *tx)
                .await
                .map_err(backend)?
                .rows_affected()
                    == 1;
                if !won {
                    return Ok(None);
                }
                let mut added = Vec::new();
                let mut clusters = Vec::new();
                if ring == 1 {
                    for r in nearby_units(&mut *tx, &current, plan.radius_m, now_ms).await? {
                        let (recipient, cluster) = r;
                        if insert_recipient(&mut *tx, alert.0, &recipient).await? {
                            if !clusters.contains(&cluster) {
                                clusters.push(cluster);
                            }
                            added.push(recipient);
                        }
                    }
                }
                // Ring 1: on-duty volunteers known to be within the radius; ring 2: all on duty in
                // the zone. Nearest first; someone already notified is not notified again.
                let within = (ring == 1).then_some(plan.radius_m);
                for recipient in on_duty_volunteers(&mut *tx, &current, within, ring, now_ms).await? {
                    if insert_recipient(&mut *tx, alert.0, &recipient).await? {
                        added.push(recipient);
                    }
                }
                let (action, detail) = rings::ring_event(ring, plan, &added, clusters.len());
                insert_event(&mut *tx, alert.0, "gateway", action, &detail, now_ms).await?;
                let summary = alert_in(&mut *tx, alert.0).await?;
                Ok(Some(RingFired {
                    alert: summary,
                    ring,
                    clusters,
                    added,
                }))
            })
        })
        .await
    }

    async fn alerts_owing_fanout(&self) -> StoreResult<Vec<AlertSummary>> {
        let rows = sqlx::query(concat!(
            alert_select!(),
            "WHERE a.notified_at_ms IS NULL AND a.state NOT IN ('resolved', 'cancelled') ORDER BY a.id"
        ))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(rows::alert).collect()
    }

    async fn list_alerts(&self, f: &AlertFilter) -> StoreResult<Vec<AlertSummary>> {
        let rows = sqlx::query(concat!(
            alert_select!(),
            "WHERE (? = 0 OR a.state NOT IN ('resolved', 'cancelled')) \
             AND a.zone IN (SELECT value FROM json_each(?)) \
             ORDER BY a.raised_at_ms DESC, a.id DESC LIMIT ?"
        ))
        .bind(f.open_only as i64)
        .bind(serde_json::to_string(&f.zones).map_err(|e| StoreError::Backend(Box::new(e)))?)
        .bind(f.limit as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(rows::alert).collect()
    }

    async fn open_alerts_of_cluster(&self, cluster: &ClusterId) -> StoreResult<Vec<AlertSummary>> {
        let rows = sqlx::query(concat!(
            alert_select!(),
            "WHERE a.cluster = ? AND a.state NOT IN ('resolved', 'cancelled') \
             ORDER BY a.raised_at_ms, a.id LIMIT 100"
        ))
        .bind(cluster.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(rows::alert).collect()
    }

    async fn alert(&self, id: AlertId) -> StoreResult<Option<AlertSummary>> {
        let row = sqlx::query(concat!(alert_select!(), "WHERE a.id = ?"))
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::alert).transpose()
    }

    async fn alert_detail(&self, id: AlertId) -> StoreResult<Option<AlertDetail>> {
        let Some(alert) = self.alert(id).await? else {
            return Ok(None);
        };
        let (notes, contacts): (String, String) =
            sqlx::query_as("SELECT notes, contacts FROM households WHERE id = ?")
                .bind(alert.household.as_str())
                .fetch_one(&self.reader)
                .await
                .map_err(backend)?;
        let (cluster_name, leader): (String, Option<String>) = sqlx::query_as(
            "SELECT c.name, h.label FROM clusters c \
             LEFT JOIN households h ON h.id = c.leader_household WHERE c.id = ?",
        )
        .bind(alert.cluster.as_str())
        .fetch_one(&self.reader)
        .await
        .map_err(backend)?;
        let recipients = self.recipients(id).await?;
        let timeline = sqlx::query_as::<_, (i64, String, String, String)>(
            "SELECT at_ms, actor, action, detail FROM alert_events WHERE alert = ? ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?
        .into_iter()
        .map(|(at_ms, actor, action, detail)| TimelineEvent {
            at_ms,
            actor,
            action,
            detail,
        })
        .collect();
        Ok(Some(AlertDetail {
            alert,
            notes,
            contacts,
            cluster_name,
            leader,
            recipients,
            timeline,
        }))
    }

    async fn record_presence(
        &self,
        device: &DeviceId,
        session: u64,
        online: bool,
        reason: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<()> {
        let query = if online {
            sqlx::query(
                "UPDATE devices SET online = 1, session = ?, disconnect_reason = ?, last_seen_ms = ? \
                 WHERE id = ?",
            )
        } else {
            // Only the device's latest session may mark it offline: an older one ending late
            // (a reconnect replaced it) must not hide that the device is back.
            sqlx::query(
                "UPDATE devices SET online = 0, session = ?, disconnect_reason = ?, last_seen_ms = ? \
                 WHERE id = ? AND (session IS NULL OR session <= ?)",
            )
        };
        let (device, reason) = (device.clone(), reason.map(str::to_owned));
        self.write(move |tx| {
            Box::pin(async move {
                let query = query
                    .bind(session as i64)
                    .bind(reason)
                    .bind(now_ms)
                    .bind(device.as_str());
                let query = if online {
                    query
                } else {
                    query.bind(session as i64)
                };
                query.execute(&mut *tx).await.map_err(backend)?;
                Ok(())
            })
        })
        .await
    }

    async fn reset_presence(&self, reason: &str, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE devices SET online = 0, session = NULL, disconnect_reason = ?, last_seen_ms = ? \
             WHERE online = 1",
        )
        .bind(reason)
        .bind(now_ms)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// Moves (or adds) one recipient as the action wants; returns whether anything changed.
async fn move_recipient(
    tx: &mut SqliteConnection,
    alert: i64,
    kind: RecipientKind,
    who: &str,
    wanted: RecipientState,
    ring: i64,
    now_ms: i64,
) -> StoreResult<bool> {
    let current: Option<String> = sqlx::query_scalar(
        "SELECT state FROM recipients WHERE alert = ?1 AND kind = ?2 AND who = ?3",
    )
    .bind(alert)
    .bind(kind.as_str())
    .bind(who)
    .fetch_optional(&mut *tx)
    .await
    .map_err(backend)?;
    let current = current
        .map(|s| RecipientState::parse(&s).map_err(|e| corrupt("recipient", e)))
        .transpose()?;
    match alerts::move_recipient(current, kind, who, wanted, ring as u8, now_ms)? {
        RecipientMove::Add(recipient) => {
            insert_recipient(tx, alert, &recipient).await?;
            Ok(true)
        }
        RecipientMove::To(next) => {
            sqlx::query("UPDATE recipients SET state = ?1, updated_at_ms = ?2 WHERE alert = ?3 AND kind = ?4 AND who = ?5")
                .bind(next.as_str())
                .bind(now_ms)
                .bind(alert)
                .bind(kind.as_str())
                .bind(who)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            Ok(true)
        }
        RecipientMove::Stay => Ok(false),
    }
}

/// Units of other clusters' households within `radius_m` of the alert's household, nearest
/// first, with their cluster.
async fn nearby_units(
    tx: &mut SqliteConnection,
    alert: &AlertSummary,
    radius_m: f64,
    now_ms: i64,
) -> StoreResult<Vec<(Recipient, ClusterId)>> {
    // A bounding box in the index, then the exact distance here (SQLite has no trigonometry
    // in every build).
    let (dlat, dlon) = rings::bounding_box(alert, radius_m);
    let rows: Vec<rings::UnitRow> = sqlx::query_as(
        "SELECT d.id, h.cluster, h.label, h.lat, h.lon FROM households h \
         JOIN devices d ON d.household = h.id \
         WHERE h.lat BETWEEN ? AND ? AND h.lon BETWEEN ? AND ? AND h.cluster <> ?",
    )
    .bind(alert.lat - dlat)
    .bind(alert.lat + dlat)
    .bind(alert.lon - dlon)
    .bind(alert.lon + dlon)
    .bind(alert.cluster.as_str())
    .fetch_all(&mut *tx)
    .await
    .map_err(backend)?;
    Ok(rings::nearby_units(alert, rows, radius_m, now_ms))
}

/// On-duty volunteers of the alert's zone as ring recipients, nearest first; with `within`,
/// only those whose fresh position lies inside it.
async fn on_duty_volunteers(
    tx: &mut SqliteConnection,
    alert: &AlertSummary,
    within: Option<f64>,
    ring: u8,
    now_ms: i64,
) -> StoreResult<Vec<Recipient>> {
    let rows: Vec<rings::VolunteerRow> = sqlx::query_as(
        "SELECT a.name, a.display_name, v.lat, v.lon, v.position_at_ms FROM volunteers v \
         JOIN accounts a ON a.id = v.account JOIN account_zones z ON z.account = a.id \
         WHERE v.on_duty = 1 AND a.disabled = 0 AND z.zone = ?",
    )
    .bind(alert.zone.as_str())
    .fetch_all(&mut *tx)
    .await
    .map_err(backend)?;
    Ok(rings::volunteers(alert, rows, within, ring, now_ms))
}

async fn insert_household(tx: &mut SqliteConnection, h: &NewHousehold) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO households (id, cluster, label, address, lat, lon, notes, contacts) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(h.id.as_str())
    .bind(h.cluster.as_str())
    .bind(&h.label)
    .bind(&h.address)
    .bind(h.lat)
    .bind(h.lon)
    .bind(&h.notes)
    .bind(&h.contacts)
    .execute(&mut *tx)
    .await
    .map_err(|e| match backend(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("household {}", h.id)),
        StoreError::NotFound(_) => StoreError::NotFound(format!("cluster {}", h.cluster)),
        other => other,
    })?;
    Ok(())
}

async fn insert_device(
    tx: &mut SqliteConnection,
    device: &DeviceId,
    household: &HouseholdId,
    secret_hash: &str,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO devices (id, household, secret_hash) VALUES (?, ?, ?)")
        .bind(device.as_str())
        .bind(household.as_str())
        .bind(secret_hash)
        .execute(&mut *tx)
        .await
        .map_err(|e| match backend(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("device {device}")),
            StoreError::NotFound(_) => StoreError::NotFound(format!("household {household}")),
            other => other,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PressKind;

    async fn store_with_one_device() -> (tempfile::TempDir, SqliteStore, DeviceId) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&sqlite_url_in(dir.path()))
            .await
            .expect("open");
        let zone = ZoneCode::parse("11010501").unwrap();
        store.add_zone(&zone, "示范社区").await.unwrap();
        let cluster = ClusterId::parse("c1").unwrap();
        store
            .add_cluster(&NewCluster {
                id: cluster.clone(),
                zone,
                name: "一组".into(),
                leader_household: None,
            })
            .await
            .unwrap();
        let household = HouseholdId::parse("h1").unwrap();
        store
            .add_household(&NewHousehold {
                id: household.clone(),
                cluster,
                label: "和平路1号".into(),
                address: "和平路1号".into(),
                lat: 39.9,
                lon: 116.4,
                notes: String::new(),
                contacts: String::new(),
            })
            .await
            .unwrap();
        let device = DeviceId::parse("d1").unwrap();
        store.add_device(&device, &household, "00").await.unwrap();
        (dir, store, device)
    }

    fn press(seq: u64, kind: PressKind) -> Press {
        Press {
            seq,
            kind,
            device_ts_ms: None,
        }
    }

    #[tokio::test]
    async fn a_repeated_press_yields_one_alert() {
        let (_dir, store, device) = store_with_one_device().await;
        let first = store
            .record_press(
                &device,
                &press(5, PressKind::Help),
                &RingPlan::default(),
                1_000,
            )
            .await
            .unwrap();
        let PressOutcome::Raised(alert) = first else {
            panic!("expected a new alert, got {first:?}")
        };
        let again = store
            .record_press(
                &device,
                &press(5, PressKind::Help),
                &RingPlan::default(),
                2_000,
            )
            .await
            .unwrap();
        assert_eq!(again, PressOutcome::Duplicate(alert.clone()));
        let all = store
            .list_alerts(&AlertFilter {
                limit: 10,
                zones: vec![ZoneCode::parse("11010501").unwrap()],
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(
            store.alerts_owing_fanout().await.unwrap(),
            vec![alert.clone()]
        );
        let notified = store.mark_notified(alert.id, 1_010).await.unwrap();
        assert_eq!(notified.state, AlertState::Notified);
        assert!(store.alerts_owing_fanout().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn unknown_device_raises_nothing() {
        let (_dir, store, _) = store_with_one_device().await;
        let ghost = DeviceId::parse("ghost").unwrap();
        let out = store
            .record_press(&ghost, &press(1, PressKind::Help), &RingPlan::default(), 1)
            .await
            .unwrap();
        assert_eq!(out, PressOutcome::UnknownDevice);
    }

    #[tokio::test]
    async fn cancel_inside_the_window_only() {
        let (_dir, store, device) = store_with_one_device().await;
        store
            .record_press(&device, &press(1, PressKind::Help), &RingPlan::default(), 0)
            .await
            .unwrap();
        let late = store
            .cancel_press(&device, &press(2, PressKind::Cancel), 30_000, 31_000)
            .await
            .unwrap();
        assert!(matches!(late, CancelOutcome::TooLate(ref a) if a.state == AlertState::Raised));
        store
            .record_press(
                &device,
                &press(3, PressKind::Medical),
                &RingPlan::default(),
                40_000,
            )
            .await
            .unwrap();
        let ok = store
            .cancel_press(&device, &press(4, PressKind::Cancel), 30_000, 45_000)
            .await
            .unwrap();
        let CancelOutcome::Cancelled(cancelled) = ok else {
            panic!("expected cancelled, got {ok:?}")
        };
        assert_eq!(cancelled.kind, "medical");
        let detail = store.alert_detail(cancelled.id).await.unwrap().unwrap();
        let actions: Vec<_> = detail.timeline.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["raised", "cancelled"]);
        let first = store.alert(AlertId(1)).await.unwrap().unwrap();
        assert_eq!(first.state, AlertState::Raised);
    }

    #[tokio::test]
    async fn delivery_receipts_are_written_together_and_the_first_is_told() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&sqlite_url_in(dir.path()))
            .await
            .expect("open");
        let creds = crate::seed::seed_demo(&store, 1).await.unwrap();
        let id = |i: usize| DeviceId::parse(&creds[i].device).unwrap();
        let PressOutcome::Raised(alert) = store
            .record_press(&id(0), &press(1, PressKind::Help), &RingPlan::default(), 1)
            .await
            .unwrap()
        else {
            panic!("expected a new alert")
        };
        // Nine receipts queued back to back, then a repeat of the first and one from the presser
        // (not a recipient): all land in the same batch.
        let mut queued: Vec<_> = (1..10)
            .map(|i| store.record_delivery_queued(alert.id, &id(i), 5))
            .collect();
        queued.push(store.record_delivery_queued(alert.id, &id(1), 6));
        queued.push(store.record_delivery_queued(alert.id, &id(0), 6));
        let answers = futures::future::join_all(queued).await;
        let told: Vec<usize> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Ok(Some(_))))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            told,
            [0],
            "only the first receipt reports the first delivery"
        );
        assert!(answers.iter().all(|a| a.is_ok()));
        let detail = store.alert_detail(alert.id).await.unwrap().unwrap();
        assert_eq!(detail.alert.first_delivered_at_ms, Some(5));
        let delivered = detail
            .timeline
            .iter()
            .filter(|e| e.action == "delivered")
            .count();
        assert_eq!(
            delivered, 9,
            "one event per unit, none for the repeat or the presser"
        );
        let units = detail
            .recipients
            .iter()
            .filter(|r| r.kind == RecipientKind::Unit && r.state == RecipientState::Delivered)
            .count();
        assert_eq!(units, 9);
    }

    #[tokio::test]
    async fn stale_disconnect_does_not_hide_a_reconnect() {
        let (_dir, store, device) = store_with_one_device().await;
        store
            .record_presence(&device, 1, true, None, 1)
            .await
            .unwrap();
        store
            .record_presence(&device, 2, true, None, 2)
            .await
            .unwrap();
        store
            .record_presence(&device, 1, false, Some("replaced"), 3)
            .await
            .unwrap();
        assert_eq!(store.counts().await.unwrap().devices_online, 1);
        store
            .record_presence(&device, 2, false, Some("clean"), 4)
            .await
            .unwrap();
        assert_eq!(store.counts().await.unwrap().devices_online, 0);
    }
}
