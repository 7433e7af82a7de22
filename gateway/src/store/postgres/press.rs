//! The press path's two writes on PostgreSQL, a statement at a time inside the caller's
//! transaction: the device's row is locked first, so that two gateways' presses and cancels of
//! one device run one after the other and whether a press repeats an earlier one is decided on
//! committed data; the household's open alert a press joins is locked too. (SQLite runs each
//! as one call instead: `sqlite/press.rs`.)

use super::sql::alerts::{alert_in, earlier_press, insert_event, insert_press, lock_device};
use super::Conn;
use crate::domain::{AlertId, BootId, DeviceId, Press};
use crate::store::{alerts, AlertSummary, PressOutcome, PressRules, RingPlan, StoreResult};

/// [`Store::record_press`] in a transaction.
pub(super) async fn record_press_in(
    tx: &mut Conn,
    device: &DeviceId,
    press: &Press,
    plan: &RingPlan,
    rules: &PressRules,
    now_ms: i64,
) -> StoreResult<PressOutcome> {
    if !lock_device(tx, device).await? {
        return Ok(PressOutcome::UnknownDevice);
    }
    if let Some(earlier) = earlier_press(tx, device, press, rules, now_ms).await? {
        return Ok(PressOutcome::Duplicate(earlier));
    }
    let actor = alerts::device_actor(device);
    if rules.merge_window_ms > 0 {
        // The household's open alert of this kind pressed within the merge window, locked.
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT a.id FROM devices d JOIN alerts a ON a.household = d.household \
             WHERE d.id = $1 AND a.last_press_at_ms >= $2 AND a.kind = $3 \
             AND a.state NOT IN ('resolved', 'cancelled') \
             ORDER BY a.last_press_at_ms DESC, a.id DESC LIMIT 1 FOR UPDATE OF a",
        )
        .bind(device.as_str())
        .bind(now_ms - rules.merge_window_ms)
        .bind(press.kind.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = open {
            sqlx::query(
                "UPDATE alerts SET presses = presses + 1, last_press_at_ms = $1, \
                 updated_at_ms = $1 WHERE id = $2",
            )
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            insert_press(tx, device, press, id, now_ms).await?;
            insert_event(tx, id, &actor, "pressed_again", press.kind.as_str(), now_ms).await?;
            return Ok(PressOutcome::Merged(alert_in(tx, id).await?));
        }
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alerts (device, seq, boot, household, cluster, zone, kind, state, \
         raised_at_ms, device_ts_ms, updated_at_ms, next_ring_at_ms, last_press_at_ms) \
         SELECT d.id, $1, $7, d.household, h.cluster, c.zone, $2, 'raised', $3, $4, $3, $5, $3 \
         FROM devices d JOIN households h ON h.id = d.household \
         JOIN clusters c ON c.id = h.cluster WHERE d.id = $6 RETURNING id",
    )
    .bind(press.seq as i64)
    .bind(press.kind.as_str())
    .bind(now_ms)
    .bind(press.device_ts_ms)
    .bind(now_ms + plan.ring1_after_ms)
    .bind(device.as_str())
    .bind(BootId::stored(press.boot.as_ref()))
    .fetch_one(&mut *tx)
    .await?;
    insert_press(tx, device, press, id, now_ms).await?;
    // Ring 0: every unit of the cluster's other households (not their alarm panels, which
    // cannot sound an alert), and the zone's station.
    sqlx::query(
        "INSERT INTO recipients \
         (alert, kind, who, label, ring, state, notified_at_ms, updated_at_ms) \
         SELECT a.id, 'unit', d.id, h.label, 0, 'notified', a.raised_at_ms, a.raised_at_ms \
         FROM alerts a JOIN households h ON h.cluster = a.cluster AND h.id <> a.household \
         JOIN devices d ON d.household = h.id WHERE a.id = $1 \
         AND NOT EXISTS (SELECT 1 FROM sia_accounts s WHERE s.device = d.id) \
         UNION ALL \
         SELECT a.id, 'station', a.zone, z.name, 0, 'notified', a.raised_at_ms, a.raised_at_ms \
         FROM alerts a JOIN zones z ON z.code = a.zone WHERE a.id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    insert_event(tx, id, &actor, "raised", press.kind.as_str(), now_ms).await?;
    Ok(PressOutcome::Raised(alert_in(tx, id).await?))
}

/// [`Store::mark_notified`] in a transaction.
pub(super) async fn mark_notified_in(
    tx: &mut Conn,
    alert: AlertId,
    now_ms: i64,
) -> StoreResult<AlertSummary> {
    let was_raised = sqlx::query(
        "UPDATE alerts SET notified_at_ms = $1, updated_at_ms = $1, state = 'notified' \
         WHERE id = $2 AND notified_at_ms IS NULL AND state = 'raised'",
    )
    .bind(now_ms)
    .bind(alert.0)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if was_raised {
        insert_event(tx, alert.0, "gateway", "notified", "", now_ms).await?;
    } else {
        // Cancelled (or further along) before the fan-out was recorded: only note the time.
        sqlx::query(
            "UPDATE alerts SET notified_at_ms = $1 WHERE id = $2 AND notified_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(alert.0)
        .execute(&mut *tx)
        .await?;
    }
    alert_in(tx, alert.0).await
}
