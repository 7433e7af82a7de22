//! The press path's own connection to the SQLite file, on a thread of its own (rusqlite).
//!
//! sqlx runs each SQLite connection on a worker thread and hands every statement's result back
//! to the async side one at a time, through a channel: a press and the receipts around it are
//! some twenty statements, and each hand-over may wake a thread. Here the writer task hands a
//! whole batch (presses, runs of receipts and records, in queue order) to this thread at once;
//! the thread runs each statement of [`super::press`] from SQLite's statement cache, commits,
//! and answers once: one crossing each way a batch.
//!
//! Only the writer task calls it, one batch at a time, and never while a transaction of sqlx's
//! writer connection is open: the two connections take turns, so SQLite's write lock never
//! makes either wait for the other. Everything else of the store stays on sqlx.

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::press::{self, Receipted};
use crate::store::rows::Columns;
use crate::store::{corrupt, PressOutcome, StoreError, StoreResult};

/// A part of a batch, with its parameters: a press ([`press::press_params`]), a run of
/// receipts and records ([`press::ReceiptRun::params`]), or a group of heartbeats (`sql`,
/// one statement that returns the id of each device whose beat applied).
pub(super) enum Part {
    Press(Vec<Value>),
    Run(Vec<Value>),
    Beats(&'static str, Vec<Value>),
}

/// What a part wrote, in the order of the parts.
pub(super) enum Wrote {
    Press(Box<PressOutcome>),
    Run(Receipted),
    Beats(HashSet<String>),
}

/// A batch and who waits for it.
struct Call {
    parts: Vec<Part>,
    reply: oneshot::Sender<StoreResult<Vec<Wrote>>>,
}

/// The handle of the press path's thread; the thread stops, and closes its connection, when
/// the handle is dropped.
pub(super) struct PressDb {
    calls: mpsc::Sender<Call>,
}

impl PressDb {
    /// Opens the database file (already migrated) as the press path's connection, with the
    /// same settings as sqlx's: WAL, `synchronous = FULL`, foreign keys, `busy` to wait for
    /// SQLite's lock.
    pub(super) fn open(file: &Path, busy: Duration) -> StoreResult<Self> {
        let conn = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?;
        conn.busy_timeout(busy).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
        )
        .map_err(db)?;
        conn.execute_batch(press::TEMP_TABLES).map_err(db)?;
        // Every statement of a press and of a run, and the transaction's.
        conn.set_prepared_statement_cache_capacity(64);
        let (calls, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("tenwatch-presses".into())
            .spawn(move || serve(conn, queue))
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self { calls })
    }

    /// Writes `parts` in one transaction, in order; the answer comes after the commit. On an
    /// error nothing of the batch is left.
    pub(super) async fn write(&self, parts: Vec<Part>) -> StoreResult<Vec<Wrote>> {
        let (reply, answer) = oneshot::channel();
        self.calls
            .send(Call { parts, reply })
            .map_err(|_| thread_gone())?;
        answer.await.map_err(|_| thread_gone())?
    }
}

fn thread_gone() -> StoreError {
    StoreError::Backend("the press path's database thread stopped".into())
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// The thread: one batch at a time until the handle is dropped.
fn serve(conn: Connection, queue: mpsc::Receiver<Call>) {
    while let Ok(Call { parts, reply }) = queue.recv() {
        let written = write(&conn, &parts);
        if written.is_err() && !conn.is_autocommit() {
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "a failed batch of presses not rolled back");
            }
        }
        let _ = reply.send(written);
    }
}

fn write(conn: &Connection, parts: &[Part]) -> StoreResult<Vec<Wrote>> {
    run(conn, "BEGIN IMMEDIATE", &[], |_| Ok(()))?;
    let mut wrote = Vec::with_capacity(parts.len());
    for part in parts {
        let mut receipted = Receipted::default();
        match part {
            Part::Press(params) => {
                let mut outcome = PressOutcome::UnknownDevice;
                for sql in press::press_statements() {
                    run(conn, sql, params, |row| {
                        if let Some(o) = press::read_row(row, &mut receipted)? {
                            outcome = o;
                        }
                        Ok(())
                    })?;
                }
                wrote.push(Wrote::Press(Box::new(outcome)));
            }
            Part::Run(params) => {
                for sql in press::receipt_statements() {
                    run(conn, sql, params, |row| {
                        press::read_row(row, &mut receipted).map(drop)
                    })?;
                }
                wrote.push(Wrote::Run(receipted));
            }
            Part::Beats(sql, params) => {
                let mut applied = HashSet::new();
                run(conn, sql, params, |row| {
                    applied.insert(row.get::<_, String>(0).map_err(db)?);
                    Ok(())
                })?;
                wrote.push(Wrote::Beats(applied));
            }
        }
    }
    run(conn, "COMMIT", &[], |_| Ok(()))?;
    Ok(wrote)
}

/// Runs one statement from the cache with its numbered parameters (`$n` is `params[n - 1]`),
/// handing each row it returns to `row`.
fn run(
    conn: &Connection,
    sql: &str,
    params: &[Value],
    mut row: impl FnMut(&rusqlite::Row<'_>) -> StoreResult<()>,
) -> StoreResult<()> {
    let mut stmt = conn.prepare_cached(sql).map_err(db)?;
    for i in 1..=stmt.parameter_count() {
        let value = stmt
            .parameter_name(i)
            .and_then(|name| name.get(1..)?.parse::<usize>().ok())
            .and_then(|n| params.get(n.checked_sub(1)?))
            .ok_or_else(|| corrupt("statement", format!("parameter {i} of {sql:?} unbound")))?;
        stmt.raw_bind_parameter(i, value).map_err(db)?;
    }
    if stmt.column_count() == 0 {
        stmt.raw_execute().map_err(db)?;
        return Ok(());
    }
    let mut rows = stmt.raw_query();
    while let Some(r) = rows.next().map_err(db)? {
        row(r)?;
    }
    Ok(())
}

/// A row of the press path, read by column name as the shared parsers ask.
impl Columns for rusqlite::Row<'_> {
    fn text(&self, col: &str) -> StoreResult<String> {
        self.get(col).map_err(db)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        self.get(col).map_err(db)
    }
    fn int(&self, col: &str) -> StoreResult<i64> {
        self.get(col).map_err(db)
    }
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
        self.get(col).map_err(db)
    }
    fn real(&self, col: &str) -> StoreResult<f64> {
        self.get(col).map_err(db)
    }
    fn opt_real(&self, col: &str) -> StoreResult<Option<f64>> {
        self.get(col).map_err(db)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        Ok(self.int(col)? != 0)
    }
    fn opt_flag(&self, col: &str) -> StoreResult<Option<bool>> {
        Ok(self.opt_int(col)?.map(|v| v != 0))
    }
}
