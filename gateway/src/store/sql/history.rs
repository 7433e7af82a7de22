//! [`HistoryStore`] in shared SQL: closed alerts searched for the station, and a device's
//! presence and battery over a window, both read from what the live paths already store.
//!
//! Every bound is bound, never NULL where an index is meant to help: the time window and the
//! cursor are one range on `raised_at_ms` ([`raised_range`]), so the walk starts and stops
//! in an index. Which index leads depends on the filter, so there are three texts of one
//! query: by household (`alerts_household_pressed`), by cluster (`alerts_cluster_raised`,
//! migration 0009) and by zone (`alerts_zone_raised`). A device's history is read through
//! `device_events_kind` (0009): its presence changes and its battery levels apart, each a
//! range on time.

use async_trait::async_trait;

use super::super::{Backend, Conn, Row};
use crate::domain::DeviceId;
use crate::store::history::{
    contains_pattern, raised_range, AlertFigures, AlertHistoryFilter, ClosedAlert, DeviceTimeline,
    FiguresFilter, HistoryStore, PresenceFigures, PresenceStep, UnitPresence, VolunteerFigure,
};
use crate::store::rows::{self, Columns};
use crate::store::StoreResult;

/// The closed alerts' columns, their households and clusters; the `WHERE` that follows leads
/// with one of the three index terms, then [`history_rest!`].
macro_rules! history_select {
    () => {
        concat!(
            "SELECT ",
            alert_columns!(),
            ", c.name AS cluster_name",
            alert_from!(),
            "JOIN clusters c ON c.id = a.cluster WHERE "
        )
    };
}

/// Every filter of [`AlertHistoryFilter`], bound in this order: zones ($1), the raised-at
/// range ($2, $3, $4: see [`raised_range`]), kind, category, state, cluster, household,
/// words ($5 to $10) and the limit ($11).
macro_rules! history_rest {
    () => {
        concat!(
            " AND a.zone ",
            in_list!("$1"),
            " AND a.state IN ('resolved', 'cancelled') \
             AND a.raised_at_ms BETWEEN $2 AND $3 AND (a.raised_at_ms < $3 OR a.id < $4) \
             AND (CAST($5 AS TEXT) IS NULL OR a.kind = $5) \
             AND (CAST($6 AS TEXT) IS NULL OR a.category = $6) \
             AND (CAST($7 AS TEXT) IS NULL OR a.state = $7) \
             AND (CAST($8 AS TEXT) IS NULL OR a.cluster = $8) \
             AND (CAST($9 AS TEXT) IS NULL OR a.household = $9) \
             AND (CAST($10 AS TEXT) IS NULL OR lower(h.label) LIKE $10 ESCAPE '\\' \
                  OR lower(h.address) LIKE $10 ESCAPE '\\') \
             ORDER BY a.raised_at_ms DESC, a.id DESC LIMIT $11"
        )
    };
}

const BY_HOUSEHOLD: &str = concat!(history_select!(), "a.household = $9", history_rest!());
const BY_CLUSTER: &str = concat!(history_select!(), "a.cluster = $8", history_rest!());
const BY_ZONE: &str = concat!(history_select!(), "TRUE", history_rest!());

/// A device's events of some kinds in a window, newest first; `$2` and `$3` the window.
const PRESENCE: &str = "SELECT at_ms, kind, value, detail FROM device_events \
     WHERE device = $1 AND kind IN ('online', 'offline') AND at_ms >= $2 AND at_ms < $3 \
     ORDER BY at_ms DESC, id DESC LIMIT $4";
const BATTERY: &str = "SELECT at_ms, kind, value, detail FROM device_events \
     WHERE device = $1 AND kind = 'battery' AND at_ms >= $2 AND at_ms < $3 \
     ORDER BY at_ms DESC, id DESC LIMIT $4";

/// What the statistics count of each alert raised in a window (`$2`, `$3`) of the zones
/// (`$1`), of one cluster (`$4`) if given: a range of `alerts_zone_raised`, and where its
/// household is (by primary key) for the hot spots.
const FIGURES: &str = concat!(
    "SELECT a.cluster, h.lat, h.lon, a.kind, a.state, a.category, a.ring, a.raised_at_ms, \
     a.first_delivered_at_ms, a.first_coming_at_ms, a.first_on_scene_at_ms, \
     (SELECT s.satisfied FROM alert_satisfaction s WHERE s.alert = a.id) AS satisfied \
     FROM alerts a JOIN households h ON h.id = a.household WHERE a.zone ",
    in_list!("$1"),
    " AND a.raised_at_ms >= $2 AND a.raised_at_ms < $3 \
     AND (CAST($4 AS TEXT) IS NULL OR a.cluster = $4)"
);

/// Volunteers' answers to the alerts of [`FIGURES`] (through `alert_events_alert`), then the
/// check-ins in the window of the zones' volunteers (through `checkins_account`).
const VOLUNTEER_FIGURES: &str = concat!(
    "SELECT substr(e.actor, 11) AS volunteer, coalesce(v.display_name, '') AS display_name, \
     e.action, a.id AS alert, a.raised_at_ms, e.at_ms, 0 AS checkins \
     FROM alerts a JOIN alert_events e ON e.alert = a.id \
     LEFT JOIN accounts v ON v.kind = 'volunteer' AND v.name = substr(e.actor, 11) \
     WHERE a.zone ",
    in_list!("$1"),
    " AND a.raised_at_ms >= $2 AND a.raised_at_ms < $3 \
     AND (CAST($4 AS TEXT) IS NULL OR a.cluster = $4) \
     AND e.action IN ('coming', 'on_scene') AND e.actor LIKE 'volunteer:%' \
     UNION ALL \
     SELECT v.name, v.display_name, '', 0, 0, 0, \
     (SELECT COUNT(*) FROM checkins c WHERE c.account = v.id AND c.at_ms >= $2 AND c.at_ms < $3) \
     FROM accounts v JOIN account_zones z ON z.account = v.id \
     WHERE v.kind = 'volunteer' AND z.zone ",
    in_list!("$1"),
);

/// The units of the zones' clusters (`$1`; one cluster `$3` if given) and the presence each
/// had before the period opened (`$2`): its last `online` or `offline` through
/// `device_events_kind`, one index probe per unit.
const UNITS: &str = concat!(
    "SELECT d.id AS device, c.id AS cluster, c.name AS cluster_name, \
     coalesce((SELECT e.kind FROM device_events e WHERE e.device = d.id \
       AND e.kind IN ('online', 'offline') AND e.at_ms < $2 \
       ORDER BY e.at_ms DESC, e.id DESC LIMIT 1), '') AS before \
     FROM clusters c JOIN households h ON h.cluster = c.id JOIN devices d ON d.household = h.id \
     WHERE c.zone ",
    in_list!("$1"),
    " AND (CAST($3 AS TEXT) IS NULL OR c.id = $3) ORDER BY d.id"
);

/// Those units' presence changes in the window (`$2`, `$3`), each unit's in order: a range of
/// `device_events_kind` per unit and kind.
const PRESENCE_STEPS: &str = concat!(
    "SELECT e.device, e.at_ms, e.kind FROM clusters c \
     JOIN households h ON h.cluster = c.id JOIN devices d ON d.household = h.id \
     JOIN device_events e ON e.device = d.id \
     WHERE c.zone ",
    in_list!("$1"),
    " AND (CAST($4 AS TEXT) IS NULL OR c.id = $4) \
     AND e.kind IN ('online', 'offline') AND e.at_ms >= $2 AND e.at_ms < $3 \
     ORDER BY e.device, e.at_ms, e.id"
);

/// The rows of one of the statistics' queries, each bound alike: zones ($1), the window ($2,
/// $3) and a cluster ($4); none for no zones.
async fn figure_rows(
    store: &Backend,
    sql: &'static str,
    f: &FiguresFilter,
) -> StoreResult<Vec<Row>> {
    if f.zones.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query(sql)
        .bind(Backend::zone_list(&f.zones)?)
        .bind(f.from_ms)
        .bind(f.to_ms)
        .bind(f.cluster.as_ref().map(|c| c.as_str()))
        .fetch_all(store.reads())
        .await?)
}

#[async_trait]
impl HistoryStore for Backend {
    async fn presence_figures(&self, f: &FiguresFilter) -> StoreResult<PresenceFigures> {
        if f.zones.is_empty() {
            return Ok(PresenceFigures::default());
        }
        let zones = Backend::zone_list(&f.zones)?;
        let cluster = f.cluster.as_ref().map(|c| c.as_str());
        // One snapshot: each unit's state before the period and its changes in it agree.
        let mut tx = self.snapshot().await?;
        let units = sqlx::query(UNITS)
            .bind(zones.clone())
            .bind(f.from_ms)
            .bind(cluster)
            .fetch_all(&mut *tx)
            .await?;
        let steps = sqlx::query(PRESENCE_STEPS)
            .bind(zones)
            .bind(f.from_ms)
            .bind(f.to_ms)
            .bind(cluster)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(PresenceFigures {
            units: units
                .iter()
                .map(|r| {
                    Ok(UnitPresence {
                        device: r.text("device")?,
                        cluster: r.text("cluster")?,
                        cluster_name: r.text("cluster_name")?,
                        online_before: r.text("before")? == "online",
                    })
                })
                .collect::<StoreResult<_>>()?,
            steps: steps
                .iter()
                .map(|r| {
                    Ok(PresenceStep {
                        device: r.text("device")?,
                        at_ms: r.int("at_ms")?,
                        online: r.text("kind")? == "online",
                    })
                })
                .collect::<StoreResult<_>>()?,
        })
    }

    async fn volunteer_figures(&self, f: &FiguresFilter) -> StoreResult<Vec<VolunteerFigure>> {
        let found = figure_rows(self, VOLUNTEER_FIGURES, f).await?;
        found.iter().map(rows::volunteer_figure).collect()
    }

    async fn alert_figures(&self, f: &FiguresFilter) -> StoreResult<Vec<AlertFigures>> {
        let found = figure_rows(self, FIGURES, f).await?;
        found.iter().map(rows::alert_figures).collect()
    }

    async fn alert_history(&self, f: &AlertHistoryFilter) -> StoreResult<Vec<ClosedAlert>> {
        if f.zones.is_empty() {
            return Ok(Vec::new());
        }
        let sql = if f.household.is_some() {
            BY_HOUSEHOLD
        } else if f.cluster.is_some() {
            BY_CLUSTER
        } else {
            BY_ZONE
        };
        let (lo, hi, hi_id) = raised_range(f);
        let state = f
            .cancelled
            .map(|c| if c { "cancelled" } else { "resolved" });
        let found = sqlx::query(sql)
            .bind(Backend::zone_list(&f.zones)?)
            .bind(lo)
            .bind(hi)
            .bind(hi_id)
            .bind(f.kind.map(|k| k.as_str()))
            .bind(f.category.map(|c| c.as_str()))
            .bind(state)
            .bind(f.cluster.as_ref().map(|c| c.as_str()))
            .bind(f.household.as_ref().map(|h| h.as_str()))
            .bind(f.text.as_deref().map(contains_pattern))
            .bind(i64::from(f.limit))
            .fetch_all(self.reads())
            .await?;
        found
            .iter()
            .map(|row| {
                Ok(ClosedAlert {
                    alert: rows::alert(row)?,
                    cluster_name: row.text("cluster_name")?,
                })
            })
            .collect()
    }

    async fn device_timeline(
        &self,
        device: &DeviceId,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> StoreResult<DeviceTimeline> {
        // One snapshot: the value before the window and the changes in it agree.
        let mut tx = self.snapshot().await?;
        let take = i64::from(limit) + 1;
        let mut presence = events(&mut tx, PRESENCE, device, from_ms, to_ms, take).await?;
        let presence_before = events(&mut tx, PRESENCE, device, i64::MIN, from_ms, 1).await?;
        let mut battery = events(&mut tx, BATTERY, device, from_ms, to_ms, take).await?;
        let battery_before = events(&mut tx, BATTERY, device, i64::MIN, from_ms, 1).await?;
        tx.commit().await?;
        let limit = limit as usize;
        let truncated = presence.len() > limit || battery.len() > limit;
        presence.truncate(limit);
        battery.truncate(limit);
        Ok(DeviceTimeline {
            presence_before: presence_before
                .first()
                .map(rows::presence_change)
                .transpose()?,
            presence: oldest_first(&presence, rows::presence_change)?,
            battery_before: battery_before
                .first()
                .map(rows::battery_reading)
                .transpose()?,
            battery: oldest_first(&battery, rows::battery_reading)?,
            truncated,
        })
    }
}

/// The device's events that `sql` selects in [from, to), newest first, at most `limit`.
async fn events(
    tx: &mut Conn,
    sql: &'static str,
    device: &DeviceId,
    from_ms: i64,
    to_ms: i64,
    limit: i64,
) -> StoreResult<Vec<Row>> {
    Ok(sqlx::query(sql)
        .bind(device.as_str())
        .bind(from_ms)
        .bind(to_ms)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?)
}

/// Rows read newest first, parsed oldest first: as a timeline and a chart read them.
fn oldest_first<T>(found: &[Row], parse: fn(&Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    found.iter().rev().map(parse).collect()
}
