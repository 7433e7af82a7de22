//! [`SupervisionStore`] on SQLite: each piece of evidence in one write transaction on the
//! single writer, which serialises the uplink workers, the presence task and the supervisor.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::SqliteStore;
use crate::domain::{ClusterId, DeviceId, Heartbeat, HouseholdId, ZoneCode};
use crate::store::supervision::{
    Changes, ClusterHealth, CoverageReport, DeviceFilter, DeviceHealth, DeviceHealthDetail,
    DeviceReportKind, DeviceRow, DeviceState, HistoryEntry, Notify, PresenceEvidence, Problem,
    ProblemFilter, Report, SupervisionPolicy, SupervisionStore, BATTERY_HYSTERESIS, DUE_BATCH,
    FLAPPING_AT, RSSI_STEP,
};
use crate::store::{corrupt, StoreError, StoreResult};

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn zones_json(zones: &[ZoneCode]) -> StoreResult<String> {
    serde_json::to_string(zones).map_err(|e| StoreError::Backend(Box::new(e)))
}

macro_rules! device_columns {
    () => {
        "SELECT d.id, d.household, h.label, h.cluster, c.zone, d.sup_state, d.sup_reason, \
         d.sup_since_ms, d.battery, d.tamper, d.firmware, d.rssi, d.rssi_recorded, d.online, \
         d.session, d.last_heartbeat_ms, d.last_seen_ms, d.evidence_ms, \
         (SELECT group_concat(p.kind, ',') FROM device_problems p \
          WHERE p.device = d.id AND p.closed_at_ms IS NULL) AS open_problems \
         FROM devices d JOIN households h ON h.id = d.household \
         JOIN clusters c ON c.id = h.cluster "
    };
}

/// `households` and `reachable` of cluster `c`: a household is reachable when one of its
/// devices is online (or late) and not in an offline episode (a flapping unit is not relied on).
macro_rules! coverage_counts {
    () => {
        "(SELECT COUNT(*) FROM households h WHERE h.cluster = c.id) AS households, \
         (SELECT COUNT(*) FROM households h WHERE h.cluster = c.id AND EXISTS ( \
            SELECT 1 FROM devices d WHERE d.household = h.id AND d.sup_state = 'online' \
            AND NOT EXISTS (SELECT 1 FROM device_problems p WHERE p.device = d.id \
                AND p.kind = 'offline' AND p.closed_at_ms IS NULL))) AS reachable"
    };
}

macro_rules! problem_select {
    () => {
        "SELECT p.id, p.kind, p.device, p.reason, p.opened_at_ms, p.updated_at_ms, p.closed_at_ms, \
         p.flaps, p.settle_at_ms, d.household, h.label, h.contacts, h.cluster, c.name AS cluster_name, \
         c.zone, lh.id AS leader_id, lh.label AS leader_label, lh.contacts AS leader_contacts \
         FROM device_problems p JOIN devices d ON d.id = p.device \
         JOIN households h ON h.id = d.household JOIN clusters c ON c.id = h.cluster \
         LEFT JOIN households lh ON lh.id = c.leader_household "
    };
}

fn device_row(row: &SqliteRow) -> StoreResult<DeviceRow> {
    let s = |c: &str| row.try_get::<String, _>(c).map_err(backend);
    let state = s("sup_state")?;
    Ok(DeviceRow {
        device: DeviceId::parse(&s("id")?).map_err(|e| corrupt("device", e))?,
        household: HouseholdId::parse(&s("household")?).map_err(|e| corrupt("household", e))?,
        label: s("label")?,
        cluster: ClusterId::parse(&s("cluster")?).map_err(|e| corrupt("cluster", e))?,
        zone: ZoneCode::parse(&s("zone")?).map_err(|e| corrupt("zone", e))?,
        state: DeviceState::parse(&state).ok_or_else(|| corrupt("device state", &state))?,
        reason: row.try_get("sup_reason").map_err(backend)?,
        battery: row
            .try_get::<Option<i64>, _>("battery")
            .map_err(backend)?
            .and_then(|b| u8::try_from(b).ok()),
        tamper: row
            .try_get::<Option<i64>, _>("tamper")
            .map_err(backend)?
            .map(|t| t != 0),
        firmware: row.try_get("firmware").map_err(backend)?,
        rssi_recorded: row
            .try_get::<Option<i64>, _>("rssi_recorded")
            .map_err(backend)?
            .and_then(|r| i16::try_from(r).ok()),
        online: row.try_get::<i64, _>("online").map_err(backend)? != 0,
        session: row.try_get("session").map_err(backend)?,
    })
}

fn health_from_row(
    row: &SqliteRow,
    policy: &SupervisionPolicy,
    now_ms: i64,
) -> StoreResult<DeviceHealth> {
    let d = device_row(row)?;
    let evidence: Option<i64> = row.try_get("evidence_ms").map_err(backend)?;
    let (state, due, offline_at) = match (d.state, evidence) {
        (DeviceState::Online, Some(at)) => {
            let due = at + policy.heartbeat_interval_ms;
            let state = if now_ms >= due {
                DeviceState::Late
            } else {
                DeviceState::Online
            };
            (state, Some(due), Some(due + policy.grace_ms))
        }
        (state, _) => (state, None, None),
    };
    let problems: Option<String> = row.try_get("open_problems").map_err(backend)?;
    let problems: Vec<String> = problems
        .map(|p| p.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    Ok(DeviceHealth {
        battery_low: problems.iter().any(|p| p == "low_battery"),
        device: d.device,
        household: d.household,
        label: d.label,
        cluster: d.cluster,
        zone: d.zone,
        state,
        reason: d.reason,
        since_ms: row.try_get("sup_since_ms").map_err(backend)?,
        connected: d.online,
        last_heartbeat_ms: row.try_get("last_heartbeat_ms").map_err(backend)?,
        last_seen_ms: row.try_get("last_seen_ms").map_err(backend)?,
        heartbeat_due_ms: due,
        offline_at_ms: offline_at,
        battery: d.battery,
        tamper: d.tamper.unwrap_or(false),
        rssi: row
            .try_get::<Option<i64>, _>("rssi")
            .map_err(backend)?
            .and_then(|r| i16::try_from(r).ok()),
        firmware: d.firmware,
        problems,
    })
}

async fn load_device(
    tx: &mut Transaction<'_, Sqlite>,
    device: &DeviceId,
) -> StoreResult<Option<DeviceRow>> {
    let row = sqlx::query(concat!(device_columns!(), "WHERE d.id = ?"))
        .bind(device.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    row.as_ref().map(device_row).transpose()
}

async fn add_event(
    tx: &mut Transaction<'_, Sqlite>,
    device: &DeviceId,
    kind: &str,
    value: &str,
    detail: &str,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO device_events (device, at_ms, kind, value, detail) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(device.as_str())
    .bind(now_ms)
    .bind(kind)
    .bind(value)
    .bind(detail)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// The open problem of this kind: (id, flaps).
async fn open_problem(
    tx: &mut Transaction<'_, Sqlite>,
    device: &DeviceId,
    kind: &str,
) -> StoreResult<Option<(i64, i64)>> {
    sqlx::query_as(
        "SELECT id, flaps FROM device_problems \
         WHERE device = ? AND kind = ? AND closed_at_ms IS NULL",
    )
    .bind(device.as_str())
    .bind(kind)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)
}

async fn open_new_problem(
    tx: &mut Transaction<'_, Sqlite>,
    device: &DeviceId,
    kind: &str,
    reason: &str,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO device_problems (device, kind, reason, opened_at_ms, updated_at_ms) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(device.as_str())
    .bind(kind)
    .bind(reason)
    .bind(now_ms)
    .bind(now_ms)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn close_problem(tx: &mut Transaction<'_, Sqlite>, id: i64, now_ms: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE device_problems SET closed_at_ms = ?, updated_at_ms = ?, settle_at_ms = NULL \
         WHERE id = ?",
    )
    .bind(now_ms)
    .bind(now_ms)
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Moves a device online (`why`: what showed it alive). An open offline episode is not
/// closed yet: it settles once the device has stayed online for the settle time.
async fn go_online(
    tx: &mut Transaction<'_, Sqlite>,
    row: &mut DeviceRow,
    why: &str,
    policy: &SupervisionPolicy,
    now_ms: i64,
    changes: &mut Changes,
) -> StoreResult<()> {
    if row.state == DeviceState::Online {
        sqlx::query("UPDATE devices SET evidence_ms = ? WHERE id = ?")
            .bind(now_ms)
            .bind(row.device.as_str())
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        return Ok(());
    }
    sqlx::query(
        "UPDATE devices SET sup_state = 'online', sup_reason = NULL, sup_since_ms = ?, \
         evidence_ms = ? WHERE id = ?",
    )
    .bind(now_ms)
    .bind(now_ms)
    .bind(row.device.as_str())
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    add_event(tx, &row.device, "online", "online", why, now_ms).await?;
    if let Some((id, _)) = open_problem(tx, &row.device, "offline").await? {
        sqlx::query("UPDATE device_problems SET settle_at_ms = ?, updated_at_ms = ? WHERE id = ?")
            .bind(now_ms + policy.settle_ms)
            .bind(now_ms)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    row.state = DeviceState::Online;
    row.reason = None;
    changes.clusters.insert(row.cluster.clone());
    Ok(())
}

/// Moves a device offline for `reason`. The first offline of an episode opens the problem
/// and is reported; later ones (flapping) only count.
async fn go_offline(
    tx: &mut Transaction<'_, Sqlite>,
    row: &mut DeviceRow,
    reason: &str,
    now_ms: i64,
    changes: &mut Changes,
) -> StoreResult<()> {
    if row.state == DeviceState::Offline {
        if row.reason.as_deref() != Some(reason) {
            // Still offline, for a new reason (a refused login after a lost connection):
            // history and the open problem say so; the station was told already.
            sqlx::query("UPDATE devices SET sup_reason = ? WHERE id = ?")
                .bind(reason)
                .bind(row.device.as_str())
                .execute(&mut **tx)
                .await
                .map_err(backend)?;
            add_event(tx, &row.device, "offline", "offline", reason, now_ms).await?;
            sqlx::query(
                "UPDATE device_problems SET reason = ?, updated_at_ms = ? \
                 WHERE device = ? AND kind = 'offline' AND closed_at_ms IS NULL",
            )
            .bind(reason)
            .bind(now_ms)
            .bind(row.device.as_str())
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
            row.reason = Some(reason.to_owned());
        }
        return Ok(());
    }
    sqlx::query(
        "UPDATE devices SET sup_state = 'offline', sup_reason = ?, sup_since_ms = ? WHERE id = ?",
    )
    .bind(reason)
    .bind(now_ms)
    .bind(row.device.as_str())
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    add_event(tx, &row.device, "offline", "offline", reason, now_ms).await?;
    row.state = DeviceState::Offline;
    row.reason = Some(reason.to_owned());
    match open_problem(tx, &row.device, "offline").await? {
        Some((id, _)) => {
            sqlx::query(
                "UPDATE device_problems SET flaps = flaps + 1, settle_at_ms = NULL, reason = ?, \
                 updated_at_ms = ? WHERE id = ?",
            )
            .bind(reason)
            .bind(now_ms)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        }
        None => {
            open_new_problem(tx, &row.device, "offline", reason, now_ms).await?;
            changes.report(row, DeviceReportKind::Offline, now_ms);
        }
    }
    changes.clusters.insert(row.cluster.clone());
    Ok(())
}

/// Recomputes the coverage of the clusters touched; reports the ones that crossed the
/// threshold, and keeps every change of the count as history.
async fn refresh_coverage(
    tx: &mut Transaction<'_, Sqlite>,
    policy: &SupervisionPolicy,
    now_ms: i64,
    changes: &mut Changes,
) -> StoreResult<()> {
    let clusters = std::mem::take(&mut changes.clusters);
    for cluster in clusters {
        let row = sqlx::query(concat!(
            "SELECT c.zone, c.name, cc.reachable AS prev_reachable, cc.below AS prev_below, ",
            coverage_counts!(),
            " FROM clusters c LEFT JOIN cluster_coverage cc ON cc.cluster = c.id WHERE c.id = ?"
        ))
        .bind(cluster.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
        let Some(row) = row else { continue };
        let households = row.try_get::<i64, _>("households").map_err(backend)? as u32;
        let reachable = row.try_get::<i64, _>("reachable").map_err(backend)? as u32;
        let prev: Option<i64> = row.try_get("prev_reachable").map_err(backend)?;
        let prev_below: Option<i64> = row.try_get("prev_below").map_err(backend)?;
        let below = policy.below(reachable, households);
        if prev == Some(i64::from(reachable)) && prev_below == Some(below as i64) {
            continue;
        }
        sqlx::query(
            "INSERT INTO cluster_coverage (cluster, reachable, households, below, updated_at_ms) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (cluster) DO UPDATE SET \
             reachable = excluded.reachable, households = excluded.households, \
             below = excluded.below, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(cluster.as_str())
        .bind(i64::from(reachable))
        .bind(i64::from(households))
        .bind(below as i64)
        .bind(now_ms)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "INSERT INTO coverage_events (cluster, at_ms, reachable, households, below) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(cluster.as_str())
        .bind(now_ms)
        .bind(i64::from(reachable))
        .bind(i64::from(households))
        .bind(below as i64)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
        // A cluster seen for the first time is reported only if it starts below.
        let flipped = match prev_below {
            Some(was) => (was != 0) != below,
            None => below,
        };
        if flipped {
            let zone: String = row.try_get("zone").map_err(backend)?;
            changes.reports.push(Report::Coverage(CoverageReport {
                zone: ZoneCode::parse(&zone).map_err(|e| corrupt("zone", e))?,
                name: row.try_get("name").map_err(backend)?,
                cluster,
                reachable,
                households,
                below,
                at_ms: now_ms,
            }));
        }
    }
    Ok(())
}

impl SqliteStore {
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }
}

/// Applies the health part of a heartbeat; opens and closes battery and tamper problems.
async fn apply_health(
    tx: &mut Transaction<'_, Sqlite>,
    row: &mut DeviceRow,
    hb: &Heartbeat,
    policy: &SupervisionPolicy,
    now_ms: i64,
    changes: &mut Changes,
) -> StoreResult<Option<i16>> {
    if let Some(level) = hb.battery {
        if row.battery != Some(level) {
            let before = row.battery.map(|b| b.to_string()).unwrap_or_default();
            add_event(
                tx,
                &row.device,
                "battery",
                &level.to_string(),
                &before,
                now_ms,
            )
            .await?;
            row.battery = Some(level);
        }
        let open = open_problem(tx, &row.device, "low_battery").await?;
        if level < policy.battery_low && open.is_none() {
            open_new_problem(tx, &row.device, "low_battery", &format!("{level}%"), now_ms).await?;
            changes.report(row, DeviceReportKind::LowBattery, now_ms);
        } else if let Some((id, _)) = open {
            if level >= policy.battery_low.saturating_add(BATTERY_HYSTERESIS) {
                close_problem(tx, id, now_ms).await?;
                changes.report(row, DeviceReportKind::BatteryOk, now_ms);
            }
        }
    }
    if row.tamper != Some(hb.tamper) {
        // The first heartbeat's "not tampered" is no news; every other change is.
        if hb.tamper || row.tamper.is_some() {
            let value = if hb.tamper { "on" } else { "off" };
            add_event(tx, &row.device, "tamper", value, "", now_ms).await?;
        }
        let open = open_problem(tx, &row.device, "tamper").await?;
        match (hb.tamper, open) {
            (true, None) => {
                open_new_problem(tx, &row.device, "tamper", "tamper switch", now_ms).await?;
                changes.report(row, DeviceReportKind::Tamper, now_ms);
            }
            (false, Some((id, _))) => {
                close_problem(tx, id, now_ms).await?;
                changes.report(row, DeviceReportKind::TamperCleared, now_ms);
            }
            _ => {}
        }
        row.tamper = Some(hb.tamper);
    }
    if let Some(fw) = &hb.firmware {
        if row.firmware.as_deref() != Some(fw.as_str()) {
            let before = row.firmware.clone().unwrap_or_default();
            add_event(tx, &row.device, "firmware", fw, &before, now_ms).await?;
        }
    }
    let mut rssi_recorded = row.rssi_recorded;
    if let Some(rssi) = hb.rssi {
        let moved = rssi_recorded
            .is_none_or(|r| (i32::from(rssi) - i32::from(r)).abs() >= i32::from(RSSI_STEP));
        if moved {
            let before = rssi_recorded.map(|r| r.to_string()).unwrap_or_default();
            add_event(tx, &row.device, "rssi", &rssi.to_string(), &before, now_ms).await?;
            rssi_recorded = Some(rssi);
        }
    }
    Ok(rssi_recorded)
}

#[async_trait]
impl SupervisionStore for SqliteStore {
    async fn supervise_heartbeat(
        &self,
        device: &DeviceId,
        hb: &Heartbeat,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<Vec<Report>> {
        // The common case, an online device whose health did not move, is one statement: no
        // transaction, no read. Anything else takes the full path below.
        let battery = hb.battery.map(i64::from);
        let rssi = hb.rssi.map(i64::from);
        // Thousands of devices beat every interval: the common case rides the group commit.
        let (id, firmware) = (device.clone(), hb.firmware.clone());
        let tamper = hb.tamper as i64;
        let fast = self
            .write(move |tx| {
                Box::pin(async move {
                    sqlx::query(
            "UPDATE devices SET last_heartbeat_ms = ?, last_seen_ms = ?, evidence_ms = ?, rssi = ? \
             WHERE id = ? AND sup_state = 'online' AND (? IS NULL OR battery IS ?) \
             AND tamper IS ? AND (? IS NULL OR firmware IS ?) \
             AND (? IS NULL OR abs(? - rssi_recorded) < ?)",
        )
        .bind(now_ms)
        .bind(now_ms)
        .bind(now_ms)
        .bind(rssi)
        .bind(id.as_str())
        .bind(battery)
        .bind(battery)
        .bind(tamper)
        .bind(firmware.as_deref())
        .bind(firmware.as_deref())
        .bind(rssi)
        .bind(rssi)
        .bind(i64::from(RSSI_STEP))
        .execute(&mut *tx)
        .await
        .map_err(backend)
                })
            })
            .await?;
        if fast.rows_affected() == 1 {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let Some(mut row) = load_device(&mut tx, device).await? else {
            return Ok(Vec::new());
        };
        let mut changes = Changes::default();
        go_online(&mut tx, &mut row, "heartbeat", policy, now_ms, &mut changes).await?;
        let rssi_recorded =
            apply_health(&mut tx, &mut row, hb, policy, now_ms, &mut changes).await?;
        sqlx::query(
            "UPDATE devices SET last_heartbeat_ms = ?, last_seen_ms = ?, evidence_ms = ?, \
             battery = COALESCE(?, battery), tamper = ?, rssi = ?, \
             firmware = COALESCE(?, firmware), rssi_recorded = ? WHERE id = ?",
        )
        .bind(now_ms)
        .bind(now_ms)
        .bind(now_ms)
        .bind(battery)
        .bind(hb.tamper as i64)
        .bind(rssi)
        .bind(hb.firmware.as_deref())
        .bind(rssi_recorded.map(i64::from))
        .bind(device.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        refresh_coverage(&mut tx, policy, now_ms, &mut changes).await?;
        tx.commit().await.map_err(backend)?;
        Ok(changes.reports)
    }

    async fn supervise_presence(
        &self,
        device: &DeviceId,
        evidence: PresenceEvidence<'_>,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<Vec<Report>> {
        let mut tx = self.begin_write().await?;
        let Some(mut row) = load_device(&mut tx, device).await? else {
            return Ok(Vec::new());
        };
        let mut changes = Changes::default();
        match evidence {
            PresenceEvidence::Connected { .. } => {
                go_online(&mut tx, &mut row, "connected", policy, now_ms, &mut changes).await?
            }
            PresenceEvidence::Disconnected { session, reason } => {
                // Only the latest session speaks for the device: an older one ending late
                // (replaced by a reconnect) must not hide that the device is back.
                if !row.online && row.session == Some(session as i64) {
                    go_offline(&mut tx, &mut row, reason, now_ms, &mut changes).await?;
                }
            }
            PresenceEvidence::Refused => {
                // Someone else's wrong password must not take a connected device offline.
                if !row.online && row.state != DeviceState::Online {
                    go_offline(&mut tx, &mut row, "refused_login", now_ms, &mut changes).await?;
                }
            }
        }
        refresh_coverage(&mut tx, policy, now_ms, &mut changes).await?;
        tx.commit().await.map_err(backend)?;
        Ok(changes.reports)
    }

    async fn supervise_restart(&self, now_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE devices SET evidence_ms = ? WHERE sup_state = 'online'")
            .bind(now_ms)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn supervise_due(
        &self,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<Vec<Report>> {
        let mut tx = self.begin_write().await?;
        let mut changes = Changes::default();
        let silent_since = now_ms - policy.heartbeat_interval_ms - policy.grace_ms;
        let silent: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM devices WHERE sup_state = 'online' AND evidence_ms <= ? \
             ORDER BY evidence_ms LIMIT ?",
        )
        .bind(silent_since)
        .bind(DUE_BATCH)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        for id in silent {
            let id = DeviceId::parse(&id).map_err(|e| corrupt("device", e))?;
            if let Some(mut row) = load_device(&mut tx, &id).await? {
                go_offline(&mut tx, &mut row, "heartbeat_missed", now_ms, &mut changes).await?;
            }
        }
        let settled: Vec<(i64, String)> = sqlx::query_as(
            "SELECT p.id, p.device FROM device_problems p JOIN devices d ON d.id = p.device \
             WHERE p.settle_at_ms <= ? AND p.closed_at_ms IS NULL AND d.sup_state = 'online'",
        )
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        for (problem, id) in settled {
            let id = DeviceId::parse(&id).map_err(|e| corrupt("device", e))?;
            close_problem(&mut tx, problem, now_ms).await?;
            if let Some(row) = load_device(&mut tx, &id).await? {
                changes.report(&row, DeviceReportKind::Recovered, now_ms);
                changes.clusters.insert(row.cluster.clone());
            }
        }
        refresh_coverage(&mut tx, policy, now_ms, &mut changes).await?;
        tx.commit().await.map_err(backend)?;
        Ok(changes.reports)
    }

    async fn supervise_next_deadline(
        &self,
        policy: &SupervisionPolicy,
    ) -> StoreResult<Option<i64>> {
        let (evidence, settle): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT MIN(evidence_ms) FROM devices WHERE sup_state = 'online'), \
             (SELECT MIN(settle_at_ms) FROM device_problems \
              WHERE settle_at_ms IS NOT NULL AND closed_at_ms IS NULL)",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(backend)?;
        let silent = evidence.map(|e| e + policy.heartbeat_interval_ms + policy.grace_ms);
        Ok(match (silent, settle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn device_health_list(
        &self,
        f: &DeviceFilter,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<Vec<DeviceHealth>> {
        let rows = sqlx::query(concat!(
            device_columns!(),
            "WHERE c.zone IN (SELECT value FROM json_each(?)) AND (? IS NULL OR h.cluster = ?) \
             AND (? IS NULL OR (CASE WHEN d.sup_state = 'online' AND d.evidence_ms + ? <= ? \
                  THEN 'late' ELSE d.sup_state END) = ?) \
             ORDER BY d.id LIMIT ?"
        ))
        .bind(zones_json(&f.zones)?)
        .bind(f.cluster.as_ref().map(|c| c.as_str()))
        .bind(f.cluster.as_ref().map(|c| c.as_str()))
        .bind(f.state.map(DeviceState::as_str))
        .bind(policy.heartbeat_interval_ms)
        .bind(now_ms)
        .bind(f.state.map(DeviceState::as_str))
        .bind(i64::from(f.limit))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| health_from_row(r, policy, now_ms))
            .collect()
    }

    async fn device_health(
        &self,
        device: &DeviceId,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<Option<DeviceHealthDetail>> {
        let row = sqlx::query(concat!(device_columns!(), "WHERE d.id = ?"))
            .bind(device.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let health = health_from_row(&row, policy, now_ms)?;
        let history = device_history(&self.reader, device, None, 200).await?;
        let rows = sqlx::query(concat!(
            problem_select!(),
            "WHERE p.device = ? ORDER BY p.id DESC LIMIT 50"
        ))
        .bind(device.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        let problems_history = rows
            .iter()
            .map(problem_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(DeviceHealthDetail {
            health,
            history,
            problems_history,
        }))
    }

    async fn cluster_health(
        &self,
        zones: &[ZoneCode],
        policy: &SupervisionPolicy,
    ) -> StoreResult<Vec<ClusterHealth>> {
        let rows = sqlx::query(concat!(
            "SELECT c.id, c.zone, c.name, lh.label AS leader, ",
            coverage_counts!(),
            " FROM clusters c LEFT JOIN households lh ON lh.id = c.leader_household \
             WHERE c.zone IN (SELECT value FROM json_each(?)) ORDER BY c.id"
        ))
        .bind(zones_json(zones)?)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let s = |c: &str| row.try_get::<String, _>(c).map_err(backend);
                let households = row.try_get::<i64, _>("households").map_err(backend)? as u32;
                let reachable = row.try_get::<i64, _>("reachable").map_err(backend)? as u32;
                Ok(ClusterHealth {
                    cluster: ClusterId::parse(&s("id")?).map_err(|e| corrupt("cluster", e))?,
                    zone: ZoneCode::parse(&s("zone")?).map_err(|e| corrupt("zone", e))?,
                    name: s("name")?,
                    households,
                    reachable,
                    below: policy.below(reachable, households),
                    leader: row.try_get("leader").map_err(backend)?,
                })
            })
            .collect()
    }

    async fn problems(
        &self,
        f: &ProblemFilter,
        policy: &SupervisionPolicy,
    ) -> StoreResult<Vec<Problem>> {
        let rows = sqlx::query(concat!(
            problem_select!(),
            "WHERE c.zone IN (SELECT value FROM json_each(?)) AND (? = 1 OR p.closed_at_ms IS NULL) \
             ORDER BY (p.closed_at_ms IS NOT NULL), p.opened_at_ms DESC, p.id DESC LIMIT ?"
        ))
        .bind(zones_json(&f.zones)?)
        .bind(f.include_closed as i64)
        .bind(i64::from(f.limit))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut problem = problem_from_row(row)?;
            if let Some(device) = &problem.device {
                // The episode's story: what happened to the device since it opened.
                let since = problem.opened_at_ms.unwrap_or(0);
                problem.history = device_history(&self.reader, device, Some(since), 50).await?;
            }
            out.push(problem);
        }
        // Clusters below coverage, computed now; their history is the coverage log.
        for cluster in self.cluster_health(&f.zones, policy).await? {
            if !cluster.below {
                continue;
            }
            let since: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(at_ms) FROM coverage_events WHERE cluster = ? AND below = 0",
            )
            .bind(cluster.cluster.as_str())
            .fetch_one(&self.reader)
            .await
            .map_err(backend)?;
            let history: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
                "SELECT at_ms, reachable, households, below FROM coverage_events \
                 WHERE cluster = ? ORDER BY id DESC LIMIT 20",
            )
            .bind(cluster.cluster.as_str())
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;
            let leader = leader_notify(&self.reader, &cluster.cluster).await?;
            let mut notify = vec![station_notify(&cluster.zone)];
            notify.extend(leader);
            out.push(Problem {
                id: None,
                kind: "coverage".into(),
                device: None,
                household: None,
                label: None,
                reason: format!(
                    "{} of {} households reachable (minimum {}%)",
                    cluster.reachable, cluster.households, policy.coverage_min_percent
                ),
                opened_at_ms: since,
                updated_at_ms: history.first().map(|h| h.0),
                closed_at_ms: None,
                flaps: 0,
                flapping: false,
                settle_at_ms: None,
                reachable: Some(cluster.reachable),
                households: Some(cluster.households),
                notify,
                history: history
                    .into_iter()
                    .map(|(at_ms, reachable, households, below)| HistoryEntry {
                        at_ms,
                        kind: "coverage".into(),
                        value: format!("{reachable}/{households}"),
                        detail: if below != 0 { "below" } else { "ok" }.into(),
                    })
                    .collect(),
                cluster_name: cluster.name,
                cluster: cluster.cluster,
                zone: cluster.zone,
            });
        }
        Ok(out)
    }
}

fn station_notify(zone: &ZoneCode) -> Notify {
    Notify {
        role: "station",
        who: zone.to_string(),
        label: String::new(),
        contacts: String::new(),
        channel: "feed",
    }
}

async fn leader_notify(
    reader: &sqlx::SqlitePool,
    cluster: &ClusterId,
) -> StoreResult<Option<Notify>> {
    let leader: Option<(String, String, String)> = sqlx::query_as(
        "SELECT h.id, h.label, h.contacts FROM clusters c \
         JOIN households h ON h.id = c.leader_household WHERE c.id = ?",
    )
    .bind(cluster.as_str())
    .fetch_optional(reader)
    .await
    .map_err(backend)?;
    Ok(leader.map(|(who, label, contacts)| Notify {
        role: "cluster_leader",
        who,
        label,
        contacts,
        channel: "console",
    }))
}

fn problem_from_row(row: &SqliteRow) -> StoreResult<Problem> {
    let s = |c: &str| row.try_get::<String, _>(c).map_err(backend);
    let zone = ZoneCode::parse(&s("zone")?).map_err(|e| corrupt("zone", e))?;
    let household = HouseholdId::parse(&s("household")?).map_err(|e| corrupt("household", e))?;
    let label = s("label")?;
    let flaps = row.try_get::<i64, _>("flaps").map_err(backend)?.max(0) as u32;
    let kind = s("kind")?;
    // Who should hear of it: the station on its feed; the cluster leader and the household
    // in person, from this list, until the resident push path exists.
    let mut notify = vec![station_notify(&zone)];
    let leader: Option<String> = row.try_get("leader_id").map_err(backend)?;
    if let Some(leader) = leader {
        if leader != household.as_str() {
            notify.push(Notify {
                role: "cluster_leader",
                who: leader,
                label: row
                    .try_get::<Option<String>, _>("leader_label")
                    .map_err(backend)?
                    .unwrap_or_default(),
                contacts: row
                    .try_get::<Option<String>, _>("leader_contacts")
                    .map_err(backend)?
                    .unwrap_or_default(),
                channel: "console",
            });
        }
    }
    notify.push(Notify {
        role: "household",
        who: household.to_string(),
        label: label.clone(),
        contacts: s("contacts")?,
        channel: "console",
    });
    Ok(Problem {
        id: Some(row.try_get("id").map_err(backend)?),
        flapping: kind == "offline" && flaps >= FLAPPING_AT,
        kind,
        device: Some(DeviceId::parse(&s("device")?).map_err(|e| corrupt("device", e))?),
        household: Some(household),
        label: Some(label),
        cluster: ClusterId::parse(&s("cluster")?).map_err(|e| corrupt("cluster", e))?,
        cluster_name: s("cluster_name")?,
        zone,
        reason: s("reason")?,
        opened_at_ms: Some(row.try_get("opened_at_ms").map_err(backend)?),
        updated_at_ms: Some(row.try_get("updated_at_ms").map_err(backend)?),
        closed_at_ms: row.try_get("closed_at_ms").map_err(backend)?,
        flaps,
        settle_at_ms: row.try_get("settle_at_ms").map_err(backend)?,
        reachable: None,
        households: None,
        notify,
        history: Vec::new(),
    })
}

/// A device's history, newest first.
async fn device_history(
    reader: &sqlx::SqlitePool,
    device: &DeviceId,
    since_ms: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<HistoryEntry>> {
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT at_ms, kind, value, detail FROM device_events \
         WHERE device = ? AND at_ms >= ? ORDER BY id DESC LIMIT ?",
    )
    .bind(device.as_str())
    .bind(since_ms.unwrap_or(i64::MIN))
    .bind(limit)
    .fetch_all(reader)
    .await
    .map_err(backend)?;
    Ok(rows
        .into_iter()
        .map(|(at_ms, kind, value, detail)| HistoryEntry {
            at_ms,
            kind,
            value,
            detail,
        })
        .collect())
}
