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

use super::{Conn, PressJob};
use crate::domain::{AlertId, BootId, DeviceId};
use crate::store::rows::{self, Columns};
use crate::store::{alerts, corrupt, AlertSummary, PressOutcome, StoreError, StoreResult};

/// Created on the writer's connection when it opens (they live as long as it does).
pub(super) const TEMP_TABLES: &str = "\
    CREATE TEMP TABLE IF NOT EXISTS raised (id INTEGER NOT NULL); \
    CREATE TEMP TABLE IF NOT EXISTS merged (id INTEGER NOT NULL); \
    CREATE TEMP TABLE IF NOT EXISTS moved (rid INTEGER PRIMARY KEY, seq INTEGER NOT NULL, \
        alert INTEGER NOT NULL, who TEXT NOT NULL); \
    CREATE TEMP TABLE IF NOT EXISTS firsts (id INTEGER PRIMARY KEY);";

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
/// unit of the cluster's other households, and the zone's station) follows from it. The
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
                 UNION ALL \
                 SELECT a.id, 'station', a.zone, z.name, 0, 'notified', a.raised_at_ms, a.raised_at_ms \
                 FROM alerts a JOIN zones z ON z.code = a.zone WHERE a.id = (SELECT id FROM temp.raised); ",
            "INSERT INTO alert_events (alert, at_ms, actor, action, detail) \
                 SELECT id, $4, $7, 'raised', $3 FROM temp.raised \
                 UNION ALL SELECT id, $4, $7, 'pressed_again', $3 FROM temp.merged; ",
            "SELECT ",
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

/// [`crate::store::Store::record_press`]: in the writer's transaction, or `alone`, committed
/// by itself in the same call ([`LONE_PRESS`]; on an error the caller rolls back whatever part
/// of the transaction is still open).
pub(super) async fn record_press_in(
    conn: &mut Conn,
    job: &PressJob,
    alone: bool,
) -> StoreResult<PressOutcome> {
    let sql = if alone { LONE_PRESS } else { PRESS };
    let (device, press, now_ms) = (&job.device, &job.press, job.now_ms);
    // All rows, so that every statement (the COMMIT too) has run before the answer.
    let row = sqlx::query(sql)
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
        .fetch_all(&mut *conn)
        .await?
        .pop();
    let Some(row) = row else {
        return Ok(PressOutcome::UnknownDevice);
    };
    let alert = rows::alert(&row)?;
    Ok(if row.flag("raised_now")? {
        PressOutcome::Raised(alert)
    } else if row.flag("merged_now")? {
        PressOutcome::Merged(alert)
    } else {
        PressOutcome::Duplicate(alert)
    })
}

/// The fan-out's record: `$1` now, `$2` the alert. A raised alert becomes `notified` with a
/// timeline event; one cancelled (or further along) before the fan-out was recorded only gets
/// the time noted. Returns the alert as it is then.
const NOTIFIED: &str = concat!(
    "UPDATE alerts SET notified_at_ms = $1, updated_at_ms = $1, state = 'notified' \
     WHERE id = $2 AND notified_at_ms IS NULL AND state = 'raised'; ",
    "INSERT INTO alert_events (alert, at_ms, actor, action, detail) \
     SELECT $2, $1, 'gateway', 'notified', '' WHERE changes() = 1; ",
    "UPDATE alerts SET notified_at_ms = $1 WHERE id = $2 AND notified_at_ms IS NULL; ",
    alert_select!(),
    "WHERE a.id = $2"
);

/// [`crate::store::Store::mark_notified`] in the writer's transaction.
pub(super) async fn mark_notified_in(
    conn: &mut Conn,
    alert: AlertId,
    now_ms: i64,
) -> StoreResult<AlertSummary> {
    let row = sqlx::query(NOTIFIED)
        .bind(now_ms)
        .bind(alert.0)
        .fetch_one(&mut *conn)
        .await?;
    rows::alert(&row)
}

/// Receipts: `$1` now, `$2` a JSON list of `[alert, device]` in queue order.
///
/// The units' recipients move to `delivered` (only from `notified`: a late or repeated receipt
/// changes nothing), each with a timeline event, and the alerts' first delivery time is set.
/// Returns each alert whose first delivery this was, with the unit whose receipt came first
/// in the queue (`first_unit`).
const DELIVERED: &str = concat!(
    "DELETE FROM temp.moved; DELETE FROM temp.firsts; ",
    // Driven from the (small) JSON list into the primary key, named: a row-value IN over a
    // subquery would scan every recipient ever stored, and SQLite 3.51's planner otherwise
    // takes the unit's index (`recipients_who`, for catch-up), which walks every alert the
    // unit was ever sent (2.4 ms a group after a minute at 200 presses/s, and growing).
    "INSERT OR IGNORE INTO temp.moved (rid, seq, alert, who) \
     SELECT r.rowid, j.key, r.alert, r.who FROM json_each($2) j \
     JOIN recipients r INDEXED BY sqlite_autoindex_recipients_1 \
     ON r.alert = json_extract(j.value, '$[0]') AND r.kind = 'unit' \
     AND r.who = json_extract(j.value, '$[1]') WHERE r.state = 'notified' ORDER BY j.key; ",
    "UPDATE recipients SET state = 'delivered', updated_at_ms = $1 \
     WHERE rowid IN (SELECT rid FROM temp.moved); ",
    "INSERT INTO alert_events (alert, at_ms, actor, action, detail) \
     SELECT alert, $1, 'device:' || who, 'delivered', '' FROM temp.moved ORDER BY seq; ",
    "INSERT INTO temp.firsts (id) SELECT DISTINCT a.id FROM temp.moved m \
     JOIN alerts a ON a.id = m.alert WHERE a.first_delivered_at_ms IS NULL; ",
    "UPDATE alerts SET first_delivered_at_ms = $1 WHERE id IN (SELECT id FROM temp.firsts); ",
    "SELECT ",
    alert_columns!(),
    ", (SELECT m.who FROM temp.moved m WHERE m.alert = a.id ORDER BY m.seq LIMIT 1) \
     AS first_unit",
    alert_from!(),
    "WHERE a.id IN (SELECT id FROM temp.firsts)"
);

/// Writes a group of receipts (`(alert, device)` in queue order) at `now_ms`: see
/// [`DELIVERED`]. Returns alert id → (the unit whose receipt was the first, the alert).
pub(super) async fn deliveries_in(
    conn: &mut Conn,
    receipts: &[(i64, &str)],
    now_ms: i64,
) -> StoreResult<HashMap<i64, (DeviceId, AlertSummary)>> {
    let json = serde_json::to_string(receipts).map_err(|e| StoreError::Backend(Box::new(e)))?;
    let found = sqlx::query(DELIVERED)
        .bind(now_ms)
        .bind(&json)
        .fetch_all(&mut *conn)
        .await?;
    found
        .iter()
        .map(|row| {
            let alert = rows::alert(row)?;
            let who = row.text("first_unit")?;
            let device = DeviceId::parse(&who).map_err(|e| corrupt("device", e))?;
            Ok((alert.id.0, (device, alert)))
        })
        .collect()
}
