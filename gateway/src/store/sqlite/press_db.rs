//! The press path's own connection to the SQLite file, on a thread of its own (rusqlite).
//!
//! sqlx runs each SQLite connection on a worker thread and hands every statement's result back
//! to the async side one at a time, through a channel: a press and the receipts around it are
//! some twenty statements, and each hand-over may wake a thread. Here the writer task hands a
//! whole batch (presses, runs of receipts and records, heartbeats, in queue order, each with
//! who waits for it) to this thread and goes on to gather the next; the thread runs each
//! statement of [`super::press`] from SQLite's statement cache, commits, and answers each
//! caller itself: one crossing to the thread a batch, one wake-up per caller.
//!
//! The thread writes the presses in the order they were handed over, and the receipts and
//! heartbeats in theirs, after the presses they came with (see [`serve`]). Before sqlx's writer
//! connection opens a transaction of its own, the writer task waits until the thread has
//! written everything handed to it ([`PressDb::idle`]): the two connections take turns, so
//! SQLite's write lock never makes either wait for the other. Everything else of the store
//! stays on sqlx.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use flume::RecvTimeoutError;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::press::{self, Receipted};
use super::Direct;
use crate::store::rows::Columns;
use crate::store::{corrupt, PressOutcome, StoreError, StoreResult};

/// A part of a batch, with its parameters: a press ([`press::press_params`]), a run of
/// receipts and records (the statements it needs, [`press::ReceiptRun::params`]), or a group
/// of heartbeats (`sql`, one statement that returns the id of each device whose beat
/// applied).
pub(super) enum Part {
    Press(Vec<Value>),
    Run(&'static [&'static str], Vec<Value>),
    Beats(&'static str, Vec<Value>),
}

/// What a part wrote, in the order of the parts.
pub(super) enum Wrote {
    Press(Box<PressOutcome>),
    Run(Receipted),
    Beats(HashSet<String>),
}

/// What the writer hands the thread: a batch to write, or a request to say when everything
/// handed before is written.
enum Call {
    Batch(Direct),
    Idle(oneshot::Sender<()>),
}

/// Batches handed over and not yet taken by the thread: the writer waits for room beyond
/// that, so the press path's queue, not this one, holds what the database has not caught up
/// with.
const HANDED: usize = 4;

/// The handle of the press path's thread; the thread stops, and closes its connection, when
/// the handle is dropped.
pub(super) struct PressDb {
    calls: flume::Sender<Call>,
}

impl PressDb {
    /// Opens the database file (already migrated) as the press path's connection, with the
    /// same settings as sqlx's: WAL, `synchronous = FULL`, foreign keys, `busy` to wait for
    /// SQLite's lock; and a page cache of 32 MiB, so that the random leaves of the units'
    /// and devices' indexes stay in memory under load.
    pub(super) fn open(file: &Path, busy: Duration) -> StoreResult<Self> {
        let conn = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?;
        conn.busy_timeout(busy).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768;",
        )
        .map_err(db)?;
        // In place of SQLite's own checkpoint inside the commit that crosses 1,000 pages
        // (`wal_autocheckpoint`): see `serve`.
        conn.wal_hook(Some(|_, pages| {
            WAL_PAGES.set(pages);
            Ok(())
        }));
        conn.execute_batch(press::TEMP_TABLES).map_err(db)?;
        // Every statement of a press and of a run, and the transaction's.
        conn.set_prepared_statement_cache_capacity(64);
        let (calls, queue) = flume::bounded(HANDED);
        std::thread::Builder::new()
            .name("tenwatch-presses".into())
            .spawn(move || serve(conn, queue))
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self { calls })
    }

    /// Hands `batch` to the thread, which writes it ([`serve`]) and answers each of its callers
    /// after the commit that holds its part. A transaction the database refuses is written
    /// again a part at a time, each in a transaction of its own, before anything else: one
    /// part's failure is not the others', and the queue's order holds.
    pub(super) async fn write(&self, batch: Direct) {
        if let Err(flume::SendError(Call::Batch(batch))) =
            self.calls.send_async(Call::Batch(batch)).await
        {
            batch.fail(&thread_gone().to_string());
        }
    }

    /// Returns once every batch handed over before is written and answered.
    pub(super) async fn idle(&self) {
        let (done, written) = oneshot::channel();
        if self.calls.send_async(Call::Idle(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

fn thread_gone() -> StoreError {
    StoreError::Backend("the press path's database thread stopped".into())
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// At a steady rate, how long the receipts and heartbeats left after a press's commit wait
/// for those of the presses after it, to share one commit with them.
const REST_HOLD: Duration = Duration::from_millis(20);

/// Parts of the rest at which it is written without waiting longer.
const REST_MAX: usize = 1024;

/// The thread: until the handle is dropped, writes what was handed over, every batch waiting
/// in one (group commit: while one commit's fsync runs, the next batches gather).
///
/// A batch's presses go first, with what they may depend on (the records of fan-outs), in a
/// transaction of their own, and are answered at its commit. The rest (the units' receipts,
/// heartbeats: nobody waits on them to see a press through) waits: at a steady rate for up to
/// [`REST_HOLD`], gathering the rest of the presses after it, and is then written in a
/// transaction of its own; under load (a batch already waiting when the thread looks) it rides
/// in the next presses' transaction, one commit a turn. Either way a press no longer carries
/// the receipts of the one before into its commit at a steady rate, and the receipts of
/// several presses share one fsync (measured 2026-12-06 in `docs/bench/press-cost/`).
fn serve(conn: Connection, calls: flume::Receiver<Call>) {
    let write = |batch: Direct| {
        write_batch(&conn, batch);
        checkpoint_if_due(&conn);
    };
    let mut next = None;
    let mut rest = Direct::default();
    // When the oldest part of `rest` came.
    let mut since: Option<Instant> = None;
    loop {
        if since.is_some_and(|t| t.elapsed() >= REST_HOLD || rest.parts.len() >= REST_MAX) {
            write(std::mem::take(&mut rest));
            since = None;
        }
        let busy = next.is_some() || !calls.is_empty();
        let call = match next.take() {
            Some(call) => call,
            None => {
                let got = match since {
                    Some(t) => calls.recv_deadline(t + REST_HOLD),
                    None => calls.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match got {
                    Ok(call) => call,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        match call {
            Call::Idle(done) => {
                // Whoever waits for the thread to be idle waits for the rest too.
                if since.take().is_some() {
                    write(std::mem::take(&mut rest));
                }
                let _ = done.send(());
            }
            Call::Batch(mut batch) => {
                while let Ok(call) = calls.try_recv() {
                    match call {
                        Call::Batch(more) => batch.parts.extend(more.parts),
                        idle @ Call::Idle(_) => {
                            next = Some(idle);
                            break;
                        }
                    }
                }
                let (presses, more) = batch.split_presses();
                if !more.is_empty() {
                    since.get_or_insert_with(Instant::now);
                    rest.parts.extend(more.parts);
                }
                if presses.is_empty() {
                    continue;
                }
                // The presses and records first: a receipt of this batch follows its record.
                let mut first = presses;
                if busy && since.take().is_some() {
                    first.parts.append(&mut rest.parts);
                }
                write(first);
            }
        }
    }
    if since.is_some() {
        write(rest);
    }
}

thread_local! {
    /// Pages in the WAL after this thread's last commit (SQLite's WAL hook tells it).
    static WAL_PAGES: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// WAL pages at which the thread copies them into the database file. SQLite's default
/// checkpoint runs inside the commit that crosses 1,000 pages, before that batch's callers are
/// answered; here it runs after they are, and the next batches gather meanwhile. A longer WAL
/// also means each page rewritten many times (the tails of the tables, the indexes' hot
/// leaves) is copied once per checkpoint rather than once per 1,000 pages. Not much longer:
/// at 10,000 pages (40 MiB) a checkpoint copied up to 14 ms of writes into the file, and while
/// a thousand units came back at once the commits after it waited up to 47 ms for their fsync
/// (the find-max step after the reconnect failed, p99 152 ms, once in four runs; at 2,000
/// pages, 4.6 to 5.1 ms in four; `docs/bench/press-cost/`).
pub(super) const CHECKPOINT_PAGES: i32 = 2_000;

fn checkpoint_if_due(conn: &Connection) {
    if WAL_PAGES.get() < CHECKPOINT_PAGES {
        return;
    }
    WAL_PAGES.set(0);
    // PASSIVE: readers are never made to wait; the WAL starts over from the beginning at the
    // next commit once everything in it is copied.
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "WAL checkpoint failed; the next one copies what this did not");
    }
}

fn write_batch(conn: &Connection, batch: Direct) {
    let written = batch.params().and_then(|parts| {
        let written = write(conn, &parts);
        if written.is_err() && !conn.is_autocommit() {
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "a failed batch of presses not rolled back");
            }
        }
        written
    });
    match written {
        Ok(wrote) => batch.answer(wrote),
        Err(e) if batch.parts.len() > 1 => {
            tracing::warn!(error = %e, parts = batch.parts.len(), "a batch of presses failed: writing each part alone");
            for part in batch.parts {
                write_batch(conn, Direct { parts: vec![part] });
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "write batch failed");
            batch.fail(&e.to_string());
        }
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
            Part::Run(statements, params) => {
                for sql in *statements {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread's own checkpoint: past the threshold, the WAL's pages are copied into the
    /// database file (SQLite's own, inside the commit, is off on this connection).
    #[test]
    fn a_long_wal_is_copied_into_the_file_after_the_commit() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("t.db");
        let conn = Connection::open(&file)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v BLOB);")?;
        conn.wal_hook(Some(|_, pages| {
            WAL_PAGES.set(pages);
            Ok(())
        }));
        for _ in 0..20 {
            conn.execute("INSERT INTO t VALUES (zeroblob(4000))", [])?;
        }
        let in_file = || std::fs::metadata(&file).map(|m| m.len());
        let logged = WAL_PAGES.get();
        assert!(logged >= 20, "the hook counts the WAL's pages: {logged}");
        checkpoint_if_due(&conn);
        assert!(
            in_file()? < 20 * 4000,
            "below the threshold the rows stay in the WAL"
        );
        WAL_PAGES.set(CHECKPOINT_PAGES);
        checkpoint_if_due(&conn);
        assert_eq!(WAL_PAGES.get(), 0);
        assert!(
            in_file()? >= 20 * 4000,
            "the rows are in the file: {}",
            in_file()?
        );
        Ok(())
    }
}
