//! When a ring fires and who it reaches, once a backend has read the alert and the
//! candidates: the same decision, selection and order on SQLite and PostgreSQL (both read
//! rows; the deadlines, distances, order and the timeline's words are decided here).

use super::{AlertSummary, Recipient, RecipientKind, RingPlan};
use crate::domain::{haversine_m, ClusterId};
use crate::lifecycle::RecipientState;

/// The ring the alert climbs to now, with its next deadline, if one is due: the alert is
/// open, its stored deadline has passed and ring 2 has not fired.
pub fn next_ring(alert: &AlertSummary, plan: &RingPlan, now_ms: i64) -> Option<(u8, Option<i64>)> {
    let due = alert
        .next_ring_at_ms
        .is_some_and(|at| at <= now_ms && alert.state.is_open());
    if !due || alert.ring >= 2 {
        return None;
    }
    let ring = alert.ring + 1;
    Some((
        ring,
        (ring == 1).then_some(alert.raised_at_ms + plan.ring2_after_ms),
    ))
}

/// The timeline event of a ring that added `added` (volunteers and units) in `clusters`
/// nearby clusters.
pub fn ring_event(
    ring: u8,
    plan: &RingPlan,
    added: &[Recipient],
    clusters: usize,
) -> (&'static str, String) {
    let volunteers = added
        .iter()
        .filter(|r| r.kind == RecipientKind::Volunteer)
        .count();
    if ring == 1 {
        let detail = format!(
            "nobody coming after {} s: {} units in {clusters} nearby clusters and {volunteers} \
             volunteers within {} m",
            plan.ring1_after_ms / 1000,
            added.len() - volunteers,
            plan.radius_m
        );
        ("ring1", detail)
    } else {
        let detail = format!(
            "nobody coming after {} s: alert is critical; {volunteers} more on-duty \
             volunteers of the zone",
            plan.ring2_after_ms / 1000
        );
        ("ring2", detail)
    }
}

/// A volunteer's position older than this counts as unknown.
pub const POSITION_STALE_MS: i64 = 10 * 60 * 1000;

/// The latitude and longitude half-widths of a box around the alert that holds every point
/// within `radius_m` (for the index; the exact distance is checked afterwards).
pub fn bounding_box(alert: &AlertSummary, radius_m: f64) -> (f64, f64) {
    let dlat = radius_m / 110_540.0;
    let dlon = radius_m / (111_320.0 * alert.lat.to_radians().cos().max(0.01));
    (dlat, dlon)
}

/// A unit near the alert: device, cluster, household label, lat, lon.
pub type UnitRow = (String, String, String, f64, f64);

/// The units within `radius_m` of the alert's household as ring-1 recipients, nearest first,
/// with their cluster.
pub fn nearby_units(
    alert: &AlertSummary,
    rows: Vec<UnitRow>,
    radius_m: f64,
    now_ms: i64,
) -> Vec<(Recipient, ClusterId)> {
    let mut near: Vec<(Recipient, ClusterId)> = rows
        .into_iter()
        .filter_map(|(device, cluster, label, lat, lon)| {
            let d = haversine_m(alert.lat, alert.lon, lat, lon);
            let cluster = ClusterId::parse(&cluster).ok()?;
            (d <= radius_m).then(|| {
                (
                    notified(
                        RecipientKind::Unit,
                        device,
                        label,
                        1,
                        Some(d.round()),
                        now_ms,
                    ),
                    cluster,
                )
            })
        })
        .collect();
    near.sort_by(|a, b| {
        a.0.distance_m
            .partial_cmp(&b.0.distance_m)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    near
}

/// An on-duty volunteer: name, display name, lat, lon, position time.
pub type VolunteerRow = (String, String, Option<f64>, Option<f64>, Option<i64>);

/// On-duty volunteers as ring recipients, nearest first (unknown or stale positions last);
/// with `within`, only those whose fresh position lies inside it.
pub fn volunteers(
    alert: &AlertSummary,
    rows: Vec<VolunteerRow>,
    within: Option<f64>,
    ring: u8,
    now_ms: i64,
) -> Vec<Recipient> {
    let mut out: Vec<Recipient> = rows
        .into_iter()
        .filter_map(|(name, display, lat, lon, at)| {
            let fresh = at.is_some_and(|at| now_ms - at <= POSITION_STALE_MS);
            let distance = match (lat, lon) {
                (Some(lat), Some(lon)) if fresh => {
                    Some(haversine_m(alert.lat, alert.lon, lat, lon).round())
                }
                _ => None,
            };
            if let Some(radius) = within {
                if !distance.is_some_and(|d| d <= radius) {
                    return None;
                }
            }
            let label = if display.is_empty() {
                name.clone()
            } else {
                display
            };
            Some(notified(
                RecipientKind::Volunteer,
                name,
                label,
                ring,
                distance,
                now_ms,
            ))
        })
        .collect();
    out.sort_by(|a, b| {
        let key = |r: &Recipient| r.distance_m.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b))
    });
    out
}

fn notified(
    kind: RecipientKind,
    who: String,
    label: String,
    ring: u8,
    distance_m: Option<f64>,
    now_ms: i64,
) -> Recipient {
    Recipient {
        kind,
        who,
        label,
        ring,
        state: RecipientState::Notified,
        distance_m,
        notified_at_ms: now_ms,
        updated_at_ms: now_ms,
        push: None,
        push_at_ms: None,
    }
}
