//! One simulated household unit (panic button + in-home unit) on its own MQTT connection.
//!
//! Each device runs two tasks: the *poll* task owns the rumqttc `EventLoop` (reconnects with
//! backoff, resubscribes on every CONNACK, parses what arrives, sounds for neighbours' alerts
//! with non-blocking `try_publish`), and the *driver* task owns the button (presses repeated with
//! the same `seq` until acknowledged, heartbeats). Neither awaits a publish inside the poll task,
//! which would deadlock rumqttc (#1025). What happens is reported to an [`EventSink`].

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::FutureExt;
use rand::Rng;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, SubscribeFilter,
    SubscribeReasonCode,
};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::creds::Credential;
use crate::proto::{
    unix_ms, Ack, AlertId, AlertState, Answer, ClusterAlert, Delivered, Heartbeat, Inbound, Notice,
    NoticeDelivered, NoticeId, Press, PressKind, Respond, SatisfactionAnswer, Topics,
};

/// How often an unacknowledged press is repeated: `initial`, `initial`, then doubling up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Delay before the next attempt after `attempts` sends (1-based): 2, 2, 4, 8, 10, 10 … s.
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(2).min(16);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }
}

/// Settings shared by every simulated device.
#[derive(Clone, Debug)]
pub struct DeviceConfig {
    pub host: String,
    pub port: u16,
    /// MQTT keep-alive; the broker drops a silent device after 1.5 × this.
    pub keep_alive: Duration,
    /// Heartbeat period; `None` sends none (the press command).
    pub heartbeat: Option<Duration>,
    /// Chance that a unit answers "coming" to a neighbour's alert.
    pub respond_probability: f64,
    /// A person takes a moment to press "I'm coming": random delay in this range.
    pub respond_delay: (Duration, Duration),
    pub retry: RetryPolicy,
    /// Reconnect backoff bounds (rumqttc itself reconnects at once, #703).
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// TCP + CONNACK timeout in seconds.
    pub connect_timeout_s: u64,
    /// The benchmark's floor (no gateway): a press publishes the cluster alert itself, and the
    /// presser's own copy of it stands in for the ack. See [`floor_alert_id`].
    pub floor: bool,
    /// Send a boot id (random at each power-up) with every press, as current units do;
    /// false: as units of an older firmware, the seq alone.
    pub boot_ids: bool,
    /// What the household answers when the gateway asks about its resolved alert
    /// (`down/ack` with `survey`): `Some(true)` satisfied (满意), `Some(false)` not
    /// (不满意), `None` it does not answer.
    pub satisfaction: Option<bool>,
}

impl DeviceConfig {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        DeviceConfig {
            host: host.into(),
            port,
            keep_alive: Duration::from_secs(60),
            heartbeat: Some(Duration::from_secs(60)),
            respond_probability: 0.0,
            respond_delay: (Duration::ZERO, Duration::ZERO),
            retry: RetryPolicy::default(),
            reconnect_min: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(10),
            connect_timeout_s: 10,
            floor: false,
            boot_ids: true,
            satisfaction: Some(true),
        }
    }
}

/// Who a device is; handed to the sink with every event.
#[derive(Debug)]
pub struct DeviceCtx {
    /// Index in the simulated credential list (stable for a whole run).
    pub index: usize,
    pub cred: Credential,
    pub topics: Topics,
}

/// Something that happened on one device.
#[derive(Clone, Debug)]
pub enum DeviceEvent {
    /// Connected and both subscriptions granted: the unit can press and sound.
    Online,
    /// The connection failed or dropped; it will be retried after a backoff.
    Offline { error: String, was_online: bool },
    /// The broker refused one of the subscriptions (ACL).
    SubscribeRefused,
    /// A press (or a repeat of it) was handed to the MQTT client. `at` of attempt 1 is t0.
    PressSent {
        seq: u64,
        kind: PressKind,
        attempt: u32,
    },
    /// `down/ack` arrived. `first` = it settled a pending press (whose first send was
    /// `pressed_at`); later acks report state changes or answer repeats.
    Acked {
        ack: Ack,
        first: bool,
        pressed_at: Option<Instant>,
    },
    /// A cluster alert arrived. `own` = it is this household's alert; `first` = first time
    /// this unit saw that alert id (later ones are state changes or duplicates).
    Alert {
        alert: ClusterAlert,
        own: bool,
        first: bool,
    },
    /// This unit sent `up/delivered` for a neighbour's alert.
    Delivered { alert: AlertId },
    /// This unit answered a neighbour's alert.
    Responded { alert: AlertId, answer: Answer },
    /// A notice from the station arrived. `first` = first time this unit saw it: it was
    /// shown and `delivered` reported (later copies are a catch-up it already had).
    Notice { notice: Notice, first: bool },
    /// The household answered the gateway's question on its resolved alert.
    Surveyed { alert: AlertId, satisfied: bool },
    /// A payload that did not parse; refused.
    Malformed { error: String },
}

/// Receives every device's events. Called from device tasks: must not block.
pub trait EventSink: Send + Sync + 'static {
    fn event(&self, device: &DeviceCtx, at: Instant, event: DeviceEvent);
}

#[derive(Debug)]
enum Command {
    Press(PressKind),
    PowerCycle,
}

/// Why a press request was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PressError {
    #[error("device command queue is full")]
    Busy,
    #[error("device has stopped")]
    Stopped,
}

/// Handle to a running device.
#[derive(Clone)]
pub struct Device {
    ctx: Arc<DeviceCtx>,
    cmd: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl Device {
    pub fn ctx(&self) -> &DeviceCtx {
        &self.ctx
    }

    /// Presses the button once; the device repeats it until acknowledged.
    pub fn press(&self, kind: PressKind) -> Result<(), PressError> {
        self.cmd
            .try_send(Command::Press(kind))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => PressError::Busy,
                mpsc::error::TrySendError::Closed(_) => PressError::Stopped,
            })
    }

    /// Simulates a power cycle (a battery change, a replacement unit): the unit forgets its
    /// pending presses, takes a new boot id and counts its presses from 1 again. It stays
    /// connected: what matters to the gateway is what its next press says.
    pub fn power_cycle(&self) -> Result<(), PressError> {
        self.cmd.try_send(Command::PowerCycle).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PressError::Busy,
            mpsc::error::TrySendError::Closed(_) => PressError::Stopped,
        })
    }

    /// This power-up's boot id (none for a unit set up without boot ids).
    pub fn boot_id(&self) -> Option<String> {
        self.shared.lock().boot.clone()
    }

    /// Connected and subscribed.
    pub fn is_online(&self) -> bool {
        self.shared.online.load(Ordering::Acquire)
    }

    /// Presses not yet acknowledged (including ones still queued).
    pub fn pending_presses(&self) -> usize {
        self.shared.pending_count.load(Ordering::Acquire)
    }

    /// Drops the connection at once, without DISCONNECT, as when the network or the broker goes
    /// away under the unit: the broker sees the socket close. The device then reconnects with its
    /// normal backoff, resubscribes and resends what it has pending (the storm scenario).
    pub fn drop_connection(&self) {
        self.shared.drop_now.notify_one();
    }
}

/// State the two tasks of one device share.
struct Shared {
    /// Set on SUBACK, cleared on any connection error: presses are only sent while set.
    online: AtomicBool,
    /// Mirrors `state.pending.len()` (plus queued commands) for lock-free reads by schedulers.
    pending_count: AtomicUsize,
    /// Bumped on every successful (re)subscription: a press last sent in an older session
    /// may have been dropped with it and is resent at once.
    session: AtomicU64,
    /// Poll task → driver: "just came online, resend pending presses now".
    wake: Notify,
    /// Handle → poll task: drop the connection now (see [`Device::drop_connection`]).
    drop_now: Notify,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// This power-up's boot id, sent with every press and matched against each ack's.
    boot: Option<String>,
    pending: BTreeMap<u64, Pending>,
    /// Alert ids this household raised (recent ones), to tell its own cluster alert apart.
    own_alerts: VecDeque<AlertId>,
    /// Alert ids this unit already sounded for (bounded), so it sounds and answers once.
    seen: HashSet<AlertId>,
    seen_order: VecDeque<AlertId>,
    /// Notices shown (bounded), so each is shown and reported once.
    notices: HashSet<NoticeId>,
    notices_order: VecDeque<NoticeId>,
    /// Alerts of this household already answered (满意 / 不满意), so it answers once.
    surveyed: HashSet<AlertId>,
    surveyed_order: VecDeque<AlertId>,
}

/// Remembers `item` in a bounded set; true if it was not there.
fn remember<T: Clone + Eq + std::hash::Hash>(
    set: &mut HashSet<T>,
    order: &mut VecDeque<T>,
    item: &T,
) -> bool {
    if set.contains(item) {
        return false;
    }
    if order.len() == SEEN_ALERTS_KEPT {
        if let Some(old) = order.pop_front() {
            set.remove(&old);
        }
    }
    set.insert(item.clone());
    order.push_back(item.clone());
    true
}

const OWN_ALERTS_KEPT: usize = 32;
const SEEN_ALERTS_KEPT: usize = 1024;

struct Pending {
    kind: PressKind,
    /// Unix ms of the press, repeated unchanged in every attempt.
    ts: u64,
    attempts: u32,
    first_sent: Option<Instant>,
    /// `Shared::session` when last sent.
    sent_in_session: u64,
    /// When to send next; `None` = as soon as the device is online.
    due: Option<Instant>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the device down with it: the state stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn remember_own(&mut self, alert: &AlertId) {
        if !self.own_alerts.contains(alert) {
            if self.own_alerts.len() == OWN_ALERTS_KEPT {
                self.own_alerts.pop_front();
            }
            self.own_alerts.push_back(alert.clone());
        }
    }

    fn first_sighting(&mut self, alert: &AlertId) -> bool {
        if self.seen.contains(alert) {
            return false;
        }
        if self.seen_order.len() == SEEN_ALERTS_KEPT {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(alert.clone());
        self.seen_order.push_back(alert.clone());
        true
    }
}

/// Starts one device's tasks on `tracker`. They end on `shutdown`.
pub fn spawn(
    ctx: Arc<DeviceCtx>,
    cfg: Arc<DeviceConfig>,
    sink: Arc<dyn EventSink>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Device {
    let id = ctx.cred.device.as_str();
    let mut opts = MqttOptions::new(id, cfg.host.clone(), cfg.port);
    opts.set_credentials(id, ctx.cred.password.expose())
        .set_keep_alive(cfg.keep_alive)
        .set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(opts, 32);
    eventloop
        .network_options
        .set_connection_timeout(cfg.connect_timeout_s);
    // rumqttc leaves Nagle on by default; with delayed ACKs that adds up to 40 ms per small
    // publish on loopback, which would be measured as server latency.
    eventloop.network_options.set_tcp_nodelay(true);

    let shared = Arc::new(Shared {
        online: AtomicBool::new(false),
        pending_count: AtomicUsize::new(0),
        session: AtomicU64::new(0),
        wake: Notify::new(),
        drop_now: Notify::new(),
        state: Mutex::new(State::default()),
    });
    let (cmd_tx, cmd_rx) = mpsc::channel(8);

    tracker.spawn(poll_task(
        ctx.clone(),
        cfg.clone(),
        sink.clone(),
        shared.clone(),
        client.clone(),
        eventloop,
        shutdown.clone(),
        tracker.clone(),
    ));
    tracker.spawn(driver_task(
        ctx.clone(),
        cfg,
        sink,
        shared.clone(),
        client,
        cmd_rx,
        shutdown,
    ));
    Device {
        ctx,
        cmd: cmd_tx,
        shared,
    }
}

/// The `Offline` error of a connection dropped on purpose by [`Device::drop_connection`].
pub const DROPPED: &str = "connection dropped by the simulator";

#[allow(clippy::too_many_arguments)]
async fn poll_task(
    ctx: Arc<DeviceCtx>,
    cfg: Arc<DeviceConfig>,
    sink: Arc<dyn EventSink>,
    shared: Arc<Shared>,
    client: AsyncClient,
    mut eventloop: EventLoop,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let mut backoff = cfg.reconnect_min;
    loop {
        let polled = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = shared.drop_now.notified() => {
                // Closes the socket (no DISCONNECT) and keeps unacked publishes for the next
                // session, exactly what rumqttc does itself when the network fails.
                eventloop.clean();
                Err(DROPPED.to_owned())
            }
            ev = eventloop.poll().map(|r| r.map_err(|e| e.to_string())) => ev,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = cfg.reconnect_min;
                // Clean session: the broker forgot our subscriptions; ask again every time.
                // The floor has no gateway to answer on down/: the cluster topic is all.
                let mut filters = vec![SubscribeFilter::new(
                    ctx.topics.cluster_filter.clone(),
                    QoS::AtLeastOnce,
                )];
                if !cfg.floor {
                    filters.push(SubscribeFilter::new(
                        ctx.topics.down_filter.clone(),
                        QoS::AtLeastOnce,
                    ));
                }
                if let Err(e) = client.try_subscribe_many(filters) {
                    tracing::warn!(device = %ctx.cred.device, "cannot queue subscribe: {e}");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(suback))) => {
                let granted = suback
                    .return_codes
                    .iter()
                    .all(|c| matches!(c, SubscribeReasonCode::Success(_)));
                if granted {
                    // Subscribed: behind an external broker the gateway learns it only from
                    // us, and sends what we missed meanwhile on down/alert.
                    if !cfg.floor {
                        let said = client.try_publish(
                            ctx.topics.subscribed.clone(),
                            QoS::AtLeastOnce,
                            false,
                            b"{}".to_vec(),
                        );
                        if let Err(e) = said {
                            tracing::warn!(device = %ctx.cred.device, "cannot queue up/subscribed: {e}");
                        }
                    }
                    shared.session.fetch_add(1, Ordering::AcqRel);
                    shared.online.store(true, Ordering::Release);
                    shared.wake.notify_one();
                    sink.event(&ctx, Instant::now(), DeviceEvent::Online);
                } else {
                    sink.event(&ctx, Instant::now(), DeviceEvent::SubscribeRefused);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let at = Instant::now();
                on_publish(
                    &ctx, &cfg, &sink, &shared, &client, &tracker, &shutdown, at, &p.topic,
                    &p.payload,
                );
            }
            Ok(_) => {}
            Err(error) => {
                let was_online = shared.online.swap(false, Ordering::AcqRel);
                sink.event(
                    &ctx,
                    Instant::now(),
                    DeviceEvent::Offline { error, was_online },
                );
                // Jitter so that thousands of devices dropped together do not return together.
                let wait = backoff.mul_f64(rand::thread_rng().gen_range(0.5..1.5));
                backoff = (backoff * 2).min(cfg.reconnect_max);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    // Say goodbye politely so the edge records a clean disconnect, but never hang on it.
    if shared.online.swap(false, Ordering::AcqRel) && client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}

#[allow(clippy::too_many_arguments)]
fn on_publish(
    ctx: &Arc<DeviceCtx>,
    cfg: &DeviceConfig,
    sink: &Arc<dyn EventSink>,
    shared: &Shared,
    client: &AsyncClient,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    at: Instant,
    topic: &str,
    payload: &[u8],
) {
    match ctx.topics.parse_inbound(topic, payload) {
        Err(e) => sink.event(
            ctx,
            at,
            DeviceEvent::Malformed {
                error: e.to_string(),
            },
        ),
        Ok(Inbound::Other(topic)) => {
            tracing::debug!(device = %ctx.cred.device, %topic, "ignoring message on unknown topic");
        }
        Ok(Inbound::Notice(notice)) => {
            let first = {
                let mut st = shared.lock();
                let st = &mut *st;
                remember(&mut st.notices, &mut st.notices_order, &notice.notice)
            };
            if first && !cfg.floor {
                let receipt = NoticeDelivered {
                    notice: notice.notice.clone(),
                };
                publish_json(ctx, client, &ctx.topics.notice_delivered, &receipt);
            }
            sink.event(ctx, at, DeviceEvent::Notice { notice, first });
        }
        Ok(Inbound::Ack(ack)) => {
            if ack.survey && ack.state == AlertState::Resolved {
                if let Some(satisfied) = cfg.satisfaction {
                    let first = {
                        let mut st = shared.lock();
                        let st = &mut *st;
                        remember(&mut st.surveyed, &mut st.surveyed_order, &ack.alert)
                    };
                    if first {
                        let answer = SatisfactionAnswer {
                            alert: ack.alert.clone(),
                            answer: if satisfied {
                                "satisfied"
                            } else {
                                "unsatisfied"
                            },
                        };
                        if publish_json(ctx, client, &ctx.topics.satisfaction, &answer) {
                            sink.event(
                                ctx,
                                at,
                                DeviceEvent::Surveyed {
                                    alert: ack.alert.clone(),
                                    satisfied,
                                },
                            );
                        }
                    }
                }
            }
            let (first, pressed_at) = {
                let mut st = shared.lock();
                st.remember_own(&ack.alert);
                // An ack naming another boot answers a press of before a power cycle (a later
                // ack of an old alert): it must not settle this power-up's press of that seq.
                let ours = ack.boot.is_none() || ack.boot == st.boot;
                match ours.then(|| st.pending.remove(&ack.seq)).flatten() {
                    Some(p) => {
                        shared.pending_count.fetch_sub(1, Ordering::AcqRel);
                        (true, p.first_sent)
                    }
                    None => (false, None),
                }
            };
            sink.event(
                ctx,
                at,
                DeviceEvent::Acked {
                    ack,
                    first,
                    pressed_at,
                },
            );
        }
        Ok(Inbound::ClusterAlert(alert)) => {
            if cfg.floor {
                floor_own_copy(ctx, sink, shared, at, &alert);
            }
            let (own, first) = {
                let mut st = shared.lock();
                let own = st.own_alerts.contains(&alert.alert)
                    || alert.from_device.as_deref() == Some(ctx.cred.device.as_str())
                    // Its household's label: pressed here (the ack may lag the cluster alert)
                    // or on another unit of the household (a spare button). A household is not
                    // its own neighbour: the gateway counts none of its units a recipient.
                    || ctx.cred.label.as_deref() == Some(alert.from_label.as_str());
                (own, st.first_sighting(&alert.alert))
            };
            // The floor measures bare fan-out: units receive but publish nothing back.
            let sound = !own && first && !alert.state.is_closed() && !cfg.floor;
            let alert_id = alert.alert.clone();
            let enough = alert.enough;
            sink.event(ctx, at, DeviceEvent::Alert { alert, own, first });
            if sound {
                let delivered = Delivered {
                    alert: alert_id.clone(),
                };
                match serde_json::to_vec(&delivered) {
                    Ok(body) => match client.try_publish(
                        ctx.topics.delivered.clone(),
                        QoS::AtLeastOnce,
                        false,
                        body,
                    ) {
                        Ok(()) => sink.event(
                            ctx,
                            Instant::now(),
                            DeviceEvent::Delivered {
                                alert: alert_id.clone(),
                            },
                        ),
                        Err(e) => {
                            tracing::warn!(device = %ctx.cred.device, "cannot queue delivered: {e}")
                        }
                    },
                    Err(e) => tracing::error!("cannot serialise delivered: {e}"),
                }
                // A resident does not set out for an alert that already has enough help.
                if !enough
                    && cfg.respond_probability > 0.0
                    && rand::thread_rng().gen_bool(cfg.respond_probability.clamp(0.0, 1.0))
                {
                    respond(ctx, cfg, sink, client, tracker, shutdown, alert_id);
                }
            }
        }
    }
}

/// Queues a JSON uplink at QoS 1 without waiting; false (and a log line) if it could not be.
fn publish_json(
    ctx: &DeviceCtx,
    client: &AsyncClient,
    topic: &str,
    body: &impl serde::Serialize,
) -> bool {
    let body = match serde_json::to_vec(body) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("cannot serialise an uplink: {e}");
            return false;
        }
    };
    match client.try_publish(topic.to_owned(), QoS::AtLeastOnce, false, body) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(device = %ctx.cred.device, topic, "cannot queue an uplink: {e}");
            false
        }
    }
}

/// The floor's alert id for one press: unique per (device, seq), so the presser recognises its
/// own copy and neighbours link their receipts to the press exactly as with a gateway's id.
pub fn floor_alert_id(ctx: &DeviceCtx, seq: u64) -> AlertId {
    AlertId(format!("floor-{}-{seq}", ctx.cred.device))
}

/// Floor mode: the presser's own copy of its cluster alert settles the pending press, reported
/// as an ack `{seq, alert, state: raised, responders: 0}` received at `at`.
fn floor_own_copy(
    ctx: &DeviceCtx,
    sink: &Arc<dyn EventSink>,
    shared: &Shared,
    at: Instant,
    alert: &ClusterAlert,
) {
    let prefix = format!("floor-{}-", ctx.cred.device);
    let Some(seq) = alert
        .alert
        .0
        .strip_prefix(&prefix)
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return;
    };
    let (first, pressed_at) = {
        let mut st = shared.lock();
        st.remember_own(&alert.alert);
        match st.pending.remove(&seq) {
            Some(p) => {
                shared.pending_count.fetch_sub(1, Ordering::AcqRel);
                (true, p.first_sent)
            }
            None => (false, None),
        }
    };
    let ack = Ack {
        seq,
        boot: None,
        alert: alert.alert.clone(),
        state: crate::proto::AlertState::Raised,
        responders: 0,
        presses: 1,
        survey: false,
    };
    sink.event(
        ctx,
        at,
        DeviceEvent::Acked {
            ack,
            first,
            pressed_at,
        },
    );
}

/// Answers "coming", after a human-like delay if one is configured (in its own short task,
/// since the poll task must not wait).
fn respond(
    ctx: &Arc<DeviceCtx>,
    cfg: &DeviceConfig,
    sink: &Arc<dyn EventSink>,
    client: &AsyncClient,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    alert: AlertId,
) {
    let answer = Answer::Coming;
    let body = match serde_json::to_vec(&Respond {
        alert: alert.clone(),
        answer,
    }) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("cannot serialise respond: {e}");
            return;
        }
    };
    let (lo, hi) = cfg.respond_delay;
    if hi.is_zero() {
        match client.try_publish(ctx.topics.respond.clone(), QoS::AtLeastOnce, false, body) {
            Ok(()) => sink.event(
                ctx,
                Instant::now(),
                DeviceEvent::Responded { alert, answer },
            ),
            Err(e) => tracing::warn!(device = %ctx.cred.device, "cannot queue respond: {e}"),
        }
        return;
    }
    let delay = if hi > lo {
        rand::thread_rng().gen_range(lo..hi)
    } else {
        lo
    };
    let (ctx, sink, client, shutdown) =
        (ctx.clone(), sink.clone(), client.clone(), shutdown.clone());
    tracker.spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        let topic = ctx.topics.respond.clone();
        tokio::select! {
            _ = shutdown.cancelled() => {}
            r = client.publish(topic, QoS::AtLeastOnce, false, body) => match r {
                Ok(()) => sink.event(&ctx, Instant::now(), DeviceEvent::Responded { alert, answer }),
                Err(e) => tracing::warn!(device = %ctx.cred.device, "cannot publish respond: {e}"),
            }
        }
    });
}

/// Far enough in the future to mean "no timer", small enough not to overflow `Instant`.
const IDLE: Duration = Duration::from_secs(24 * 3600);
/// Retry a publish the client could not queue (its request channel was full) after this.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(200);

async fn driver_task(
    ctx: Arc<DeviceCtx>,
    cfg: Arc<DeviceConfig>,
    sink: Arc<dyn EventSink>,
    shared: Arc<Shared>,
    client: AsyncClient,
    mut cmd_rx: mpsc::Receiver<Command>,
    shutdown: CancellationToken,
) {
    // A power-up: a new boot id, and presses counted from 1 (nothing is persisted).
    let power_up = || {
        shared.lock().boot = cfg.boot_ids.then(crate::proto::new_boot_id);
        1
    };
    let mut next_seq = power_up();
    let mut hb_seq = unix_ms();
    let mut battery: u8 = rand::thread_rng().gen_range(60..=100);
    // Spread the first heartbeats over a whole period so they don't arrive in one burst.
    let mut next_hb = cfg
        .heartbeat
        .map(|p| Instant::now() + p.mul_f64(rand::thread_rng().gen_range(0.0..1.0)));

    loop {
        let now = Instant::now();
        let next_press = if shared.online.load(Ordering::Acquire) {
            shared.lock().pending.values().filter_map(|p| p.due).min()
        } else {
            None
        };
        let wake_at = [next_press, next_hb]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + IDLE);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            cmd = cmd_rx.recv() => match cmd {
                None => return,
                Some(Command::Press(kind)) => {
                    shared.pending_count.fetch_add(1, Ordering::AcqRel);
                    shared.lock().pending.insert(next_seq, Pending {
                        kind,
                        ts: unix_ms(),
                        attempts: 0,
                        first_sent: None,
                        sent_in_session: 0,
                        due: Some(Instant::now()),
                    });
                    next_seq += 1;
                }
                Some(Command::PowerCycle) => {
                    let forgotten = std::mem::take(&mut shared.lock().pending).len();
                    shared.pending_count.fetch_sub(forgotten, Ordering::AcqRel);
                    next_seq = power_up();
                }
            },
            _ = shared.wake.notified() => {
                // Back online: anything still pending goes out now (the broker or gateway may
                // have restarted, and a clean session dropped our in-flight publishes).
                let now = Instant::now();
                let session = shared.session.load(Ordering::Acquire);
                for p in shared.lock().pending.values_mut() {
                    if p.sent_in_session != session {
                        p.due = Some(now);
                    }
                }
            }
            _ = tokio::time::sleep_until(wake_at) => {}
        }

        if !shared.online.load(Ordering::Acquire) {
            continue;
        }
        let now = Instant::now();
        if let (Some(due), Some(period)) = (next_hb, cfg.heartbeat) {
            if due <= now {
                next_hb = Some(now + period);
                if rand::thread_rng().gen_bool(0.02) {
                    battery = battery.saturating_sub(1).max(5);
                }
                hb_seq += 1;
                let hb = Heartbeat {
                    seq: hb_seq,
                    battery,
                    tamper: false,
                    rssi: Some(-60),
                };
                if let Ok(body) = serde_json::to_vec(&hb) {
                    if let Err(e) = client.try_publish(
                        ctx.topics.heartbeat.clone(),
                        QoS::AtLeastOnce,
                        false,
                        body,
                    ) {
                        tracing::debug!(device = %ctx.cred.device, "heartbeat not queued: {e}");
                    }
                }
            }
        }
        send_due_presses(&ctx, &cfg, &sink, &shared, &client, now);
    }
}

fn send_due_presses(
    ctx: &DeviceCtx,
    cfg: &DeviceConfig,
    sink: &Arc<dyn EventSink>,
    shared: &Shared,
    client: &AsyncClient,
    now: Instant,
) {
    let mut sent = Vec::new();
    let session = shared.session.load(Ordering::Acquire);
    {
        let mut st = shared.lock();
        let boot = st.boot.clone();
        for (&seq, p) in st.pending.iter_mut() {
            if p.due.is_none_or(|d| d > now) {
                continue;
            }
            let (topic, body) = if cfg.floor {
                (
                    ctx.topics.cluster_alert.clone(),
                    serde_json::to_vec(&serde_json::json!({
                        "alert": floor_alert_id(ctx, seq).0,
                        "from_label": ctx.cred.display_label(),
                        "kind": p.kind,
                        "state": "raised",
                        "responders": 0,
                        "ts": p.ts,
                    })),
                )
            } else {
                let press = Press {
                    seq,
                    kind: p.kind,
                    ts: p.ts,
                    boot: boot.clone(),
                };
                (ctx.topics.press.clone(), serde_json::to_vec(&press))
            };
            let Ok(body) = body else {
                continue;
            };
            let at = Instant::now();
            match client.try_publish(topic, QoS::AtLeastOnce, false, body) {
                Ok(()) => {
                    p.attempts += 1;
                    p.first_sent.get_or_insert(at);
                    p.sent_in_session = session;
                    p.due = Some(now + cfg.retry.delay_after(p.attempts));
                    sent.push((at, seq, p.kind, p.attempts));
                }
                Err(_) => p.due = Some(now + QUEUE_FULL_RETRY),
            }
        }
    }
    for (at, seq, kind, attempt) in sent {
        sink.event(ctx, at, DeviceEvent::PressSent { seq, kind, attempt });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backs_off_from_two_to_ten_seconds() {
        let r = RetryPolicy::default();
        let secs: Vec<u64> = (1..=7).map(|a| r.delay_after(a).as_secs()).collect();
        assert_eq!(secs, vec![2, 2, 4, 8, 10, 10, 10]);
        assert_eq!(r.delay_after(u32::MAX).as_secs(), 10);
    }

    #[test]
    fn seen_alerts_are_bounded() {
        let mut st = State::default();
        for i in 0..(SEEN_ALERTS_KEPT + 10) {
            assert!(st.first_sighting(&AlertId(i.to_string())));
        }
        assert_eq!(st.seen.len(), SEEN_ALERTS_KEPT);
        assert!(!st.first_sighting(&AlertId((SEEN_ALERTS_KEPT + 9).to_string())));
        for i in 0..(OWN_ALERTS_KEPT + 5) {
            st.remember_own(&AlertId(i.to_string()));
        }
        assert_eq!(st.own_alerts.len(), OWN_ALERTS_KEPT);
    }
}
