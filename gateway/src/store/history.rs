//! What the station looks back on: closed alerts searched by time, kind, category, cluster,
//! household and words of the household's label or address, and one device's presence and
//! battery over a time window. The [`HistoryStore`] trait and its types, free of sqlx.
//!
//! Both read what the live paths already write: alerts keep their state, category and times
//! for good, and supervision appends every presence change and every new battery level to the
//! device's history (`device_events`) as it happens. Nothing here adds a write.

use async_trait::async_trait;
use serde::Serialize;

use super::{AlertSummary, StoreResult};
use crate::domain::{AlertId, ClusterId, DeviceId, HouseholdId, PressKind, ZoneCode};
use crate::lifecycle::Category;

/// Which closed alerts to list, newest first (by when they were raised).
#[derive(Debug, Clone, Default)]
pub struct AlertHistoryFilter {
    /// Only alerts of these zones (an operator sees its own zones only); none: nothing.
    pub zones: Vec<ZoneCode>,
    /// Raised at or after this moment, and before that one (unix ms).
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub kind: Option<PressKind>,
    /// Only alerts resolved with this category (so never a cancelled one).
    pub category: Option<Category>,
    /// Only resolved, or only cancelled, alerts; both when `None`.
    pub cancelled: Option<bool>,
    pub cluster: Option<ClusterId>,
    pub household: Option<HouseholdId>,
    /// Words the household's label or address contains (as typed; matched without regard
    /// to case).
    pub text: Option<String>,
    /// Only alerts after this one in the order listed: (raised at, id) of the last one seen.
    pub after: Option<(i64, AlertId)>,
    /// At most this many.
    pub limit: u32,
}

/// A closed alert as the history lists it: the alert and its cluster's name.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClosedAlert {
    #[serde(flatten)]
    pub alert: AlertSummary,
    pub cluster_name: String,
}

/// A change of a device's presence: it came online (and what showed it alive: `connected`,
/// `heartbeat`) or went offline (and why: `keepalive_lost`, `heartbeat_missed`, …). `late`
/// is never stored (it is an online device whose heartbeat is overdue, derived when read), so
/// it shows only as the device's state now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PresenceChange {
    pub at_ms: i64,
    /// `online` or `offline`.
    pub state: String,
    pub reason: String,
}

/// A battery level as a heartbeat reported it, kept when it differs from the one before.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BatteryReading {
    pub at_ms: i64,
    /// Percent.
    pub level: u8,
}

/// A device's presence and battery within a window, each oldest first, with what was true
/// just before the window opened (so a chart or timeline starts from a known value).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DeviceTimeline {
    pub presence_before: Option<PresenceChange>,
    pub presence: Vec<PresenceChange>,
    pub battery_before: Option<BatteryReading>,
    pub battery: Vec<BatteryReading>,
    /// More changes happened in the window than were returned (the newest are kept).
    pub truncated: bool,
}

/// One alert as the statistics count it ([`crate::stats`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertFigures {
    pub cluster: String,
    /// Where its household is (WGS-84): the hot spots count it in that street's grid cell,
    /// never by the household itself.
    pub lat: f64,
    pub lon: f64,
    pub kind: String,
    pub state: String,
    /// The category it was resolved with.
    pub category: Option<String>,
    /// The furthest ring it reached (0: its own cluster and the station only).
    pub ring: u32,
    pub raised_at_ms: i64,
    pub first_delivered_at_ms: Option<i64>,
    pub first_coming_at_ms: Option<i64>,
    pub first_on_scene_at_ms: Option<i64>,
    /// The household's answer once it was resolved: satisfied or not; `None` unanswered.
    pub satisfied: Option<bool>,
}

/// A volunteer's answer to an alert of the period (`coming` or `on_scene`), or a volunteer of
/// the zones with no answer (`action` empty) but check-ins: what the statistics say of each.
#[derive(Debug, Clone, PartialEq)]
pub struct VolunteerFigure {
    pub volunteer: String,
    pub display_name: String,
    /// `coming`, `on_scene`, or '' for a row that only carries check-ins.
    pub action: String,
    pub alert: i64,
    pub raised_at_ms: i64,
    pub at_ms: i64,
    /// Patrol check-ins in the period (on the check-in rows).
    pub checkins: i64,
}

/// Which alerts the statistics count: those raised in `[from_ms, to_ms)` in these zones (an
/// operator's own), of one cluster if given.
#[derive(Debug, Clone)]
pub struct FiguresFilter {
    pub zones: Vec<ZoneCode>,
    pub from_ms: i64,
    pub to_ms: i64,
    pub cluster: Option<ClusterId>,
}

/// A unit (device) of the clusters the statistics cover, and what its presence was as the
/// period opened: `online` if its last presence change before the period was `online`;
/// `false` also for a unit never heard from (it protects nobody).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitPresence {
    pub device: String,
    pub cluster: String,
    pub cluster_name: String,
    pub online_before: bool,
}

/// A unit's presence change inside the period.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceStep {
    pub device: String,
    pub at_ms: i64,
    pub online: bool,
}

/// What device coverage and outage minutes are computed from ([`crate::stats::coverage`]):
/// every unit of the filter's clusters, and their presence changes in the period, each unit's
/// in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresenceFigures {
    pub units: Vec<UnitPresence>,
    pub steps: Vec<PresenceStep>,
}

#[async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// Every unit of the filter's zones (and cluster) with its presence as the period opened,
    /// and the presence changes in `[from_ms, to_ms)`, read in one snapshot.
    async fn presence_figures(&self, filter: &FiguresFilter) -> StoreResult<PresenceFigures>;
    /// Every alert raised in the filter's window and zones, as the statistics count them.
    async fn alert_figures(&self, filter: &FiguresFilter) -> StoreResult<Vec<AlertFigures>>;
    /// Volunteers' answers (`coming`, `on_scene`) to those alerts, and the patrol check-ins
    /// in the window of the zones' volunteers (one row each, `action` empty).
    async fn volunteer_figures(&self, filter: &FiguresFilter) -> StoreResult<Vec<VolunteerFigure>>;
    /// Closed (resolved or cancelled) alerts matching `filter`, newest first, at most
    /// `filter.limit`.
    async fn alert_history(&self, filter: &AlertHistoryFilter) -> StoreResult<Vec<ClosedAlert>>;
    /// The device's presence changes and battery readings at `from_ms` or later and before
    /// `to_ms`, at most `limit` of each (the newest).
    async fn device_timeline(
        &self,
        device: &DeviceId,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> StoreResult<DeviceTimeline>;
}

/// The `LIKE` pattern that finds `text` anywhere, lower-cased, with `\` escaping the pattern's
/// own wildcards so that `50%` or `a_b` are found as typed.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The filter's time window and cursor as one index range on (raised at, id): raised at
/// `lo` or later and at `hi` or earlier, and at `hi` itself only with an id below `hi_id`.
/// Bounds always bound (never NULL), so the database walks an index range.
pub(crate) fn raised_range(f: &AlertHistoryFilter) -> (i64, i64, i64) {
    let lo = f.from_ms.unwrap_or(i64::MIN);
    let hi = f.to_ms.map_or(i64::MAX, |to| to.saturating_sub(1));
    match f.after {
        Some((at, id)) if at <= hi => (lo, at, id.0),
        _ => (lo, hi, i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::{contains_pattern, raised_range, AlertHistoryFilter};
    use crate::domain::AlertId;

    #[test]
    fn the_cursor_narrows_the_window_it_falls_in() {
        let mut f = AlertHistoryFilter {
            from_ms: Some(100),
            to_ms: Some(200),
            ..AlertHistoryFilter::default()
        };
        assert_eq!(raised_range(&f), (100, 199, i64::MAX));
        f.after = Some((150, AlertId(7)));
        assert_eq!(raised_range(&f), (100, 150, 7));
        // A cursor from a wider window than the one asked now: the window decides.
        f.after = Some((500, AlertId(7)));
        assert_eq!(raised_range(&f), (100, 199, i64::MAX));
        assert_eq!(
            raised_range(&AlertHistoryFilter::default()),
            (i64::MIN, i64::MAX, i64::MAX)
        );
    }

    #[test]
    fn wildcards_are_found_as_typed() {
        assert_eq!(contains_pattern("和平路"), "%和平路%");
        assert_eq!(contains_pattern("50%_A\\"), "%50\\%\\_a\\\\%");
    }
}
