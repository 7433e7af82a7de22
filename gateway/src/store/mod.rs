//! Storage behind a trait: the registry (zones, clusters, households, devices) and the alerts.
//!
//! The HTTP and fan-out code see only [`Store`] and the plain types here, never sqlx. Each
//! backend lives in its own folder with its own `migrations/` folder; [`open`] picks one from
//! the database URL once at start-up: `sqlite:PATH` ([`sqlite`], the embedded default) or
//! `postgres://…` / `postgresql://…` ([`postgres`], for several gateways on one database;
//! its module header says how the two backends differ).
//!
//! # Layout
//! - this file: the [`Store`] trait (registry, press path, alerts, presence) and its types;
//! - [`accounts`], [`history`], [`map`], [`notices`], [`push`], [`sia`], [`supervision`]: the other store traits,
//!   each with its types and the rules both backends apply, free of sqlx;
//! - `alerts`, [`rings`], `rows`: the decisions of the alert path, of escalation rings, and
//!   of what a stored row means, as plain functions both backends call;
//! - `sql/`: every trait implemented once in SQL both databases accept, compiled into each
//!   backend with its own types and the few phrases that differ (its header says how);
//! - [`sqlite`] and [`postgres`]: one folder per backend: connections, migrations, how writes
//!   are committed (SQLite's group-commit writer, PostgreSQL's lanes and row locks).

pub mod accounts;
mod alerts;
pub mod history;
pub mod map;
pub mod notices;
pub mod postgres;
pub mod push;
mod queue;
pub mod rings;
mod rows;
pub mod sia;
pub mod sqlite;
mod sqlx_error;
pub mod supervision;

pub use accounts::AccountStore;
pub use history::HistoryStore;
pub use map::MapStore;
pub use notices::NoticeStore;
pub use push::PushStore;
pub use sia::SiaStore;
pub use supervision::SupervisionStore;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::domain::{
    AlertId, AlertState, BootId, ClusterId, DeviceId, HouseholdId, Press, ZoneCode,
};
use crate::lifecycle::{Action, RecipientState};

impl From<crate::lifecycle::Refusal> for StoreError {
    fn from(r: crate::lifecycle::Refusal) -> Self {
        StoreError::Refused(r.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same key exists (maps to 409 in the API).
    #[error("{0} already exists")]
    Conflict(String),
    /// A referenced row is missing (maps to 404/422).
    #[error("{0} not found")]
    NotFound(String),
    /// The value breaks a rule of the schema (maps to 422).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The alert's state does not allow the action (maps to 409 with this reason).
    #[error("{0}")]
    Refused(String),
    /// The actor may not do this to this alert, whatever its state (maps to 403 with this
    /// reason), e.g. a volunteer nobody asked marking an alert "on scene".
    #[error("{0}")]
    NotAllowed(String),
    /// The database failed; details are logged, not shown to clients.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A stored value that no longer parses as its domain type: the database was changed behind
/// the gateway's back, so it is a backend failure, not the caller's.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("stored {what} does not parse: {e}").into())
}

/// A cluster (十户联防: about ten neighbouring households) to register.
#[derive(Debug, Clone)]
pub struct NewCluster {
    pub id: ClusterId,
    /// The police station's zone it belongs to.
    pub zone: ZoneCode,
    pub name: String,
    /// The cluster leader's (十户长) household, once registered.
    pub leader_household: Option<HouseholdId>,
}

/// A household to register.
#[derive(Debug, Clone)]
pub struct NewHousehold {
    pub id: HouseholdId,
    pub cluster: ClusterId,
    /// What neighbours' units show ("和平路12号").
    pub label: String,
    /// The full address, for responders.
    pub address: String,
    /// Where ring 1 measures distances from (degrees).
    pub lat: f64,
    pub lon: f64,
    /// Residents' notes for responders: someone elderly living alone, medical needs.
    pub notes: String,
    /// Who to call, as free text ("name phone; name phone").
    pub contacts: String,
}

/// What the edge needs to let a device in.
#[derive(Debug, Clone)]
pub struct DeviceCredential {
    /// Hex SHA-256 of the device's random secret.
    pub secret_hash: String,
    /// A disabled device is refused at login.
    pub enabled: bool,
    /// The cluster whose topics the device may use.
    pub cluster: ClusterId,
    /// The cluster's zone: whose station hears of the device.
    pub zone: ZoneCode,
}

/// An alert as listed on the station feed and in `GET /api/alerts`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertSummary {
    pub id: AlertId,
    /// The unit that was pressed, and the press's sequence number on it (presses are
    /// deduplicated on the two).
    pub device: DeviceId,
    pub seq: u64,
    /// The presser's household, as registered.
    pub household: HouseholdId,
    /// What neighbours' units show ("和平路12号").
    pub label: String,
    pub address: String,
    pub lat: f64,
    pub lon: f64,
    pub cluster: ClusterId,
    pub zone: ZoneCode,
    /// The press's kind (`help`, `medical`, …).
    pub kind: String,
    pub state: AlertState,
    /// When the press was stored, when its fan-out went out (`None`: still owed), and when
    /// anything last changed.
    pub raised_at_ms: i64,
    pub notified_at_ms: Option<i64>,
    pub updated_at_ms: i64,
    /// Recipients coming or on scene.
    pub responders: u32,
    /// The escalation ring reached: 0 at once, 1 and 2 after silence.
    pub ring: u8,
    /// Ring 2 fired: the station sees the alert as critical.
    pub critical: bool,
    /// When the next ring fires if nobody is coming.
    pub next_ring_at_ms: Option<i64>,
    /// Resolved: how the station classified it (警情公示), and its note.
    pub category: Option<String>,
    pub resolution_note: Option<String>,
    /// The response times the station reports on: taken by the station, first unit
    /// sounded, first neighbour coming, first one there, and resolved or cancelled.
    pub acknowledged_at_ms: Option<i64>,
    pub first_delivered_at_ms: Option<i64>,
    pub first_coming_at_ms: Option<i64>,
    pub first_on_scene_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
    /// The boot id of the press that raised it (a later `down/ack` carries it with `seq`).
    pub boot: Option<BootId>,
    /// Presses the household made on it (1: the one that raised it; more were merged into
    /// it), and when the latest was stored.
    pub presses: u32,
    pub last_press_at_ms: i64,
    /// When the station made it public (its CAP messages in the public feed); `None`: not
    /// public.
    pub public_at_ms: Option<i64>,
}

impl AlertSummary {
    /// The press that raised it, as a later `down/ack` names it: (seq, boot).
    pub fn first_press(&self) -> (u64, Option<&BootId>) {
        (self.seq, self.boot.as_ref())
    }

    /// Still open `stale_after_ms` after it was raised: shown to the station as stale (units
    /// no longer hear it again when they come back; see `Ingest::catch_up`).
    pub fn is_stale(&self, now_ms: i64, stale_after_ms: i64) -> bool {
        self.state.is_open() && now_ms - self.raised_at_ms > stale_after_ms
    }
}

/// Who receives an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientKind {
    /// A household's in-home unit (`who` is the device id).
    Unit,
    /// A patrol volunteer (`who` is the account name).
    Volunteer,
    /// The police station of the zone (`who` is the zone code).
    Station,
}

impl RecipientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientKind::Unit => "unit",
            RecipientKind::Volunteer => "volunteer",
            RecipientKind::Station => "station",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "unit" => Some(RecipientKind::Unit),
            "volunteer" => Some(RecipientKind::Volunteer),
            "station" => Some(RecipientKind::Station),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Recipient {
    pub kind: RecipientKind,
    /// The device id, account name or zone code, by `kind`.
    pub who: String,
    /// What people see: the household's label, the volunteer's name, the zone.
    pub label: String,
    /// The ring that reached them (0: at once).
    pub ring: u8,
    pub state: RecipientState,
    /// From the presser's household, when their position was known; ring 0 has none.
    pub distance_m: Option<f64>,
    /// When they were told, and when their state last moved.
    pub notified_at_ms: i64,
    pub updated_at_ms: i64,
    /// Volunteers: what became of the Web Push to their phones (`accepted`,
    /// `no_subscription`, `expired`, `failed: …`), and when; `None` until a send ended.
    pub push: Option<String>,
    pub push_at_ms: Option<i64>,
}

/// Escalation settings the store needs to schedule and fire rings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RingPlan {
    /// Ring 1 fires this long after the press if nobody is coming.
    pub ring1_after_ms: i64,
    /// Ring 2 fires this long after the press if nobody is coming.
    pub ring2_after_ms: i64,
    /// Ring 1 reaches households and volunteers within this distance of the presser.
    pub radius_m: f64,
}

impl Default for RingPlan {
    fn default() -> Self {
        Self {
            ring1_after_ms: 30_000,
            ring2_after_ms: 90_000,
            radius_m: 800.0,
        }
    }
}

/// What firing a ring did.
#[derive(Debug, Clone, PartialEq)]
pub struct RingFired {
    pub alert: AlertSummary,
    pub ring: u8,
    /// Clusters whose units are told now (publish the cluster alert to each).
    pub clusters: Vec<ClusterId>,
    /// Recipients added by this ring, nearest first.
    pub added: Vec<Recipient>,
}

/// The result of an action on an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub alert: AlertSummary,
    /// The alert's state changed.
    pub state_changed: bool,
    /// The recipient's state changed (or the recipient was added).
    pub recipient_changed: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimelineEvent {
    pub at_ms: i64,
    /// Who: `device:…`, `operator:…`, `volunteer:…` or `gateway`.
    pub actor: String,
    /// What: `raised`, `notified`, a recipient's state, `ring1`, `resolved`, …
    pub action: String,
    pub detail: String,
}

/// One alert with what a responder needs to know and its whole timeline.
#[derive(Debug, Clone, Serialize)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertSummary,
    /// The presser's household's notes and contacts, for whoever goes there.
    pub notes: String,
    pub contacts: String,
    pub cluster_name: String,
    /// The cluster leader's household label (十户长), if one is set.
    pub leader: Option<String>,
    /// Everyone told, by ring and distance; and everything that happened, oldest first.
    pub recipients: Vec<Recipient>,
    pub timeline: Vec<TimelineEvent>,
    /// The household's answer once the alert was resolved (满意 / 不满意), if it gave one.
    pub satisfaction: Option<notices::Satisfaction>,
}

/// How presses are told apart and grouped (`--press-repeat-window`, `--press-merge-window`).
///
/// A press is a repeat of an earlier one with the same (device, boot, seq). A unit that sends
/// a boot id (random at each power-up) is always told apart that way. A unit that sends none
/// has only its `seq`, which starts again when its counter does (a battery change, a
/// replacement): its press repeats an earlier one only within `repeat_window_ms` of it (units
/// repeat within seconds while they wait for their ack); later, the same seq is a new press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PressRules {
    /// How long a press without a boot id may be a repeat of an earlier one with its seq.
    pub repeat_window_ms: i64,
    /// A new press joins its household's open alert of the same kind whose latest press is
    /// at most this old, instead of raising another (0: never).
    pub merge_window_ms: i64,
}

impl Default for PressRules {
    /// Ten minutes each: a unit waiting for its ack repeats every 10 s, so a press ten
    /// minutes old with the same seq is another press; and a household pressing again within
    /// ten minutes of its last press of the same kind, alert still open, is the same trouble.
    fn default() -> Self {
        Self {
            repeat_window_ms: 600_000,
            merge_window_ms: 600_000,
        }
    }
}

/// The result of storing a press.
#[derive(Debug, Clone, PartialEq)]
pub enum PressOutcome {
    /// A new alert, durable now.
    Raised(AlertSummary),
    /// A new press of a household whose open alert of that kind was pressed within the merge
    /// window: counted on that alert, durable now.
    Merged(AlertSummary),
    /// A repeat of a press seen before ([`PressRules`]): the alert it made, joined or
    /// cancelled.
    Duplicate(AlertSummary),
    /// No such device in the registry.
    UnknownDevice,
}

/// The result of a `cancel` press.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    Cancelled(AlertSummary),
    /// The same cancel (device, seq) was seen before.
    Duplicate(AlertSummary),
    /// The device's latest open alert is older than the cancel window: it stays open.
    TooLate(AlertSummary),
    /// The device has no open alert to cancel: its latest alert (closed), which the unit is
    /// answered with so that it stops repeating the cancel, or none if it never raised one.
    NothingOpen(Option<AlertSummary>),
    UnknownDevice,
}

/// A page of a list, newest first: what happened in `[from_ms, to_ms)`, older than `after`
/// (the time and id of the last item of the page before), at most `limit`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ListWindow {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub after: Option<(i64, i64)>,
    pub limit: u32,
}

/// Which alerts to list.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Leave out resolved and cancelled alerts.
    pub open_only: bool,
    /// Only alerts of these zones (an account sees its own zones only).
    pub zones: Vec<ZoneCode>,
    /// Which page: raised in a time range, older than a cursor (raised at, id), at most so
    /// many, newest first.
    pub window: ListWindow,
}

/// Registry sizes, for `/healthz` and the demo's start-up line.
/// A device as `tenwatch admin list-devices` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceListing {
    pub id: DeviceId,
    pub household: HouseholdId,
    /// What neighbours' units show for the household.
    pub label: String,
    pub cluster: ClusterId,
    pub zone: ZoneCode,
    pub enabled: bool,
    /// Its supervision state (`online`, `offline`, `never_seen`, …).
    pub state: String,
    pub last_seen_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RegistryCounts {
    /// Rows of each registry table.
    pub zones: u64,
    pub clusters: u64,
    pub households: u64,
    pub devices: u64,
    /// Devices the edge holds a session for now.
    pub devices_online: u64,
}

/// A write about an alert, ordered from the moment of the call: the backend queues it before
/// the call returns, so the writes about one alert commit in the order of the calls even when
/// a caller hands the future to another task instead of awaiting it at once. The future
/// gives the result once the write is committed. (Only when a backend's queue is full, which
/// takes thousands of waiting writes, is the write queued when the future is first polled,
/// and its order may then interleave with other callers'.)
pub type Ordered<T> = futures::future::BoxFuture<'static, StoreResult<T>>;

/// What a caller that only reacts to a write's result (a feed event, a log line) does with it,
/// run where the result is known, without a task of its own: a write of the press path, nine
/// receipts and a fan-out's record a press, is answered by the writer's own thread. It must be
/// short and must not block. Queued like an [`Ordered`] write, before the call returns.
pub type Then<T> = Box<dyn FnOnce(StoreResult<T>) + Send>;

/// Runs `then` on the result of `queued` in a task of its own: for a backend whose writes are
/// answered on tokio's threads anyway.
pub(crate) fn spawn_then<T: Send + 'static>(queued: Ordered<T>, then: Then<T>) {
    tokio::spawn(async move { then(queued.await) });
}

#[async_trait]
pub trait Store:
    AccountStore
    + HistoryStore
    + MapStore
    + NoticeStore
    + PushStore
    + SiaStore
    + SupervisionStore
    + Send
    + Sync
    + 'static
{
    // --- registry ---
    async fn add_zone(&self, code: &ZoneCode, name: &str) -> StoreResult<()>;
    async fn add_cluster(&self, cluster: &NewCluster) -> StoreResult<()>;
    async fn add_household(&self, household: &NewHousehold) -> StoreResult<()>;
    async fn add_device(
        &self,
        device: &DeviceId,
        household: &HouseholdId,
        secret_hash: &str,
    ) -> StoreResult<()>;
    /// Adds many households with one device each in one transaction (seeding and CSV import).
    async fn add_households_with_devices(
        &self,
        rows: &[(NewHousehold, DeviceId, String)],
    ) -> StoreResult<()>;
    async fn set_cluster_leader(
        &self,
        cluster: &ClusterId,
        household: &HouseholdId,
    ) -> StoreResult<()>;
    async fn device_credential(&self, device: &DeviceId) -> StoreResult<Option<DeviceCredential>>;
    async fn counts(&self) -> StoreResult<RegistryCounts>;
    /// The registry's devices, of one zone or all, by id (`tenwatch admin list-devices`).
    async fn list_devices(&self, zone: Option<&ZoneCode>) -> StoreResult<Vec<DeviceListing>>;
    /// Turns a device's logins on or off (a disabled one is refused at its next login);
    /// false if there is no such device.
    async fn set_device_enabled(&self, device: &DeviceId, enabled: bool) -> StoreResult<bool>;
    /// Gives a device a new secret (its hash; the old one stops working at once); false if
    /// there is no such device.
    async fn set_device_secret(&self, device: &DeviceId, secret_hash: &str) -> StoreResult<bool>;
    /// Removes a device that never raised or received an alert (a mistake, a unit that never
    /// went up); one with a history is refused, naming it: disable it instead. False if there
    /// is no such device.
    async fn delete_device(&self, device: &DeviceId) -> StoreResult<bool>;

    // --- press path ---
    /// Stores a non-cancel press durably: the alert this press made before (a repeat, see
    /// [`PressRules`]), else the household's open alert of the same kind pressed within the
    /// merge window, one press more, else a new alert with its ring-0 recipients (the
    /// cluster's other units and the station) and its ring-1 deadline.
    async fn record_press(
        &self,
        device: &DeviceId,
        press: &Press,
        plan: &RingPlan,
        rules: &PressRules,
        now_ms: i64,
    ) -> StoreResult<PressOutcome>;
    /// Records that the alert's fan-out went out (raised → notified); [`Ordered`].
    fn mark_notified(&self, alert: AlertId, now_ms: i64) -> Ordered<AlertSummary>;
    /// [`Store::mark_notified`] for a caller that only reacts to the result ([`Then`]).
    fn mark_notified_then(&self, alert: AlertId, now_ms: i64, then: Then<AlertSummary>);
    /// A `cancel` press: cancels the device's latest open alert if raised within the window.
    /// A repeat of a cancel (as [`PressRules`] tells) gets the same answer.
    async fn cancel_press(
        &self,
        device: &DeviceId,
        press: &Press,
        window_ms: i64,
        rules: &PressRules,
        now_ms: i64,
    ) -> StoreResult<CancelOutcome>;
    /// Applies an action by `actor` (`device:…`, `operator:…`, `volunteer:…`) to an alert and
    /// to the `target` recipient, if any; refuses what the lifecycle does not allow.
    /// [`Ordered`]: a caller can hand the wait to another task and keep a device's messages
    /// in order.
    fn apply(
        &self,
        alert: AlertId,
        actor: &str,
        action: Action,
        target: Option<(RecipientKind, &str)>,
        detail: &str,
        now_ms: i64,
    ) -> Ordered<Applied>;
    /// A unit reports it sounded: its recipient moves to `delivered` with a timeline event.
    /// [`Ordered`]; the future gives the alert when this was its first delivery (the station
    /// sees when help started to arrive), `None` otherwise. The cheap path for nine receipts a
    /// press.
    fn record_delivery(
        &self,
        alert: AlertId,
        device: &DeviceId,
        now_ms: i64,
    ) -> Ordered<Option<AlertSummary>>;
    /// [`Store::record_delivery`] for a caller that only reacts to the result ([`Then`]).
    fn record_delivery_then(
        &self,
        alert: AlertId,
        device: &DeviceId,
        now_ms: i64,
        then: Then<Option<AlertSummary>>,
    );
    async fn recipients(&self, alert: AlertId) -> StoreResult<Vec<Recipient>>;
    /// The clusters whose units were alerted (home cluster first, then ring 1's).
    async fn alert_clusters(&self, alert: AlertId) -> StoreResult<Vec<ClusterId>>;
    /// The earliest stored ring deadline of an open alert.
    async fn next_ring_deadline(&self) -> StoreResult<Option<i64>>;
    /// Open alerts whose next ring is due at `now_ms`.
    async fn due_rings(&self, now_ms: i64) -> StoreResult<Vec<AlertId>>;
    /// Fires the alert's next ring if it is still due; `None` if it is not (someone is
    /// coming, it closed, or another gateway fired it first). Exactly once per ring.
    async fn fire_ring(
        &self,
        alert: AlertId,
        plan: &RingPlan,
        now_ms: i64,
    ) -> StoreResult<Option<RingFired>>;
    /// Open alerts whose fan-out is owed (the gateway stopped between store and fan-out).
    async fn alerts_owing_fanout(&self) -> StoreResult<Vec<AlertSummary>>;
    async fn list_alerts(&self, filter: &AlertFilter) -> StoreResult<Vec<AlertSummary>>;
    /// What a unit back online may have missed: the open alerts it is a recipient of (raised
    /// in its cluster, or a ring that reached it), raised at `from_ms` or later and reaching
    /// it at `until_ms` or earlier, newest first, at most `limit`.
    async fn catch_up_alerts(
        &self,
        device: &DeviceId,
        from_ms: i64,
        until_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<AlertSummary>>;
    async fn alert(&self, id: AlertId) -> StoreResult<Option<AlertSummary>>;
    /// The alerts a station made public (the CAP feed), of every zone, the most recently
    /// changed first, at most `limit`.
    async fn public_alerts(&self, limit: u32) -> StoreResult<Vec<AlertSummary>>;
    async fn alert_detail(&self, id: AlertId) -> StoreResult<Option<AlertDetail>>;

    // --- devices ---
    /// Marks every device offline (at start-up: no session survives a restart).
    async fn reset_presence(&self, reason: &str, now_ms: i64) -> StoreResult<()>;

    /// A cheap round trip, for `/healthz`.
    async fn ping(&self) -> StoreResult<()>;
}

/// Opens the store named by `url` (`sqlite:PATH`, or `postgres://…` / `postgresql://…`),
/// creating (SQLite) and migrating it.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(url).await?))
    } else {
        // Not echoed: a PostgreSQL URL may carry a password.
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StoreError::Invalid(format!(
            "unsupported database URL scheme {scheme:?}: expected sqlite:PATH or \
             postgres://USER@HOST:PORT/DATABASE"
        )))
    }
}

/// `url` fit for a log line or an error message: a PostgreSQL URL's password is replaced by
/// `***`.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The SQLite URL of the database file inside a data directory.
pub fn sqlite_url_in(data_dir: &std::path::Path) -> String {
    format!("sqlite:{}", data_dir.join("tenwatch.db").display())
}
