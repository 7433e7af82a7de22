//! Putting the parts together: store, embedded router, device edge, gateway MQTT link, press
//! workers and HTTP API, each a task; [`Application::run`] ends them all on one shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{AsyncClient, MqttOptions};
use tenwatch_broker::inproc::{Publisher, Subscriber};
use tenwatch_broker::{Edge, EdgeConfig, EdgeStats, RouterHandle, RouterSettings, TlsFiles};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::accounts::{Accounts, AccountsConfig};
use crate::broker_link::{
    run_feed_relay, run_local_uplink, run_uplink, spawn_workers, EdgeUplink, Replicas,
};
use crate::clock::Clock;
use crate::devices::{run_presence, RegistryAuthority};
use crate::downlink::{Downlink, Link};
use crate::escalation;
use crate::feed::Feed;
use crate::http::{self, AppState};
use crate::ingest::{Ingest, IngestSettings};
use crate::metrics::Metrics;
use crate::store::{self, PressRules, RingPlan, Store};

/// Everything `tenwatch serve` can be told.
#[derive(Clone)]
pub struct Config {
    /// The store: `sqlite:PATH`, or `postgres://USER@HOST:PORT/DATABASE` (see [`store::open`]).
    pub database_url: String,
    /// How long after a press its presser may cancel the alert.
    pub cancel_window: Duration,
    /// When a press repeats an earlier one, and when it joins its household's open alert.
    pub presses: PressRules,
    /// How many coming are enough for an alert of each kind.
    pub enough: crate::lifecycle::EnoughHelp,
    /// Device edge limits and deadlines.
    pub edge: EdgeConfig,
    /// When escalation rings fire and how far ring 1 reaches.
    pub plan: RingPlan,
    /// Session lifetime and login limits.
    pub accounts: AccountsConfig,
    pub clock: Clock,
    /// The station console: where its built pages are, map tiles, time zone.
    pub console: crate::http::ConsoleConfig,
    /// Heartbeat interval and grace, settle time, battery and coverage thresholds.
    pub supervision: crate::supervision::SupervisionPolicy,
    /// What a unit back online hears again, and when the station sees an alert as stale.
    pub ages: crate::ingest::AlertAges,
    /// Web Push to volunteers: VAPID subject, TTL, timeouts, retries, concurrency.
    pub push: crate::push::PushConfig,
    /// Devices connect to this broker instead of the embedded one and its edge.
    pub external_mqtt: Option<ExternalMqtt>,
    /// What an external broker presents to `/api/broker/*`; `None`: those routes are off.
    pub broker_auth_secret: Option<Secret>,
    /// HTTP connection limits, trusted proxies, the public origin, the metrics token.
    pub http: crate::http::HttpConfig,
    /// The SIA DC-09 receiver's timestamp window and limits (it runs when
    /// [`Listeners::sia`] is given).
    pub sia: crate::sia::SiaSettings,
}

/// Written out by hand so that a database password never shows in a log line.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &store::redacted_url(&self.database_url))
            .field("cancel_window", &self.cancel_window)
            .field("presses", &self.presses)
            .field("edge", &self.edge)
            .field("plan", &self.plan)
            .field("accounts", &self.accounts)
            .field("clock", &self.clock)
            .field("console", &self.console)
            .field("supervision", &self.supervision)
            .field("ages", &self.ages)
            .field("push", &self.push)
            .field("external_mqtt", &self.external_mqtt)
            .field("broker_auth_secret", &self.broker_auth_secret)
            .field("http", &self.http)
            .field("sia", &self.sia)
            .finish()
    }
}

/// A secret that never shows in logs or `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An MQTT broker the devices use instead of the embedded router (EMQX, VerneMQ, Mosquitto):
/// the broker authenticates devices and applies the ACL (see [`crate::http::broker_auth`]); the
/// gateway shares the uplink with its replicas through a shared subscription and acknowledges
/// each uplink only once it is stored.
#[derive(Clone)]
pub struct ExternalMqtt {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Different for each replica (and stable, for the logs and `keep_session`).
    pub client_id: String,
    /// The shared-subscription group the replicas share the uplink in.
    pub share_group: String,
    /// Keep a persistent session (`--mqtt-keep-session`): the broker holds the uplinks that
    /// come while this gateway is away and hands them over when it is back. Only for a gateway
    /// without replicas: a broker such as Mosquitto 2 keeps giving a dead replica's session
    /// its turn of the shared subscription until that replica returns, and those uplinks wait
    /// there instead of going to the survivors. Off (a clean session), a replica that dies
    /// leaves the shared subscription as soon as the broker sees its connection end.
    pub keep_session: bool,
}

impl std::fmt::Debug for ExternalMqtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalMqtt")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("client_id", &self.client_id)
            .field("share_group", &self.share_group)
            .field("keep_session", &self.keep_session)
            .finish()
    }
}

impl ExternalMqtt {
    /// `mqtt://[user[:password]@]host[:port]`; the password may also come from elsewhere.
    pub fn parse(url: &str, client_id: &str, share_group: &str) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url).with_context(|| format!("--mqtt-url {url:?}"))?;
        anyhow::ensure!(
            parsed.scheme() == "mqtt",
            "--mqtt-url must be mqtt://[user[:password]@]host[:port] (TLS to the broker: put it on a local listener)"
        );
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| anyhow::anyhow!("--mqtt-url has no host"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        // The URL's user and password are percent-encoded (RFC 3986 userinfo): `+` is a plus.
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let username = (!parsed.username().is_empty()).then(|| decode(parsed.username()));
        let password = parsed.password().map(decode);
        anyhow::ensure!(
            !client_id.is_empty()
                && !share_group.is_empty()
                && !share_group.contains(['/', '+', '#']),
            "--mqtt-client-id must not be empty, and --mqtt-share-group must be one topic level"
        );
        Ok(Self {
            host,
            port: parsed.port().unwrap_or(1883),
            username,
            password,
            client_id: client_id.to_owned(),
            share_group: share_group.to_owned(),
            keep_session: false,
        })
    }
}

impl Config {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            cancel_window: Duration::from_secs(30),
            presses: PressRules::default(),
            enough: crate::lifecycle::EnoughHelp::default(),
            edge: EdgeConfig::default(),
            plan: RingPlan::default(),
            accounts: AccountsConfig::default(),
            clock: Clock::system(),
            console: crate::http::ConsoleConfig::default(),
            supervision: crate::supervision::SupervisionPolicy::default(),
            ages: crate::ingest::AlertAges::default(),
            push: crate::push::PushConfig::default(),
            external_mqtt: None,
            broker_auth_secret: None,
            http: crate::http::HttpConfig::default(),
            sia: crate::sia::SiaSettings::default(),
        }
    }
}

/// Already-bound sockets (tests bind port 0 and read the ports back).
pub struct Listeners {
    /// Devices' MQTT listener (the edge); `None` with an external broker.
    pub mqtt: Option<TcpListener>,
    pub mqtt_tls: Option<TcpListener>,
    pub http: TcpListener,
    /// `/metrics` alone (`--metrics-listen`); `None`: `/metrics` is on `http`, behind its token.
    pub metrics: Option<TcpListener>,
    /// Alarm panels' SIA DC-09 receiver (`--sia-listen`); `None`: off.
    pub sia: Option<crate::sia::SiaListeners>,
}

/// The gateway's link to the broker, before [`Application::run`] starts reading it.
enum BrokerConnection {
    /// The embedded router, in-process: no socket, no acknowledgements.
    InProcess {
        publisher: Publisher,
        subscriber: Subscriber,
    },
    /// An external broker through rumqttc (QoS 1, manual acknowledgements once stored).
    /// (The event loop is large and read once: boxed, so the enum stays small.)
    Mqtt {
        client: AsyncClient,
        eventloop: Box<rumqttc::EventLoop>,
    },
}

/// The gateway's MQTT keep-alive with an external broker: the bound on how long a replica that
/// hangs (its connection still open) keeps its share of the uplink, 1.5 x this.
pub const REPLICA_KEEP_ALIVE: Duration = Duration::from_secs(5);

impl BrokerConnection {
    fn mqtt(ext: &ExternalMqtt) -> Self {
        let mut options = MqttOptions::new(&ext.client_id, &ext.host, ext.port);
        if let Some(user) = &ext.username {
            options.set_credentials(user, ext.password.as_deref().unwrap_or(""));
        }
        options
            // Clean unless asked (see `ExternalMqtt::keep_session`): a replica's end takes it
            // out of the shared subscription, and units repeat what was in flight to it.
            .set_clean_session(!ext.keep_session)
            // A replica that hangs without closing its connection is dropped by the broker
            // after 1.5 x this, and its share goes to the others.
            .set_keep_alive(REPLICA_KEEP_ALIVE)
            .set_inflight(100)
            // Uplinks are acknowledged once stored, not when they arrive.
            .set_manual_acks(true)
            .set_max_packet_size(64 * 1024, 64 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 65_536);
        // Small publishes back to back (cluster alert, then ack): without NODELAY the second
        // waits on the peer's delayed ACK, ~40 ms.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        BrokerConnection::Mqtt {
            client,
            eventloop: Box::new(eventloop),
        }
    }

    /// What the downlink publishes through.
    fn link(&self) -> Link {
        match self {
            BrokerConnection::InProcess { publisher, .. } => Link::InProcess(publisher.clone()),
            BrokerConnection::Mqtt { client, .. } => Link::Mqtt(client.clone()),
        }
    }
}

pub struct Application {
    store: Arc<dyn Store>,
    /// The embedded router; `None` with an external broker.
    router: Option<RouterHandle>,
    config: Config,
    listeners: Listeners,
    feed: Feed,
    metrics: Arc<Metrics>,
    edge_stats: Arc<EdgeStats>,
    mqtt_addr: Option<SocketAddr>,
    mqtt_tls_addr: Option<SocketAddr>,
    http_addr: SocketAddr,
    /// `/metrics` alone, with `--metrics-listen`.
    metrics_addr: Option<SocketAddr>,
    /// The SIA receiver's TCP and UDP addresses, when it runs.
    sia_addrs: Option<(SocketAddr, SocketAddr)>,
    /// The alert service, built here so callers (the demo, tests) can act through it.
    ingest: Ingest,
    /// What devices are told, shared by the press path and the rings.
    downlink: Downlink,
    /// Web Push to volunteers (queues; `push_worker` sends).
    pusher: crate::push::Pusher,
    /// Wakes the escalator when the press path stores a new ring deadline.
    ring_wake: Arc<crate::escalation::RingWake>,
    /// The gateway's link to the broker, read once `run` starts.
    connection: BrokerConnection,
    /// Sends the pushes the ingest queues, once `run` starts.
    push_worker: crate::push::PushWorker,
    /// This replica's feed events for the other replicas (external broker only).
    relay_queue: Option<tokio::sync::mpsc::Receiver<crate::feed::FeedItem>>,
    /// Refused device logins, counted for `/metrics` and the station.
    login_refusals: Arc<crate::supervision::LoginRefusals>,
    /// Heartbeats that report nothing new, kept in memory and flushed in batches.
    heartbeats: Arc<crate::heartbeats::HeartbeatLedger>,
    /// The offline base map (`--tiles`), opened and checked before anything else starts.
    tiles: Option<Arc<crate::tiles::TileSet>>,
}

impl Application {
    /// Opens the store (migrating it) and starts the embedded router. Nothing is served yet.
    pub async fn build(config: Config, listeners: Listeners) -> anyhow::Result<Self> {
        crate::supervision::validate(&config.supervision).context("device supervision settings")?;
        config
            .http
            .limits
            .validate()
            .map_err(anyhow::Error::msg)
            .context("HTTP settings")?;
        crate::push::validate(&config.push).context("Web Push settings")?;
        crate::ingest::validate_ages(&config.ages).context("catch-up and stale alert settings")?;
        // Before the store: a wrong file is told at once, with nothing to undo.
        let tiles = match &config.console.tiles {
            Some(path) => {
                let tiles = crate::tiles::TileSet::open(path).await?;
                let meta = tiles.meta();
                tracing::info!(
                    file = %path.display(),
                    name = %meta.name,
                    format = meta.format.content_type(),
                    zoom = format!("{}..={}", meta.min_zoom, meta.max_zoom),
                    "serving the offline base map"
                );
                Some(Arc::new(tiles))
            }
            None => None,
        };
        let store = store::open(&config.database_url).await.with_context(|| {
            format!(
                "opening the store at {}",
                store::redacted_url(&config.database_url)
            )
        })?;
        store
            .reset_presence("gateway restarted", config.clock.now_ms())
            .await
            .context("resetting device presence")?;
        let mqtt_addr = listeners
            .mqtt
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let mqtt_tls_addr = listeners
            .mqtt_tls
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let (router, connection) = match &config.external_mqtt {
            None => {
                anyhow::ensure!(
                    listeners.mqtt.is_some(),
                    "the embedded broker needs a device listener"
                );
                let router = tenwatch_broker::start_router(RouterSettings::default())
                    .context("starting the embedded MQTT router")?;
                // The gateway's own link to the router, in-process, subscribed before devices
                // are let in.
                let (publisher, subscriber) = tenwatch_broker::inproc::connect(
                    &router,
                    &format!("tenwatch-gateway-{}", std::process::id()),
                )
                .await
                .context("linking the gateway to the embedded MQTT router")?;
                (
                    Some(router),
                    BrokerConnection::InProcess {
                        publisher,
                        subscriber,
                    },
                )
            }
            Some(ext) => (None, BrokerConnection::mqtt(ext)),
        };
        let metrics: Arc<Metrics> = Arc::default();
        // Replicas on an external broker relay their station feed to each other.
        let (feed, relay_queue) = match config.external_mqtt {
            Some(_) => {
                let (feed, queue) = Feed::with_relay();
                (feed, Some(queue))
            }
            None => (Feed::new(), None),
        };
        let (pusher, push_worker) = crate::push::Pusher::new(
            store.clone(),
            config.push.clone(),
            metrics.clone(),
            config.clock.clone(),
            feed.clone(),
        )
        .await
        .context("setting up Web Push")?;
        let downlink = Downlink::new(
            connection.link(),
            metrics.clone(),
            config.clock.clone(),
            config.enough,
        );
        let ring_wake = Arc::new(crate::escalation::RingWake::default());
        let ingest = Ingest::new(
            store.clone(),
            downlink.clone(),
            feed.clone(),
            metrics.clone(),
            IngestSettings {
                cancel_window: config.cancel_window,
                presses: config.presses,
                enough: config.enough,
                plan: config.plan,
                supervision: config.supervision,
                ages: config.ages,
                catch_up_on_request: config.external_mqtt.is_some(),
            },
            config.clock.clone(),
            ring_wake.clone(),
            pusher.clone(),
        );
        let heartbeats = crate::heartbeats::HeartbeatLedger::new(
            store.clone(),
            feed.clone(),
            config.supervision,
            metrics.clone(),
            config.clock.clone(),
        );
        let ingest = ingest.with_heartbeats(heartbeats.clone());
        let http_addr = listeners.http.local_addr()?;
        let metrics_addr = listeners
            .metrics
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let sia_addrs = match &listeners.sia {
            Some(l) => Some((l.tcp.local_addr()?, l.udp.local_addr()?)),
            None => None,
        };
        Ok(Self {
            store,
            router,
            config,
            listeners,
            feed,
            metrics,
            edge_stats: Arc::default(),
            mqtt_addr,
            mqtt_tls_addr,
            http_addr,
            metrics_addr,
            sia_addrs,
            ingest,
            downlink,
            pusher,
            ring_wake,
            connection,
            push_worker,
            relay_queue,
            login_refusals: Arc::default(),
            heartbeats,
            tiles,
        })
    }

    /// The devices' listener of the embedded broker's edge; `None` with an external broker.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.mqtt_addr
    }
    pub fn mqtt_tls_addr(&self) -> Option<SocketAddr> {
        self.mqtt_tls_addr
    }
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }
    /// Where `/metrics` is served alone (`--metrics-listen`), if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }
    /// The SIA DC-09 receiver's TCP and UDP addresses, when it runs.
    pub fn sia_addrs(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.sia_addrs
    }
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }
    pub fn edge_stats(&self) -> Arc<EdgeStats> {
        self.edge_stats.clone()
    }
    /// The alert service: apply actions as a volunteer or the station would.
    pub fn ingest(&self) -> Ingest {
        self.ingest.clone()
    }
    /// The station feed: every alert event as the console sees it.
    pub fn feed(&self) -> Feed {
        self.feed.clone()
    }
    /// Refused device logins as counted so far.
    pub fn login_refusals(&self) -> Arc<crate::supervision::LoginRefusals> {
        self.login_refusals.clone()
    }

    /// Serves until `shutdown` completes or a task fails; says which one ended.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            store,
            router,
            config,
            listeners,
            feed,
            metrics,
            edge_stats,
            ingest,
            downlink,
            pusher,
            ring_wake,
            connection,
            push_worker,
            relay_queue,
            login_refusals,
            heartbeats,
            tiles,
            ..
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };

        let (ready_tx, mut ready_rx) = watch::channel(false);
        // `background` runs until aborted; `serving` (edge, HTTP) drains on the stop signal.
        let mut background: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
        let mut serving: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
        // The embedded edge's direct uplink into the workers.
        let mut edge_uplink = None;
        match connection {
            BrokerConnection::InProcess {
                publisher,
                subscriber,
            } => {
                let shards = spawn_workers(&ingest, None, &mut background);
                edge_uplink = Some(Arc::new(EdgeUplink::new(&shards.0)));
                background.spawn(async move {
                    (
                        "broker-link",
                        run_local_uplink(publisher, subscriber, shards, ready_tx).await,
                    )
                });
            }
            BrokerConnection::Mqtt { client, eventloop } => {
                let shards = spawn_workers(&ingest, Some(client.clone()), &mut background);
                let replicas = config.external_mqtt.as_ref().map(|ext| Replicas {
                    share_group: ext.share_group.clone(),
                    origin: ext.client_id.clone(),
                    feed: feed.clone(),
                });
                if let (Some(queue), Some(r)) = (relay_queue, &replicas) {
                    let (client, origin) = (client.clone(), r.origin.clone());
                    background.spawn(async move {
                        ("feed-relay", run_feed_relay(queue, client, origin).await)
                    });
                }
                background.spawn(async move {
                    (
                        "mqtt-uplink",
                        run_uplink(*eventloop, client, shards, ready_tx, replicas).await,
                    )
                });
            }
        }
        tokio::time::timeout(Duration::from_secs(10), ready_rx.wait_for(|r| *r))
            .await
            .context("the gateway could not subscribe to the MQTT broker's uplink within 10 s")??;

        background.spawn(async move { ("push", push_worker.run().await) });
        let edge_slot = downlink.edge_slot();
        let owed = ingest.recover().await?;
        {
            let escalation = escalation::Escalation {
                store: store.clone(),
                plan: config.plan,
                clock: config.clock.clone(),
                downlink,
                pusher: pusher.clone(),
                feed: feed.clone(),
            };
            background
                .spawn(async move { ("escalation", escalation::run(escalation, ring_wake).await) });
        }
        if owed > 0 {
            tracing::warn!(owed, "sent the fan-out owed from before the restart");
        }

        let supervision = crate::supervision::Supervision {
            store: store.clone(),
            feed: feed.clone(),
            clock: config.clock.clone(),
            policy: config.supervision,
            refusals: login_refusals.clone(),
            heartbeats: Some(heartbeats.clone()),
        };
        background.spawn(async move { ("heartbeats", heartbeats.run().await) });
        {
            let supervision = supervision.clone();
            background.spawn(async move { ("supervision", supervision.run().await) });
        }
        // The embedded broker's edge: device logins, ACL, limits and presence. An external
        // broker does that itself (asking crate::http::broker_auth); supervision then has the
        // heartbeats only.
        if let (Some(router), Some(listener)) = (router, listeners.mqtt) {
            let (authority, presence_rx) = RegistryAuthority::new(store.clone(), metrics.clone());
            let authority = authority.with_catch_up(ingest.clone());
            let authority: Arc<dyn tenwatch_broker::DeviceAuthority> = Arc::new(authority);
            {
                let feed = feed.clone();
                background.spawn(async move {
                    let presence = run_presence(presence_rx, feed, supervision);
                    ("presence", presence.await)
                });
            }
            // One edge for both listeners, so a device moving between TCP and TLS is one
            // session.
            let mut edge = Edge::new(config.edge.clone(), router, authority, edge_stats.clone())
                .context("device edge configuration")?;
            if let Some(sink) = edge_uplink {
                edge = edge.with_uplink(sink);
            }
            let _ = edge_slot.set(edge.downlink());
            let tls = edge_tls(&config)?;
            {
                let (edge, stop) = (edge.clone(), stopped());
                serving.spawn(async move {
                    let result = edge.serve(listener, None, stop).await;
                    ("mqtt-edge", result.map_err(anyhow::Error::from))
                });
            }
            if let (Some(listener), Some(tls)) = (listeners.mqtt_tls, tls) {
                let (edge, stop) = (edge.clone(), stopped());
                serving.spawn(async move {
                    let result = edge.serve(listener, Some(tls), stop).await;
                    ("mqtt-edge-tls", result.map_err(anyhow::Error::from))
                });
            }
        }

        // Alarm panels: after the fan-out owed is paid, like the devices.
        if let Some(sia) = listeners.sia {
            let receiver = Arc::new(crate::sia::Receiver::new(
                store.clone(),
                ingest.clone(),
                config.sia,
                config.clock.clone(),
            ));
            {
                let (receiver, stop) = (receiver.clone(), stopped());
                serving.spawn(async move {
                    let result = crate::sia::listen::serve_tcp(receiver, sia.tcp, stop).await;
                    ("sia-tcp", result.map_err(anyhow::Error::from))
                });
            }
            let stop = stopped();
            serving.spawn(async move {
                let result = crate::sia::listen::serve_udp(receiver, sia.udp, stop).await;
                ("sia-udp", result.map_err(anyhow::Error::from))
            });
        }

        let accounts = Accounts::new(
            store.clone(),
            AccountsConfig {
                clock: config.clock.clone(),
                ..config.accounts.clone()
            },
        );
        let state = AppState {
            ingest: ingest.clone(),
            pusher,
            supervision: config.supervision,
            accounts,
            store,
            feed,
            metrics,
            edge_stats,
            login_refusals,
            mqtt_ready: ready_rx,
            started: Instant::now(),
            console: Arc::new(config.console.clone()),
            tiles,
            broker_auth_secret: config
                .broker_auth_secret
                .as_ref()
                .map(|s| s.0.as_str().into()),
            trust: Arc::new(config.http.trust.clone()),
            metrics_access: http::MetricsAccess {
                token: config.http.metrics_token.as_deref().map(Arc::from),
                elsewhere: listeners.metrics.is_some(),
            },
        };
        // HTTP gets what the open-file limit leaves once the devices have theirs.
        let devices = match config.external_mqtt {
            None => config.edge.max_connections,
            Some(_) => 0,
        };
        let limits = config.http.limits;
        let cap = http::server::connection_cap(
            limits.max_connections,
            tenwatch_broker::open_file_limit(),
            devices,
        );
        if cap < limits.max_connections {
            tracing::warn!(
                wanted = limits.max_connections,
                cap,
                open_file_limit = ?tenwatch_broker::open_file_limit(),
                devices,
                "HTTP connections capped to keep open files for the devices: raise the open-file limit (ulimit -n) for more"
            );
        }
        if let Some(listener) = listeners.metrics {
            let (stop, app) = (stopped(), http::metrics_router(state.clone()));
            serving.spawn(async move {
                // A scraper or two: a small cap of its own.
                let result = http::serve(listener, app, limits, 16, stop).await;
                ("metrics-http", result.map_err(anyhow::Error::from))
            });
        }
        {
            let (stop, app) = (stopped(), http::router(state));
            let listener = listeners.http;
            serving.spawn(async move {
                let result = http::serve(listener, app, limits, cap, stop)
                    .await
                    .map_err(anyhow::Error::from);
                ("http", result)
            });
        }

        tokio::pin!(shutdown);
        let outcome = tokio::select! {
            _ = &mut shutdown => Ok(()),
            Some(ended) = background.join_next() => task_ended(ended),
            Some(ended) = serving.join_next() => task_ended(ended),
        };
        let _ = stop_tx.send(true);
        // Let the edge and the HTTP server close their connections cleanly, then stop the rest.
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while serving.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("edge and HTTP did not drain within 5 s");
        }
        serving.shutdown().await;
        background.shutdown().await;
        outcome
    }
}

/// Loads the device TLS certificate named in the edge config, if any.
fn edge_tls(config: &Config) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    match &config.edge.tls {
        Some(TlsFiles {
            cert_path,
            key_path,
        }) => Ok(Some(
            tenwatch_broker::load_tls_acceptor(cert_path, key_path)
                .context("loading the device TLS certificate")?,
        )),
        None => Ok(None),
    }
}

fn task_ended(
    ended: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
) -> anyhow::Result<()> {
    match ended {
        Ok((name, Ok(()))) => Err(anyhow::anyhow!("task {name} ended unexpectedly")),
        Ok((name, Err(e))) => Err(e.context(format!("task {name} failed"))),
        Err(e) => Err(anyhow::anyhow!("a task panicked: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_urls_user_and_password_are_percent_decoded() {
        let ext =
            ExternalMqtt::parse("mqtt://gw%2B1:p+a%40ss%20w@127.0.0.1:1884", "gw-1", "tw").unwrap();
        assert_eq!(ext.username.as_deref(), Some("gw+1"));
        assert_eq!(
            ext.password.as_deref(),
            Some("p+a@ss w"),
            "a plus stays a plus"
        );
        assert_eq!((ext.host.as_str(), ext.port), ("127.0.0.1", 1884));
        let bare = ExternalMqtt::parse("mqtt://[::1]", "gw-1", "tw").unwrap();
        assert_eq!((bare.host.as_str(), bare.port), ("::1", 1883));
        assert_eq!(bare.username, None);
        assert!(ExternalMqtt::parse("http://127.0.0.1", "gw-1", "tw").is_err());
    }
}
