//! [`Store`] in shared SQL: the registry, the press path, an alert's actions and rings, and
//! devices' presence. The decisions are [`crate::store::alerts`]' and
//! [`crate::store::rings`]'; this module reads what they need and writes what they answer.

use async_trait::async_trait;

use sqlx::query::Query;

use super::super::{Args, Backend, Conn, Db};
use super::Commit;
use crate::domain::{
    AlertId, AlertState, BootId, ClusterId, DeviceId, HouseholdId, Press, ZoneCode,
};
use crate::lifecycle::{alert_next, Action, RecipientState};
use crate::store::alerts::{self, AlertChange, RecipientMove};
use crate::store::sqlx_error::{refused, refused_naming};
use crate::store::{
    corrupt, rings, rows, AlertDetail, AlertFilter, AlertSummary, Applied, CancelOutcome,
    DeviceCredential, DeviceListing, NewCluster, NewHousehold, Ordered, PressOutcome, PressRules,
    Recipient, RecipientKind, RegistryCounts, RingFired, RingPlan, Store, StoreError, StoreResult,
    Then, TimelineEvent,
};

/// What a registry write's foreign keys point at.
const REGISTRY: &str = "a referenced zone, cluster or household";

/// The alert as the transaction sees it now.
pub(crate) async fn alert_in(tx: &mut Conn, id: i64) -> StoreResult<AlertSummary> {
    let row = sqlx::query(concat!(alert_select!(), "WHERE a.id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    rows::alert(&row)
}

/// Locks the alert's row for the rest of the transaction (PostgreSQL); false if there is no
/// such alert. Every write about an alert takes this lock first (before any recipient's), so
/// that two gateways' writes about one alert run one after the other and never deadlock.
pub(crate) async fn lock_alert(tx: &mut Conn, id: i64) -> StoreResult<bool> {
    let found: Option<i64> =
        sqlx::query_scalar(concat!("SELECT id FROM alerts WHERE id = $1", lock!()))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(found.is_some())
}

/// Locks the device's row (PostgreSQL); false if there is no such device. Presses and
/// cancels of one device run one after the other, so the dedup on (device, seq) and "the
/// latest open alert" are decided on committed data.
pub(crate) async fn lock_device(tx: &mut Conn, device: &DeviceId) -> StoreResult<bool> {
    let found: Option<String> =
        sqlx::query_scalar(concat!("SELECT id FROM devices WHERE id = $1", lock!()))
            .bind(device.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    Ok(found.is_some())
}

/// Adds a recipient unless it is one already; true if it was added.
async fn insert_recipient(tx: &mut Conn, alert: i64, r: &Recipient) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO recipients \
         (alert, kind, who, label, ring, state, distance_m, notified_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(alert)
    .bind(r.kind.as_str())
    .bind(&r.who)
    .bind(&r.label)
    .bind(i64::from(r.ring))
    .bind(r.state.as_str())
    .bind(r.distance_m)
    .bind(r.notified_at_ms)
    .bind(r.updated_at_ms)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Rows of one [`insert_recipients`] statement: nine binds each, well inside both backends'
/// limits (SQLite 32,766 binds, PostgreSQL 65,535).
const RECIPIENT_ROWS: usize = 500;

/// Adds the recipients that are not ones already, a statement for up to [`RECIPIENT_ROWS`] of
/// them (a ring reaches a hundred volunteers and more: one statement each was most of the
/// ring's time); returns those added, in the order given.
async fn insert_recipients(
    tx: &mut Conn,
    alert: i64,
    recipients: Vec<Recipient>,
) -> StoreResult<Vec<Recipient>> {
    let mut added = std::collections::HashSet::new();
    for chunk in recipients.chunks(RECIPIENT_ROWS) {
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO recipients \
             (alert, kind, who, label, ring, state, distance_m, notified_at_ms, updated_at_ms) ",
        );
        insert.push_values(chunk, |mut row, r| {
            row.push_bind(alert)
                .push_bind(r.kind.as_str())
                .push_bind(r.who.as_str())
                .push_bind(r.label.as_str())
                .push_bind(i64::from(r.ring))
                .push_bind(r.state.as_str())
                .push_bind(r.distance_m)
                .push_bind(r.notified_at_ms)
                .push_bind(r.updated_at_ms);
        });
        insert.push(" ON CONFLICT DO NOTHING RETURNING kind, who");
        let rows: Vec<(String, String)> = insert.build_query_as().fetch_all(&mut *tx).await?;
        added.extend(rows);
    }
    Ok(recipients
        .into_iter()
        .filter(|r| added.contains(&(r.kind.as_str().to_owned(), r.who.clone())))
        .collect())
}

pub(crate) async fn insert_event(
    tx: &mut Conn,
    alert: i64,
    actor: &str,
    action: &str,
    detail: &str,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO alert_events (alert, at_ms, actor, action, detail) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(alert)
    .bind(now_ms)
    .bind(actor)
    .bind(action)
    .bind(detail)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The alert made, joined or cancelled by the press this one repeats, if it is a repeat
/// ([`PressRules`]: the same (device, boot, seq); without a boot id, only within the repeat
/// window).
pub(crate) async fn earlier_press(
    tx: &mut Conn,
    device: &DeviceId,
    press: &Press,
    rules: &PressRules,
    now_ms: i64,
) -> StoreResult<Option<AlertSummary>> {
    let alert: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT alert FROM presses WHERE device = $1 AND boot = $2 AND seq = $3 \
         AND ($2 <> '' OR at_ms >= $4)",
    )
    .bind(device.as_str())
    .bind(BootId::stored(press.boot.as_ref()))
    .bind(press.seq as i64)
    .bind(now_ms - rules.repeat_window_ms)
    .fetch_optional(&mut *tx)
    .await?;
    match alert.flatten() {
        Some(id) => Ok(Some(alert_in(tx, id).await?)),
        None => Ok(None),
    }
}

/// Records a press that is not a repeat: over the row of an earlier press with the same
/// identity whose repeat window is over.
pub(crate) async fn insert_press(
    tx: &mut Conn,
    device: &DeviceId,
    press: &Press,
    alert: i64,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO presses (device, boot, seq, kind, alert, at_ms) \
         VALUES ($1, $6, $2, $3, $4, $5) ON CONFLICT (device, boot, seq) DO UPDATE \
         SET kind = excluded.kind, alert = excluded.alert, at_ms = excluded.at_ms",
    )
    .bind(device.as_str())
    .bind(press.seq as i64)
    .bind(press.kind.as_str())
    .bind(alert)
    .bind(now_ms)
    .bind(BootId::stored(press.boot.as_ref()))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn insert_household(tx: &mut Conn, h: &NewHousehold) -> StoreResult<()> {
    // In words, before the schema's CHECK would say it in SQL.
    crate::store::accounts::check_position(h.lat, h.lon).map_err(|_| {
        StoreError::Invalid(format!(
            "household {}: {}, {} is not a latitude (-90 to 90) and longitude (-180 to 180)",
            h.id, h.lat, h.lon
        ))
    })?;
    sqlx::query(
        "INSERT INTO households (id, cluster, label, address, lat, lon, notes, contacts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
    .map_err(|e| {
        refused_naming(
            e,
            format!("household {}", h.id),
            format!("cluster {}", h.cluster),
        )
    })?;
    Ok(())
}

async fn insert_device(
    tx: &mut Conn,
    device: &DeviceId,
    household: &HouseholdId,
    secret_hash: &str,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO devices (id, household, secret_hash) VALUES ($1, $2, $3)")
        .bind(device.as_str())
        .bind(household.as_str())
        .bind(secret_hash)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            refused_naming(
                e,
                format!("device {device}"),
                format!("household {household}"),
            )
        })?;
    Ok(())
}

/// [`Store::cancel_press`] in a transaction.
async fn cancel_press_in(
    tx: &mut Conn,
    device: &DeviceId,
    press: &Press,
    window_ms: i64,
    rules: &PressRules,
    now_ms: i64,
) -> StoreResult<CancelOutcome> {
    if !lock_device(tx, device).await? {
        return Ok(CancelOutcome::UnknownDevice);
    }
    if let Some(earlier) = earlier_press(tx, device, press, rules, now_ms).await? {
        return Ok(CancelOutcome::Duplicate(earlier));
    }
    let open: Option<(i64, i64)> = sqlx::query_as(concat!(
        "SELECT id, raised_at_ms FROM alerts WHERE device = $1 \
         AND state NOT IN ('resolved', 'cancelled') \
         ORDER BY raised_at_ms DESC, id DESC LIMIT 1",
        lock!()
    ))
    .bind(device.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, raised_at_ms)) = open else {
        // Answered with the latest alert, closed: the press is kept against it, so that a
        // repeat of this cancel gets the same answer.
        let latest: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM alerts WHERE device = $1 ORDER BY raised_at_ms DESC, id DESC LIMIT 1",
        )
        .bind(device.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(latest) = latest else {
            return Ok(CancelOutcome::NothingOpen(None));
        };
        insert_press(tx, device, press, latest, now_ms).await?;
        return Ok(CancelOutcome::NothingOpen(Some(
            alert_in(tx, latest).await?,
        )));
    };
    insert_press(tx, device, press, id, now_ms).await?;
    let actor = alerts::device_actor(device);
    let late = alerts::cancel_too_late(raised_at_ms, now_ms, window_ms);
    if let Some(detail) = &late {
        insert_event(tx, id, &actor, "cancel_refused", detail, now_ms).await?;
    } else {
        sqlx::query(
            "UPDATE alerts SET state = 'cancelled', updated_at_ms = $1, closed_at_ms = $1, \
             next_ring_at_ms = NULL WHERE id = $2",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        insert_event(tx, id, &actor, "cancelled", "", now_ms).await?;
    }
    let alert = alert_in(tx, id).await?;
    Ok(match late {
        Some(_) => CancelOutcome::TooLate(alert),
        None => CancelOutcome::Cancelled(alert),
    })
}

/// [`Store::apply`] in a transaction: locks the alert, moves the target recipient and the
/// alert, and writes the timeline event.
async fn apply_in(
    tx: &mut Conn,
    alert: AlertId,
    actor: &str,
    action: Action,
    target: Option<(RecipientKind, &str)>,
    detail: &str,
    now_ms: i64,
) -> StoreResult<Applied> {
    let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(concat!(
        "SELECT state, ring, public_at_ms FROM alerts WHERE id = $1",
        lock!()
    ))
    .bind(alert.0)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((state, ring, public_at_ms)) = row else {
        return Err(StoreError::NotFound(format!("alert {alert}")));
    };
    let current = AlertState::parse(&state).map_err(|e| corrupt("state", e))?;
    let next = alert_next(current, action)?;
    alerts::publish_once(alert, action, public_at_ms)?;
    let recipient_changed = match (target, alerts::wanted_of(action)) {
        (Some((kind, who)), Some(wanted)) => {
            move_recipient(tx, alert.0, kind, who, wanted, ring, now_ms).await?
        }
        _ => false,
    };
    let who = target.map(|(_, who)| who);
    let change = AlertChange::of(current, next, action, who, detail, recipient_changed);
    sqlx::query(
        "UPDATE alerts SET state = $1, updated_at_ms = $2, \
         acknowledged_at_ms = CASE WHEN $3 AND acknowledged_at_ms IS NULL THEN $2 \
           ELSE acknowledged_at_ms END, \
         first_delivered_at_ms = CASE WHEN $4 AND first_delivered_at_ms IS NULL THEN $2 \
           ELSE first_delivered_at_ms END, \
         first_coming_at_ms = CASE WHEN $5 AND first_coming_at_ms IS NULL THEN $2 \
           ELSE first_coming_at_ms END, \
         first_on_scene_at_ms = CASE WHEN $6 AND first_on_scene_at_ms IS NULL THEN $2 \
           ELSE first_on_scene_at_ms END, \
         next_ring_at_ms = CASE WHEN $7 THEN NULL ELSE next_ring_at_ms END, \
         category = COALESCE($8, category), resolution_note = COALESCE($9, resolution_note), \
         closed_at_ms = CASE WHEN $10 THEN $2 ELSE closed_at_ms END, \
         public_at_ms = CASE WHEN $12 AND public_at_ms IS NULL THEN $2 ELSE public_at_ms END \
         WHERE id = $11",
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
    .bind(change.published)
    .execute(&mut *tx)
    .await?;
    if let Some((event, event_detail)) = &change.event {
        insert_event(tx, alert.0, actor, event, event_detail, now_ms).await?;
    }
    Ok(Applied {
        alert: alert_in(tx, alert.0).await?,
        state_changed: change.state_changed,
        recipient_changed,
    })
}

/// Moves (or adds) one recipient as the action wants; returns whether anything changed.
async fn move_recipient(
    tx: &mut Conn,
    alert: i64,
    kind: RecipientKind,
    who: &str,
    wanted: RecipientState,
    ring: i64,
    now_ms: i64,
) -> StoreResult<bool> {
    let current: Option<String> = sqlx::query_scalar(
        "SELECT state FROM recipients WHERE alert = $1 AND kind = $2 AND who = $3",
    )
    .bind(alert)
    .bind(kind.as_str())
    .bind(who)
    .fetch_optional(&mut *tx)
    .await?;
    let current = current
        .map(|s| RecipientState::parse(&s).map_err(|e| corrupt("recipient", e)))
        .transpose()?;
    match alerts::move_recipient(current, kind, who, wanted, ring as u8, now_ms)? {
        RecipientMove::Add(recipient) => {
            insert_recipient(tx, alert, &recipient).await?;
            Ok(true)
        }
        RecipientMove::To(next) => {
            sqlx::query(
                "UPDATE recipients SET state = $1, updated_at_ms = $2 \
                 WHERE alert = $3 AND kind = $4 AND who = $5",
            )
            .bind(next.as_str())
            .bind(now_ms)
            .bind(alert)
            .bind(kind.as_str())
            .bind(who)
            .execute(&mut *tx)
            .await?;
            Ok(true)
        }
        RecipientMove::Stay => Ok(false),
    }
}

/// [`Store::fire_ring`] in a transaction: locks the alert (another gateway firing this ring
/// now holds the lock: this waits for its commit and then reads the ring it fired, so the
/// ring is not due any more), then fires its next ring if [`rings::next_ring`] says so.
async fn fire_ring_in(
    tx: &mut Conn,
    alert: AlertId,
    plan: &RingPlan,
    now_ms: i64,
) -> StoreResult<Option<RingFired>> {
    if !lock_alert(tx, alert.0).await? {
        return Ok(None);
    }
    let current = alert_in(tx, alert.0).await?;
    let Some((ring, next_ring_at)) = rings::next_ring(&current, plan, now_ms) else {
        return Ok(None);
    };
    // Compare-and-set on the ring, besides the lock: of two gateways sharing the database,
    // one fires it.
    let won = sqlx::query(
        "UPDATE alerts SET ring = $1, next_ring_at_ms = $2, critical = $3, updated_at_ms = $4 \
         WHERE id = $5 AND ring = $6",
    )
    .bind(i64::from(ring))
    .bind(next_ring_at)
    .bind(ring >= 2)
    .bind(now_ms)
    .bind(alert.0)
    .bind(i64::from(current.ring))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !won {
        return Ok(None);
    }
    let mut reached = Vec::new();
    let mut cluster_of = std::collections::HashMap::new();
    if ring == 1 {
        for (recipient, cluster) in nearby_units(tx, &current, plan.radius_m, now_ms).await? {
            cluster_of.insert(recipient.who.clone(), cluster);
            reached.push(recipient);
        }
    }
    // Ring 1: on-duty volunteers known to be within the radius; ring 2: all on duty in the
    // zone. Nearest first; someone already notified is not notified again.
    let within = (ring == 1).then_some(plan.radius_m);
    reached.extend(on_duty_volunteers(tx, &current, within, ring, now_ms).await?);
    let added = insert_recipients(tx, alert.0, reached).await?;
    // The clusters whose units were added, in the order of their first unit.
    let mut clusters = Vec::new();
    for r in added.iter().filter(|r| r.kind == RecipientKind::Unit) {
        if let Some(cluster) = cluster_of.remove(&r.who) {
            if !clusters.contains(&cluster) {
                clusters.push(cluster);
            }
        }
    }
    let (action, detail) = rings::ring_event(ring, plan, &added, clusters.len());
    insert_event(tx, alert.0, "gateway", action, &detail, now_ms).await?;
    Ok(Some(RingFired {
        alert: alert_in(tx, alert.0).await?,
        ring,
        clusters,
        added,
    }))
}

/// Units of other clusters' households within `radius_m` of the alert's household, nearest
/// first, with their cluster (not alarm panels: a panel cannot sound a neighbour's alert).
async fn nearby_units(
    tx: &mut Conn,
    alert: &AlertSummary,
    radius_m: f64,
    now_ms: i64,
) -> StoreResult<Vec<(Recipient, ClusterId)>> {
    // A bounding box in the index, then the exact distance in [`rings`] (SQLite has no
    // trigonometry in every build), so that both backends pick the same households.
    let (dlat, dlon) = rings::bounding_box(alert, radius_m);
    let rows: Vec<rings::UnitRow> = sqlx::query_as(
        "SELECT d.id, h.cluster, h.label, h.lat, h.lon FROM households h \
         JOIN devices d ON d.household = h.id \
         WHERE h.lat BETWEEN $1 AND $2 AND h.lon BETWEEN $3 AND $4 AND h.cluster <> $5 \
         AND NOT EXISTS (SELECT 1 FROM sia_accounts s WHERE s.device = d.id)",
    )
    .bind(alert.lat - dlat)
    .bind(alert.lat + dlat)
    .bind(alert.lon - dlon)
    .bind(alert.lon + dlon)
    .bind(alert.cluster.as_str())
    .fetch_all(&mut *tx)
    .await?;
    Ok(rings::nearby_units(alert, rows, radius_m, now_ms))
}

/// On-duty volunteers of the alert's zone as ring recipients, nearest first; with `within`,
/// only those whose fresh position lies inside it.
async fn on_duty_volunteers(
    tx: &mut Conn,
    alert: &AlertSummary,
    within: Option<f64>,
    ring: u8,
    now_ms: i64,
) -> StoreResult<Vec<Recipient>> {
    let rows: Vec<rings::VolunteerRow> = sqlx::query_as(
        "SELECT a.name, a.display_name, v.lat, v.lon, v.position_at_ms FROM volunteers v \
         JOIN accounts a ON a.id = v.account JOIN account_zones z ON z.account = a.id \
         WHERE v.on_duty = TRUE AND a.disabled = FALSE AND z.zone = $1",
    )
    .bind(alert.zone.as_str())
    .fetch_all(&mut *tx)
    .await?;
    Ok(rings::volunteers(alert, rows, within, ring, now_ms))
}

impl Backend {
    /// The alerts a query of `alert_select!` finds, in its order.
    async fn alerts(&self, query: Query<'_, Db, Args>) -> StoreResult<Vec<AlertSummary>> {
        let found = query.fetch_all(self.reads()).await?;
        found.iter().map(rows::alert).collect()
    }
}

/// The ids of the alerts unit `$1` is a recipient of: ring 0 from its cluster's alerts (index
/// `alerts_cluster_raised`, then its recipient row by key; migration 0013 keeps them out of
/// `recipients_who`), later rings from its own rows (`recipients_who`, whose condition is
/// written out word for word so that the planner takes it). `$own` bounds its own rows,
/// `$cluster` its cluster's alerts ("" for all).
macro_rules! unit_alert_ids {
    ($own:literal, $cluster:literal) => {
        concat!(
            "SELECT me.alert FROM recipients me \
             WHERE me.kind = 'unit' AND me.who = $1 AND (me.kind <> 'unit' OR me.ring > 0) ",
            $own,
            " UNION ALL \
             SELECT c.id FROM devices d JOIN households dh ON dh.id = d.household \
             JOIN alerts c ON c.cluster = dh.cluster ",
            $cluster,
            " JOIN recipients me ON me.alert = c.id AND me.kind = 'unit' AND me.who = d.id \
             AND me.ring = 0 WHERE d.id = $1"
        )
    };
}

#[async_trait]
impl Store for Backend {
    async fn add_zone(&self, code: &ZoneCode, name: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO zones (code, name) VALUES ($1, $2)")
            .bind(code.as_str())
            .bind(name)
            .execute(self.writes())
            .await
            .map_err(|e| match refused(e, REGISTRY) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("zone {code}")),
                other => other,
            })?;
        Ok(())
    }

    async fn add_cluster(&self, c: &NewCluster) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO clusters (id, zone, name, leader_household) VALUES ($1, $2, $3, $4)",
        )
        .bind(c.id.as_str())
        .bind(c.zone.as_str())
        .bind(&c.name)
        .bind(c.leader_household.as_ref().map(HouseholdId::as_str))
        .execute(self.writes())
        .await
        .map_err(|e| refused_naming(e, format!("cluster {}", c.id), format!("zone {}", c.zone)))?;
        Ok(())
    }

    async fn add_household(&self, h: &NewHousehold) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_household(&mut tx, h).await?;
        tx.commit().await.map_err(StoreError::from)
    }

    async fn add_device(
        &self,
        device: &DeviceId,
        household: &HouseholdId,
        secret_hash: &str,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_device(&mut tx, device, household, secret_hash).await?;
        tx.commit().await.map_err(StoreError::from)
    }

    async fn add_households_with_devices(
        &self,
        rows: &[(NewHousehold, DeviceId, String)],
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for (h, device, hash) in rows {
            insert_household(&mut tx, h).await?;
            insert_device(&mut tx, device, &h.id, hash).await?;
        }
        tx.commit().await.map_err(StoreError::from)
    }

    async fn set_cluster_leader(
        &self,
        cluster: &ClusterId,
        household: &HouseholdId,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE clusters SET leader_household = $1 WHERE id = $2 \
             AND EXISTS (SELECT 1 FROM households WHERE id = $1 AND cluster = $2)",
        )
        .bind(household.as_str())
        .bind(cluster.as_str())
        .execute(self.writes())
        .await
        .map_err(|e| refused(e, REGISTRY))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "household {household} in cluster {cluster}"
            )));
        }
        Ok(())
    }

    async fn device_credential(&self, device: &DeviceId) -> StoreResult<Option<DeviceCredential>> {
        let row: Option<(String, bool, String, String)> = sqlx::query_as(
            "SELECT d.secret_hash, d.enabled, h.cluster, c.zone FROM devices d \
             JOIN households h ON h.id = d.household JOIN clusters c ON c.id = h.cluster \
             WHERE d.id = $1",
        )
        .bind(device.as_str())
        .fetch_optional(self.reads())
        .await?;
        row.map(|(secret_hash, enabled, cluster, zone)| {
            Ok(DeviceCredential {
                secret_hash,
                enabled,
                cluster: ClusterId::parse(&cluster).map_err(|e| corrupt("cluster", e))?,
                zone: ZoneCode::parse(&zone).map_err(|e| corrupt("zone", e))?,
            })
        })
        .transpose()
    }

    async fn list_devices(&self, zone: Option<&ZoneCode>) -> StoreResult<Vec<DeviceListing>> {
        let rows: Vec<(
            String,
            String,
            String,
            String,
            String,
            bool,
            String,
            Option<i64>,
        )> = sqlx::query_as(
            "SELECT d.id, d.household, h.label, h.cluster, c.zone, d.enabled, d.sup_state, \
                 d.last_seen_ms FROM devices d JOIN households h ON h.id = d.household \
                 JOIN clusters c ON c.id = h.cluster \
                 WHERE CAST($1 AS TEXT) IS NULL OR c.zone = $1 ORDER BY d.id",
        )
        .bind(zone.map(|z| z.as_str()))
        .fetch_all(self.reads())
        .await?;
        rows.into_iter()
            .map(
                |(id, household, label, cluster, zone, enabled, state, last_seen_ms)| {
                    Ok(DeviceListing {
                        id: DeviceId::parse(&id).map_err(|e| corrupt("device", e))?,
                        household: HouseholdId::parse(&household)
                            .map_err(|e| corrupt("household", e))?,
                        label,
                        cluster: ClusterId::parse(&cluster).map_err(|e| corrupt("cluster", e))?,
                        zone: ZoneCode::parse(&zone).map_err(|e| corrupt("zone", e))?,
                        enabled,
                        state,
                        last_seen_ms,
                    })
                },
            )
            .collect()
    }

    async fn set_device_enabled(&self, device: &DeviceId, enabled: bool) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE devices SET enabled = $1 WHERE id = $2")
            .bind(enabled)
            .bind(device.as_str())
            .execute(self.writes())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_device_secret(&self, device: &DeviceId, secret_hash: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE devices SET secret_hash = $1 WHERE id = $2")
            .bind(secret_hash)
            .bind(device.as_str())
            .execute(self.writes())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_device(&self, device: &DeviceId) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !lock_device(&mut tx, device).await? {
            return Ok(false);
        }
        let (alerts, receipts): (i64, i64) = sqlx::query_as(concat!(
            "SELECT (SELECT COUNT(*) FROM alerts WHERE device = $1), \
             (SELECT COUNT(*) FROM (",
            unit_alert_ids!("", ""),
            ") sent)"
        ))
        .bind(device.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if alerts + receipts > 0 {
            return Err(StoreError::Invalid(format!(
                "device {device} raised {alerts} alert(s) and was sent {receipts}: its history \
                 stays; disable it instead (tenwatch admin disable-device --id {device})"
            )));
        }
        for sql in [
            "DELETE FROM device_events WHERE device = $1",
            "DELETE FROM device_problems WHERE device = $1",
            "DELETE FROM presses WHERE device = $1",
            "DELETE FROM devices WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(device.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn counts(&self) -> StoreResult<RegistryCounts> {
        let (zones, clusters, households, devices, online): (i64, i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM zones), (SELECT COUNT(*) FROM clusters), \
                 (SELECT COUNT(*) FROM households), (SELECT COUNT(*) FROM devices), \
                 (SELECT COUNT(*) FROM devices WHERE online = TRUE)",
            )
            .fetch_one(self.reads())
            .await?;
        Ok(RegistryCounts {
            zones: zones as u64,
            clusters: clusters as u64,
            households: households as u64,
            devices: devices as u64,
            devices_online: online as u64,
        })
    }

    async fn record_press(
        &self,
        device: &DeviceId,
        press: &Press,
        plan: &RingPlan,
        rules: &PressRules,
        now_ms: i64,
    ) -> StoreResult<PressOutcome> {
        self.press(device, press, plan, rules, now_ms).await
    }

    fn mark_notified(&self, alert: AlertId, now_ms: i64) -> Ordered<AlertSummary> {
        self.notified(alert, now_ms)
    }

    fn mark_notified_then(&self, alert: AlertId, now_ms: i64, then: Then<AlertSummary>) {
        self.notified_then(alert, now_ms, then)
    }

    async fn cancel_press(
        &self,
        device: &DeviceId,
        press: &Press,
        window_ms: i64,
        rules: &PressRules,
        now_ms: i64,
    ) -> StoreResult<CancelOutcome> {
        let (device, press, rules) = (device.clone(), press.clone(), *rules);
        self.write(Commit::Transaction, move |tx| {
            Box::pin(async move {
                cancel_press_in(tx, &device, &press, window_ms, &rules, now_ms).await
            })
        })
        .await
    }

    fn apply(
        &self,
        alert: AlertId,
        actor: &str,
        action: Action,
        target: Option<(RecipientKind, &str)>,
        detail: &str,
        now_ms: i64,
    ) -> Ordered<Applied> {
        let (actor, detail) = (actor.to_owned(), detail.to_owned());
        let target = target.map(|(kind, who)| (kind, who.to_owned()));
        self.write(Commit::InOrder(alert), move |tx| {
            Box::pin(async move {
                let target = target.as_ref().map(|(kind, who)| (*kind, who.as_str()));
                apply_in(tx, alert, &actor, action, target, &detail, now_ms).await
            })
        })
    }

    fn record_delivery(
        &self,
        alert: AlertId,
        device: &DeviceId,
        now_ms: i64,
    ) -> Ordered<Option<AlertSummary>> {
        self.delivery(alert, device, now_ms)
    }

    fn record_delivery_then(
        &self,
        alert: AlertId,
        device: &DeviceId,
        now_ms: i64,
        then: Then<Option<AlertSummary>>,
    ) {
        self.delivery_then(alert, device, now_ms, then)
    }

    async fn recipients(&self, alert: AlertId) -> StoreResult<Vec<Recipient>> {
        // Distance-less recipients (ring 0, or joined by themselves) first within a ring.
        let rows = sqlx::query(
            "SELECT kind, who, label, ring, state, distance_m, notified_at_ms, updated_at_ms, \
             push, push_at_ms FROM recipients WHERE alert = $1 \
             ORDER BY ring, distance_m NULLS FIRST, kind, who",
        )
        .bind(alert.0)
        .fetch_all(self.reads())
        .await?;
        rows.iter().map(rows::recipient).collect()
    }

    async fn alert_clusters(&self, alert: AlertId) -> StoreResult<Vec<ClusterId>> {
        let clusters: Vec<String> = sqlx::query_scalar(
            "SELECT cluster FROM ( \
               SELECT cluster, 0 AS home FROM alerts WHERE id = $1 UNION ALL \
               SELECT DISTINCT h.cluster, 1 FROM recipients r JOIN devices d ON d.id = r.who \
               JOIN households h ON h.id = d.household \
               WHERE r.alert = $1 AND r.kind = 'unit' AND r.ring > 0) c \
             ORDER BY home, cluster",
        )
        .bind(alert.0)
        .fetch_all(self.reads())
        .await?;
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
        .fetch_one(self.reads())
        .await
        .map_err(StoreError::from)
    }

    async fn due_rings(&self, now_ms: i64) -> StoreResult<Vec<AlertId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM alerts WHERE next_ring_at_ms IS NOT NULL AND next_ring_at_ms <= $1 \
             AND state NOT IN ('resolved', 'cancelled') ORDER BY next_ring_at_ms, id",
        )
        .bind(now_ms)
        .fetch_all(self.reads())
        .await?;
        Ok(ids.into_iter().map(AlertId).collect())
    }

    async fn fire_ring(
        &self,
        alert: AlertId,
        plan: &RingPlan,
        now_ms: i64,
    ) -> StoreResult<Option<RingFired>> {
        let plan = *plan;
        self.write(Commit::Transaction, move |tx| {
            Box::pin(async move { fire_ring_in(tx, alert, &plan, now_ms).await })
        })
        .await
    }

    async fn alerts_owing_fanout(&self) -> StoreResult<Vec<AlertSummary>> {
        let sql = concat!(
            alert_select!(),
            "WHERE a.notified_at_ms IS NULL AND a.state NOT IN ('resolved', 'cancelled') \
             ORDER BY a.id"
        );
        self.alerts(sqlx::query(sql)).await
    }

    async fn list_alerts(&self, f: &AlertFilter) -> StoreResult<Vec<AlertSummary>> {
        let sql = concat!(
            alert_select!(),
            "WHERE (NOT $1 OR a.state NOT IN ('resolved', 'cancelled')) AND a.zone ",
            in_list!("$2"),
            " AND ",
            in_window!("a.raised_at_ms", "a.id", "$4", "$5", "$6", "$7"),
            " ORDER BY a.raised_at_ms DESC, a.id DESC LIMIT $3"
        );
        let query = sqlx::query(sql)
            .bind(f.open_only)
            .bind(Backend::zone_list(&f.zones)?)
            .bind(i64::from(f.window.limit));
        let query = super::bind_window(query, &f.window);
        self.alerts(query).await
    }

    async fn catch_up_alerts(
        &self,
        device: &DeviceId,
        from_ms: i64,
        until_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<AlertSummary>> {
        // Ring 0 made every unit of the cluster's other households a recipient, ring 1 and
        // later the nearby units they reached ([`unit_alert_ids`]). A recipient is never
        // notified before its alert was raised, so `from_ms` bounds both ranges.
        let sql = concat!(
            "SELECT ",
            alert_columns!(),
            " FROM alerts a JOIN households h ON h.id = a.household WHERE a.id IN (",
            unit_alert_ids!(
                "AND me.notified_at_ms BETWEEN $2 AND $3",
                "AND c.raised_at_ms BETWEEN $2 AND $3"
            ),
            ") AND a.raised_at_ms >= $2 AND a.state NOT IN ('resolved', 'cancelled') \
             ORDER BY a.raised_at_ms DESC, a.id DESC LIMIT $4"
        );
        let query = sqlx::query(sql)
            .bind(device.as_str())
            .bind(from_ms)
            .bind(until_ms)
            .bind(i64::from(limit));
        self.alerts(query).await
    }

    async fn alert(&self, id: AlertId) -> StoreResult<Option<AlertSummary>> {
        let row = sqlx::query(concat!(alert_select!(), "WHERE a.id = $1"))
            .bind(id.0)
            .fetch_optional(self.reads())
            .await?;
        row.as_ref().map(rows::alert).transpose()
    }

    async fn public_alerts(&self, limit: u32) -> StoreResult<Vec<AlertSummary>> {
        // Through the partial index `alerts_public`: only the public few are read.
        let sql = concat!(
            alert_select!(),
            "WHERE a.public_at_ms IS NOT NULL ORDER BY a.updated_at_ms DESC, a.id DESC LIMIT $1"
        );
        self.alerts(sqlx::query(sql).bind(i64::from(limit))).await
    }

    async fn alert_detail(&self, id: AlertId) -> StoreResult<Option<AlertDetail>> {
        let Some(alert) = self.alert(id).await? else {
            return Ok(None);
        };
        let (notes, contacts): (String, String) =
            sqlx::query_as("SELECT notes, contacts FROM households WHERE id = $1")
                .bind(alert.household.as_str())
                .fetch_one(self.reads())
                .await?;
        let (cluster_name, leader): (String, Option<String>) = sqlx::query_as(
            "SELECT c.name, h.label FROM clusters c \
             LEFT JOIN households h ON h.id = c.leader_household WHERE c.id = $1",
        )
        .bind(alert.cluster.as_str())
        .fetch_one(self.reads())
        .await?;
        let recipients = self.recipients(id).await?;
        let timeline = sqlx::query_as::<_, (i64, String, String, String)>(
            "SELECT at_ms, actor, action, detail FROM alert_events WHERE alert = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(self.reads())
        .await?
        .into_iter()
        .map(|(at_ms, actor, action, detail)| TimelineEvent {
            at_ms,
            actor,
            action,
            detail,
        })
        .collect();
        let satisfaction = crate::store::NoticeStore::satisfaction(self, id).await?;
        Ok(Some(AlertDetail {
            alert,
            notes,
            contacts,
            cluster_name,
            leader,
            recipients,
            timeline,
            satisfaction,
        }))
    }

    async fn reset_presence(&self, reason: &str, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE devices SET online = FALSE, session = NULL, disconnect_reason = $1, \
             last_seen_ms = $2 WHERE online = TRUE",
        )
        .bind(reason)
        .bind(now_ms)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(self.reads()).await?;
        Ok(())
    }
}
