//! Device supervision and health: the [`SupervisionStore`] trait, its types, and the rules
//! both backends apply.
//!
//! Every piece of evidence (a heartbeat, an edge presence report, a deadline passing) is
//! applied in one write transaction that reads the device's stored state, moves it, appends
//! the change to the device's history (`device_events`), opens or closes the matching problem
//! (`device_problems`) and refreshes the cluster's coverage. Each backend keeps the three
//! sources (uplink workers, presence task, supervisor) from moving one device at once (see
//! its module), and the compare-and-set on the stored state makes a deadline fire once even
//! with several gateways on one database.
//!
//! Reports (what the station feed is told) come out only where a problem opens or closes, so
//! a device flapping online/offline is one problem with a flap count, reported once.

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::Serialize;

use super::StoreResult;
use crate::domain::{ClusterId, DeviceId, Heartbeat, HouseholdId, ZoneCode};

/// Offline this many times in one episode and the device is shown as flapping.
pub const FLAPPING_AT: u32 = 3;
/// A low battery counts as replaced only this many points above the threshold, so a level
/// wobbling around the threshold is one problem.
pub const BATTERY_HYSTERESIS: u8 = 5;
/// Signal moves smaller than this (dB) are not history: RSSI wobbles with every heartbeat.
pub const RSSI_STEP: i16 = 10;
/// Devices moved offline by one supervisor pass at most (the rest follow at once).
pub(crate) const DUE_BATCH: i64 = 2000;

/// How devices are supervised: one deployment's class of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisionPolicy {
    /// Devices send a heartbeat this often; a device silent longer is `late`.
    pub heartbeat_interval_ms: i64,
    /// Silent for the interval plus this, a device is `offline` (heartbeat missed), whatever
    /// its TCP session looks like.
    pub grace_ms: i64,
    /// A device back online ends its offline episode only after staying online this long:
    /// going offline again before then is the same episode (flapping), not a new report.
    pub settle_ms: i64,
    /// Battery percentage under which the battery is reported low.
    pub battery_low: u8,
    /// A cluster with fewer reachable households than this percentage is flagged.
    pub coverage_min_percent: u8,
}

impl Default for SupervisionPolicy {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 60_000,
            grace_ms: 30_000,
            settle_ms: 120_000,
            battery_low: 20,
            coverage_min_percent: 70,
        }
    }
}

impl SupervisionPolicy {
    /// Whether `reachable` of `households` is below the coverage threshold.
    pub fn below(&self, reachable: u32, households: u32) -> bool {
        households > 0 && reachable * 100 < u32::from(self.coverage_min_percent) * households
    }
}

/// A device's supervised state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    NeverSeen,
    Online,
    /// Online, but its heartbeat is overdue (derived when read, never stored).
    Late,
    Offline,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::NeverSeen => "never_seen",
            DeviceState::Online => "online",
            DeviceState::Late => "late",
            DeviceState::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "never_seen" => Some(DeviceState::NeverSeen),
            "online" => Some(DeviceState::Online),
            "late" => Some(DeviceState::Late),
            "offline" => Some(DeviceState::Offline),
            _ => None,
        }
    }
}

/// What the edge said about a device, already mapped to supervision's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceEvidence<'a> {
    /// The edge accepted a connection (the store already holds its session as the latest).
    Connected { session: u64 },
    /// A session ended; `reason` is the offline reason code. Ignored unless `session` is the
    /// device's latest.
    Disconnected { session: u64, reason: &'a str },
    /// A login with this device id was refused.
    Refused,
}

/// What a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceReportKind {
    /// An offline episode began.
    Offline,
    /// The episode ended: the device has been back online for the settle time.
    Recovered,
    LowBattery,
    BatteryOk,
    Tamper,
    TamperCleared,
}

/// One thing the station is told about a device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceReport {
    pub event: DeviceReportKind,
    pub device: DeviceId,
    pub household: HouseholdId,
    pub label: String,
    pub cluster: ClusterId,
    pub zone: ZoneCode,
    /// Offline: why (`keepalive_lost`, `heartbeat_missed`, …).
    pub reason: Option<String>,
    pub battery: Option<u8>,
    pub at_ms: i64,
}

/// A cluster's coverage crossed its threshold (down or back up).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageReport {
    pub cluster: ClusterId,
    pub zone: ZoneCode,
    pub name: String,
    pub reachable: u32,
    pub households: u32,
    pub below: bool,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Device(DeviceReport),
    Coverage(CoverageReport),
}

/// A device's health as the station lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceHealth {
    pub device: DeviceId,
    pub household: HouseholdId,
    pub label: String,
    pub cluster: ClusterId,
    pub zone: ZoneCode,
    pub state: DeviceState,
    /// Why offline.
    pub reason: Option<String>,
    pub since_ms: Option<i64>,
    /// The edge holds a session for it now.
    pub connected: bool,
    pub last_heartbeat_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    /// Online or late: when the next heartbeat is due, and when silence makes it offline.
    pub heartbeat_due_ms: Option<i64>,
    pub offline_at_ms: Option<i64>,
    pub battery: Option<u8>,
    pub battery_low: bool,
    pub tamper: bool,
    pub rssi: Option<i16>,
    pub firmware: Option<String>,
    /// Kinds of its open problems.
    pub problems: Vec<String>,
}

/// One change in a device's or cluster's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub at_ms: i64,
    pub kind: String,
    pub value: String,
    pub detail: String,
}

/// A device with its history and every problem it had.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceHealthDetail {
    #[serde(flatten)]
    pub health: DeviceHealth,
    pub history: Vec<HistoryEntry>,
    pub problems_history: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterHealth {
    pub cluster: ClusterId,
    pub zone: ZoneCode,
    pub name: String,
    pub households: u32,
    /// Households with a device online (or late) and not in an offline episode.
    pub reachable: u32,
    pub below: bool,
    pub leader: Option<String>,
}

/// Someone who should be told of a problem, and how they are told today.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notify {
    /// `station`, `cluster_leader` or `household`.
    pub role: &'static str,
    /// The zone code or household id.
    pub who: String,
    pub label: String,
    pub contacts: String,
    /// `feed` (the station's live feed) or `console` (listed here until resident push exists).
    pub channel: &'static str,
}

/// An entry of the "needs attention" list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// Device problems have an id; coverage problems are computed live and have none.
    pub id: Option<i64>,
    /// `offline`, `low_battery`, `tamper` or `coverage`.
    pub kind: String,
    pub device: Option<DeviceId>,
    pub household: Option<HouseholdId>,
    pub label: Option<String>,
    pub cluster: ClusterId,
    pub cluster_name: String,
    pub zone: ZoneCode,
    pub reason: String,
    pub opened_at_ms: Option<i64>,
    pub updated_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
    /// Offline: times the device went offline in this episode.
    pub flaps: u32,
    pub flapping: bool,
    /// Offline: the device is back and the episode closes then if it stays online.
    pub settle_at_ms: Option<i64>,
    /// Coverage: households reachable of all.
    pub reachable: Option<u32>,
    pub households: Option<u32>,
    pub notify: Vec<Notify>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    pub zones: Vec<ZoneCode>,
    pub state: Option<DeviceState>,
    pub cluster: Option<ClusterId>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct ProblemFilter {
    pub zones: Vec<ZoneCode>,
    /// Closed problems too (most recent first), not only open ones.
    pub include_closed: bool,
    pub limit: u32,
}

#[async_trait]
pub trait SupervisionStore: Send + Sync + 'static {
    /// A heartbeat: evidence of life (offline → online) and the device's health. Returns
    /// what the station must be told.
    async fn supervise_heartbeat(
        &self,
        device: &DeviceId,
        heartbeat: &Heartbeat,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<Vec<Report>>;
    /// An edge presence report, applied after [`super::Store::record_presence`].
    async fn supervise_presence(
        &self,
        device: &DeviceId,
        evidence: PresenceEvidence<'_>,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<Vec<Report>>;
    /// At start-up no session survives: devices that were online get a full interval and
    /// grace from now to come back before they count as offline, so a gateway restart is not
    /// reported as thousands of dead buttons. Returns how many.
    async fn supervise_restart(&self, now_ms: i64) -> StoreResult<u64>;
    /// Moves silent devices offline and ends settled episodes, as of `now_ms`.
    async fn supervise_due(
        &self,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<Vec<Report>>;
    /// The earliest moment [`SupervisionStore::supervise_due`] has something to do.
    async fn supervise_next_deadline(&self, policy: &SupervisionPolicy)
        -> StoreResult<Option<i64>>;
    async fn device_health_list(
        &self,
        filter: &DeviceFilter,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<Vec<DeviceHealth>>;
    async fn device_health(
        &self,
        device: &DeviceId,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<Option<DeviceHealthDetail>>;
    async fn cluster_health(
        &self,
        zones: &[ZoneCode],
        policy: &SupervisionPolicy,
    ) -> StoreResult<Vec<ClusterHealth>>;
    /// The "needs attention" list: device problems and clusters below coverage.
    async fn problems(
        &self,
        filter: &ProblemFilter,
        policy: &SupervisionPolicy,
    ) -> StoreResult<Vec<Problem>>;
}

/// A device as one transaction sees it (both backends).
#[derive(Debug, Clone)]
pub(crate) struct DeviceRow {
    pub(crate) device: DeviceId,
    pub(crate) household: HouseholdId,
    pub(crate) label: String,
    pub(crate) cluster: ClusterId,
    pub(crate) zone: ZoneCode,
    pub(crate) state: DeviceState,
    pub(crate) reason: Option<String>,
    pub(crate) battery: Option<u8>,
    pub(crate) tamper: Option<bool>,
    pub(crate) firmware: Option<String>,
    pub(crate) rssi_recorded: Option<i16>,
    /// The edge's view: a session is open, and which.
    pub(crate) online: bool,
    pub(crate) session: Option<i64>,
}

/// What one transaction changed: reports for the feed, clusters whose coverage may move.
#[derive(Default)]
pub(crate) struct Changes {
    pub(crate) reports: Vec<Report>,
    pub(crate) clusters: BTreeSet<ClusterId>,
}

impl Changes {
    pub(crate) fn report(&mut self, row: &DeviceRow, event: DeviceReportKind, now_ms: i64) {
        self.reports.push(Report::Device(DeviceReport {
            event,
            device: row.device.clone(),
            household: row.household.clone(),
            label: row.label.clone(),
            cluster: row.cluster.clone(),
            zone: row.zone.clone(),
            reason: row.reason.clone(),
            battery: row.battery,
            at_ms: now_ms,
        }));
    }
}
