//! The press path's writes on SQLite, each **one call** to the database: a press (a new alert,
//! or one more press on its household's open alert), the record of its fan-out, and a group of
//! delivery receipts.
//!
//! sqlx runs SQLite on a worker thread of its own, and every call to it is a round trip
//! between threads: a press written a statement at a time took a dozen of them, and they were
//! most of what a press cost the server. Here each write is one query string of several
//! statements that sqlx runs in one go, every statement reading the same numbered `$n`
//! arguments. What a later statement needs from an earlier one (the new alert's id, the
//! receipts that moved) goes through small temporary tables of the writer's connection
//! ([`TEMP_TABLES`]), so that the statements stay plain SQL with no branching in Rust between
//! them. The single writer runs one job at a time, so the tables are never shared.
//!
//! PostgreSQL writes the same things a statement at a time (`postgres/press.rs`).

use std::collections::HashMap;
use std::sync::LazyLock;

use super::{Conn, PressJob};
use crate::domain::{BootId, DeviceId};
use crate::store::rows::{self, Columns};
use crate::store::{alerts, corrupt, AlertSummary, PressOutcome, StoreError, StoreResult};

/// Created on the writer's connection when it opens (they live as long as it does).
pub(super) const TEMP_TABLES: &str = "\
    CREATE TEMP TABLE IF NOT EXISTS raised (id INTEGER NOT NULL); \
    CREATE TEMP TABLE IF NOT EXISTS merged (id INTEGER NOT NULL); \
    CREATE TEMP TABLE IF NOT EXISTS moved (rid INTEGER PRIMARY KEY, seq INTEGER NOT NULL, \
        alert INTEGER NOT NULL, who TEXT NOT NULL); \
    CREATE TEMP TABLE IF NOT EXISTS firsts (id INTEGER PRIMARY KEY); \
    CREATE TEMP TABLE IF NOT EXISTS noted (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, \
        at_ms INTEGER NOT NULL);";

/// "This press was stored before" ([`PressRules`]): the same (device, boot, seq), and for a
/// unit that sends no boot id (`$8` = '') only within the repeat window (`$9`).
macro_rules! a_repeat {
    () => {
        "EXISTS (SELECT 1 FROM presses WHERE device = $1 AND boot = $8 AND seq = $2 \
         AND ($8 <> '' OR at_ms >= $4 - $9))"
    };
}

/// A press: `$1` device, `$2` seq, `$3` kind, `$4` now, `$5` the device's time, `$6` when
/// ring 1 is due, `$7` the timeline's actor, `$8` the boot id ('' none), `$9` the repeat
/// window and `$10` the merge window ([`PressRules`]).
///
/// Unless the device is unknown or the press is a repeat ([`a_repeat!`]), `temp.merged`
/// holds the household's open alert of this kind pressed within the merge window, if there
/// is one; that alert counts one press more. Else the alert is inserted, `temp.raised` then
/// holds its id (`changes()` is the count of the statement just before), and ring 0 (every
/// unit of the cluster's other households but their alarm panels, and the zone's station)
/// follows from it. The
/// press (which overwrites the row of a seq whose repeat window is over) and the timeline's
/// event follow from either. The one row returned is the new alert (`raised_now`), the alert
/// joined (`merged_now`), the earlier press's alert (a repeat), or none (an unknown device).
macro_rules! press_sql {
    () => {
        concat!(
            "DELETE FROM temp.raised; DELETE FROM temp.merged; ",
            "INSERT INTO temp.merged (id) SELECT a.id FROM devices d \
                 JOIN alerts a ON a.household = d.household \
                 WHERE d.id = $1 AND $10 > 0 AND a.last_press_at_ms >= $4 - $10 \
                 AND a.kind = $3 AND a.state NOT IN ('resolved', 'cancelled') AND NOT ",
            a_repeat!(),
            " ORDER BY a.last_press_at_ms DESC, a.id DESC LIMIT 1; ",
            "INSERT INTO alerts (device, seq, boot, household, cluster, zone, kind, state, \
                 raised_at_ms, device_ts_ms, updated_at_ms, next_ring_at_ms, last_press_at_ms) \
                 SELECT d.id, $2, $8, d.household, h.cluster, c.zone, $3, 'raised', $4, $5, $4, \
                 $6, $4 FROM devices d JOIN households h ON h.id = d.household \
                 JOIN clusters c ON c.id = h.cluster \
                 WHERE d.id = $1 AND NOT EXISTS (SELECT 1 FROM temp.merged) AND NOT ",
            a_repeat!(),
            "; ",
            "INSERT INTO temp.raised (id) SELECT last_insert_rowid() WHERE changes() = 1; ",
            "UPDATE alerts SET presses = presses + 1, last_press_at_ms = $4, updated_at_ms = $4 \
                 WHERE id IN (SELECT id FROM temp.merged); ",
            "INSERT INTO presses (device, boot, seq, kind, alert, at_ms) \
                 SELECT $1, $8, $2, $3, id, $4 \
                 FROM (SELECT id FROM temp.raised UNION ALL SELECT id FROM temp.merged) WHERE TRUE \
                 ON CONFLICT (device, boot, seq) DO UPDATE \
                 SET kind = excluded.kind, alert = excluded.alert, at_ms = excluded.at_ms; ",
            "INSERT INTO recipients \
                 (alert, kind, who, label, ring, state, notified_at_ms, updated_at_ms) \
                 SELECT a.id, 'unit', d.id, h.label, 0, 'notified', a.raised_at_ms, a.raised_at_ms \
                 FROM alerts a JOIN households h ON h.cluster = a.cluster AND h.id <> a.household \
                 JOIN devices d ON d.household = h.id WHERE a.id = (SELECT id FROM temp.raised) \
                 AND NOT EXISTS (SELECT 1 FROM sia_accounts s WHERE s.device = d.id) \
                 UNION ALL \
                 SELECT a.id, 'station', a.zone, z.name, 0, 'notified', a.raised_at_ms, a.raised_at_ms \
                 FROM alerts a JOIN zones z ON z.code = a.zone WHERE a.id = (SELECT id FROM temp.raised); ",
            "INSERT INTO alert_events (alert, at_ms, actor, action, detail) \
                 SELECT id, $4, $7, 'raised', $3 FROM temp.raised \
                 UNION ALL SELECT id, $4, $7, 'pressed_again', $3 FROM temp.merged; ",
            "SELECT 'press' AS part, ",
            alert_columns!(),
            ", a.id IN (SELECT id FROM temp.raised) AS raised_now, \
             a.id IN (SELECT id FROM temp.merged) AS merged_now",
            alert_from!(),
            "WHERE a.id = coalesce((SELECT id FROM temp.raised), (SELECT id FROM temp.merged), \
                 (SELECT alert FROM presses WHERE device = $1 AND boot = $8 AND seq = $2))"
        )
    };
}
const PRESS: &str = press_sql!();

/// [`PRESS`] in a transaction of its own: `BEGIN` to `COMMIT` in the same call.
const LONE_PRESS: &str = concat!("BEGIN IMMEDIATE; ", press_sql!(), "; COMMIT");

/// The records of fan-outs and the units' receipts, in one call: `$now` (the receipts'),
/// `$receipts` a JSON list of receipts `[alert, device]` in queue order, `$noted` a JSON list
/// of fan-out records `[alert, now]` in queue order (parameters numbered `$1`–`$3` alone,
/// `$11`–`$13` after a press's ten). The records go first, so that an alert's timeline
/// says `notified` before its units' `delivered`.
///
/// A fan-out's record: a raised alert becomes `notified` with a timeline event; one cancelled
/// (or further along) before the fan-out was recorded only gets the time noted. Each such
/// alert is returned as it is then (`part` = 'notified').
///
/// A receipt: the unit's recipient moves to `delivered` (only from `notified`: a late or
/// repeated receipt changes nothing), with a timeline event, and the alert's first delivery
/// time is set. Each alert whose first delivery this was is returned (`part` = 'delivered'),
/// with the unit whose receipt came first in the queue (`first_unit`).
macro_rules! receipts_sql {
    ($now:literal, $receipts:literal, $noted:literal) => {
        concat!(
            "DELETE FROM temp.noted; ",
            // CROSS JOIN keeps the (small) list outside: else SQLite's planner scans every
            // alert ever stored and looks each up in the list.
            "INSERT OR IGNORE INTO temp.noted (id, seq, at_ms) \
             SELECT json_extract(j.value, '$[0]'), j.key, json_extract(j.value, '$[1]') \
             FROM json_each(", $noted, ") j ORDER BY j.key; ",
            "INSERT INTO alert_events (alert, at_ms, actor, action, detail) \
             SELECT a.id, n.at_ms, 'gateway', 'notified', '' FROM temp.noted n \
             CROSS JOIN alerts a ON a.id = n.id \
             WHERE a.notified_at_ms IS NULL AND a.state = 'raised' ORDER BY n.seq; ",
            // `id IN (…)` and a lookup per row: `UPDATE … FROM temp.noted` scans every alert.
            "UPDATE alerts SET state = 'notified', notified_at_ms = \
             (SELECT n.at_ms FROM temp.noted n WHERE n.id = alerts.id), \
             updated_at_ms = (SELECT n.at_ms FROM temp.noted n WHERE n.id = alerts.id) \
             WHERE id IN (SELECT id FROM temp.noted) AND notified_at_ms IS NULL \
             AND state = 'raised'; ",
            "UPDATE alerts SET notified_at_ms = \
             (SELECT n.at_ms FROM temp.noted n WHERE n.id = alerts.id) \
             WHERE id IN (SELECT id FROM temp.noted) AND notified_at_ms IS NULL; ",
            "SELECT 'notified' AS part, NULL AS first_unit, ",
            alert_columns!(),
            alert_from!(),
            "WHERE a.id IN (SELECT id FROM temp.noted); ",
            "DELETE FROM temp.moved; DELETE FROM temp.firsts; ",
            // Driven from the (small) JSON list into the primary key, named: a row-value IN
            // over a subquery would scan every recipient ever stored, and SQLite 3.51's
            // planner otherwise takes the unit's index (`recipients_who`, for catch-up), which
            // walks every alert the unit was ever sent (2.4 ms a group after a minute at 200
            // presses/s, and growing).
            "INSERT OR IGNORE INTO temp.moved (rid, seq, alert, who) \
             SELECT r.rowid, j.key, r.alert, r.who FROM json_each(", $receipts, ") j \
             JOIN recipients r INDEXED BY sqlite_autoindex_recipients_1 \
             ON r.alert = json_extract(j.value, '$[0]') AND r.kind = 'unit' \
             AND r.who = json_extract(j.value, '$[1]') WHERE r.state = 'notified' ORDER BY j.key; ",
            "UPDATE recipients SET state = 'delivered', updated_at_ms = ", $now, " \
             WHERE rowid IN (SELECT rid FROM temp.moved); ",
            "INSERT INTO alert_events (alert, at_ms, actor, action, detail) \
             SELECT alert, ", $now, ", 'device:' || who, 'delivered', '' FROM temp.moved ORDER BY seq; ",
            "INSERT INTO temp.firsts (id) SELECT DISTINCT a.id FROM temp.moved m \
             JOIN alerts a ON a.id = m.alert WHERE a.first_delivered_at_ms IS NULL; ",
            "UPDATE alerts SET first_delivered_at_ms = ", $now, " WHERE id IN (SELECT id FROM temp.firsts); ",
            "SELECT 'delivered' AS part, \
             (SELECT m.who FROM temp.moved m WHERE m.alert = a.id ORDER BY m.seq LIMIT 1) \
             AS first_unit, ",
            alert_columns!(),
            alert_from!(),
            "WHERE a.id IN (SELECT id FROM temp.firsts)"
        )
    };
}
const RECEIPTS: &str = receipts_sql!("$1", "$2", "$3");

/// [`RECEIPTS`] in a transaction of its own: `BEGIN` to `COMMIT` in the same call.
const LONE_RECEIPTS: &str = concat!(
    "BEGIN IMMEDIATE; ",
    receipts_sql!("$1", "$2", "$3"),
    "; COMMIT"
);

/// A run of receipts and records, then a press, committed together in one call.
const RECEIPTS_THEN_PRESS: &str = concat!(
    "BEGIN IMMEDIATE; ",
    receipts_sql!("$11", "$12", "$13"),
    "; ",
    press_sql!(),
    "; COMMIT"
);

/// A press, then a run of receipts and records, committed together in one call.
const PRESS_THEN_RECEIPTS: &str = concat!(
    "BEGIN IMMEDIATE; ",
    press_sql!(),
    "; ",
    receipts_sql!("$11", "$12", "$13"),
    "; COMMIT"
);

/// A run of receipts and records that opens the transaction of a batch of many presses.
const BEGIN_RECEIPTS: &str = concat!("BEGIN IMMEDIATE; ", receipts_sql!("$1", "$2", "$3"));

/// How many presses one call of a batch holds, largest first: a batch of 13 is three calls
/// (8, 4 and 1), with six query strings in all for sqlx's statement cache.
const CHUNKS: [usize; 6] = [32, 16, 8, 4, 2, 1];

/// [`PRESS`] `k` times in one query for each `k` of [`CHUNKS`]: the `i`-th press reads
/// `$(10i + 1)` to `$(10i + 10)`, and its row says `job` = `i`.
static PRESSES: LazyLock<Vec<String>> = LazyLock::new(|| {
    CHUNKS
        .iter()
        .map(|&k| {
            (0..k)
                .map(|i| {
                    renumbered(PRESS, 10 * i).replacen(
                        "SELECT 'press' AS part, ",
                        &format!("SELECT 'press' AS part, {i} AS job, "),
                        1,
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect()
});

/// `sql` with every numbered parameter `$n` made `$(n + by)`.
fn renumbered(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + sql.len() / 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// A run of receipts (`(alert, device)` in queue order, at `now_ms`) and fan-out records
/// (`(alert, now)` in queue order), as [`RECEIPTS`] writes them.
pub(super) struct ReceiptRun<'a> {
    pub receipts: &'a [(i64, String)],
    pub noted: &'a [(i64, i64)],
    pub now_ms: i64,
}

/// What the writer sends to the database in one call.
pub(super) enum OneCall<'a> {
    /// A press, in the batch's transaction or `alone` with its own `BEGIN` and `COMMIT`.
    Press { job: &'a PressJob, alone: bool },
    /// A run of receipts and records, likewise.
    Receipts { run: ReceiptRun<'a>, alone: bool },
    /// A press and a run in queue order (`press_first`), with their `BEGIN` and `COMMIT`:
    /// the batch at a steady rate (a press, and the receipts of the one before).
    Both {
        job: &'a PressJob,
        run: ReceiptRun<'a>,
        press_first: bool,
    },
}

/// What a run of receipts and records wrote: per alert id, the alert as its record left it
/// (`noted`), and the first delivery (the unit whose receipt it was, the alert).
#[derive(Default)]
pub(super) struct Receipted {
    pub noted: HashMap<i64, AlertSummary>,
    pub firsts: HashMap<i64, (DeviceId, AlertSummary)>,
}

/// What one call wrote: the press's outcome if it held a press, and what its run wrote.
pub(super) struct Written {
    pub press: Option<PressOutcome>,
    pub receipts: Receipted,
}

/// Sends `call` to the database as one query of many statements ([`PRESS`], [`RECEIPTS`] and
/// their transactions). On an error the caller rolls back whatever part of the transaction is
/// still open.
pub(super) async fn one_call(conn: &mut Conn, call: OneCall<'_>) -> StoreResult<Written> {
    let (job, run, sql) = match call {
        OneCall::Press { job, alone } => (Some(job), None, if alone { LONE_PRESS } else { PRESS }),
        OneCall::Receipts { run, alone } => (
            None,
            Some(run),
            if alone { LONE_RECEIPTS } else { RECEIPTS },
        ),
        OneCall::Both {
            job,
            run,
            press_first,
        } => (
            Some(job),
            Some(run),
            if press_first {
                PRESS_THEN_RECEIPTS
            } else {
                RECEIPTS_THEN_PRESS
            },
        ),
    };
    let mut query = sqlx::query(sql);
    if let Some(job) = job {
        query = bind_press(query, job);
    }
    if let Some(run) = &run {
        query = bind_run(query, run)?;
    }
    // All rows, so that every statement (the COMMIT too) has run before the answer.
    let rows = query.fetch_all(&mut *conn).await?;
    let mut written = Written {
        press: job.map(|_| PressOutcome::UnknownDevice),
        receipts: Receipted::default(),
    };
    for row in &rows {
        if let Some(outcome) = read_row(row, &mut written.receipts)? {
            written.press = Some(outcome);
        }
    }
    Ok(written)
}

/// Many presses and a run of receipts and records in one transaction, in a few calls: the
/// run first (every receipt and record is about an alert committed before: they are sent
/// once its press is), then the presses in queue order, [`CHUNKS`] of them a call, then the
/// commit. Returns each press's outcome in order, and what the run wrote. On an error the
/// caller rolls back.
pub(super) async fn many(
    conn: &mut Conn,
    jobs: &[PressJob],
    run: Option<ReceiptRun<'_>>,
) -> StoreResult<(Vec<PressOutcome>, Receipted)> {
    let mut receipted = Receipted::default();
    match run {
        Some(run) => {
            let rows = bind_run(sqlx::query(BEGIN_RECEIPTS), &run)?
                .fetch_all(&mut *conn)
                .await?;
            for row in &rows {
                read_row(row, &mut receipted)?;
            }
        }
        None => {
            sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        }
    }
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut rest = jobs;
    while !rest.is_empty() {
        let (size, k) = CHUNKS
            .iter()
            .enumerate()
            .find(|(_, k)| **k <= rest.len())
            .map(|(size, k)| (size, *k))
            .unwrap_or((CHUNKS.len() - 1, 1));
        let (chunk, after) = rest.split_at(k.min(rest.len()));
        let sql: &'static str = PRESSES[size].as_str();
        let mut query = sqlx::query(sql);
        for job in chunk {
            query = bind_press(query, job);
        }
        let rows = query.fetch_all(&mut *conn).await?;
        let mut got = vec![PressOutcome::UnknownDevice; chunk.len()];
        for row in &rows {
            let job = usize::try_from(row.int("job")?).map_err(|e| corrupt("job", e))?;
            match (got.get_mut(job), read_row(row, &mut receipted)?) {
                (Some(slot), Some(outcome)) => *slot = outcome,
                _ => return Err(corrupt("job", format!("no press {job} in this call"))),
            }
        }
        outcomes.extend(got);
        rest = after;
    }
    sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
    Ok((outcomes, receipted))
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// Binds a press's ten parameters ([`PRESS`]).
fn bind_press<'q>(query: Query<'q>, job: &'q PressJob) -> Query<'q> {
    let (device, press, now_ms) = (&job.device, &job.press, job.now_ms);
    query
        .bind(device.as_str())
        .bind(press.seq as i64)
        .bind(press.kind.as_str())
        .bind(now_ms)
        .bind(press.device_ts_ms)
        .bind(now_ms + job.plan.ring1_after_ms)
        .bind(alerts::device_actor(device))
        .bind(BootId::stored(press.boot.as_ref()))
        .bind(job.rules.repeat_window_ms)
        .bind(job.rules.merge_window_ms)
}

/// Binds a run's three parameters ([`RECEIPTS`]).
fn bind_run<'q>(query: Query<'q>, run: &ReceiptRun<'_>) -> StoreResult<Query<'q>> {
    let receipts =
        serde_json::to_string(run.receipts).map_err(|e| StoreError::Backend(Box::new(e)))?;
    let noted = serde_json::to_string(run.noted).map_err(|e| StoreError::Backend(Box::new(e)))?;
    Ok(query.bind(run.now_ms).bind(receipts).bind(noted))
}

/// Reads a row of [`PRESS`] (the press's outcome, returned) or of [`RECEIPTS`] (into `into`).
fn read_row(row: &super::Row, into: &mut Receipted) -> StoreResult<Option<PressOutcome>> {
    let alert = rows::alert(row)?;
    match row.text("part")?.as_str() {
        "press" => {
            return Ok(Some(if row.flag("raised_now")? {
                PressOutcome::Raised(alert)
            } else if row.flag("merged_now")? {
                PressOutcome::Merged(alert)
            } else {
                PressOutcome::Duplicate(alert)
            }))
        }
        "notified" => {
            into.noted.insert(alert.id.0, alert);
        }
        _ => {
            let who = row.text("first_unit")?;
            let device = DeviceId::parse(&who).map_err(|e| corrupt("device", e))?;
            into.firsts.insert(alert.id.0, (device, alert));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::renumbered;

    #[test]
    fn parameters_move_on_and_json_paths_stay() {
        assert_eq!(
            renumbered(
                "WHERE a = $1 AND b = $10 AND json_extract(v, '$[0]') = $2$",
                10
            ),
            "WHERE a = $11 AND b = $20 AND json_extract(v, '$[0]') = $12$"
        );
    }
}
