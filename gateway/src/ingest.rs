//! The press path: uplink from the broker, durable store, then fan-out and feedback.
//!
//! [`crate::broker_link`] reads the broker (in-process, or an external one) and hands each
//! uplink, in its device's order, to [`Ingest::handle`]; what devices are told goes out through
//! [`crate::downlink::Downlink`].
//!
//! Order for a press: store (durable) → cluster alert to the neighbours and station feed →
//! `down/ack` to the presser → record the fan-out (`raised → notified`). A gateway that stops
//! between the store and the fan-out owes it; [`Ingest::recover`] pays it at start-up, and a
//! device repeating its press gets it paid too.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::{
    haversine_m, AlertId, AlertState, Answer, DeviceId, Heartbeat, NoticeId, Press, PressKind,
    Uplink,
};
use crate::downlink::Downlink;
use crate::escalation::RingWake;
use crate::feed::{Feed, FeedEvent};
use crate::heartbeats::HeartbeatLedger;
use crate::lifecycle::{Action, EnoughHelp, RecipientState};
use crate::metrics::{inc, Metrics};
use crate::push::{PushReason, Pusher};
use crate::store::notices::{NewNotice, NoticeReceipt, NoticeView, SatisfactionOutcome};
use crate::store::{
    AlertSummary, Applied, CancelOutcome, PressOutcome, PressRules, RecipientKind, RingPlan, Store,
    StoreError, StoreResult, Then,
};
use crate::supervision::SupervisionPolicy;

/// What the press path is set to, from the gateway's configuration.
#[derive(Debug, Clone, Copy)]
pub struct IngestSettings {
    /// How long after raising an alert its presser may still cancel it.
    pub cancel_window: Duration,
    /// When a press repeats an earlier one, and when it joins its household's open alert.
    pub presses: PressRules,
    /// How many coming are enough: when one more makes it so, the volunteers not coming are
    /// told by a push (the units hear it in the cluster alert).
    pub enough: EnoughHelp,
    /// When rings fire and how far ring 1 reaches.
    pub plan: RingPlan,
    /// Heartbeat interval, grace and health thresholds, applied to every heartbeat.
    pub supervision: SupervisionPolicy,
    /// What a unit back online hears again, and when the station sees an alert as stale.
    pub ages: AlertAges,
    /// A unit's own `up/subscribed` asks for its catch-up (an external broker, which reports
    /// no subscriptions); with the embedded edge the edge's report does, and the unit's is
    /// ignored so that it is not told twice.
    pub catch_up_on_request: bool,
}

/// How old an open alert may be for a unit back online to hear it again, how many such a unit
/// hears, and when the station is shown one as stale. After a restart every unit comes back at
/// once: each hears at most `catch_up_max` alerts, so a hundred alerts a station never closed
/// cannot bury the units (and their own presses) under answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertAges {
    /// The newest this many open alerts a unit is a recipient of (0: no catch-up).
    pub catch_up_max: u32,
    /// Only alerts raised within this long before the unit's subscriptions were in place.
    pub catch_up_window: Duration,
    /// Open longer than this, an alert is shown to the station as stale.
    pub stale_after: Duration,
}

impl Default for AlertAges {
    /// Three alerts, the last half hour: a unit that was away hears what may still need a
    /// neighbour (a neighbour comes within minutes or not at all; 30 minutes is many times
    /// ring 2's 90 s), never an alert of hours ago; and the station is told of an alert open
    /// that long, because no unit will sound it again.
    fn default() -> Self {
        Self {
            catch_up_max: 3,
            catch_up_window: Duration::from_secs(30 * 60),
            stale_after: Duration::from_secs(30 * 60),
        }
    }
}

/// Largest `--catch-up-max`: a returning unit must never get a backlog.
pub const CATCH_UP_MAX_LIMIT: u32 = 20;

/// Checks the ages at start-up, with what to change.
pub fn validate_ages(ages: &AlertAges) -> anyhow::Result<()> {
    anyhow::ensure!(
        ages.catch_up_max <= CATCH_UP_MAX_LIMIT,
        "--catch-up-max must be at most {CATCH_UP_MAX_LIMIT} (a unit back online hears only the newest few alerts)"
    );
    anyhow::ensure!(
        ages.catch_up_window <= Duration::from_secs(24 * 3600),
        "--catch-up-window must be at most a day (86400 s): an alert hours old is not sounded again"
    );
    anyhow::ensure!(
        !ages.stale_after.is_zero(),
        "--stale-after must be above 0 s"
    );
    Ok(())
}

/// The ages as `tenwatch serve` and `tenwatch demo` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AlertAgeArgs {
    /// Open alerts a unit back online hears again, newest first (0: none; at most 20).
    #[arg(long, env = "TENWATCH_CATCH_UP_MAX", default_value_t = 3)]
    pub catch_up_max: u32,
    /// Seconds: a unit back online hears again only alerts raised this recently.
    #[arg(long, env = "TENWATCH_CATCH_UP_WINDOW", default_value_t = 1800)]
    pub catch_up_window: u64,
    /// Seconds an alert may stay open before the station is shown it as stale.
    #[arg(long, env = "TENWATCH_STALE_AFTER", default_value_t = 1800)]
    pub stale_after: u64,
}

impl AlertAgeArgs {
    pub fn ages(&self) -> anyhow::Result<AlertAges> {
        let ages = AlertAges {
            catch_up_max: self.catch_up_max,
            catch_up_window: Duration::from_secs(self.catch_up_window),
            stale_after: Duration::from_secs(self.stale_after),
        };
        validate_ages(&ages)?;
        Ok(ages)
    }
}

/// Notices a unit back online gets at most, and how old they may be: a week.
const NOTICE_CATCH_UP_MAX: u32 = 5;
pub(crate) const NOTICE_CATCH_UP_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

/// What became of a press or cancel handed to the press path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Stored (or found stored already, a repeat) and answered: the sender may stop repeating.
    Stored,
    /// No such device in the registry.
    UnknownDevice,
    /// The store failed: nothing was told, the sender must repeat.
    NotStored,
}

/// Handles parsed uplinks and the actions of volunteers and the station. Cheap to clone:
/// every field is shared.
#[derive(Clone)]
pub struct Ingest {
    store: Arc<dyn Store>,
    /// The cluster alerts, acks and catch-ups sent to devices.
    downlink: Downlink,
    feed: Feed,
    metrics: Arc<Metrics>,
    settings: IngestSettings,
    clock: Clock,
    /// Tells the escalator of each new deadline.
    ring_wake: Arc<RingWake>,
    /// Web Push to volunteers' phones; queues and returns at once.
    pusher: Pusher,
    /// Where heartbeats go when the gateway runs one ([`Ingest::with_heartbeats`]); else
    /// each is applied to the store before the worker takes the next message.
    heartbeats: Option<Arc<HeartbeatLedger>>,
}

impl Ingest {
    /// `ring_wake` hears every new alert's ring deadline: the escalator looks again when it is
    /// earlier than the one it waits for.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        downlink: Downlink,
        feed: Feed,
        metrics: Arc<Metrics>,
        settings: IngestSettings,
        clock: Clock,
        ring_wake: Arc<RingWake>,
        pusher: Pusher,
    ) -> Self {
        Self {
            store,
            downlink,
            feed,
            metrics,
            settings,
            clock,
            ring_wake,
            pusher,
            heartbeats: None,
        }
    }

    /// Heartbeats go to `ledger`: those that report nothing new are kept in memory and written
    /// in batches, the others are applied off the uplink worker.
    pub fn with_heartbeats(mut self, ledger: Arc<HeartbeatLedger>) -> Self {
        self.heartbeats = Some(ledger);
        self
    }

    /// Pays the fan-out owed by alerts stored before a stop.
    pub async fn recover(&self) -> anyhow::Result<usize> {
        let owed = self.store.alerts_owing_fanout().await?;
        for alert in &owed {
            tracing::warn!(alert = %alert.id, "fan-out owed from before a restart: sending it now");
            self.fan_out(alert, "raised").await;
            self.downlink
                .ack(&alert.device, alert.first_press(), alert)
                .await;
            // Awaited here: devices are let in only once the debt is recorded as paid.
            self.store.mark_notified(alert.id, self.now()).await?;
        }
        Ok(owed.len())
    }

    pub async fn handle(&self, topic: &str, payload: &[u8]) {
        if let Some((device, uplink)) = self.parse(topic, payload) {
            self.handle_parsed(device, uplink).await;
        }
    }

    /// The uplink's device and what it says, counted; `None` (logged and counted) for an
    /// uplink that does not parse.
    pub fn parse(&self, topic: &str, payload: &[u8]) -> Option<(DeviceId, Uplink)> {
        inc(&self.metrics.uplink_received);
        Uplink::parse(topic, payload)
            .inspect_err(|e| {
                inc(&self.metrics.uplink_malformed);
                tracing::warn!(topic = %topic, error = %e, "uplink refused");
            })
            .ok()
    }

    /// Handles an uplink [`Ingest::parse`] gave.
    pub async fn handle_parsed(&self, device: DeviceId, uplink: Uplink) {
        match uplink {
            Uplink::Press(press) if press.kind == PressKind::Cancel => {
                self.cancel(&device, &press).await;
            }
            Uplink::Press(press) => {
                self.press(&device, &press).await;
            }
            Uplink::Delivered { alert } => {
                inc(&self.metrics.deliveries);
                // Nine receipts per press: queued in order, and the worker takes the next
                // message at once. The station hears of an alert's first delivery from where
                // the group commit is answered, with no task a receipt.
                let (feed, at_ms, who) = (self.feed.clone(), self.now(), device.clone());
                let then: Then<Option<AlertSummary>> = Box::new(move |written| match written {
                    Ok(Some(first)) => feed.publish(&FeedEvent::Alert {
                        event: "delivered",
                        at_ms,
                        alert: &first,
                    }),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(device = %who, %alert, error = %e, "delivery receipt not recorded")
                    }
                });
                self.store.record_delivery_then(alert, &device, at_ms, then);
            }
            Uplink::Respond { alert, answer } => {
                inc(&self.metrics.responses);
                let wanted = match answer {
                    Answer::Coming => RecipientState::Coming,
                    Answer::Declined => RecipientState::Declined,
                };
                // Off the worker: a unit's answer waits for the writer's queue, and the
                // presses behind it on this worker must not (a reconnect storm queues thousands
                // of writes; answers to the alerts raised meanwhile held the presses back).
                let ingest = self.clone();
                tokio::spawn(async move { ingest.unit_answer(&device, alert, wanted).await });
            }
            Uplink::Subscribed if self.settings.catch_up_on_request => {
                // Off the worker: the unit's own press on this shard must not wait for it.
                let (ingest, since) = (self.clone(), self.now());
                tokio::spawn(async move { ingest.catch_up(&device, since).await });
            }
            Uplink::Subscribed => {
                tracing::debug!(%device, "up/subscribed ignored: the edge reports subscriptions");
            }
            Uplink::NoticeDelivered { notice } => {
                inc(&self.metrics.notice_receipts);
                let ingest = self.clone();
                tokio::spawn(async move { ingest.notice_delivered(&device, notice).await });
            }
            Uplink::Satisfaction { alert, satisfied } => {
                let ingest = self.clone();
                tokio::spawn(async move { ingest.satisfaction(&device, alert, satisfied).await });
            }
            Uplink::Heartbeat(hb) => {
                inc(&self.metrics.heartbeats);
                if let Some(ledger) = &self.heartbeats {
                    // Kept in memory, or applied on a task of its own: not awaited here.
                    let _ = ledger.beat(device, hb);
                    return;
                }
                // Evidence of life and the device's health, reported once per change.
                let supervised = crate::heartbeats::apply_heartbeat(
                    self.store.as_ref(),
                    &self.feed,
                    &self.settings.supervision,
                    &device,
                    &hb,
                    self.now(),
                );
                if let Err(e) = supervised.await {
                    inc(&self.metrics.store_errors);
                    tracing::error!(%device, error = %e, "heartbeat not stored");
                }
            }
        }
    }

    /// A press or cancel from an alarm panel ([`crate::sia`]): the same path as a unit's, so
    /// it is stored before anything is told, deduplicated on (device, boot, seq), fanned out
    /// and pushed alike. The panel is answered only once this says [`Taken::Stored`].
    pub async fn panel_press(&self, device: &DeviceId, press: &Press) -> Taken {
        match press.kind {
            PressKind::Cancel => self.cancel(device, press).await,
            _ => self.press(device, press).await,
        }
    }

    /// A panel's link test or supervision report, as a unit's heartbeat: evidence of life,
    /// with the readings it carries. Applied to the store and awaited, not kept in the
    /// ledger: a panel may report a tamper and its restore a moment apart, and they must land
    /// in that order (the ledger applies a changed beat on a task of its own); and the panel
    /// is acknowledged once its report is stored. Panels are few; units are the many.
    pub async fn panel_heartbeat(&self, device: &DeviceId, hb: &Heartbeat) -> StoreResult<()> {
        inc(&self.metrics.heartbeats);
        let supervised = crate::heartbeats::apply_heartbeat(
            self.store.as_ref(),
            &self.feed,
            &self.settings.supervision,
            device,
            hb,
            self.now(),
        );
        supervised
            .await
            .inspect_err(|_| inc(&self.metrics.store_errors))
    }

    /// The heartbeat and supervision settings every beat is judged by.
    pub fn supervision_policy(&self) -> SupervisionPolicy {
        self.settings.supervision
    }

    /// A press (not a cancel): stored, fanned out, acknowledged, its fan-out recorded.
    pub async fn press(&self, device: &DeviceId, press: &Press) -> Taken {
        let outcome = match self
            .store
            .record_press(
                device,
                press,
                &self.settings.plan,
                &self.settings.presses,
                self.now(),
            )
            .await
        {
            Ok(o) => o,
            Err(e) => {
                // No ack: the device repeats the press and we try again then.
                inc(&self.metrics.store_errors);
                tracing::error!(%device, seq = press.seq, error = %e, "press not stored");
                return Taken::NotStored;
            }
        };
        match outcome {
            PressOutcome::Raised(alert) => {
                inc(&self.metrics.alerts_raised);
                tracing::info!(alert = %alert.id, %device, seq = press.seq, kind = %alert.kind,
                    cluster = %alert.cluster, "alert raised");
                self.fan_out(&alert, "raised").await;
                self.downlink.ack(device, press.identity(), &alert).await;
                self.mark_notified(&alert);
                if let Some(at) = alert.next_ring_at_ms {
                    self.ring_wake.announce(at);
                }
            }
            PressOutcome::Merged(alert) => {
                inc(&self.metrics.presses_merged);
                tracing::info!(alert = %alert.id, %device, seq = press.seq, presses = alert.presses,
                    "press added to the household's open alert");
                // Every cluster the alert reached hears it again, so that units sound again.
                self.tell_clusters(&alert).await;
                self.feed.publish(&FeedEvent::Alert {
                    event: "pressed_again",
                    at_ms: self.now(),
                    alert: &alert,
                });
                self.downlink.ack(device, press.identity(), &alert).await;
                if alert.notified_at_ms.is_none() {
                    self.mark_notified(&alert);
                }
            }
            PressOutcome::Duplicate(alert) => {
                inc(&self.metrics.presses_duplicate);
                tracing::debug!(alert = %alert.id, %device, seq = press.seq, "repeated press");
                if alert.notified_at_ms.is_none() && alert.state.is_open() {
                    self.fan_out(&alert, "raised").await;
                    self.mark_notified(&alert);
                }
                self.downlink.ack(device, press.identity(), &alert).await;
            }
            PressOutcome::UnknownDevice => {
                inc(&self.metrics.presses_unknown_device);
                tracing::warn!(%device, "press from a device not in the registry");
                return Taken::UnknownDevice;
            }
        }
        Taken::Stored
    }

    async fn cancel(&self, device: &DeviceId, press: &Press) -> Taken {
        let window_ms = self.settings.cancel_window.as_millis() as i64;
        let outcome = match self
            .store
            .cancel_press(device, press, window_ms, &self.settings.presses, self.now())
            .await
        {
            Ok(o) => o,
            Err(e) => {
                inc(&self.metrics.store_errors);
                tracing::error!(%device, error = %e, "cancel not stored");
                return Taken::NotStored;
            }
        };
        match outcome {
            CancelOutcome::Cancelled(alert) => {
                inc(&self.metrics.alerts_cancelled);
                tracing::info!(alert = %alert.id, %device, "alert cancelled by the presser");
                self.fan_out(&alert, "cancelled").await;
                self.downlink.ack(device, press.identity(), &alert).await;
                self.push_closed(&alert);
            }
            CancelOutcome::Duplicate(alert) => {
                inc(&self.metrics.presses_duplicate);
                self.downlink.ack(device, press.identity(), &alert).await;
            }
            CancelOutcome::TooLate(alert) => {
                inc(&self.metrics.cancels_refused);
                tracing::info!(alert = %alert.id, %device, "cancel after the window: alert stays open");
                self.feed.publish(&FeedEvent::Alert {
                    event: "cancel_refused",
                    at_ms: self.now(),
                    alert: &alert,
                });
                self.downlink.ack(device, press.identity(), &alert).await;
            }
            CancelOutcome::NothingOpen(latest) => {
                inc(&self.metrics.cancels_refused);
                tracing::info!(%device, "cancel with no open alert");
                // The unit hears its latest alert is closed already, and stops repeating.
                if let Some(alert) = latest {
                    self.downlink.ack(device, press.identity(), &alert).await;
                }
            }
            CancelOutcome::UnknownDevice => {
                inc(&self.metrics.cancels_refused);
                tracing::info!(%device, "cancel from a device not in the registry");
                return Taken::UnknownDevice;
            }
        }
        Taken::Stored
    }

    /// A unit reports it sounded, or its resident answers.
    async fn unit_answer(&self, device: &DeviceId, alert: AlertId, wanted: RecipientState) {
        let actor = format!("device:{device}");
        let target = Some((RecipientKind::Unit, device.as_str()));
        if let Err(e) = self
            .apply_action(alert, &actor, Action::Recipient(wanted), target, "")
            .await
        {
            tracing::warn!(%device, %alert, error = %e, "unit answer not recorded");
        }
    }

    /// Applies an action from a unit, a volunteer or the station, then tells everyone
    /// concerned: the station feed, the presser's unit (state and how many are coming) and,
    /// when the alert's state changed, the units that were alerted.
    pub async fn apply_action(
        &self,
        alert: AlertId,
        actor: &str,
        action: Action,
        target: Option<(RecipientKind, &str)>,
        detail: &str,
    ) -> StoreResult<Applied> {
        let applied = self
            .store
            .apply(alert, actor, action, target, detail, self.now())
            .await?;
        if let (Action::Dispatch, Some((RecipientKind::Volunteer, who))) = (action, target) {
            // Only a volunteer newly on the alert is pushed: never twice for one alert.
            if applied.recipient_changed {
                let distance = self.volunteer_distance(&applied.alert, who).await;
                self.pusher
                    .notify(&applied.alert, who, distance, PushReason::Alert);
            }
        }
        if applied.state_changed && applied.alert.state == AlertState::Resolved {
            self.push_closed(&applied.alert);
        }
        let news = applied.state_changed
            || applied.recipient_changed
            || matches!(action, Action::Note | Action::Resolve(_) | Action::Publish);
        if !news {
            return Ok(applied);
        }
        let a = &applied.alert;
        let event = match action {
            Action::Recipient(s) => s.as_str(),
            Action::Acknowledge => "acknowledged",
            Action::Dispatch => "dispatched",
            Action::Resolve(_) => "resolved",
            Action::Note => "note",
            Action::Publish => "published",
        };
        self.feed.publish(&FeedEvent::Alert {
            event,
            at_ms: self.now(),
            alert: a,
        });
        let responders_moved = matches!(
            action,
            Action::Recipient(
                RecipientState::Coming | RecipientState::Declined | RecipientState::OnScene
            )
        );
        if applied.state_changed || responders_moved {
            self.downlink.ack(&a.device, a.first_press(), a).await;
            self.tell_clusters(a).await;
        }
        // One more coming (a recipient moves forward only, and nobody comes back from on
        // scene): if that made it enough, tell the others once. Arriving on scene after
        // "coming" adds nobody, so it tells nobody again.
        let one_more = applied.recipient_changed
            && matches!(action, Action::Recipient(RecipientState::Coming));
        if one_more && a.state.is_open() && self.settings.enough.just_enough(&a.kind, a.responders)
        {
            self.push_to_waiting(a, PushReason::Enough);
        }
        Ok(applied)
    }

    /// The alert as it is now, on the topic of its own cluster and of every cluster a ring
    /// reached.
    async fn tell_clusters(&self, alert: &AlertSummary) {
        match self.store.alert_clusters(alert.id).await {
            Ok(clusters) => {
                for cluster in clusters {
                    self.downlink.cluster_alert(cluster.as_str(), alert).await;
                }
            }
            Err(e) => tracing::error!(alert = %alert.id, error = %e, "alerted clusters unknown"),
        }
    }

    /// How many coming are enough, per kind.
    pub fn enough_help(&self) -> EnoughHelp {
        self.settings.enough
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// How far an on-duty volunteer's last position is from the alert, if known.
    async fn volunteer_distance(&self, alert: &AlertSummary, name: &str) -> Option<f64> {
        let volunteers = self.store.on_duty_volunteers(&alert.zone).await.ok()?;
        let v = volunteers.into_iter().find(|v| v.name == name)?;
        Some(haversine_m(alert.lat, alert.lon, v.lat?, v.lon?).round())
    }

    /// Replaces the notification of every volunteer pushed about `alert` (and not declined)
    /// with "no need to come". Off the caller's path: it reads the recipients in a task.
    fn push_closed(&self, alert: &AlertSummary) {
        self.push_to_waiting(alert, PushReason::Closed);
    }

    /// Pushes `reason` to every volunteer the alert reached who may still be on their way or
    /// deciding: all but those who declined, and for "enough help" all but those coming. Their
    /// first push need not have settled: one still in flight is followed by this one.
    fn push_to_waiting(&self, alert: &AlertSummary, reason: PushReason) {
        let (store, pusher, alert) = (self.store.clone(), self.pusher.clone(), alert.clone());
        tokio::spawn(async move {
            let recipients = match store.alert_detail(alert.id).await {
                Ok(Some(detail)) => detail.recipients,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(alert = %alert.id, error = %e, "volunteers to tell unknown");
                    return;
                }
            };
            for r in recipients {
                let told = match reason {
                    PushReason::Enough => !matches!(
                        r.state,
                        RecipientState::Declined | RecipientState::Coming | RecipientState::OnScene
                    ),
                    _ => r.state != RecipientState::Declined,
                };
                if r.kind == RecipientKind::Volunteer && told {
                    pusher.notify(&alert, &r.who, None, reason);
                }
            }
        });
    }

    async fn fan_out(&self, alert: &AlertSummary, event: &str) {
        self.downlink
            .cluster_alert(alert.cluster.as_str(), alert)
            .await;
        self.feed.publish(&FeedEvent::Alert {
            event,
            at_ms: self.now(),
            alert,
        });
    }

    /// A unit whose subscriptions are back in place (after a reconnect) hears again, on its own
    /// `down/alert`, the open alerts it is a recipient of (raised in its cluster, or rings
    /// that reached it from nearby), newest first: an alert that went out while it was away
    /// would otherwise never sound there. Bounded by [`AlertAges`]: the newest
    /// `catch_up_max`, raised within `catch_up_window`.
    /// `since_ms`: when its subscriptions were in place; an alert that reached it later came on
    /// the cluster topic and is not sent again.
    pub async fn catch_up(&self, device: &DeviceId, since_ms: i64) {
        self.catch_up_notices(device, since_ms).await;
        let ages = self.settings.ages;
        if ages.catch_up_max == 0 {
            return;
        }
        let from_ms = since_ms - ages.catch_up_window.as_millis() as i64;
        let missed = match self
            .store
            .catch_up_alerts(device, from_ms, since_ms, ages.catch_up_max)
            .await
        {
            Ok(missed) => missed,
            Err(e) => {
                tracing::error!(%device, error = %e, "open alerts not sent to a unit back online");
                return;
            }
        };
        for alert in &missed {
            self.downlink.device_alert(device, alert).await;
        }
    }

    /// The notices a unit back online has not reported delivered, on its own `down/notice`:
    /// at most [`NOTICE_CATCH_UP_MAX`], sent within [`NOTICE_CATCH_UP_WINDOW_MS`], newest
    /// first. Unlike an alert, a notice is still worth showing hours later.
    async fn catch_up_notices(&self, device: &DeviceId, since_ms: i64) {
        let from_ms = since_ms - NOTICE_CATCH_UP_WINDOW_MS;
        match self
            .store
            .owed_notices(device, from_ms, NOTICE_CATCH_UP_MAX)
            .await
        {
            Ok(owed) => {
                for notice in &owed {
                    self.downlink.device_notice(device, notice).await;
                }
            }
            Err(e) => {
                tracing::error!(%device, error = %e, "notices not sent to a unit back online")
            }
        }
    }

    /// Stores an operator's notice and sends it: to every cluster it is for (each unit hears
    /// it on `tw/c/{cluster}/notice`) and to the zone's on-duty volunteers as a Web Push of
    /// lower urgency than an alert's. Units away get it when they are back
    /// ([`Ingest::catch_up`]).
    pub async fn send_notice(&self, new: &NewNotice) -> StoreResult<NoticeView> {
        let sent = self.store.create_notice(new, self.now()).await?;
        let notice = Arc::new(sent.notice);
        for cluster in &sent.clusters {
            self.downlink
                .cluster_notice(cluster.as_str(), &notice)
                .await;
        }
        for volunteer in &sent.volunteers {
            self.pusher.notify_notice(&notice, volunteer);
        }
        tracing::info!(notice = notice.id, zone = %notice.zone, clusters = sent.clusters.len(),
            volunteers = sent.volunteers.len(), author = %notice.author, "notice sent");
        self.store
            .notice(notice.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("notice {}", notice.id)))
    }

    /// A unit's receipt of a notice: recorded once; one for a notice not sent to that unit is
    /// refused with a log line and changes nothing.
    async fn notice_delivered(&self, device: &DeviceId, notice: NoticeId) {
        match self
            .store
            .notice_delivered(notice.0, device, self.now())
            .await
        {
            Ok(NoticeReceipt::First) => tracing::debug!(%device, %notice, "notice delivered"),
            Ok(NoticeReceipt::Again) => {
                tracing::debug!(%device, %notice, "notice receipt again: nothing changes")
            }
            Ok(NoticeReceipt::NotForIt) => {
                inc(&self.metrics.uplink_refused);
                tracing::warn!(%device, %notice, "notice receipt refused: no such notice was sent to this unit")
            }
            Err(e) => {
                inc(&self.metrics.store_errors);
                tracing::error!(%device, %notice, error = %e, "notice receipt not recorded")
            }
        }
    }

    /// The presser's household says whether it is satisfied with how its resolved alert was
    /// handled. Kept once per alert; anything else is refused with a log line.
    async fn satisfaction(&self, device: &DeviceId, alert: AlertId, satisfied: bool) {
        let outcome = self
            .store
            .record_satisfaction(alert, device, satisfied, self.now())
            .await;
        let why = match outcome {
            Ok(SatisfactionOutcome::Stored) => {
                tracing::info!(%device, %alert, satisfied, "satisfaction recorded");
                return;
            }
            Ok(SatisfactionOutcome::AlreadyAnswered) => "the alert was answered already",
            Ok(SatisfactionOutcome::NotTheirs) => "the unit is not of the household that pressed",
            Ok(SatisfactionOutcome::NotResolved) => "the alert is not resolved",
            Ok(SatisfactionOutcome::UnknownAlert) => "no such alert",
            Err(e) => {
                inc(&self.metrics.store_errors);
                tracing::error!(%device, %alert, error = %e, "satisfaction not recorded");
                return;
            }
        };
        inc(&self.metrics.uplink_refused);
        tracing::warn!(%device, %alert, why, "satisfaction answer refused");
    }

    /// How long an alert may stay open before the station is shown it as stale, in ms.
    pub fn stale_after_ms(&self) -> i64 {
        self.settings.ages.stale_after.as_millis() as i64
    }

    /// Records the fan-out: queued now (so it precedes the receipts it caused), committed
    /// with the next batch while the worker moves on.
    fn mark_notified(&self, alert: &AlertSummary) {
        let (feed, metrics, at_ms) = (self.feed.clone(), self.metrics.clone(), self.now());
        let (before, id) = (alert.state, alert.id);
        let then: Then<AlertSummary> = Box::new(move |recorded| match recorded {
            Ok(updated) if updated.state != before => feed.publish(&FeedEvent::Alert {
                event: "notified",
                at_ms,
                alert: &updated,
            }),
            Ok(_) => {}
            Err(e) => {
                inc(&metrics.store_errors);
                tracing::error!(alert = %id, error = %e, "fan-out not recorded");
            }
        });
        self.store.mark_notified_then(id, at_ms, then);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_up_is_bounded_and_stale_needs_an_age() {
        assert!(validate_ages(&AlertAges::default()).is_ok());
        let many = AlertAges {
            catch_up_max: CATCH_UP_MAX_LIMIT + 1,
            ..AlertAges::default()
        };
        assert!(validate_ages(&many)
            .unwrap_err()
            .to_string()
            .contains("--catch-up-max"));
        let hours = AlertAges {
            catch_up_window: Duration::from_secs(25 * 3600),
            ..AlertAges::default()
        };
        assert!(validate_ages(&hours).is_err());
        let never = AlertAges {
            stale_after: Duration::ZERO,
            ..AlertAges::default()
        };
        assert!(validate_ages(&never).is_err());
    }
}
