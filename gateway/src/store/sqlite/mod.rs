//! The SQLite backend of [`crate::store::Store`]: one file in WAL mode, `synchronous = FULL`
//! so that a committed press survives a power cut, migrations embedded from
//! `migrations/sqlite`.
//!
//! Writes of the alert path go through one writer task with **group commit**: every write is a
//! job on a queue; the task takes all jobs waiting, runs each in its own savepoint inside one
//! transaction, commits once (one fsync for the lot) and only then answers each caller. A press
//! is therefore still durable before it is fanned out, but a thousand presses and their
//! delivery receipts share a handful of fsyncs instead of needing one each. A job that fails
//! rolls back its savepoint alone. Jobs run in queue order, so one device's messages keep
//! their order. The writer task owns its connection, and a second one for the usual batch of
//! presses, receipts and heartbeats (`press_db.rs`: rusqlite on a thread of its own, the whole
//! batch one hand-over); it runs one batch at a time on one or the other, so they never
//! contend. Rare writes (the registry, accounts,
//! supervision's passes) use a single-connection pool of their own, and SQLite's write lock
//! (waited for up to the busy timeout) keeps them apart from the writer's batches; reads use
//! their own pool and never wait on writes.
//!
//! Everything else, the SQL itself, is shared with PostgreSQL in `store/sql/`, built here
//! with SQLite's types and phrases (see the macros below).

use std::collections::{HashSet, VecDeque};
use std::str::FromStr;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, Sqlite, SqliteConnection, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::domain::{AlertId, DeviceId, Press, ZoneCode};
use crate::store::supervision::{FastHeartbeat, RSSI_STEP};
use crate::store::{
    queue, AlertSummary, PressOutcome, PressRules, RingPlan, StoreError, StoreResult, Then,
};

pub use crate::domain::haversine_m;

/// The store the shared SQL implements every trait for, and the sqlx types it is built with.
type Backend = SqliteStore;
type Db = Sqlite;
type Args = <Sqlite as sqlx::Database>::Arguments;
type Conn = SqliteConnection;
type Row = SqliteRow;
/// A list of zones, bound as a JSON array.
type ZoneList = String;

/// The single writer already keeps every other write out: nothing to lock.
macro_rules! lock {
    ($($of:literal)?) => {
        ""
    };
}
macro_rules! skip_locked {
    () => {
        ""
    };
}
/// A zone in the JSON array [`SqliteStore::zone_list`] binds.
macro_rules! in_list {
    ($p:literal) => {
        concat!("IN (SELECT value FROM json_each(", $p, "))")
    };
}
/// Names are `COLLATE NOCASE`: `=` finds them regardless of case, through their index.
macro_rules! name_is {
    ($col:literal, $p:literal) => {
        concat!($col, " = ", $p)
    };
}

// The shared SQL, built again for PostgreSQL in `postgres/mod.rs`: on purpose (see
// `sql/mod.rs` for why a module compiled per backend).
#[allow(clippy::duplicate_mod)]
#[macro_use]
#[path = "../sql/mod.rs"]
mod sql;
mod press;
mod press_db;
#[cfg(test)]
mod tests;

/// A job's outcome, delivered to its caller once the batch's commit is known.
type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A unit of work for the writer task: runs on the batch's connection inside a savepoint and
/// says whether it succeeded (else its savepoint is rolled back).
type Job =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Finish)> + Send>;

/// What the writer task runs: a press, a general job, or one of the many small writes that
/// are written together when they are queued next to each other (receipts, heartbeats).
enum Work {
    /// A press: the one write a person waits for. Alone in a batch, it is one call to the
    /// database from `BEGIN` to `COMMIT` ([`lone_press`]).
    Press(PressJob),
    /// `lingers`: the job may wait up to [`RECEIPT_LINGER`] for company (the record of a
    /// fan-out, an action), sharing the commit of the receipts and heartbeats around it.
    Job {
        job: Job,
        lingers: bool,
    },
    /// A receipt, or the record of a fan-out: a run of them is one call ([`receipts`]).
    Delivery(Delivery),
    Notified(Noted),
    Heartbeat(Beat),
}

impl Work {
    /// Whether the writer may hold a batch of only such work open for more.
    fn lingers(&self) -> bool {
        match self {
            Work::Press(_) => false,
            Work::Job { lingers, .. } => *lingers,
            Work::Delivery(_) | Work::Notified(_) | Work::Heartbeat(_) => true,
        }
    }

    /// A receipt or a fan-out's record: written together with the others of its run.
    fn is_receipt(&self) -> bool {
        matches!(self, Work::Delivery(_) | Work::Notified(_))
    }

    /// Answers a receipt or a record that the writer will never see (it stopped); anything
    /// else is answered by dropping it (its caller's future sees the writer gone).
    fn gone(self) {
        match self {
            Work::Delivery(d) => d.reply.send(Err(writer_gone())),
            Work::Notified(n) => n.reply.send(Err(writer_gone())),
            _ => {}
        }
    }
}

struct PressJob {
    device: DeviceId,
    press: Press,
    plan: RingPlan,
    rules: PressRules,
    now_ms: i64,
    reply: oneshot::Sender<StoreResult<PressOutcome>>,
}

/// A busy-path heartbeat and who waits for whether it applied.
struct Beat {
    heartbeat: FastHeartbeat,
    reply: oneshot::Sender<StoreResult<bool>>,
}

struct Delivery {
    alert: AlertId,
    device: DeviceId,
    now_ms: i64,
    reply: Reply<Option<AlertSummary>>,
}

/// The record of an alert's fan-out.
struct Noted {
    alert: AlertId,
    now_ms: i64,
    reply: Reply<AlertSummary>,
}

/// Who hears a receipt's or a fan-out record's result: a caller's future, or a callback
/// ([`Then`]) run by whoever answers the run, usually the press path's thread.
enum Reply<T> {
    Wait(oneshot::Sender<StoreResult<T>>),
    Then(Then<T>),
}

impl<T> Reply<T> {
    fn send(self, result: StoreResult<T>) {
        match self {
            Reply::Wait(waiting) => {
                let _ = waiting.send(result);
            }
            // A callback that panics must not take the writer's thread with it.
            Reply::Then(then) => {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| then(result))).is_err()
                {
                    tracing::error!("a write's callback panicked");
                }
            }
        }
    }
}

/// How long a connection waits for SQLite's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Jobs queued before callers wait to enqueue.
const WRITE_QUEUE: usize = 65_536;
/// Jobs committed together at most.
const MAX_BATCH: usize = 1024;
/// How long the writer holds a batch of nothing but delivery receipts and heartbeats open for
/// more. The nine receipts of one press arrive within a few milliseconds of each other, and
/// thousands of units beat every interval; one commit (one fsync) for many of them costs a
/// fraction. Any other job ends the wait at once, so a press never waits behind them.
const RECEIPT_LINGER: Duration = Duration::from_millis(5);

pub struct SqliteStore {
    /// The writer task's queue for the press path, taken before anything else: presses, and
    /// the writes about an alert that follow them in call order (its fan-out's record,
    /// receipts, answers and actions).
    presses: mpsc::Sender<Work>,
    /// The writer task's queue for every other write (supervision: presence, heartbeats).
    jobs: mpsc::Sender<Work>,
    /// The single writer connection.
    writer: SqlitePool,
    /// Readers for the API and the edge's logins.
    reader: SqlitePool,
}

fn writer_gone() -> StoreError {
    StoreError::Backend("the database writer stopped".into())
}

/// The writer task: group commit of queued jobs until the store is dropped. The press path has
/// a queue of its own that goes first: when every unit of a neighbourhood comes back at once,
/// thousands of presence and heartbeat writes are queued, and a resident's press must not wait
/// behind them (a press at such a moment waited 30 s before this).
async fn run_writer(
    mut conn: SqliteConnection,
    press_db: press_db::PressDb,
    mut presses: mpsc::Receiver<Work>,
    mut queue: mpsc::Receiver<Work>,
) {
    let mut queued = Queued::default();
    let (mut presses_open, mut queue_open) = (true, true);
    loop {
        if queued.is_empty() {
            let (mut path, mut rest) = (Vec::with_capacity(MAX_BATCH), Vec::new());
            tokio::select! {
                biased;
                n = presses.recv_many(&mut path, MAX_BATCH), if presses_open => presses_open = n > 0,
                n = queue.recv_many(&mut rest, MAX_BATCH), if queue_open => queue_open = n > 0,
                else => return,
            }
            queued.path.extend(path);
            queued.rest.extend(rest);
            linger_for_receipts(&mut presses, &mut queue, &mut queued).await;
            if queued.is_empty() {
                continue;
            }
        } else {
            // Work of the other queue is left from the batch before: what came on the press
            // path since goes first, all of it at once, so that receipts that came one by one
            // are written as one run (taken one at a time, at 500 presses a second they were
            // a call each, and the queue grew without end).
            while queued.path.len() < MAX_BATCH {
                let Ok(work) = presses.try_recv() else { break };
                queued.path.push_back(work);
            }
        }
        // The usual batches go to the press path's own connection, in one transaction; the
        // writer goes on at once, and the thread answers each caller after the commit.
        if let Some(direct) = Direct::take(&mut queued) {
            press_db.write(direct).await;
            continue;
        }
        // Any other batch runs on this connection once the press path's has committed
        // what it was given: the two take turns.
        press_db.idle().await;
        let mut finishes = Vec::with_capacity(queued.len());
        let outcome = run_batch(&mut conn, &mut queued, &presses, &mut finishes).await;
        if let Err(e) = &outcome {
            tracing::error!(error = %e, jobs = finishes.len(), "write batch failed");
        }
        for finish in finishes {
            finish(outcome.as_ref().err());
        }
    }
}

/// What the writer has taken from its two queues and not yet run, each in its queue's order.
#[derive(Default)]
struct Queued {
    /// From the press path's queue: run first, in order.
    path: VecDeque<Work>,
    /// From the other queue.
    rest: VecDeque<Work>,
}

impl Queued {
    fn is_empty(&self) -> bool {
        self.path.is_empty() && self.rest.is_empty()
    }

    fn len(&self) -> usize {
        self.path.len() + self.rest.len()
    }

    fn all_linger(&self) -> bool {
        self.path.iter().chain(&self.rest).all(Work::lingers)
    }
}

/// While `queued` holds only work that may linger (receipts, heartbeats, records of a fan-out),
/// takes what else arrives within [`RECEIPT_LINGER`]; returns as soon as anything else (a
/// press) is in the batch.
async fn linger_for_receipts(
    presses: &mut mpsc::Receiver<Work>,
    queue: &mut mpsc::Receiver<Work>,
    queued: &mut Queued,
) {
    let until = tokio::time::Instant::now() + RECEIPT_LINGER;
    while queued.len() < MAX_BATCH && queued.all_linger() {
        let room = MAX_BATCH - queued.len();
        let (mut path, mut rest) = (Vec::new(), Vec::new());
        let more = tokio::time::timeout_at(until, async {
            tokio::select! {
                biased;
                n = presses.recv_many(&mut path, room) => n,
                n = queue.recv_many(&mut rest, room) => n,
            }
        });
        let got = more.await;
        queued.path.extend(path);
        queued.rest.extend(rest);
        match got {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Runs queued jobs in one transaction on sqlx's writer connection, each in its own savepoint:
/// the press path's first, then the others; until nothing is left, or a press has run and the
/// press path's jobs taken with it have too, or more came on the press path: the batch commits
/// then, and the others wait for the next one.
async fn run_batch(
    conn: &mut SqliteConnection,
    queued: &mut Queued,
    presses: &mpsc::Receiver<Work>,
    finishes: &mut Vec<Finish>,
) -> StoreResult<()> {
    let run = async {
        // The statements between two jobs go to the database in one call (each call is a
        // round trip to sqlx's worker thread).
        sqlx::raw_sql("BEGIN IMMEDIATE; SAVEPOINT job")
            .execute(&mut *conn)
            .await?;
        let mut pressed_here = false;
        loop {
            let (work, from) = match queued.path.pop_front() {
                Some(work) => (work, &mut queued.path),
                None => match queued.rest.pop_front() {
                    Some(work) => (work, &mut queued.rest),
                    None => break,
                },
            };
            // Receipts and heartbeats queued next to each other are written together.
            let (ok, finish) = match work {
                Work::Job { job, .. } => job(&mut *conn).await,
                Work::Press(press) => {
                    pressed_here = true;
                    pressed(&mut *conn, press).await
                }
                first @ (Work::Delivery(_) | Work::Notified(_)) => {
                    let mut run = vec![first];
                    while from.front().is_some_and(Work::is_receipt) {
                        run.extend(from.pop_front());
                    }
                    receipts(&mut *conn, run).await
                }
                Work::Heartbeat(first) => {
                    let mut group = vec![first];
                    while let Some(Work::Heartbeat(_)) = from.front() {
                        if let Some(Work::Heartbeat(next)) = from.pop_front() {
                            group.push(next);
                        }
                    }
                    heartbeats(&mut *conn, group).await
                }
            };
            finishes.push(finish);
            // The other queue's work goes on until a press has run, or the press path has
            // more: then the batch commits, and the press path goes next.
            let more = !queued.path.is_empty()
                || (!pressed_here && presses.is_empty() && !queued.rest.is_empty());
            let between = match (ok, more) {
                (true, true) => "RELEASE job; SAVEPOINT job",
                (false, true) => "ROLLBACK TO job; RELEASE job; SAVEPOINT job",
                (true, false) => "RELEASE job; COMMIT",
                (false, false) => "ROLLBACK TO job; RELEASE job; COMMIT",
            };
            sqlx::raw_sql(between).execute(&mut *conn).await?;
            if !more {
                break;
            }
        }
        Ok::<_, StoreError>(())
    };
    let result = run.await;
    if result.is_err() {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    result
}

/// A batch of nothing but presses, receipts and records of fan-outs, and heartbeats: the
/// usual batch, one press (and the receipts of the one before) at a steady rate, many under
/// load. Written by the press path's own connection ([`press_db`]): the press path's work in
/// queue order, consecutive receipts and records as one run, then the heartbeats as one group;
/// the presses and records in a transaction answered first ([`Direct::split_presses`]).
#[derive(Default)]
struct Direct {
    parts: Vec<DirectPart>,
}

enum DirectPart {
    Press(PressJob),
    Run(Receipts),
    Beats(Vec<Beat>),
}

impl Direct {
    /// Takes the press path's work out of `queued` if it has that shape, with the other
    /// queue's if that is heartbeats alone. Other work of the other queue (a supervision pass,
    /// presence) is left for a batch of its own, next.
    fn take(queued: &mut Queued) -> Option<Self> {
        let path_fits = queued
            .path
            .iter()
            .all(|w| matches!(w, Work::Press(_)) || w.is_receipt());
        let rest_fits = queued.rest.iter().all(|w| matches!(w, Work::Heartbeat(_)));
        if !path_fits || (queued.path.is_empty() && !rest_fits) {
            return None;
        }
        let mut parts = Vec::new();
        let mut run = Vec::new();
        for work in queued.path.drain(..) {
            match work {
                Work::Press(job) => {
                    if !run.is_empty() {
                        parts.push(DirectPart::Run(Receipts::from(std::mem::take(&mut run))));
                    }
                    parts.push(DirectPart::Press(job));
                }
                other => run.push(other),
            }
        }
        if !run.is_empty() {
            parts.push(DirectPart::Run(Receipts::from(run)));
        }
        if rest_fits && !queued.rest.is_empty() {
            let beats = queued
                .rest
                .drain(..)
                .filter_map(|w| match w {
                    Work::Heartbeat(beat) => Some(beat),
                    _ => None,
                })
                .collect();
            parts.push(DirectPart::Beats(beats));
        }
        Some(Self { parts })
    }

    /// Each part's parameters, in order ([`press_db::Part`]).
    fn params(&self) -> StoreResult<Vec<press_db::Part>> {
        self.parts
            .iter()
            .map(|part| {
                Ok(match part {
                    DirectPart::Press(job) => press_db::Part::Press(press::press_params(job)),
                    DirectPart::Run(run) => {
                        let run = run.as_run();
                        press_db::Part::Run(run.statements(), run.params()?)
                    }
                    DirectPart::Beats(group) => {
                        press_db::Part::Beats(FAST_HEARTBEATS, heartbeat_params(group)?)
                    }
                })
            })
            .collect()
    }

    /// Answers every caller that its part was not written, and why.
    fn fail(self, why: &str) {
        for part in self.parts {
            part.fail(why);
        }
    }

    /// What a press may depend on (the presses, and the records of fan-outs: a repeat of a
    /// press must find its fan-out recorded, else it sounds the neighbours again), and the
    /// rest (the units' receipts, heartbeats), each in queue order. A receipt moves a
    /// recipient and a heartbeat its device: nothing a press reads or answers with.
    fn split_presses(self) -> (Self, Self) {
        let (mut first, mut rest) = (Self::default(), Self::default());
        for part in self.parts {
            match part {
                DirectPart::Press(_) => first.parts.push(part),
                DirectPart::Run(run) => {
                    let (records, receipts) = run.split_records();
                    first.parts.extend(records.map(DirectPart::Run));
                    rest.parts.extend(receipts.map(DirectPart::Run));
                }
                DirectPart::Beats(_) => rest.parts.push(part),
            }
        }
        (first, rest)
    }

    fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Answers every caller with what its part wrote, once the batch is committed.
    fn answer(self, wrote: Vec<press_db::Wrote>) {
        for (part, wrote) in self.parts.into_iter().zip(wrote) {
            match (part, wrote) {
                (DirectPart::Press(job), press_db::Wrote::Press(outcome)) => {
                    let _ = job.reply.send(Ok(*outcome));
                }
                (DirectPart::Run(run), press_db::Wrote::Run(receipted)) => {
                    run.answer(Ok(receipted));
                }
                (DirectPart::Beats(group), press_db::Wrote::Beats(applied)) => {
                    answer_beats(group, None, applied);
                }
                (part, _) => part.fail("the batch's answers are out of order"),
            }
        }
    }
}

impl DirectPart {
    fn fail(self, why: &str) {
        match self {
            DirectPart::Press(job) => {
                let _ = job
                    .reply
                    .send(Err(StoreError::Backend(why.to_owned().into())));
            }
            DirectPart::Run(run) => run.answer(Err(why.to_owned())),
            DirectPart::Beats(group) => answer_beats(group, Some(why.to_owned()), HashSet::new()),
        }
    }
}

/// A run of receipts and fan-out records, each with who waits for it.
#[derive(Default)]
struct Receipts {
    delivered: Vec<Delivery>,
    noted: Vec<Noted>,
    pairs: Vec<(i64, String)>,
    records: Vec<(i64, i64)>,
}

impl From<Vec<Work>> for Receipts {
    fn from(run: Vec<Work>) -> Self {
        let (mut delivered, mut noted) = (Vec::new(), Vec::new());
        for work in run {
            match work {
                Work::Delivery(d) => delivered.push(d),
                Work::Notified(n) => noted.push(n),
                // Only receipts and records are gathered into a run.
                Work::Press(_) | Work::Job { .. } | Work::Heartbeat(_) => {}
            }
        }
        Self::new(delivered, noted)
    }
}

impl Receipts {
    fn new(delivered: Vec<Delivery>, noted: Vec<Noted>) -> Self {
        let pairs = delivered
            .iter()
            .map(|d| (d.alert.0, d.device.as_str().to_owned()))
            .collect();
        let records = noted.iter().map(|n| (n.alert.0, n.now_ms)).collect();
        Self {
            delivered,
            noted,
            pairs,
            records,
        }
    }

    /// The records of fan-outs and the receipts, as two runs (none where there is nothing).
    fn split_records(self) -> (Option<Self>, Option<Self>) {
        let records = (!self.noted.is_empty()).then(|| Self::new(Vec::new(), self.noted));
        let receipts = (!self.delivered.is_empty()).then(|| Self::new(self.delivered, Vec::new()));
        (records, receipts)
    }

    /// What a run writes: one time for the receipts, the earliest's (they are
    /// at most one batch apart).
    fn as_run(&self) -> press::ReceiptRun<'_> {
        press::ReceiptRun {
            receipts: &self.pairs,
            noted: &self.records,
            now_ms: self.delivered.iter().map(|d| d.now_ms).min().unwrap_or(0),
        }
    }

    /// Answers each: a receipt with its alert when it was that alert's first delivery (for
    /// the station feed), a record with the alert as it left it.
    fn answer(self, result: Result<press::Receipted, String>) {
        let (
            error,
            press::Receipted {
                noted: mut left,
                mut firsts,
            },
        ) = match result {
            Ok(written) => (None, written),
            Err(e) => (Some(e), press::Receipted::default()),
        };
        let failed = |what: &str, e: &str| StoreError::Backend(format!("{what}: {e}").into());
        for n in self.noted {
            let answer = match (&error, left.remove(&n.alert.0)) {
                (Some(e), _) => Err(failed("fan-out not recorded", e)),
                (None, Some(alert)) => Ok(alert),
                (None, None) => Err(StoreError::NotFound(format!("alert {}", n.alert))),
            };
            n.reply.send(answer);
        }
        for d in self.delivered {
            let answer = match &error {
                Some(e) => Err(failed("delivery not stored", e)),
                None => Ok(match firsts.get(&d.alert.0) {
                    Some((device, _)) if *device == d.device => {
                        firsts.remove(&d.alert.0).map(|(_, alert)| alert)
                    }
                    _ => None,
                }),
            };
            d.reply.send(answer);
        }
    }
}

/// A press in a batch with other work: its statements in the batch's transaction.
async fn pressed(conn: &mut SqliteConnection, job: PressJob) -> (bool, Finish) {
    let result = press::in_batch(conn, press::InBatch::Press(&job))
        .await
        .map(|w| w.press.unwrap_or(PressOutcome::UnknownDevice));
    let ok = result.is_ok();
    let finish: Finish = Box::new(move |commit_error| {
        let _ = job.reply.send(match commit_error {
            None => result,
            Some(e) => Err(StoreError::Backend(format!("commit failed: {e}").into())),
        });
    });
    (ok, finish)
}

/// A run of receipts and fan-out records in a batch with other work: one call, in the
/// batch's transaction.
async fn receipts(conn: &mut SqliteConnection, run: Vec<Work>) -> (bool, Finish) {
    let run = Receipts::from(run);
    let result = press::in_batch(conn, press::InBatch::Receipts(run.as_run()))
        .await
        .map(|w| w.receipts);
    let ok = result.is_ok();
    let finish: Finish = Box::new(move |commit_error| {
        let error = group_error(commit_error, &result);
        run.answer(match error {
            Some(e) => Err(e),
            None => Ok(result.unwrap_or_default()),
        });
    });
    (ok, finish)
}

/// Why a group's writes did not land: the commit's error, else the group's own.
fn group_error<T>(commit_error: Option<&StoreError>, result: &StoreResult<T>) -> Option<String> {
    match (commit_error, result) {
        (Some(e), _) => Some(e.to_string()),
        (None, Err(e)) => Some(e.to_string()),
        (None, Ok(_)) => None,
    }
}

/// Writes consecutive busy-path heartbeats in one statement; each is answered whether it
/// applied (its device online and its health unchanged), else its caller takes the full path.
async fn heartbeats(conn: &mut SqliteConnection, group: Vec<Beat>) -> (bool, Finish) {
    let result = fast_heartbeats_in(conn, &group).await;
    let ok = result.is_ok();
    let finish: Finish = Box::new(move |commit_error| {
        let error = group_error(commit_error, &result);
        answer_beats(group, error, result.unwrap_or_default());
    });
    (ok, finish)
}

/// Answers each beat of a group whether it applied, or why nothing of the group was stored.
fn answer_beats(group: Vec<Beat>, error: Option<String>, applied: HashSet<String>) {
    for beat in group {
        let answer = match &error {
            Some(e) => Err(StoreError::Backend(
                format!("heartbeat not stored: {e}").into(),
            )),
            None => Ok(applied.contains(beat.heartbeat.device.as_str())),
        };
        let _ = beat.reply.send(answer);
    }
}

/// The statement of sql::supervision::fast_heartbeat_in, for every row of a JSON list (`$1`,
/// [`heartbeat_params`]); `$2` is [`RSSI_STEP`]. Returns the devices whose beat applied.
const FAST_HEARTBEATS: &str =
    "UPDATE devices SET last_heartbeat_ms = j.now, last_seen_ms = j.now, \
     evidence_ms = j.now, rssi = j.rssi \
     FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS now, \
           json_extract(value, '$[2]') AS rssi, json_extract(value, '$[3]') AS battery, \
           json_extract(value, '$[4]') AS tamper, json_extract(value, '$[5]') AS fw \
           FROM json_each($1)) AS j \
     WHERE devices.id = j.id AND devices.sup_state = 'online' \
     AND (j.battery IS NULL OR devices.battery IS j.battery) \
     AND devices.tamper IS j.tamper \
     AND (j.fw IS NULL OR devices.firmware IS j.fw) \
     AND (j.rssi IS NULL OR abs(j.rssi - devices.rssi_recorded) < $2) \
     RETURNING devices.id";

/// [`FAST_HEARTBEATS`]'s parameters for a group: a device that beat twice in the group is
/// written once, with its latest beat.
fn heartbeat_params(group: &[Beat]) -> StoreResult<Vec<rusqlite::types::Value>> {
    use rusqlite::types::Value;
    let mut latest: std::collections::HashMap<&str, &FastHeartbeat> = Default::default();
    for beat in group {
        let hb = &beat.heartbeat;
        let entry = latest.entry(hb.device.as_str()).or_insert(hb);
        if hb.now_ms >= entry.now_ms {
            *entry = hb;
        }
    }
    let rows: Vec<serde_json::Value> = latest
        .values()
        .map(|hb| {
            serde_json::json!([
                hb.device.as_str(),
                hb.now_ms,
                hb.rssi,
                hb.battery,
                hb.tamper,
                hb.firmware
            ])
        })
        .collect();
    let json = serde_json::to_string(&rows).map_err(|e| StoreError::Backend(Box::new(e)))?;
    Ok(vec![
        Value::Text(json),
        Value::Integer(i64::from(RSSI_STEP)),
    ])
}

/// The devices whose heartbeat applied ([`FAST_HEARTBEATS`]).
async fn fast_heartbeats_in(
    conn: &mut SqliteConnection,
    group: &[Beat],
) -> StoreResult<HashSet<String>> {
    let query = press::bind_values(sqlx::query(FAST_HEARTBEATS), heartbeat_params(group)?);
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| sqlx::Row::try_get::<String, _>(row, 0).map_err(StoreError::from))
        .collect()
}

impl SqliteStore {
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database URL {url:?}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // The press path's thread checkpoints the WAL after answering its callers
            // ([`press_db`]); SQLite's own checkpoint, at the commit of whichever connection
            // takes the WAL past the threshold, stays here only as a backstop. At its default
            // (1,000 pages) every commit of sqlx's writer (a supervision pass, a presence
            // change) checkpointed the press path's long WAL while presses waited for it.
            .pragma(
                "wal_autocheckpoint",
                (2 * press_db::CHECKPOINT_PAGES).to_string(),
            );
        // sqlx's pool sends a ping to the connection's thread at every acquire (unless told
        // not to) and at every release: two round trips between threads around each use. The
        // busy path's writer therefore owns a connection of its own for its whole life; the
        // pools serve rare writes and reads, without the ping before each acquire.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let mut busy_writer = options
            .clone()
            .pragma("temp_store", "memory")
            .connect()
            .await?;
        sqlx::raw_sql(press::TEMP_TABLES)
            .execute(&mut busy_writer)
            .await?;
        let press_db = press_db::PressDb::open(options.get_filename(), BUSY_TIMEOUT)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await?;
        let (jobs, queue) = mpsc::channel(WRITE_QUEUE);
        let (presses, press_queue) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(run_writer(busy_writer, press_db, press_queue, queue));
        Ok(Self {
            presses,
            jobs,
            writer,
            reader,
        })
    }

    /// Queues `work` now for the next group commit and returns the future of its result
    /// (after the commit), so that a caller can keep its order in the queue without waiting.
    /// However a write asks to commit ([`sql::Commit`]), it comes here: the one writer runs
    /// all of them in call order and commits them in groups.
    fn write<T, F>(&self, commit: sql::Commit, work: F) -> BoxFuture<'static, StoreResult<T>>
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
        // Nobody waits on an alert's in-order writes to see a press through: they may share
        // the receipts' commit.
        let lingers = matches!(commit, sql::Commit::InOrder(_));
        // An alert's in-order writes (its fan-out's record, answers and actions) follow its
        // press on the press path's queue: a repeat of the press must find the fan-out
        // recorded, and a receipt its recipient notified.
        let queue = if lingers { &self.presses } else { &self.jobs };
        queue::in_order(queue, Work::Job { job, lingers }, answer, writer_gone)
    }

    /// A press: queued now, and written by itself in one call when nothing else waits (see
    /// [`lone_press`]).
    fn press(
        &self,
        device: &DeviceId,
        press: &Press,
        plan: &RingPlan,
        rules: &PressRules,
        now_ms: i64,
    ) -> BoxFuture<'static, StoreResult<PressOutcome>> {
        let (reply, answer) = oneshot::channel();
        let job = PressJob {
            device: device.clone(),
            press: press.clone(),
            plan: *plan,
            rules: *rules,
            now_ms,
            reply,
        };
        queue::in_order(&self.presses, Work::Press(job), answer, writer_gone)
    }

    /// A unit's receipt: queued now, and written together with the receipts queued next to
    /// it (see [`deliveries`]).
    fn delivery(
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
            reply: Reply::Wait(reply),
        };
        queue::in_order(&self.presses, Work::Delivery(delivery), answer, writer_gone)
    }

    /// [`Self::delivery`], answered by calling `then` where the run is answered.
    fn delivery_then(
        &self,
        alert: AlertId,
        device: &DeviceId,
        now_ms: i64,
        then: Then<Option<AlertSummary>>,
    ) {
        self.queue_then(Work::Delivery(Delivery {
            alert,
            device: device.clone(),
            now_ms,
            reply: Reply::Then(then),
        }));
    }

    /// [`Self::notified`], answered by calling `then` where the run is answered.
    fn notified_then(&self, alert: AlertId, now_ms: i64, then: Then<AlertSummary>) {
        self.queue_then(Work::Notified(Noted {
            alert,
            now_ms,
            reply: Reply::Then(then),
        }));
    }

    /// Queues a receipt or a record answered by a callback on the press path, now, as
    /// [`queue::in_order`] does; a full queue is waited for by a task (the order may then
    /// interleave), a closed one answers at once.
    fn queue_then(&self, work: Work) {
        match self.presses.try_send(work) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(work)) => {
                let queue = self.presses.clone();
                tokio::spawn(async move {
                    if let Err(mpsc::error::SendError(work)) = queue.send(work).await {
                        work.gone();
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(work)) => work.gone(),
        }
    }

    /// The record of an alert's fan-out: queued now, on the press path after its press, and
    /// written together with the receipts queued next to it (see [`receipts`]).
    fn notified(
        &self,
        alert: AlertId,
        now_ms: i64,
    ) -> BoxFuture<'static, StoreResult<AlertSummary>> {
        let (reply, answer) = oneshot::channel();
        let noted = Noted {
            alert,
            now_ms,
            reply: Reply::Wait(reply),
        };
        queue::in_order(&self.presses, Work::Notified(noted), answer, writer_gone)
    }

    /// A busy-path heartbeat: queued now, and written in one statement with the heartbeats
    /// queued next to it (see [`heartbeats`]).
    fn fast_heartbeat(&self, heartbeat: FastHeartbeat) -> BoxFuture<'static, StoreResult<bool>> {
        let (reply, answer) = oneshot::channel();
        queue::in_order(
            &self.jobs,
            Work::Heartbeat(Beat { heartbeat, reply }),
            answer,
            writer_gone,
        )
    }

    /// A flush of kept heartbeats ([`crate::heartbeats`]): queued at once, in order, so the
    /// writer writes them as one run in one statement ([`heartbeats`]).
    fn fast_heartbeats(
        &self,
        beats: Vec<FastHeartbeat>,
    ) -> BoxFuture<'static, StoreResult<HashSet<String>>> {
        let devices: Vec<String> = beats.iter().map(|b| b.device.as_str().to_owned()).collect();
        let writes: Vec<_> = beats.into_iter().map(|b| self.fast_heartbeat(b)).collect();
        Box::pin(async move {
            let mut applied = std::collections::HashSet::new();
            for (device, done) in devices
                .into_iter()
                .zip(futures::future::join_all(writes).await)
            {
                if done? {
                    applied.insert(device);
                }
            }
            Ok(applied)
        })
    }

    fn reads(&self) -> &SqlitePool {
        &self.reader
    }

    fn writes(&self) -> &SqlitePool {
        &self.writer
    }

    /// A write transaction. IMMEDIATE takes the write lock up front: a deferred one that
    /// reads first and writes later fails at once with SQLITE_BUSY when another process (a
    /// second gateway on the same file) wrote in between, instead of waiting its turn.
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::from)
    }

    /// Reads that see one moment: a read transaction holds one WAL snapshot.
    async fn snapshot(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.reader.begin().await.map_err(StoreError::from)
    }

    /// Zones as `in_list!` binds them.
    fn zone_list(zones: &[ZoneCode]) -> StoreResult<ZoneList> {
        serde_json::to_string(zones).map_err(|e| StoreError::Backend(Box::new(e)))
    }
}
