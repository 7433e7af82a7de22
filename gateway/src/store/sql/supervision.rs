//! [`SupervisionStore`] in shared SQL: the episode, flap and coverage rules of
//! [`crate::store::supervision`] applied in transactions.
//!
//! Each piece of evidence reads the device's row (locked on PostgreSQL, where SQLite's single
//! writer already keeps everyone else out), so a heartbeat, a presence report and the
//! supervisor's sweep (from any gateway) apply to one device one after the other.
//! Recounting a cluster's coverage locks the cluster's row first, so two transactions
//! touching one cluster count one after the other and the last count stored is the true
//! one; clusters are recounted in id order, which keeps the locks deadlock-free. The sweep
//! takes the silent devices with `skip_locked!()`: one that another transaction holds is
//! being moved by it, and is looked at again on the next pass.

use async_trait::async_trait;
use sqlx::{Row, Transaction};

use super::super::{Backend, Conn, Db};
use super::Commit;
use crate::domain::{ClusterId, DeviceId, Heartbeat, ZoneCode};
use crate::store::rows;
use crate::store::supervision::{
    coverage_change, coverage_problem, health_changes, next_deadline, presence_step, Changes,
    ClusterHealth, CoverageEntry, CoverageReport, DeviceFilter, DeviceHealth, DeviceHealthDetail,
    DeviceReportKind, DeviceRow, DeviceState, FastHeartbeat, HistoryEntry, Leader, PresenceApplied,
    PresenceReport, PresenceStep, Problem, ProblemFilter, Report, SupervisionPolicy,
    SupervisionStore, DUE_BATCH,
};
use crate::store::{corrupt, StoreError, StoreResult};

macro_rules! device_columns {
    () => {
        "SELECT d.id, d.household, h.label, h.cluster, c.zone, d.sup_state, d.sup_reason, \
         d.sup_since_ms, d.battery, d.tamper, d.firmware, d.rssi, d.rssi_recorded, d.online, \
         d.session, d.last_heartbeat_ms, d.last_seen_ms, d.evidence_ms, \
         (SELECT string_agg(p.kind, ',') FROM device_problems p \
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
        "SELECT p.id, p.kind, p.device, p.reason, p.opened_at_ms, p.updated_at_ms, \
         p.closed_at_ms, p.flaps, p.settle_at_ms, d.household, h.label, h.contacts, h.cluster, \
         c.name AS cluster_name, c.zone, lh.id AS leader_id, lh.label AS leader_label, \
         lh.contacts AS leader_contacts \
         FROM device_problems p JOIN devices d ON d.id = p.device \
         JOIN households h ON h.id = d.household JOIN clusters c ON c.id = h.cluster \
         LEFT JOIN households lh ON lh.id = c.leader_household "
    };
}

/// The device, its row locked until the transaction ends (PostgreSQL).
async fn load_device(tx: &mut Conn, device: &DeviceId) -> StoreResult<Option<DeviceRow>> {
    let row = sqlx::query(concat!(device_columns!(), "WHERE d.id = $1", lock!("d")))
        .bind(device.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    row.as_ref().map(rows::device).transpose()
}

async fn add_event(
    tx: &mut Conn,
    device: &DeviceId,
    kind: &str,
    value: &str,
    detail: &str,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO device_events (device, at_ms, kind, value, detail) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(device.as_str())
    .bind(now_ms)
    .bind(kind)
    .bind(value)
    .bind(detail)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The open problem of this kind: (id, flaps).
async fn open_problem(
    tx: &mut Conn,
    device: &DeviceId,
    kind: &str,
) -> StoreResult<Option<(i64, i64)>> {
    sqlx::query_as(
        "SELECT id, flaps FROM device_problems \
         WHERE device = $1 AND kind = $2 AND closed_at_ms IS NULL",
    )
    .bind(device.as_str())
    .bind(kind)
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::from)
}

async fn open_new_problem(
    tx: &mut Conn,
    device: &DeviceId,
    kind: &str,
    reason: &str,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO device_problems (device, kind, reason, opened_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(device.as_str())
    .bind(kind)
    .bind(reason)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn close_problem(tx: &mut Conn, id: i64, now_ms: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE device_problems SET closed_at_ms = $1, updated_at_ms = $1, settle_at_ms = NULL \
         WHERE id = $2",
    )
    .bind(now_ms)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Stores an edge session on its device's row: open (`online`) or ended, why, and when the
/// edge saw it.
async fn store_session(
    conn: &mut Conn,
    device: &DeviceId,
    session: u64,
    online: bool,
    reason: Option<&str>,
    seen_ms: i64,
) -> StoreResult<()> {
    let sql = if online {
        "UPDATE devices SET online = TRUE, session = $1, disconnect_reason = $2, \
         last_seen_ms = $3 WHERE id = $4"
    } else {
        // Only the device's latest session may mark it offline: an older one ending late
        // (a reconnect replaced it) must not hide that the device is back.
        "UPDATE devices SET online = FALSE, session = $1, disconnect_reason = $2, \
         last_seen_ms = $3 WHERE id = $4 AND (session IS NULL OR session <= $1)"
    };
    sqlx::query(sql)
        .bind(session as i64)
        .bind(reason)
        .bind(seen_ms)
        .bind(device.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves a device online (`why`: what showed it alive). An open offline episode is not
/// closed yet: it settles once the device has stayed online for the settle time.
async fn go_online(
    tx: &mut Conn,
    row: &mut DeviceRow,
    why: &str,
    policy: &SupervisionPolicy,
    now_ms: i64,
    changes: &mut Changes,
) -> StoreResult<()> {
    if row.state == DeviceState::Online {
        sqlx::query("UPDATE devices SET evidence_ms = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(row.device.as_str())
            .execute(&mut *tx)
            .await?;
        return Ok(());
    }
    sqlx::query(
        "UPDATE devices SET sup_state = 'online', sup_reason = NULL, sup_since_ms = $1, \
         evidence_ms = $1 WHERE id = $2",
    )
    .bind(now_ms)
    .bind(row.device.as_str())
    .execute(&mut *tx)
    .await?;
    add_event(tx, &row.device, "online", "online", why, now_ms).await?;
    if let Some((id, _)) = open_problem(tx, &row.device, "offline").await? {
        sqlx::query(
            "UPDATE device_problems SET settle_at_ms = $1, updated_at_ms = $2 WHERE id = $3",
        )
        .bind(now_ms + policy.settle_ms)
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    row.state = DeviceState::Online;
    row.reason = None;
    changes.clusters.insert(row.cluster.clone());
    Ok(())
}

/// Moves a device offline for `reason`. The first offline of an episode opens the problem
/// and is reported; later ones (flapping) only count.
async fn go_offline(
    tx: &mut Conn,
    row: &mut DeviceRow,
    reason: &str,
    now_ms: i64,
    changes: &mut Changes,
) -> StoreResult<()> {
    if row.state == DeviceState::Offline {
        if row.reason.as_deref() != Some(reason) {
            // Still offline, for a new reason (a later disconnect of its latest session):
            // history and the open problem say so; the station was told already.
            sqlx::query("UPDATE devices SET sup_reason = $1 WHERE id = $2")
                .bind(reason)
                .bind(row.device.as_str())
                .execute(&mut *tx)
                .await?;
            add_event(tx, &row.device, "offline", "offline", reason, now_ms).await?;
            sqlx::query(
                "UPDATE device_problems SET reason = $1, updated_at_ms = $2 \
                 WHERE device = $3 AND kind = 'offline' AND closed_at_ms IS NULL",
            )
            .bind(reason)
            .bind(now_ms)
            .bind(row.device.as_str())
            .execute(&mut *tx)
            .await?;
            row.reason = Some(reason.to_owned());
        }
        return Ok(());
    }
    sqlx::query(
        "UPDATE devices SET sup_state = 'offline', sup_reason = $1, sup_since_ms = $2 \
         WHERE id = $3",
    )
    .bind(reason)
    .bind(now_ms)
    .bind(row.device.as_str())
    .execute(&mut *tx)
    .await?;
    add_event(tx, &row.device, "offline", "offline", reason, now_ms).await?;
    row.state = DeviceState::Offline;
    row.reason = Some(reason.to_owned());
    match open_problem(tx, &row.device, "offline").await? {
        Some((id, _)) => {
            sqlx::query(
                "UPDATE device_problems SET flaps = flaps + 1, settle_at_ms = NULL, \
                 reason = $1, updated_at_ms = $2 WHERE id = $3",
            )
            .bind(reason)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        None => {
            open_new_problem(tx, &row.device, "offline", reason, now_ms).await?;
            changes.report(row, DeviceReportKind::Offline, now_ms);
        }
    }
    changes.clusters.insert(row.cluster.clone());
    Ok(())
}

/// Ends a supervision write: recomputes the coverage of the clusters it touched, commits, and
/// gives what the station must be told.
async fn commit_reports(
    mut tx: Transaction<'static, Db>,
    policy: &SupervisionPolicy,
    now_ms: i64,
    mut changes: Changes,
) -> StoreResult<Vec<Report>> {
    refresh_coverage(&mut tx, policy, now_ms, &mut changes).await?;
    tx.commit().await?;
    Ok(changes.reports)
}

/// Recomputes the coverage of the clusters touched; reports the ones that crossed the
/// threshold, and keeps every change of the count as history.
async fn refresh_coverage(
    tx: &mut Conn,
    policy: &SupervisionPolicy,
    now_ms: i64,
    changes: &mut Changes,
) -> StoreResult<()> {
    // In id order (a BTreeSet), so that two transactions lock shared clusters in one order.
    let clusters = std::mem::take(&mut changes.clusters);
    for cluster in clusters {
        // Counted only once no other transaction is counting this cluster: the count then
        // sees what that one committed.
        let locked: Option<String> =
            sqlx::query_scalar(concat!("SELECT id FROM clusters WHERE id = $1", lock!()))
                .bind(cluster.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if locked.is_none() {
            continue;
        }
        let row = sqlx::query(concat!(
            "SELECT c.zone, c.name, cc.reachable AS prev_reachable, cc.below AS prev_below, ",
            coverage_counts!(),
            " FROM clusters c LEFT JOIN cluster_coverage cc ON cc.cluster = c.id WHERE c.id = $1"
        ))
        .bind(cluster.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { continue };
        let households = row.try_get::<i64, _>("households")? as u32;
        let reachable = row.try_get::<i64, _>("reachable")? as u32;
        let prev: Option<i64> = row.try_get("prev_reachable")?;
        let prev_below: Option<bool> = row.try_get("prev_below")?;
        let Some((below, crossed)) =
            coverage_change(prev.zip(prev_below), reachable, households, policy)
        else {
            continue;
        };
        sqlx::query(
            "INSERT INTO cluster_coverage (cluster, reachable, households, below, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (cluster) DO UPDATE SET \
             reachable = excluded.reachable, households = excluded.households, \
             below = excluded.below, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(cluster.as_str())
        .bind(i64::from(reachable))
        .bind(i64::from(households))
        .bind(below)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO coverage_events (cluster, at_ms, reachable, households, below) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(cluster.as_str())
        .bind(now_ms)
        .bind(i64::from(reachable))
        .bind(i64::from(households))
        .bind(below)
        .execute(&mut *tx)
        .await?;
        if crossed {
            let zone: String = row.try_get("zone")?;
            changes.reports.push(Report::Coverage(CoverageReport {
                zone: ZoneCode::parse(&zone).map_err(|e| corrupt("zone", e))?,
                name: row.try_get("name")?,
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

/// Applies the health part of a heartbeat ([`health_changes`]); returns the signal strength
/// the history now holds.
async fn apply_health(
    tx: &mut Conn,
    row: &mut DeviceRow,
    hb: &Heartbeat,
    policy: &SupervisionPolicy,
    now_ms: i64,
    changes: &mut Changes,
) -> StoreResult<Option<i16>> {
    let low_battery = open_problem(tx, &row.device, "low_battery").await?;
    let tamper = open_problem(tx, &row.device, "tamper").await?;
    let health = health_changes(
        row,
        hb,
        low_battery.map(|(id, _)| id),
        tamper.map(|(id, _)| id),
        policy,
    );
    for (kind, value, before) in &health.events {
        add_event(tx, &row.device, kind, value, before, now_ms).await?;
    }
    for (kind, reason) in &health.open {
        open_new_problem(tx, &row.device, kind, reason, now_ms).await?;
    }
    for id in &health.close {
        close_problem(tx, *id, now_ms).await?;
    }
    row.battery = hb.battery.or(row.battery);
    row.tamper = Some(hb.tamper);
    for kind in health.reports {
        changes.report(row, kind, now_ms);
    }
    Ok(health.rssi_recorded)
}

#[async_trait]
impl SupervisionStore for Backend {
    async fn supervise_heartbeat(
        &self,
        device: &DeviceId,
        hb: &Heartbeat,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<Vec<Report>> {
        // The common case, an online device whose health did not move, is one statement: no
        // read, and on the busy path (thousands of devices beat every interval). Anything else
        // takes the full path below.
        let battery = hb.battery.map(i64::from);
        let rssi = hb.rssi.map(i64::from);
        let fast = FastHeartbeat {
            device: device.clone(),
            now_ms,
            battery,
            rssi,
            tamper: hb.tamper,
            firmware: hb.firmware.clone(),
        };
        if self.fast_heartbeat(fast).await? {
            return Ok(Vec::new());
        }
        // Through the writer, like presence: the first heartbeats of thousands of units
        // coming online share commits instead of holding the writer one transaction each.
        let (device, hb, policy) = (device.clone(), hb.clone(), *policy);
        self.write(Commit::Transaction, move |conn| {
            Box::pin(async move {
                let Some(mut row) = load_device(conn, &device).await? else {
                    return Ok(Vec::new());
                };
                let mut changes = Changes::default();
                go_online(conn, &mut row, "heartbeat", &policy, now_ms, &mut changes).await?;
                let rssi_recorded =
                    apply_health(conn, &mut row, &hb, &policy, now_ms, &mut changes).await?;
                sqlx::query(
                    "UPDATE devices SET last_heartbeat_ms = $1, last_seen_ms = $1, \
                     evidence_ms = $1, battery = COALESCE($2, battery), tamper = $3, rssi = $4, \
                     firmware = COALESCE($5, firmware), rssi_recorded = $6 WHERE id = $7",
                )
                .bind(now_ms)
                .bind(battery)
                .bind(hb.tamper)
                .bind(rssi)
                .bind(hb.firmware.as_deref())
                .bind(rssi_recorded.map(i64::from))
                .bind(device.as_str())
                .execute(&mut *conn)
                .await?;
                refresh_coverage(conn, &policy, now_ms, &mut changes).await?;
                Ok(changes.reports)
            })
        })
        .await
    }

    async fn heartbeats_unchanged(
        &self,
        beats: Vec<FastHeartbeat>,
    ) -> StoreResult<std::collections::HashSet<String>> {
        // Each backend in one statement: SQLite's writer as a run, PostgreSQL with UNNEST.
        self.fast_heartbeats(beats).await
    }

    async fn apply_presence(
        &self,
        reports: Vec<PresenceReport>,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<PresenceApplied> {
        // Through the writer, like every busy write: a storm of units coming back is committed
        // in groups, and the presses' commits are not queued behind a transaction each.
        let policy = *policy;
        self.write(Commit::Transaction, move |conn| {
            Box::pin(async move {
                let mut changes = Changes::default();
                let mut zones = Vec::with_capacity(reports.len());
                for report in &reports {
                    store_session(
                        conn,
                        &report.device,
                        report.session,
                        report.online,
                        report.disconnect_reason.as_deref(),
                        report.seen_ms,
                    )
                    .await?;
                    let Some(mut row) = load_device(conn, &report.device).await? else {
                        zones.push(None);
                        continue;
                    };
                    zones.push(Some(row.zone.clone()));
                    let Some(evidence) = report.evidence() else {
                        continue;
                    };
                    match presence_step(&row, evidence) {
                        PresenceStep::Online(why) => {
                            go_online(conn, &mut row, why, &policy, now_ms, &mut changes).await?
                        }
                        PresenceStep::Offline(reason) => {
                            go_offline(conn, &mut row, reason, now_ms, &mut changes).await?
                        }
                        PresenceStep::Ignore => {}
                    }
                }
                refresh_coverage(conn, &policy, now_ms, &mut changes).await?;
                Ok(PresenceApplied {
                    reports: changes.reports,
                    zones,
                })
            })
        })
        .await
    }

    async fn supervise_restart(&self, now_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE devices SET evidence_ms = $1 WHERE sup_state = 'online'")
            .bind(now_ms)
            .execute(self.writes())
            .await?;
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
        // Locked here, all at once; a device another transaction holds (a heartbeat arriving
        // now, another gateway's sweep) is left to it.
        let silent: Vec<String> = sqlx::query_scalar(concat!(
            "SELECT id FROM devices WHERE sup_state = 'online' AND evidence_ms <= $1 \
                 ORDER BY evidence_ms LIMIT $2",
            skip_locked!()
        ))
        .bind(silent_since)
        .bind(DUE_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        for id in silent {
            let id = DeviceId::parse(&id).map_err(|e| corrupt("device", e))?;
            if let Some(mut row) = load_device(&mut tx, &id).await? {
                // Read again under the lock: still silent, still online.
                if row.state == DeviceState::Online {
                    go_offline(&mut tx, &mut row, "heartbeat_missed", now_ms, &mut changes).await?;
                }
            }
        }
        let settled: Vec<(i64, String)> = sqlx::query_as(
            "SELECT p.id, p.device FROM device_problems p JOIN devices d ON d.id = p.device \
             WHERE p.settle_at_ms <= $1 AND p.closed_at_ms IS NULL AND d.sup_state = 'online' \
             ORDER BY p.id",
        )
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        for (problem, id) in settled {
            // The device first, as every other transaction locks it before its problems; one
            // held elsewhere is left for the next pass.
            let free: Option<String> = sqlx::query_scalar(concat!(
                "SELECT id FROM devices WHERE id = $1",
                skip_locked!()
            ))
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
            if free.is_none() {
                continue;
            }
            // Read again under the lock: still back, still settling.
            let still: Option<i64> = sqlx::query_scalar(
                "SELECT p.id FROM device_problems p JOIN devices d ON d.id = p.device \
                 WHERE p.id = $1 AND p.settle_at_ms <= $2 AND p.closed_at_ms IS NULL \
                 AND d.sup_state = 'online'",
            )
            .bind(problem)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if still.is_none() {
                continue;
            }
            let id = DeviceId::parse(&id).map_err(|e| corrupt("device", e))?;
            close_problem(&mut tx, problem, now_ms).await?;
            if let Some(row) = load_device(&mut tx, &id).await? {
                changes.report(&row, DeviceReportKind::Recovered, now_ms);
                changes.clusters.insert(row.cluster.clone());
            }
        }
        commit_reports(tx, policy, now_ms, changes).await
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
        .fetch_one(self.reads())
        .await?;
        Ok(next_deadline(evidence, settle, policy))
    }

    async fn device_health_list(
        &self,
        f: &DeviceFilter,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<Vec<DeviceHealth>> {
        let rows = sqlx::query(concat!(
            device_columns!(),
            "WHERE c.zone ",
            in_list!("$1"),
            " AND (CAST($2 AS TEXT) IS NULL OR h.cluster = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR (CASE WHEN d.sup_state = 'online' \
                  AND d.evidence_ms + $4 <= $5 THEN 'late' ELSE d.sup_state END) = $3) \
             ORDER BY d.id LIMIT $6"
        ))
        .bind(Backend::zone_list(&f.zones)?)
        .bind(f.cluster.as_ref().map(|c| c.as_str()))
        .bind(f.state.map(DeviceState::as_str))
        .bind(policy.heartbeat_interval_ms)
        .bind(now_ms)
        .bind(i64::from(f.limit))
        .fetch_all(self.reads())
        .await?;
        rows.iter()
            .map(|r| rows::device_health(r, policy, now_ms))
            .collect()
    }

    async fn device_health(
        &self,
        device: &DeviceId,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<Option<DeviceHealthDetail>> {
        let row = sqlx::query(concat!(device_columns!(), "WHERE d.id = $1"))
            .bind(device.as_str())
            .fetch_optional(self.reads())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let health = rows::device_health(&row, policy, now_ms)?;
        let history = device_history(self, device, None, 200).await?;
        let rows = sqlx::query(concat!(
            problem_select!(),
            "WHERE p.device = $1 ORDER BY p.id DESC LIMIT 50"
        ))
        .bind(device.as_str())
        .fetch_all(self.reads())
        .await?;
        let problems_history = rows
            .iter()
            .map(rows::problem)
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
             WHERE c.zone ",
            in_list!("$1"),
            " ORDER BY c.id"
        ))
        .bind(Backend::zone_list(zones)?)
        .fetch_all(self.reads())
        .await?;
        rows.iter()
            .map(|row| rows::cluster_health(row, policy))
            .collect()
    }

    async fn problems(
        &self,
        f: &ProblemFilter,
        policy: &SupervisionPolicy,
    ) -> StoreResult<Vec<Problem>> {
        let rows = sqlx::query(concat!(
            problem_select!(),
            "WHERE c.zone ",
            in_list!("$1"),
            " AND ($2 OR p.closed_at_ms IS NULL) \
             ORDER BY (p.closed_at_ms IS NOT NULL), p.opened_at_ms DESC, p.id DESC LIMIT $3"
        ))
        .bind(Backend::zone_list(&f.zones)?)
        .bind(f.include_closed)
        .bind(i64::from(f.limit))
        .fetch_all(self.reads())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut problem = rows::problem(row)?;
            if let Some(device) = &problem.device {
                // The episode's story: what happened to the device since it opened.
                let since = problem.opened_at_ms.unwrap_or(0);
                problem.history = device_history(self, device, Some(since), 50).await?;
            }
            out.push(problem);
        }
        // Clusters below coverage, computed now; their history is the coverage log.
        for cluster in self.cluster_health(&f.zones, policy).await? {
            if !cluster.below {
                continue;
            }
            let since: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(at_ms) FROM coverage_events WHERE cluster = $1 AND NOT below",
            )
            .bind(cluster.cluster.as_str())
            .fetch_one(self.reads())
            .await?;
            let history: Vec<CoverageEntry> = sqlx::query_as(
                "SELECT at_ms, reachable, households, below FROM coverage_events \
                 WHERE cluster = $1 ORDER BY id DESC LIMIT 20",
            )
            .bind(cluster.cluster.as_str())
            .fetch_all(self.reads())
            .await?;
            let leader = leader_of(self, &cluster.cluster).await?;
            out.push(coverage_problem(cluster, since, history, leader, policy));
        }
        Ok(out)
    }
}

async fn leader_of(store: &Backend, cluster: &ClusterId) -> StoreResult<Option<Leader>> {
    let leader: Option<(String, String, String)> = sqlx::query_as(
        "SELECT h.id, h.label, h.contacts FROM clusters c \
         JOIN households h ON h.id = c.leader_household WHERE c.id = $1",
    )
    .bind(cluster.as_str())
    .fetch_optional(store.reads())
    .await?;
    Ok(leader.map(|(who, label, contacts)| Leader {
        who,
        label,
        contacts,
    }))
}

/// A device's history, newest first.
async fn device_history(
    store: &Backend,
    device: &DeviceId,
    since_ms: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<HistoryEntry>> {
    let rows = sqlx::query(
        "SELECT at_ms, kind, value, detail FROM device_events \
         WHERE device = $1 AND at_ms >= $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(device.as_str())
    .bind(since_ms.unwrap_or(i64::MIN))
    .bind(limit)
    .fetch_all(store.reads())
    .await?;
    rows.iter().map(rows::history_entry).collect()
}
