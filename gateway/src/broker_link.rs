//! The gateway's connection to the MQTT broker, both ways: the uplink from devices handed to the
//! press path's workers, and what [`crate::downlink::Downlink`] publishes back.
//!
//! Two kinds of link, one shape:
//! - **In-process** (the embedded rumqttd, the default): the edge hands each device's publish
//!   straight to its worker ([`EdgeUplink`], no router pass); the gateway publishes through a
//!   local link to the router ([`tenwatch_broker::RouterHandle::link`]), and reads the uplink
//!   topics on it too, for anything that reaches the router some other way. No socket, no
//!   loopback hop, no acknowledgements (the edge, the router and the gateway share one process
//!   and one fate; a unit repeats its press until `down/ack` anyway).
//! - **rumqttc** (an external broker such as Mosquitto, `--mqtt-url`): QoS 1 uplinks
//!   acknowledged in arrival order once stored, shared subscriptions between replicas, and the
//!   replicas' station feed relayed through the broker.
//!
//! Either way one task reads the link and hands each uplink to one of [`SHARDS`] workers chosen
//! by device, which keeps each device's messages in order (a press, then its cancel) while
//! different devices proceed side by side.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt as _};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, Publish, QoS};
use tenwatch_broker::inproc::{Publisher, Subscriber};
use tenwatch_broker::{BoxFuture, UplinkClosed, UplinkSink};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::domain::{DeviceId, PressKind, Uplink};
use crate::feed::Feed;
use crate::ingest::Ingest;

/// Workers that process uplinks; a device always lands on the same one.
pub const SHARDS: usize = 8;
/// Uplinks queued per worker before the link's reader waits.
const SHARD_QUEUE: usize = 4096;
/// The uplink subscriptions of every gateway. From an external broker presses and answers come
/// at QoS 1 (devices
/// repeat presses until acknowledged anyway); delivery receipts and heartbeats, nine and
/// thousands of times more numerous, at QoS 0: rumqttd holds at most 100 unacknowledged QoS 1
/// messages per client, which would cap the uplink.
/// A unit's `up/subscribed` (one per connection: it asks for its catch-up behind an external
/// broker) comes at QoS 0 too.
pub const UPLINK_FILTERS: [(&str, QoS); 7] = [
    ("tw/d/+/up/press", QoS::AtLeastOnce),
    ("tw/d/+/up/respond", QoS::AtLeastOnce),
    ("tw/d/+/up/satisfaction", QoS::AtLeastOnce),
    ("tw/d/+/up/notice", QoS::AtMostOnce),
    ("tw/d/+/up/delivered", QoS::AtMostOnce),
    ("tw/d/+/up/heartbeat", QoS::AtMostOnce),
    ("tw/d/+/up/subscribed", QoS::AtMostOnce),
];

fn shard_of(topic: &str) -> usize {
    // The device id is the third level; hashing the whole topic would split a device's
    // presses from its cancels.
    let device = topic.split('/').nth(2).unwrap_or(topic);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    device.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

/// An uplink handed to a worker, numbered for its acknowledgement.
pub struct Uplinked {
    pub publish: Publish,
    /// Which connection it came on (counts CONNACKs) and its place in that connection's
    /// QoS 1 uplinks; `None` for QoS 0, which has no acknowledgement.
    pub order: Option<(u64, u64)>,
}

/// What the acknowledger hears: a new connection (its number), or an uplink handled.
enum AckEvent {
    Connected(u64),
    Handled(u64, u64, Publish),
}

/// Starts the workers in `tasks` (the set shutdown stops), and for an external broker
/// (`acks_to`) the acknowledger; returns the workers' queues and the acknowledger's, on which
/// [`run_uplink`] announces each new connection. They run until the uplink task drops the
/// queues.
pub fn spawn_workers(
    ingest: &Ingest,
    acks_to: Option<AsyncClient>,
    tasks: &mut JoinSet<(&'static str, anyhow::Result<()>)>,
) -> (Vec<mpsc::Sender<Uplinked>>, AckQueue) {
    // Unbounded but never long: it holds at most the QoS 1 uplinks the broker has in flight
    // to us unacknowledged (its inflight window, 100 here), plus a marker per reconnect.
    let (acks_tx, acks_rx) = mpsc::unbounded_channel();
    if let Some(client) = acks_to {
        tasks.spawn(async move {
            acknowledge_in_order(client, acks_rx).await;
            ("uplink-acks", Ok(()))
        });
    }
    let workers = (0..SHARDS)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<Uplinked>(SHARD_QUEUE);
            let (ingest, acks) = (ingest.clone(), acks_tx.clone());
            tasks.spawn(async move {
                work(ingest, rx, acks).await;
                ("uplink-worker", Ok(()))
            });
            tx
        })
        .collect();
    (workers, AckQueue(acks_tx))
}

/// Presses a worker keeps in flight at once, each of a different device.
const PRESSES_IN_FLIGHT: usize = 64;

/// One worker: handles its devices' uplinks in each device's order until the queue closes.
///
/// A press is stored before anything is told, and its commit is the longest wait on the path
/// (an fsync). So a press (not a cancel) is started and left in flight while the worker goes
/// on: the presses of many devices wait for the same commit (the store queues each in the
/// order of the calls), instead of one commit per press and worker. Anything else from a
/// device with a press in flight waits until that press is through (its cancel must find it
/// stored); the rest is handled at once, as before.
async fn work(
    ingest: Ingest,
    mut queue: mpsc::Receiver<Uplinked>,
    acks: mpsc::UnboundedSender<AckEvent>,
) {
    let mut flying = FuturesUnordered::new();
    let mut pressing: HashSet<DeviceId> = HashSet::new();
    let handled = |done: Handled, pressing: &mut HashSet<DeviceId>| {
        if let Some(device) = &done.device {
            pressing.remove(device);
        }
        if let Some((connection, n)) = done.order {
            let _ = acks.send(AckEvent::Handled(connection, n, done.publish));
        }
    };
    loop {
        let Uplinked { publish, order } = tokio::select! {
            biased;
            Some(done) = flying.next() => {
                handled(done, &mut pressing);
                continue;
            }
            next = queue.recv(), if flying.len() < PRESSES_IN_FLIGHT => match next {
                Some(next) => next,
                None => break,
            },
        };
        let Some((device, uplink)) = ingest.parse(&publish.topic, &publish.payload) else {
            handled(
                Handled {
                    device: None,
                    order,
                    publish,
                },
                &mut pressing,
            );
            continue;
        };
        while pressing.contains(&device) {
            if let Some(done) = flying.next().await {
                handled(done, &mut pressing);
            }
        }
        match uplink {
            Uplink::Press(press) if press.kind != PressKind::Cancel => {
                pressing.insert(device.clone());
                let ingest = ingest.clone();
                flying.push(async move {
                    ingest.press(&device, &press).await;
                    Handled {
                        device: Some(device),
                        order,
                        publish,
                    }
                });
            }
            uplink => {
                ingest.handle_parsed(device.clone(), uplink).await;
                handled(
                    Handled {
                        device: Some(device),
                        order,
                        publish,
                    },
                    &mut pressing,
                );
            }
        }
    }
    while let Some(done) = flying.next().await {
        handled(done, &mut pressing);
    }
}

/// An uplink handled: whose it was (`None`: it did not parse), and what its acknowledgement
/// needs.
struct Handled {
    device: Option<DeviceId>,
    order: Option<(u64, u64)>,
    publish: Publish,
}

/// The edge's uplink in the embedded broker: each device's publish straight into its worker's
/// queue, in the order the device sent them (one session hands them over one at a time).
pub struct EdgeUplink {
    shards: Vec<mpsc::Sender<Uplinked>>,
}

impl EdgeUplink {
    pub fn new(shards: &[mpsc::Sender<Uplinked>]) -> Self {
        Self {
            shards: shards.to_vec(),
        }
    }
}

impl UplinkSink for EdgeUplink {
    fn uplink(&self, topic: &str, payload: Bytes) -> BoxFuture<'_, Result<(), UplinkClosed>> {
        let shard = &self.shards[shard_of(topic)];
        let publish = Publish::from_bytes(topic, QoS::AtMostOnce, payload);
        Box::pin(async move {
            shard
                .send(Uplinked {
                    publish,
                    order: None,
                })
                .await
                .map_err(|_| UplinkClosed)
        })
    }
}

/// Where `run_uplink` tells the acknowledger about new connections.
#[derive(Clone)]
pub struct AckQueue(mpsc::UnboundedSender<AckEvent>);

/// Acknowledges each QoS 1 uplink once it is handled (stored), in the order the uplinks
/// arrived, as MQTT 3.1.1 requires (a broker may drop a client that acknowledges out of
/// order) although the workers finish them in any order. A gateway that dies before the
/// acknowledgement gets the uplink again from a broker that keeps its session, and a device
/// repeats an unacknowledged press anyway. Uplinks of an earlier connection are not
/// acknowledged on a later one: their packet ids mean nothing there.
async fn acknowledge_in_order(client: AsyncClient, mut events: mpsc::UnboundedReceiver<AckEvent>) {
    let (mut connection, mut next) = (0u64, 0u64);
    let mut waiting: std::collections::BTreeMap<u64, Publish> = Default::default();
    while let Some(event) = events.recv().await {
        match event {
            AckEvent::Connected(c) => {
                (connection, next) = (c, 0);
                waiting.clear();
            }
            AckEvent::Handled(c, n, publish) if c == connection => {
                waiting.insert(n, publish);
                while let Some(publish) = waiting.remove(&next) {
                    if let Err(e) = client.ack(&publish).await {
                        tracing::warn!(error = %e, topic = %publish.topic, "uplink not acknowledged");
                    }
                    next += 1;
                }
            }
            AckEvent::Handled(..) => {}
        }
    }
}

/// Where replicas publish their station feed events for each other.
pub const FEED_TOPIC: &str = "tw/s/feed";

/// What a replica on an external broker needs to share the uplink and the station feed.
#[derive(Clone)]
pub struct Replicas {
    pub share_group: String,
    /// This replica's MQTT client id: its own relayed events are not injected again.
    pub origin: String,
    pub feed: Feed,
}

impl Replicas {
    fn inject(&self, payload: &[u8]) {
        match serde_json::from_slice::<crate::feed::Relayed>(payload) {
            Ok(r) if r.origin == self.origin => {}
            Ok(r) => self.feed.inject(crate::feed::FeedItem {
                zone: r.zone.map(Into::into),
                operators_only: r.operators_only,
                json: r.json.into(),
            }),
            Err(e) => tracing::warn!(error = %e, "a relayed feed event does not parse"),
        }
    }
}

/// Publishes this replica's station feed events for the other replicas until shutdown.
pub async fn run_feed_relay(
    mut queue: mpsc::Receiver<crate::feed::FeedItem>,
    client: AsyncClient,
    origin: String,
) -> anyhow::Result<()> {
    while let Some(item) = queue.recv().await {
        let relayed = crate::feed::Relayed {
            origin: origin.clone(),
            zone: item.zone.as_deref().map(str::to_owned),
            operators_only: item.operators_only,
            json: item.json.to_string(),
        };
        let topic = format!("{FEED_TOPIC}/{}", item.zone.as_deref().unwrap_or("_"));
        let payload = serde_json::to_vec(&relayed)?;
        if let Err(e) = client.publish(topic, QoS::AtMostOnce, false, payload).await {
            tracing::warn!(error = %e, "feed event not relayed to the other replicas");
        }
    }
    Ok(())
}

/// Polls the gateway's MQTT connection until shutdown: (re)subscribes on every CONNACK,
/// hands uplinks to the workers, backs off after errors. `ready` turns true once the uplink
/// subscription is acknowledged, false while disconnected.
pub async fn run_uplink(
    mut eventloop: EventLoop,
    client: AsyncClient,
    (shards, acks): (Vec<mpsc::Sender<Uplinked>>, AckQueue),
    ready: watch::Sender<bool>,
    replicas: Option<Replicas>,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(100);
    let (mut connection, mut next) = (0u64, 0u64);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                connection += 1;
                next = 0;
                let _ = acks.0.send(AckEvent::Connected(connection));
                // try_subscribe: awaiting the client here, inside the poll loop, can deadlock.
                // Replicas on an external broker share the uplink: each uplink goes to one.
                // Each hears every other replica's station feed.
                let mut filters: Vec<_> = UPLINK_FILTERS
                    .iter()
                    .map(|(f, qos)| {
                        let filter = match &replicas {
                            Some(r) => format!("$share/{}/{f}", r.share_group),
                            None => (*f).to_owned(),
                        };
                        rumqttc::SubscribeFilter::new(filter, *qos)
                    })
                    .collect();
                if replicas.is_some() {
                    filters.push(rumqttc::SubscribeFilter::new(
                        format!("{FEED_TOPIC}/#"),
                        QoS::AtMostOnce,
                    ));
                }
                if let Err(e) = client.try_subscribe_many(filters) {
                    tracing::error!(error = %e, "uplink subscription not queued");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                tracing::info!("gateway subscribed to the uplink");
                ready.send_replace(true);
            }
            Ok(Event::Incoming(Packet::Publish(publish)))
                if publish.topic.starts_with(FEED_TOPIC) =>
            {
                if let Some(r) = &replicas {
                    r.inject(&publish.payload);
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let shard = shard_of(&publish.topic);
                let order = (publish.qos != QoS::AtMostOnce).then(|| {
                    next += 1;
                    (connection, next - 1)
                });
                if shards[shard]
                    .send(Uplinked { publish, order })
                    .await
                    .is_err()
                {
                    anyhow::bail!("uplink workers stopped");
                }
            }
            Ok(_) => {}
            Err(e) => {
                ready.send_replace(false);
                tracing::warn!(error = %e, retry_in = ?backoff, "gateway MQTT link down");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Reads the in-process link to the embedded router until it is gone: subscribes to the
/// uplink, then hands each message to its device's worker. `ready` turns true once the router
/// has acknowledged the subscriptions.
pub async fn run_local_uplink(
    publisher: Publisher,
    mut subscriber: Subscriber,
    (shards, _acks): (Vec<mpsc::Sender<Uplinked>>, AckQueue),
    ready: watch::Sender<bool>,
) -> anyhow::Result<()> {
    let filters: Vec<&str> = UPLINK_FILTERS.iter().map(|(f, _)| *f).collect();
    subscriber.subscribe(&publisher, &filters).await?;
    tracing::info!("gateway subscribed to the uplink (in-process)");
    ready.send_replace(true);
    loop {
        let message = subscriber.next().await?;
        // The edge forwards only topics its ACL parsed as UTF-8; anything else is not ours.
        let Ok(topic) = std::str::from_utf8(&message.topic) else {
            tracing::warn!("an uplink topic is not UTF-8: dropped");
            continue;
        };
        let shard = shard_of(topic);
        let publish = Publish::from_bytes(topic, QoS::AtMostOnce, message.payload);
        if shards[shard]
            .send(Uplinked {
                publish,
                order: None,
            })
            .await
            .is_err()
        {
            anyhow::bail!("uplink workers stopped");
        }
    }
}
