//! The press path's writes on SQLite: a press (a new alert, or one more press on its
//! household's open alert), and a run of delivery receipts and records of fan-outs. Each is a
//! handful of plain SQL statements that all read the same numbered `$n` parameters; what a
//! later statement needs from an earlier one (the new alert's id, the receipts that moved)
//! goes through small temporary tables of the writing connection ([`TEMP_TABLES`]), so that
//! no Rust runs between them. The single writer runs one job at a time, so the tables are
//! never shared.
//!
//! The same statements run two ways:
//! - on the press path's own connection ([`super::press_db`]), one statement at a time, for a
//!   batch of nothing but presses, receipts and records: the usual case;
//! - as one multi-statement query on sqlx's writer connection ([`in_batch`]), inside the
//!   transaction of a batch that also holds other work (an action, heartbeats).
//!
//! PostgreSQL writes the same things a statement at a time (`postgres/press.rs`).

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::types::Value;

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
            // planner otherwise took the unit's index (`recipients_who`, for catch-up), which
            // walked every alert the unit was ever sent (2.4 ms a group after a minute at 200
            // presses/s, and growing). Since migration 0013 that index is partial and this
            // query could not take it; the name stays, so that a later index cannot either.
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

/// A press's ten parameters, `$1` to `$10` of [`PRESS`]: `$1` device, `$2` seq, `$3` kind,
/// `$4` now, `$5` the device's time, `$6` when ring 1 is due, `$7` the timeline's actor, `$8`
/// the boot id ('' none), `$9` the repeat window and `$10` the merge window.
pub(super) fn press_params(job: &PressJob) -> Vec<Value> {
    let (device, press, now_ms) = (&job.device, &job.press, job.now_ms);
    vec![
        Value::Text(device.as_str().to_owned()),
        Value::Integer(press.seq as i64),
        Value::Text(press.kind.as_str().to_owned()),
        Value::Integer(now_ms),
        press.device_ts_ms.map_or(Value::Null, Value::Integer),
        Value::Integer(now_ms + job.plan.ring1_after_ms),
        Value::Text(alerts::device_actor(device)),
        Value::Text(BootId::stored(press.boot.as_ref()).to_owned()),
        Value::Integer(job.rules.repeat_window_ms),
        Value::Integer(job.rules.merge_window_ms),
    ]
}

/// A run of receipts (`(alert, device)` in queue order, at `now_ms`) and fan-out records
/// (`(alert, now)` in queue order), as [`RECEIPTS`] writes them.
pub(super) struct ReceiptRun<'a> {
    pub receipts: &'a [(i64, String)],
    pub noted: &'a [(i64, i64)],
    pub now_ms: i64,
}

impl ReceiptRun<'_> {
    /// The statements of [`RECEIPTS`] this run needs, one at a time: a run of only records
    /// of fan-outs, or of only receipts, skips the other half.
    pub(super) fn statements(&self) -> &'static [&'static str] {
        static SPLIT: LazyLock<(Vec<&'static str>, usize)> = LazyLock::new(|| {
            let all = statements(RECEIPTS);
            let receipts = all
                .iter()
                .position(|s| s.starts_with("DELETE FROM temp.moved"))
                .unwrap_or(all.len());
            (all, receipts)
        });
        let (all, at) = (&SPLIT.0, SPLIT.1);
        match (self.noted.is_empty(), self.receipts.is_empty()) {
            (false, false) => all,
            (false, true) => &all[..at],
            (true, false) => &all[at..],
            (true, true) => &[],
        }
    }

    /// Its three parameters, `$1` to `$3` of [`RECEIPTS`]: the receipts' time, and the two
    /// lists as JSON.
    pub(super) fn params(&self) -> StoreResult<Vec<Value>> {
        let json = |e| StoreError::Backend(Box::new(e));
        Ok(vec![
            Value::Integer(self.now_ms),
            Value::Text(serde_json::to_string(self.receipts).map_err(json)?),
            Value::Text(serde_json::to_string(self.noted).map_err(json)?),
        ])
    }
}

/// What a run of receipts and records wrote: per alert id, the alert as its record left it
/// (`noted`), and the first delivery (the unit whose receipt it was, the alert).
#[derive(Default)]
pub(super) struct Receipted {
    pub noted: HashMap<i64, AlertSummary>,
    pub firsts: HashMap<i64, (DeviceId, AlertSummary)>,
}

/// What the writer runs inside a batch's transaction on sqlx's connection.
pub(super) enum InBatch<'a> {
    Press(&'a PressJob),
    Receipts(ReceiptRun<'a>),
}

/// What one such call wrote: the press's outcome if it was a press, else what its run wrote.
pub(super) struct Written {
    pub press: Option<PressOutcome>,
    pub receipts: Receipted,
}

/// Runs a press or a run of receipts as one query of many statements on sqlx's writer
/// connection, in the transaction the caller opened.
pub(super) async fn in_batch(conn: &mut Conn, call: InBatch<'_>) -> StoreResult<Written> {
    let (sql, params, press) = match call {
        InBatch::Press(job) => (PRESS, press_params(job), true),
        InBatch::Receipts(run) => (RECEIPTS, run.params()?, false),
    };
    let rows = bind_values(sqlx::query(sql), params)
        .fetch_all(&mut *conn)
        .await?;
    let mut written = Written {
        press: press.then_some(PressOutcome::UnknownDevice),
        receipts: Receipted::default(),
    };
    for row in &rows {
        if let Some(outcome) = read_row(row, &mut written.receipts)? {
            written.press = Some(outcome);
        }
    }
    Ok(written)
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// Binds `params` in order, as sqlx's `$1`, `$2`, ….
pub(super) fn bind_values(mut query: Query<'_>, params: Vec<Value>) -> Query<'_> {
    for value in params {
        query = match value {
            Value::Integer(i) => query.bind(i),
            Value::Text(s) => query.bind(s),
            Value::Real(f) => query.bind(f),
            Value::Null => query.bind(None::<i64>),
            Value::Blob(b) => query.bind(b),
        };
    }
    query
}

/// Reads a row of [`PRESS`] (the press's outcome, returned) or of [`RECEIPTS`] (into `into`).
pub(super) fn read_row(
    row: &impl Columns,
    into: &mut Receipted,
) -> StoreResult<Option<PressOutcome>> {
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

/// [`PRESS`] and [`RECEIPTS`], a statement each.
pub(super) fn press_statements() -> &'static [&'static str] {
    static SPLIT: LazyLock<Vec<&'static str>> = LazyLock::new(|| statements(PRESS));
    &SPLIT
}

/// The statements of `sql`, split at each `;` outside a quoted string.
fn statements(sql: &'static str) -> Vec<&'static str> {
    let (mut out, mut start, mut quoted) = (Vec::new(), 0, false);
    for (at, c) in sql.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            ';' if !quoted => {
                out.push(sql[start..at].trim());
                start = at + 1;
            }
            _ => {}
        }
    }
    out.push(sql[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::{press_statements, statements, ReceiptRun};

    #[test]
    fn statements_split_at_semicolons_outside_quotes() {
        assert_eq!(
            statements("DELETE FROM t; INSERT INTO t VALUES ('a;b'); SELECT 1 "),
            vec!["DELETE FROM t", "INSERT INTO t VALUES ('a;b')", "SELECT 1"]
        );
        // The press: two clears, the merge, the alert, its id, the merge's count, the
        // press, ring 0, the timeline, and the answer.
        assert_eq!(press_statements().len(), 10);
        assert!(press_statements()[9].starts_with("SELECT 'press'"));
        let receipts = [(1, "d-1".to_owned())];
        let run = |receipts, noted| ReceiptRun {
            receipts,
            noted,
            now_ms: 0,
        };
        let both = run(&receipts, &[(1, 0)]).statements();
        let records = run(&[], &[(1, 0)]).statements();
        let delivered = run(&receipts, &[]).statements();
        assert!(both.iter().all(|s| !s.contains(';')));
        // The records: a clear, the list, the timeline, the two updates and the answer; the
        // receipts after them, from their clears on.
        assert_eq!(records.len(), 6);
        assert!(records[5].starts_with("SELECT 'notified'"));
        assert!(delivered[0].starts_with("DELETE FROM temp.moved"));
        assert_eq!([records, delivered].concat(), both);
        assert!(run(&[], &[]).statements().is_empty());
    }
}
