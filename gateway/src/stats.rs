//! The station's figures for a period (issue 15's statistics): how many alerts of each kind
//! and category, how many were cancelled, false alarms or escalated, and how long the first
//! delivery, the first "I'm coming" and the first on scene took (p50, p90, max). Pure
//! functions over what the store reads ([`AlertFigures`]): the same figures on both backends.
//!
//! Where alerts happened ([`places`]) is said by street, never by household: each alert
//! counts in the ~100 m grid cell its household falls in, and the cell's centre is what the
//! console's hot-spot layer draws.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, TimeZone, Timelike};
use chrono_tz::Tz;
use serde::Serialize;

use crate::store::history::{AlertFigures, PresenceFigures, VolunteerFigure};

/// How long one step took across the period's alerts that reached it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Durations {
    /// Alerts that reached the step.
    pub n: usize,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    pub max_ms: Option<i64>,
}

impl Durations {
    /// Percentiles by nearest rank (the value at or below which `p` % of them fall).
    fn of(mut took: Vec<i64>) -> Self {
        took.sort_unstable();
        let rank = |p: usize| {
            let n = took.len();
            (n > 0).then(|| took[(p * n).div_ceil(100).clamp(1, n) - 1])
        };
        Self {
            n: took.len(),
            p50_ms: rank(50),
            p90_ms: rank(90),
            max_ms: took.last().copied(),
        }
    }
}

/// What one volunteer did in the period: alerts they came to (said "coming" or were on
/// scene), how fast they said "coming" (median from the press), and patrol check-ins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VolunteerStats {
    pub volunteer: String,
    pub display_name: String,
    pub came: usize,
    pub on_scene: usize,
    pub coming_p50_ms: Option<i64>,
    pub checkins: i64,
}

/// Per volunteer, those who came most first (then by name); volunteers who neither came nor
/// checked in are left out.
fn volunteers(rows: &[VolunteerFigure]) -> Vec<VolunteerStats> {
    #[derive(Default)]
    struct Acc {
        display_name: String,
        came: BTreeSet<i64>,
        on_scene: BTreeSet<i64>,
        /// Per alert, the first "coming" after the press.
        coming: BTreeMap<i64, i64>,
        checkins: i64,
    }
    let mut by: BTreeMap<&str, Acc> = BTreeMap::new();
    for r in rows {
        let acc = by.entry(&r.volunteer).or_default();
        if acc.display_name.is_empty() {
            acc.display_name.clone_from(&r.display_name);
        }
        match r.action.as_str() {
            "coming" => {
                acc.came.insert(r.alert);
                let took = (r.at_ms - r.raised_at_ms).max(0);
                let first = acc.coming.entry(r.alert).or_insert(took);
                *first = (*first).min(took);
            }
            "on_scene" => {
                acc.came.insert(r.alert);
                acc.on_scene.insert(r.alert);
            }
            _ => acc.checkins += r.checkins,
        }
    }
    let mut out: Vec<VolunteerStats> = by
        .into_iter()
        .filter(|(_, a)| !a.came.is_empty() || a.checkins > 0)
        .map(|(name, a)| VolunteerStats {
            volunteer: name.to_owned(),
            display_name: a.display_name,
            came: a.came.len(),
            on_scene: a.on_scene.len(),
            coming_p50_ms: Durations::of(a.coming.into_values().collect()).p50_ms,
            checkins: a.checkins,
        })
        .collect();
    out.sort_by(|a, b| {
        b.came
            .cmp(&a.came)
            .then_with(|| a.volunteer.cmp(&b.volunteer))
    });
    out
}

/// What residents think: of the period's resolved alerts, how many households answered
/// "satisfied / not satisfied" (满意 / 不满意) on their unit, and how many were satisfied.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SatisfactionStats {
    /// Resolved alerts of the period, answered or not.
    pub resolved: usize,
    pub answered: usize,
    pub satisfied: usize,
    /// `satisfied / answered`, 0 to 1; `None` when nobody answered.
    pub rate: Option<f64>,
}

/// The figures of a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Statistics {
    /// Alerts raised in the period.
    pub alerts: usize,
    /// By kind (`help`, `medical`, `fire`, `intrusion`).
    pub by_kind: BTreeMap<String, usize>,
    /// Resolved alerts by the category the station gave them (`consult`, `help`, `dispute`,
    /// `crime`, `complaint`, `false_alarm`).
    pub by_category: BTreeMap<String, usize>,
    /// Still open at the moment of the answer.
    pub open: usize,
    /// Withdrawn by the presser within the cancel window.
    pub cancelled: usize,
    /// Resolved as a false alarm (误报).
    pub false_alarms: usize,
    /// Nobody came in time: ring 1 reached nearby clusters and volunteers; ring 2 the whole zone.
    pub escalated_ring1: usize,
    pub escalated_ring2: usize,
    /// From the press to the first neighbour's unit sounding, to the first "I'm coming", and
    /// to the first on scene.
    pub first_delivery: Durations,
    pub first_coming: Durations,
    pub first_on_scene: Durations,
    /// Which volunteers came, how often and how fast; their patrol check-ins.
    pub volunteers: Vec<VolunteerStats>,
    /// Where and when (hot spots): alerts by hour of the day (0–23) and by day of the week
    /// (Monday first) in the station's time zone, and by cluster, most first.
    pub by_hour: Vec<usize>,
    pub by_weekday: Vec<usize>,
    pub by_cluster: Vec<ClusterCount>,
    /// By place: the grid cells alerts happened in, most first ([`places`]).
    pub places: Vec<PlaceCount>,
    /// What the pressers' households answered once their alert was resolved.
    pub satisfaction: SatisfactionStats,
}

/// A street-level place's alerts in the period: the centre of a [`CELL_DEG`] grid cell
/// (about 110 m north–south, 90 m east–west in Beijing), not any household's position.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlaceCount {
    pub lat: f64,
    pub lon: f64,
    pub alerts: usize,
}

/// The hot spots' grid: a thousandth of a degree, a street's length of houses.
pub const CELL_DEG: f64 = 0.001;

/// The alerts counted per grid cell, most first (then south to north, west to east, so the
/// order is the same on every call). A position that is not a number counts nowhere.
pub fn places(alerts: &[AlertFigures]) -> Vec<PlaceCount> {
    let cell = |deg: f64| (deg / CELL_DEG).floor() as i64;
    let mut by: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for a in alerts
        .iter()
        .filter(|a| a.lat.is_finite() && a.lon.is_finite())
    {
        *by.entry((cell(a.lat), cell(a.lon))).or_default() += 1;
    }
    // The cell's centre, rounded to what the grid can say (no false precision).
    let centre = |i: i64| ((i as f64 + 0.5) * CELL_DEG * 10_000.0).round() / 10_000.0;
    let mut out: Vec<PlaceCount> = by
        .into_iter()
        .map(|((lat, lon), alerts)| PlaceCount {
            lat: centre(lat),
            lon: centre(lon),
            alerts,
        })
        .collect();
    // Stable: equal counts keep the cells' south-to-north order.
    out.sort_by_key(|p| std::cmp::Reverse(p.alerts));
    out
}

/// A cluster's alerts in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterCount {
    pub cluster: String,
    pub alerts: usize,
}

impl Statistics {
    /// `tz`: the station's time zone, for the hours and weekdays.
    pub fn of(alerts: &[AlertFigures], volunteer_rows: &[VolunteerFigure], tz: Tz) -> Self {
        let mut out = Self {
            alerts: alerts.len(),
            by_hour: vec![0; 24],
            by_weekday: vec![0; 7],
            ..Self::default()
        };
        let mut clusters: BTreeMap<&str, usize> = BTreeMap::new();
        let (mut delivery, mut coming, mut on_scene) = (Vec::new(), Vec::new(), Vec::new());
        for a in alerts {
            *out.by_kind.entry(a.kind.clone()).or_default() += 1;
            *clusters.entry(&a.cluster).or_default() += 1;
            if let Some(at) = tz.timestamp_millis_opt(a.raised_at_ms).single() {
                out.by_hour[at.hour() as usize] += 1;
                out.by_weekday[at.weekday().num_days_from_monday() as usize] += 1;
            }
            match a.state.as_str() {
                "cancelled" => out.cancelled += 1,
                "resolved" => out.satisfaction.resolved += 1,
                _ => out.open += 1,
            }
            if let Some(satisfied) = a.satisfied {
                out.satisfaction.answered += 1;
                out.satisfaction.satisfied += usize::from(satisfied);
            }
            if let Some(category) = &a.category {
                *out.by_category.entry(category.clone()).or_default() += 1;
                if category == "false_alarm" {
                    out.false_alarms += 1;
                }
            }
            if a.ring >= 1 {
                out.escalated_ring1 += 1;
            }
            if a.ring >= 2 {
                out.escalated_ring2 += 1;
            }
            let after = |at: Option<i64>| at.map(|t| (t - a.raised_at_ms).max(0));
            delivery.extend(after(a.first_delivered_at_ms));
            coming.extend(after(a.first_coming_at_ms));
            on_scene.extend(after(a.first_on_scene_at_ms));
        }
        let s = &mut out.satisfaction;
        s.rate = (s.answered > 0).then(|| s.satisfied as f64 / s.answered as f64);
        out.first_delivery = Durations::of(delivery);
        out.first_coming = Durations::of(coming);
        out.first_on_scene = Durations::of(on_scene);
        out.volunteers = volunteers(volunteer_rows);
        out.by_cluster = clusters
            .into_iter()
            .map(|(cluster, alerts)| ClusterCount {
                cluster: cluster.to_owned(),
                alerts,
            })
            .collect();
        out.by_cluster.sort_by(|a, b| {
            b.alerts
                .cmp(&a.alerts)
                .then_with(|| a.cluster.cmp(&b.cluster))
        });
        out.places = places(alerts);
        out
    }
}

/// A cluster's device coverage over a period: how many units it has, how many unit-minutes
/// the period held for them, how many of those a unit was offline (outage minutes), and the
/// share online (percent, one decimal).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterCoverage {
    pub cluster: String,
    pub cluster_name: String,
    pub units: usize,
    pub unit_minutes: i64,
    pub outage_minutes: i64,
    /// `None` for a period of no length (it has not begun yet).
    pub coverage_percent: Option<f64>,
}

/// Coverage and outage minutes per cluster over `[from_ms, until_ms)` (`until_ms`: the
/// period's end, or now if that is earlier: the future is not counted), least covered first.
/// A unit is offline from each `offline` change to the next `online`, and from the period's
/// start if it was offline or never seen before it; `late` (a heartbeat overdue, not yet
/// missed) still counts as online, as it is never stored.
pub fn coverage(p: &PresenceFigures, from_ms: i64, until_ms: i64) -> Vec<ClusterCoverage> {
    let span = (until_ms - from_ms).max(0);
    let mut steps: BTreeMap<&str, Vec<(i64, bool)>> = BTreeMap::new();
    for s in &p.steps {
        steps
            .entry(&s.device)
            .or_default()
            .push((s.at_ms.clamp(from_ms, from_ms + span), s.online));
    }
    // Per cluster: (name, units, offline ms).
    let mut by: BTreeMap<&str, (&str, usize, i64)> = BTreeMap::new();
    for u in &p.units {
        let (mut online, mut since, mut offline) = (u.online_before, from_ms, 0i64);
        for &(at, now_online) in steps.get(u.device.as_str()).into_iter().flatten() {
            if !online {
                offline += at - since;
            }
            (online, since) = (now_online, at);
        }
        if !online {
            offline += from_ms + span - since;
        }
        let c = by.entry(&u.cluster).or_insert((&u.cluster_name, 0, 0));
        c.1 += 1;
        c.2 += offline;
    }
    const MINUTE: i64 = 60_000;
    let mut out: Vec<ClusterCoverage> = by
        .into_iter()
        .map(|(cluster, (name, units, offline))| {
            let total = span * units as i64;
            ClusterCoverage {
                cluster: cluster.to_owned(),
                cluster_name: name.to_owned(),
                units,
                unit_minutes: total / MINUTE,
                outage_minutes: (offline + MINUTE / 2) / MINUTE,
                coverage_percent: (total > 0)
                    .then(|| ((total - offline) as f64 * 1000.0 / total as f64).round() / 10.0),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.coverage_percent
            .unwrap_or(100.0)
            .total_cmp(&b.coverage_percent.unwrap_or(100.0))
            .then_with(|| a.cluster.cmp(&b.cluster))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::{PresenceStep, UnitPresence};

    #[test]
    fn outage_minutes_run_from_offline_to_online_and_never_into_the_future() {
        let unit = |device: &str, cluster: &str, online_before: bool| UnitPresence {
            device: device.into(),
            cluster: cluster.into(),
            cluster_name: format!("{cluster} 组"),
            online_before,
        };
        let step = |device: &str, minute: i64, online: bool| PresenceStep {
            device: device.into(),
            at_ms: minute * 60_000,
            online,
        };
        let p = PresenceFigures {
            units: vec![
                // Online throughout.
                unit("a1", "a", true),
                // Offline from minute 10 to 40.
                unit("a2", "a", true),
                // Never seen: offline the whole period.
                unit("b1", "b", false),
                // Offline before, back at minute 30, gone again at 90 (until the end, 100).
                unit("c1", "c", false),
            ],
            steps: vec![
                step("a2", 10, false),
                step("a2", 40, true),
                step("c1", 30, true),
                step("c1", 90, false),
            ],
        };
        let got = coverage(&p, 0, 100 * 60_000);
        let row = |c: &str| got.iter().find(|r| r.cluster == c).cloned().unwrap();
        assert_eq!(
            (
                row("a").units,
                row("a").unit_minutes,
                row("a").outage_minutes
            ),
            (2, 200, 30)
        );
        assert_eq!(row("a").coverage_percent, Some(85.0));
        assert_eq!(row("a").cluster_name, "a 组");
        assert_eq!(
            (row("b").outage_minutes, row("b").coverage_percent),
            (100, Some(0.0))
        );
        assert_eq!(
            (row("c").outage_minutes, row("c").coverage_percent),
            (40, Some(60.0))
        );
        assert_eq!(
            got.iter().map(|r| r.cluster.as_str()).collect::<Vec<_>>(),
            ["b", "c", "a"],
            "least covered first"
        );
        // Cut at minute 50 (now, before the period ends): c1's second outage is not counted.
        let early = coverage(&p, 0, 50 * 60_000);
        let c = early.iter().find(|r| r.cluster == "c").unwrap();
        assert_eq!((c.unit_minutes, c.outage_minutes), (50, 30));
        // A period that has not begun counts nothing.
        assert!(coverage(&p, 0, -5)
            .iter()
            .all(|r| r.unit_minutes == 0 && r.coverage_percent.is_none()));
    }

    fn alert(kind: &str, state: &str, category: Option<&str>, ring: u32) -> AlertFigures {
        AlertFigures {
            cluster: format!("c-{ring}"),
            lat: 39.9561,
            lon: 116.4102,
            kind: kind.into(),
            state: state.into(),
            category: category.map(Into::into),
            ring,
            raised_at_ms: 1_000,
            first_delivered_at_ms: None,
            first_coming_at_ms: None,
            first_on_scene_at_ms: None,
            satisfied: None,
        }
    }

    #[test]
    fn counts_and_percentiles_by_nearest_rank() {
        let mut all = vec![
            alert("help", "resolved", Some("help"), 0),
            alert("help", "resolved", Some("false_alarm"), 1),
            alert("fire", "cancelled", None, 0),
            alert("medical", "notified", None, 2),
        ];
        let row = |volunteer: &str, action: &str, alert: i64, at_ms: i64, checkins: i64| {
            VolunteerFigure {
                volunteer: volunteer.into(),
                display_name: format!("{volunteer} name"),
                action: action.into(),
                alert,
                raised_at_ms: 1_000,
                at_ms,
                checkins,
            }
        };
        let answers = [
            row("li", "coming", 1, 31_000, 0),
            row("li", "coming", 1, 90_000, 0),
            row("li", "on_scene", 1, 200_000, 0),
            row("li", "coming", 2, 11_000, 0),
            row("zhao", "on_scene", 3, 50_000, 0),
            row("li", "", 0, 0, 2),
            row("zhao", "", 0, 0, 0),
            row("wang", "", 0, 0, 0),
        ];
        // 2026-12-05 (a Saturday) 23:30 UTC is Sunday 07:30 in Shanghai.
        all[3].raised_at_ms = 1_796_513_400_000;
        for a in &mut all[..3] {
            a.raised_at_ms = 1_796_468_400_000; // Saturday 11:00 UTC, 19:00 in Shanghai
        }
        for (a, took) in all.iter_mut().zip([100, 300, 200, 10_000]) {
            a.first_delivered_at_ms = Some(a.raised_at_ms + took);
        }
        all[0].first_coming_at_ms = Some(all[0].raised_at_ms + 60_000);
        all[0].satisfied = Some(true);
        all[1].satisfied = Some(false);
        let s = Statistics::of(&all, &answers, chrono_tz::Asia::Shanghai);
        let mut hours = vec![0; 24];
        (hours[19], hours[7]) = (3, 1);
        assert_eq!(s.by_hour, hours);
        assert_eq!(
            s.by_weekday,
            vec![0, 0, 0, 0, 0, 3, 1],
            "Saturday and Sunday"
        );
        assert_eq!(
            s.by_cluster,
            vec![
                ClusterCount {
                    cluster: "c-0".into(),
                    alerts: 2
                },
                ClusterCount {
                    cluster: "c-1".into(),
                    alerts: 1
                },
                ClusterCount {
                    cluster: "c-2".into(),
                    alerts: 1
                },
            ]
        );
        assert_eq!(
            s.volunteers,
            vec![
                VolunteerStats {
                    volunteer: "li".into(),
                    display_name: "li name".into(),
                    came: 2,
                    on_scene: 1,
                    coming_p50_ms: Some(10_000),
                    checkins: 2
                },
                VolunteerStats {
                    volunteer: "zhao".into(),
                    display_name: "zhao name".into(),
                    came: 1,
                    on_scene: 1,
                    coming_p50_ms: None,
                    checkins: 0
                },
            ],
            "wang neither came nor checked in"
        );
        assert_eq!(s.alerts, 4);
        assert_eq!(
            s.satisfaction,
            SatisfactionStats {
                resolved: 2,
                answered: 2,
                satisfied: 1,
                rate: Some(0.5)
            }
        );
        assert_eq!(s.by_kind["help"], 2);
        assert_eq!((s.by_kind["fire"], s.by_kind["medical"]), (1, 1));
        assert_eq!(s.by_category.get("help"), Some(&1));
        assert_eq!((s.cancelled, s.false_alarms, s.open), (1, 1, 1));
        assert_eq!((s.escalated_ring1, s.escalated_ring2), (2, 1));
        assert_eq!(
            s.first_delivery,
            Durations {
                n: 4,
                p50_ms: Some(200),
                p90_ms: Some(10_000),
                max_ms: Some(10_000)
            }
        );
        assert_eq!(s.first_coming.n, 1);
        assert_eq!(s.first_coming.p50_ms, Some(60_000));
        assert_eq!(
            s.first_on_scene,
            Durations::default(),
            "nobody on scene yet"
        );
        let none = Statistics::of(&[], &[], chrono_tz::UTC);
        assert_eq!((none.alerts, none.by_hour.iter().sum::<usize>()), (0, 0));
        assert!(none.places.is_empty());
        assert_eq!(
            s.places,
            vec![PlaceCount {
                lat: 39.9565,
                lon: 116.4105,
                alerts: 4
            }],
            "four alerts of one street"
        );
    }

    #[test]
    fn places_are_grid_cells_said_by_their_centre_most_first() {
        let at = |lat: f64, lon: f64| AlertFigures {
            lat,
            lon,
            ..alert("help", "resolved", None, 0)
        };
        let all = [
            // Two houses 40 m apart on one street: one cell.
            at(39.95612, 116.41021),
            at(39.95648, 116.41033),
            // The next street north, and a house across the road to the west.
            at(39.95712, 116.41021),
            at(39.95612, 116.40987),
            at(39.95648, 116.41033),
            // South of the equator and west of Greenwich the cells floor the same way.
            at(-33.86881, -70.64951),
            at(f64::NAN, 116.4),
        ];
        let got = places(&all);
        let place = |lat: f64, lon: f64, alerts: usize| PlaceCount { lat, lon, alerts };
        assert_eq!(
            got,
            vec![
                place(39.9565, 116.4105, 3),
                place(-33.8685, -70.6495, 1),
                place(39.9565, 116.4095, 1),
                place(39.9575, 116.4105, 1),
            ]
        );
        assert_eq!(
            got.iter().map(|p| p.alerts).sum::<usize>(),
            6,
            "a position that is no number counts nowhere"
        );
    }
}
