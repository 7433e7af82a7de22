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

/// A heartbeat on the busy path: if its device is online and nothing the heartbeat reports
/// differs from what is stored (battery, tamper, firmware; signal within [`RSSI_STEP`]), only
/// the evidence times move. Each backend writes these as cheaply as it can (SQLite: many in one
/// statement); anything else takes the full path.
#[derive(Debug, Clone)]
pub struct FastHeartbeat {
    pub device: DeviceId,
    pub now_ms: i64,
    pub battery: Option<i64>,
    pub rssi: Option<i64>,
    pub tamper: bool,
    pub firmware: Option<String>,
}
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
}
// A refused login is no evidence at all: it is not the device's (see
// `crate::supervision::LoginRefusals`).

/// One edge presence report, for [`SupervisionStore::apply_presence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceReport {
    pub device: DeviceId,
    pub session: u64,
    /// The session is open (connected) or ended.
    pub online: bool,
    /// Why the session ended, as stored on the device's row; `None` while it is open.
    pub disconnect_reason: Option<String>,
    /// When the edge saw it (the row's `last_seen_ms`).
    pub seen_ms: i64,
    /// The offline reason code when an ended session is evidence; `None` for one that says
    /// nothing about the device (replaced by a new one, the gateway shutting down).
    pub offline: Option<&'static str>,
}

impl PresenceReport {
    /// What the report tells supervision, if anything.
    pub fn evidence(&self) -> Option<PresenceEvidence<'static>> {
        match (self.online, self.offline) {
            (true, _) => Some(PresenceEvidence::Connected {
                session: self.session,
            }),
            (false, Some(reason)) => Some(PresenceEvidence::Disconnected {
                session: self.session,
                reason,
            }),
            (false, None) => None,
        }
    }
}

/// What [`SupervisionStore::apply_presence`] gives back.
#[derive(Debug, Default)]
pub struct PresenceApplied {
    /// What the station must be told (devices offline, clusters' coverage).
    pub reports: Vec<Report>,
    /// For each report in turn, its device's zone; `None` when no such device is registered.
    pub zones: Vec<Option<ZoneCode>>,
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
    /// The device and where it is: what the station's feed names.
    pub device: DeviceId,
    pub household: HouseholdId,
    pub label: String,
    pub cluster: ClusterId,
    pub zone: ZoneCode,
    /// Offline: why (`keepalive_lost`, `heartbeat_missed`, …).
    pub reason: Option<String>,
    /// The level last reported (percent), for battery reports.
    pub battery: Option<u8>,
    pub at_ms: i64,
}

/// A cluster's coverage crossed its threshold (down or back up).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageReport {
    pub cluster: ClusterId,
    pub zone: ZoneCode,
    pub name: String,
    /// Households reachable now, of all the cluster's.
    pub reachable: u32,
    pub households: u32,
    /// Below the policy's minimum now (the crossing went down), or back above it.
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
    /// The device and where it is.
    pub device: DeviceId,
    pub household: HouseholdId,
    pub label: String,
    pub cluster: ClusterId,
    pub zone: ZoneCode,
    /// Its state as of the time asked (`late` derived then).
    pub state: DeviceState,
    /// Why offline.
    pub reason: Option<String>,
    /// When the stored state began.
    pub since_ms: Option<i64>,
    /// The edge holds a session for it now.
    pub connected: bool,
    pub last_heartbeat_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    /// Online or late: when the next heartbeat is due, and when silence makes it offline.
    pub heartbeat_due_ms: Option<i64>,
    pub offline_at_ms: Option<i64>,
    /// The last heartbeat's readings: battery percent (and whether a low-battery problem is
    /// open), tamper switch, signal (dBm) and firmware version.
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
    /// What changed: `online`, `offline`, `battery`, `tamper`, `firmware`, `rssi`, `coverage`.
    pub kind: String,
    /// The new state or value, and the reason or the value before.
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
    /// Below the policy's minimum.
    pub below: bool,
    /// The cluster leader's household label, if one is set.
    pub leader: Option<String>,
}

/// Someone who should be told of a problem, and how they are told today.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notify {
    /// `station`, `cluster_leader` or `household`.
    pub role: &'static str,
    /// The zone code or household id.
    pub who: String,
    /// Who that is and how to reach them in person (empty for the station).
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
    /// The device with the problem and its household (device problems only).
    pub device: Option<DeviceId>,
    pub household: Option<HouseholdId>,
    pub label: Option<String>,
    pub cluster: ClusterId,
    pub cluster_name: String,
    pub zone: ZoneCode,
    /// What the station reads: the offline reason, the battery level, the coverage count.
    pub reason: String,
    /// Opened, last changed, and closed (`None` while open). A coverage problem opened when
    /// the cluster last went below, as far as its log tells.
    pub opened_at_ms: Option<i64>,
    pub updated_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
    /// Offline: times the device went offline in this episode.
    pub flaps: u32,
    /// Offline often enough in this episode to be shown as flapping.
    pub flapping: bool,
    /// Offline: the device is back and the episode closes then if it stays online.
    pub settle_at_ms: Option<i64>,
    /// Coverage: households reachable of all.
    pub reachable: Option<u32>,
    pub households: Option<u32>,
    /// Who should be told, and how they are told today.
    pub notify: Vec<Notify>,
    /// The episode's story, newest first: the device's history since it opened, or the
    /// cluster's coverage log.
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    /// Only devices of these zones (an account sees its own zones only).
    pub zones: Vec<ZoneCode>,
    /// Only devices in this state (`late` as derived now), or of this cluster.
    pub state: Option<DeviceState>,
    pub cluster: Option<ClusterId>,
    /// At most this many, by device id.
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct ProblemFilter {
    /// Only problems of these zones.
    pub zones: Vec<ZoneCode>,
    /// Closed problems too (most recent first), not only open ones.
    pub include_closed: bool,
    /// At most this many device problems; clusters below coverage come on top.
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
    /// Heartbeats kept in memory and written together ([`crate::heartbeats`]): each moves its
    /// device's evidence if the device is online and nothing it reports differs from what is
    /// stored, as [`SupervisionStore::supervise_heartbeat`]'s busy path does. Returns the
    /// devices whose beat applied; the others need the full path.
    async fn heartbeats_unchanged(
        &self,
        beats: Vec<FastHeartbeat>,
    ) -> StoreResult<std::collections::HashSet<String>>;
    /// Edge presence reports in the order they came, in one write: each session is stored on
    /// its device's row (an ended one only if it is the device's latest) and, when it is
    /// evidence, applied to the device's supervision; the clusters touched are recounted once,
    /// at the end. Gives what the station must be told and, for
    /// each report in turn, its device's zone (`None`: no such device).
    async fn apply_presence(
        &self,
        reports: Vec<PresenceReport>,
        policy: &SupervisionPolicy,
        now_ms: i64,
    ) -> StoreResult<PresenceApplied>;
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
    /// The device and where it is, for reports.
    pub(crate) device: DeviceId,
    pub(crate) household: HouseholdId,
    pub(crate) label: String,
    pub(crate) cluster: ClusterId,
    pub(crate) zone: ZoneCode,
    /// The stored supervised state, and why offline.
    pub(crate) state: DeviceState,
    pub(crate) reason: Option<String>,
    /// The health readings as stored, for what a heartbeat changes.
    pub(crate) battery: Option<u8>,
    pub(crate) tamper: Option<bool>,
    pub(crate) firmware: Option<String>,
    /// The signal strength last written to the history (small moves are not history).
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

/// Whether an online device is late, as of `now_ms`: its state as the station sees it, when
/// its next heartbeat is due and when silence makes it offline. Only an online device has
/// deadlines; `late` is never stored, so heartbeat jitter costs no writes.
pub(crate) fn heartbeat_deadlines(
    stored: DeviceState,
    evidence_ms: Option<i64>,
    policy: &SupervisionPolicy,
    now_ms: i64,
) -> (DeviceState, Option<i64>, Option<i64>) {
    match (stored, evidence_ms) {
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
    }
}

/// The earliest moment the supervisor has something to do: the oldest evidence of an online
/// device running out, or an offline episode settling.
pub(crate) fn next_deadline(
    oldest_evidence_ms: Option<i64>,
    first_settle_ms: Option<i64>,
    policy: &SupervisionPolicy,
) -> Option<i64> {
    let silent = oldest_evidence_ms.map(|e| e + policy.heartbeat_interval_ms + policy.grace_ms);
    match (silent, first_settle_ms) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What an edge presence report does to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PresenceStep<'a> {
    /// Evidence of life (`why`).
    Online(&'static str),
    /// The device went offline for this reason.
    Offline(&'a str),
    /// Nothing: the report does not speak for the device.
    Ignore,
}

/// What `evidence` means for the device as stored.
pub(crate) fn presence_step<'a>(
    row: &DeviceRow,
    evidence: PresenceEvidence<'a>,
) -> PresenceStep<'a> {
    match evidence {
        PresenceEvidence::Connected { .. } => PresenceStep::Online("connected"),
        // Only the latest session speaks for the device: an older one ending late (replaced
        // by a reconnect) must not hide that the device is back.
        PresenceEvidence::Disconnected { session, reason }
            if !row.online && row.session == Some(session as i64) =>
        {
            PresenceStep::Offline(reason)
        }
        _ => PresenceStep::Ignore,
    }
}

/// What a heartbeat's readings change in a device's health, decided from the device as
/// stored and its open problems; the backend writes it in the heartbeat's transaction.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct HealthChanges {
    /// History entries to append, in this order: kind, new value, value before.
    pub(crate) events: Vec<(&'static str, String, String)>,
    /// Problems to open, in this order: kind, reason.
    pub(crate) open: Vec<(&'static str, String)>,
    /// Open problems to close, by id.
    pub(crate) close: Vec<i64>,
    /// What the station is told, in this order.
    pub(crate) reports: Vec<DeviceReportKind>,
    /// The signal strength the history holds once the events are written.
    pub(crate) rssi_recorded: Option<i16>,
}

/// The health part of a heartbeat: battery, tamper switch, firmware and signal, against the
/// device's stored values and its open `low_battery` and `tamper` problems (their ids).
pub(crate) fn health_changes(
    row: &DeviceRow,
    hb: &Heartbeat,
    open_low_battery: Option<i64>,
    open_tamper: Option<i64>,
    policy: &SupervisionPolicy,
) -> HealthChanges {
    let mut out = HealthChanges {
        rssi_recorded: row.rssi_recorded,
        ..HealthChanges::default()
    };
    if let Some(level) = hb.battery {
        if row.battery != Some(level) {
            let before = row.battery.map(|b| b.to_string()).unwrap_or_default();
            out.events.push(("battery", level.to_string(), before));
        }
        if level < policy.battery_low && open_low_battery.is_none() {
            out.open.push(("low_battery", format!("{level}%")));
            out.reports.push(DeviceReportKind::LowBattery);
        } else if let Some(id) = open_low_battery {
            // A level wobbling around the threshold is one problem, not many.
            if level >= policy.battery_low.saturating_add(BATTERY_HYSTERESIS) {
                out.close.push(id);
                out.reports.push(DeviceReportKind::BatteryOk);
            }
        }
    }
    if row.tamper != Some(hb.tamper) {
        // The first heartbeat's "not tampered" is no news; every other change is.
        if hb.tamper || row.tamper.is_some() {
            let value = if hb.tamper { "on" } else { "off" };
            out.events.push(("tamper", value.to_owned(), String::new()));
        }
        match (hb.tamper, open_tamper) {
            (true, None) => {
                out.open.push(("tamper", "tamper switch".to_owned()));
                out.reports.push(DeviceReportKind::Tamper);
            }
            (false, Some(id)) => {
                out.close.push(id);
                out.reports.push(DeviceReportKind::TamperCleared);
            }
            _ => {}
        }
    }
    if let Some(fw) = &hb.firmware {
        if row.firmware.as_deref() != Some(fw.as_str()) {
            let before = row.firmware.clone().unwrap_or_default();
            out.events.push(("firmware", fw.clone(), before));
        }
    }
    if let Some(rssi) = hb.rssi {
        let moved = out
            .rssi_recorded
            .is_none_or(|r| (i32::from(rssi) - i32::from(r)).abs() >= i32::from(RSSI_STEP));
        if moved {
            let before = out.rssi_recorded.map(|r| r.to_string()).unwrap_or_default();
            out.events.push(("rssi", rssi.to_string(), before));
            out.rssi_recorded = Some(rssi);
        }
    }
    out
}

/// A cluster's coverage as last stored: households reachable, and whether that was below.
pub(crate) type StoredCoverage = (i64, bool);

/// Whether a recount moves a cluster's stored coverage: `None` if nothing changed, else
/// whether it is below now and whether the station is told (it crossed the threshold). A
/// cluster's first count is stored without a word: it comes with its first unit connecting,
/// one of ten, and says nothing about a loss (a quiet start); the station's attention list
/// shows a cluster below coverage from the devices' states either way.
pub(crate) fn coverage_change(
    stored: Option<StoredCoverage>,
    reachable: u32,
    households: u32,
    policy: &SupervisionPolicy,
) -> Option<(bool, bool)> {
    let below = policy.below(reachable, households);
    match stored {
        Some((was_reachable, was_below))
            if was_reachable == i64::from(reachable) && was_below == below =>
        {
            None
        }
        Some((_, was_below)) => Some((below, was_below != below)),
        None => Some((below, false)),
    }
}

/// A cluster leader (十户长) as someone to tell: household id, label, contacts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leader {
    pub(crate) who: String,
    pub(crate) label: String,
    pub(crate) contacts: String,
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

fn leader_notify(leader: Leader) -> Notify {
    Notify {
        role: "cluster_leader",
        who: leader.who,
        label: leader.label,
        contacts: leader.contacts,
        channel: "console",
    }
}

/// Who should hear of a device problem: the station on its feed; the cluster leader (unless
/// the leader's own household has the problem) and the household in person, from the
/// console's list, until the resident push path exists.
pub(crate) fn problem_notify(
    zone: &ZoneCode,
    household: &HouseholdId,
    label: &str,
    contacts: String,
    leader: Option<Leader>,
) -> Vec<Notify> {
    let mut notify = vec![station_notify(zone)];
    notify.extend(
        leader
            .filter(|l| l.who != household.as_str())
            .map(leader_notify),
    );
    notify.push(Notify {
        role: "household",
        who: household.to_string(),
        label: label.to_owned(),
        contacts,
        channel: "console",
    });
    notify
}

/// One line of a cluster's coverage log: when, reachable, households, below.
pub(crate) type CoverageEntry = (i64, i64, i64, bool);

/// A cluster below coverage as a "needs attention" entry: computed now, opened when the
/// coverage last went below (`since`), its history the coverage log (newest first).
pub(crate) fn coverage_problem(
    cluster: ClusterHealth,
    since: Option<i64>,
    history: Vec<CoverageEntry>,
    leader: Option<Leader>,
    policy: &SupervisionPolicy,
) -> Problem {
    let mut notify = vec![station_notify(&cluster.zone)];
    notify.extend(leader.map(leader_notify));
    Problem {
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
                detail: if below { "below" } else { "ok" }.into(),
            })
            .collect(),
        cluster_name: cluster.name,
        cluster: cluster.cluster,
        zone: cluster.zone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: DeviceState) -> DeviceRow {
        DeviceRow {
            device: DeviceId::parse("d1").unwrap(),
            household: HouseholdId::parse("h1").unwrap(),
            label: "和平路1号".into(),
            cluster: ClusterId::parse("c1").unwrap(),
            zone: ZoneCode::parse("11010501").unwrap(),
            state,
            reason: None,
            battery: Some(50),
            tamper: Some(false),
            firmware: Some("1.0".into()),
            rssi_recorded: Some(-60),
            online: false,
            session: Some(2),
        }
    }

    #[test]
    fn only_the_latest_session_and_no_stranger_take_a_device_offline() {
        let offline = row(DeviceState::Offline);
        let old = PresenceEvidence::Disconnected {
            session: 1,
            reason: "replaced",
        };
        assert_eq!(presence_step(&offline, old), PresenceStep::Ignore);
        let latest = PresenceEvidence::Disconnected {
            session: 2,
            reason: "keepalive_lost",
        };
        assert_eq!(
            presence_step(&offline, latest),
            PresenceStep::Offline("keepalive_lost")
        );
    }

    #[test]
    fn a_low_battery_opens_once_and_closes_above_the_hysteresis() {
        let policy = SupervisionPolicy::default();
        let hb = |battery| Heartbeat {
            seq: 1,
            battery: Some(battery),
            tamper: false,
            rssi: Some(-62),
            firmware: None,
        };
        let low = health_changes(&row(DeviceState::Online), &hb(10), None, None, &policy);
        assert_eq!(low.open, [("low_battery", "10%".to_owned())]);
        assert_eq!(low.reports, [DeviceReportKind::LowBattery]);
        assert_eq!(low.events, [("battery", "10".into(), "50".into())]);
        assert_eq!(
            low.rssi_recorded,
            Some(-60),
            "a small signal move is not history"
        );
        let wobble = health_changes(&row(DeviceState::Online), &hb(22), Some(7), None, &policy);
        assert!(wobble.close.is_empty() && wobble.reports.is_empty());
        let replaced = health_changes(&row(DeviceState::Online), &hb(25), Some(7), None, &policy);
        assert_eq!(replaced.close, [7]);
        assert_eq!(replaced.reports, [DeviceReportKind::BatteryOk]);
    }

    #[test]
    fn coverage_is_reported_when_it_crosses_the_threshold() {
        let policy = SupervisionPolicy::default();
        assert_eq!(coverage_change(Some((8, false)), 8, 10, &policy), None);
        assert_eq!(
            coverage_change(Some((8, false)), 7, 10, &policy),
            Some((false, false))
        );
        assert_eq!(
            coverage_change(Some((7, false)), 6, 10, &policy),
            Some((true, true))
        );
        assert_eq!(coverage_change(None, 10, 10, &policy), Some((false, false)));
        // The first count is stored quietly, below or not: it comes with the first unit.
        assert_eq!(coverage_change(None, 1, 10, &policy), Some((true, false)));
        assert_eq!(
            coverage_change(Some((1, true)), 7, 10, &policy),
            Some((false, true))
        );
    }
}
