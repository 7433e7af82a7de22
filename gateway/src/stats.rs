//! The station's figures for a period (issue 15's statistics): how many alerts of each kind
//! and category, how many were cancelled, false alarms or escalated, and how long the first
//! delivery, the first "I'm coming" and the first on scene took (p50, p90, max). Pure
//! functions over what the store reads ([`AlertFigures`]): the same figures on both backends.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, TimeZone, Timelike};
use chrono_tz::Tz;
use serde::Serialize;

use crate::store::history::{AlertFigures, VolunteerFigure};

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
    /// What the pressers' households answered once their alert was resolved.
    pub satisfaction: SatisfactionStats,
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
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: &str, state: &str, category: Option<&str>, ring: u32) -> AlertFigures {
        AlertFigures {
            cluster: format!("c-{ring}"),
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
    }
}
