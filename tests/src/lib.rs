//! The harness of tenwatch's end-to-end tests: a real gateway (embedded rumqttd, device edge,
//! SQLite file in a temporary directory) on ports picked by the OS, and test devices that
//! speak MQTT with rumqttc exactly as an in-home unit would.
//!
//! Waiting is done on events (a message, a connection state) with a deadline, never by sleeping.

pub mod cap;
pub mod mbtiles;
pub mod mosquitto;
pub mod openapi;
pub mod push;
pub mod sia_peer;
pub mod tls;
pub mod venv;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use serde_json::Value;
use tenwatch_gateway::seed::{self, Credential};
use tenwatch_gateway::{Application, Config, Listeners};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long any single expected thing may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,tenwatch_gateway=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The station operator every test app has, for the demo zone.
pub const OPERATOR: &str = "station";
/// The password of the test accounts.
pub const PASSWORD: &str = "correct horse battery";

/// A running gateway and the temporary directory holding its database.
pub struct TestApp {
    /// The operator's session token.
    pub token: String,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    /// `/metrics` on its own listener, when the app was started with one.
    pub metrics_http: Option<SocketAddr>,
    pub dir: Arc<tempfile::TempDir>,
    pub credentials: Vec<Credential>,
    pub config: Config,
    pub metrics: Arc<tenwatch_gateway::metrics::Metrics>,
    pub edge_stats: Arc<tenwatch_broker::EdgeStats>,
    /// Refused device logins as the gateway counts them.
    pub login_refusals: Arc<tenwatch_gateway::supervision::LoginRefusals>,
    /// The external broker the devices use, when the gateway runs without its own.
    pub broker: Option<Arc<mosquitto::Mosquitto>>,
    /// The SIA DC-09 receiver's TCP and UDP addresses, when it runs ([`spawn_app_with_sia`]).
    pub sia: Option<(SocketAddr, SocketAddr)>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Seeds a fresh database with `clusters` demo clusters of ten and starts a gateway on it.
pub async fn spawn_app(clusters: usize) -> anyhow::Result<TestApp> {
    spawn_app_with(clusters, |_| {}).await
}

pub async fn spawn_app_with(
    clusters: usize,
    tune: impl FnOnce(&mut Config),
) -> anyhow::Result<TestApp> {
    spawn_embedded(clusters, tune, false).await
}

/// As [`spawn_app_with`], with `/metrics` on a listener of its own (`--metrics-listen`).
pub async fn spawn_app_with_metrics_listener(
    clusters: usize,
    tune: impl FnOnce(&mut Config),
) -> anyhow::Result<TestApp> {
    spawn_embedded(clusters, tune, true).await
}

/// As [`spawn_app_with`], on the database `url` (a PostgreSQL one, say), seeded here.
pub async fn spawn_app_on_database(
    url: &str,
    clusters: usize,
    tune: impl FnOnce(&mut Config),
) -> anyhow::Result<TestApp> {
    init_tracing();
    let dir = Arc::new(tempfile::tempdir()?);
    let credentials = seed_into(url, clusters).await?;
    let mut config = Config::new(url);
    tune(&mut config);
    let mqtt = Some("127.0.0.1:0".parse()?);
    start_on(dir, credentials, config, mqtt, None).await
}

/// A seeded gateway with its embedded broker, `/metrics` apart or not.
async fn spawn_embedded(
    clusters: usize,
    tune: impl FnOnce(&mut Config),
    metrics_apart: bool,
) -> anyhow::Result<TestApp> {
    let (dir, credentials, url) = seeded(clusters).await?;
    let mut config = Config::new(url);
    tune(&mut config);
    let metrics = match metrics_apart {
        true => Some(TcpListener::bind("127.0.0.1:0").await?),
        false => None,
    };
    let mqtt = Some("127.0.0.1:0".parse()?);
    start_on(dir, credentials, config, mqtt, metrics).await
}

/// As [`spawn_app_with`], with the SIA DC-09 receiver for alarm panels on loopback (TCP and
/// UDP, ports picked by the OS): `app.sia`.
pub async fn spawn_app_with_sia(
    clusters: usize,
    tune: impl FnOnce(&mut Config),
) -> anyhow::Result<TestApp> {
    let (dir, credentials, url) = seeded(clusters).await?;
    let mut config = Config::new(url);
    tune(&mut config);
    let sia = tenwatch_gateway::sia::SiaListeners {
        tcp: TcpListener::bind("127.0.0.1:0").await?,
        udp: tokio::net::UdpSocket::bind("127.0.0.1:0").await?,
    };
    let mqtt = Some("127.0.0.1:0".parse()?);
    start_with(dir, credentials, config, mqtt, None, Some(sia)).await
}

/// A gateway on a real Mosquitto broker (`--mqtt-url`), the broker's password and ACL files
/// made by the gateway's exporter from the seeded credentials. Devices connect to
/// `app.mqtt`, which is the broker.
pub async fn spawn_app_on_mosquitto(
    clusters: usize,
    tune: impl FnOnce(&mut Config),
) -> anyhow::Result<TestApp> {
    let (dir, credentials, url) = seeded(clusters).await?;
    let store = tenwatch_gateway::store::open(&url).await?;
    let files = tenwatch_gateway::external_broker::mosquitto_files(
        store.as_ref(),
        &credentials,
        mosquitto::GATEWAY_USER,
        mosquitto::GATEWAY_PASSWORD,
    )
    .await?;
    drop(store);
    let (passwords, acl) = (
        dir.path().join("mosquitto.passwd"),
        dir.path().join("mosquitto.acl"),
    );
    std::fs::write(&passwords, files.passwords)?;
    std::fs::write(&acl, files.acl)?;
    let broker = mosquitto::Mosquitto::start(dir.path(), &passwords, &acl).await?;
    let mut config = Config::new(url);
    config.external_mqtt = Some(tenwatch_gateway::app::ExternalMqtt {
        host: broker.addr.ip().to_string(),
        port: broker.addr.port(),
        username: Some(mosquitto::GATEWAY_USER.into()),
        password: Some(mosquitto::GATEWAY_PASSWORD.into()),
        client_id: "tenwatch-gateway-test".into(),
        share_group: "tenwatch".into(),
        keep_session: false,
    });
    tune(&mut config);
    let broker_addr = broker.addr;
    let mut app = start(dir, credentials, config, None).await?;
    app.mqtt = broker_addr;
    app.broker = Some(Arc::new(broker));
    Ok(app)
}

/// A fresh database with `clusters` demo clusters and the station operator.
async fn seeded(
    clusters: usize,
) -> anyhow::Result<(Arc<tempfile::TempDir>, Vec<Credential>, String)> {
    init_tracing();
    let dir = Arc::new(tempfile::tempdir()?);
    let url = tenwatch_gateway::store::sqlite_url_in(dir.path());
    let credentials = seed_into(&url, clusters).await?;
    Ok((dir, credentials, url))
}

/// `clusters` demo clusters and the station operator, in the database `url`.
async fn seed_into(url: &str, clusters: usize) -> anyhow::Result<Vec<Credential>> {
    let store = tenwatch_gateway::store::open(url).await?;
    let credentials = seed::seed_demo(store.as_ref(), clusters).await?;
    let zone = tenwatch_gateway::domain::ZoneCode::parse(seed::DEMO_ZONE)?;
    tenwatch_gateway::accounts::create_operator(
        store.as_ref(),
        OPERATOR,
        PASSWORD,
        tenwatch_gateway::accounts::Role::Monitor,
        &[zone],
        "值班民警",
    )
    .await?;
    drop(store);
    Ok(credentials)
}

async fn start(
    dir: Arc<tempfile::TempDir>,
    credentials: Vec<Credential>,
    config: Config,
    mqtt: Option<SocketAddr>,
) -> anyhow::Result<TestApp> {
    start_on(dir, credentials, config, mqtt, None).await
}

async fn start_on(
    dir: Arc<tempfile::TempDir>,
    credentials: Vec<Credential>,
    config: Config,
    mqtt: Option<SocketAddr>,
    metrics: Option<TcpListener>,
) -> anyhow::Result<TestApp> {
    start_with(dir, credentials, config, mqtt, metrics, None).await
}

async fn start_with(
    dir: Arc<tempfile::TempDir>,
    credentials: Vec<Credential>,
    config: Config,
    mqtt: Option<SocketAddr>,
    metrics: Option<TcpListener>,
    sia: Option<tenwatch_gateway::sia::SiaListeners>,
) -> anyhow::Result<TestApp> {
    let listeners = Listeners {
        mqtt: match mqtt {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        },
        mqtt_tls: None,
        http: TcpListener::bind("127.0.0.1:0").await?,
        metrics,
        sia,
    };
    let app = Application::build(config.clone(), listeners).await?;
    // With an external broker the caller sets `mqtt` to the broker's address.
    let (mqtt, http) = (
        app.mqtt_addr()
            .unwrap_or_else(|| ([127, 0, 0, 1], 0).into()),
        app.http_addr(),
    );
    let sia = app.sia_addrs();
    let (metrics, edge_stats, metrics_http, login_refusals) = (
        app.metrics(),
        app.edge_stats(),
        app.metrics_addr(),
        app.login_refusals(),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let token = login(http, OPERATOR, PASSWORD).await?;
    Ok(TestApp {
        token,
        mqtt,
        http,
        metrics_http,
        dir,
        credentials,
        config,
        metrics,
        edge_stats,
        login_refusals,
        broker: None,
        sia,
        stop: Some(stop),
        task: Some(task),
    })
}

impl TestApp {
    /// Stops the gateway and waits until it has shut down.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }

    /// A second gateway on the same database and external broker, as another replica with
    /// its own MQTT client id and HTTP port.
    pub async fn another_replica(&self, client_id: &str) -> anyhow::Result<TestApp> {
        let mut config = self.config.clone();
        let ext = config
            .external_mqtt
            .as_mut()
            .ok_or_else(|| anyhow!("replicas share an external broker"))?;
        ext.client_id = client_id.to_owned();
        let mut app = start(self.dir.clone(), self.credentials.clone(), config, None).await?;
        app.mqtt = self.mqtt;
        app.broker = self.broker.clone();
        Ok(app)
    }

    /// Stops the gateway and starts a new one on the same database and device port.
    pub async fn restart(mut self) -> anyhow::Result<TestApp> {
        self.stop().await?;
        let external = self.config.external_mqtt.is_some();
        let mut app = start(
            self.dir.clone(),
            self.credentials.clone(),
            self.config.clone(),
            (!external).then_some(self.mqtt),
        )
        .await?;
        if external {
            app.mqtt = self.mqtt;
            app.broker = self.broker.take();
        }
        Ok(app)
    }

    /// Stops the gateway, runs `between` (e.g. waiting for units to notice), and starts a new
    /// gateway on the same database and device port.
    pub async fn restart_after(
        mut self,
        between: impl std::future::Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<TestApp> {
        self.stop().await?;
        between.await?;
        self.restart().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// GET as the station operator.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.get_as(&self.token, path).await
    }

    /// The station's view of the alert a unit's message names (its `alert` field: an ack, a
    /// cluster alert).
    pub async fn alert_named_in(&self, message: &Value) -> anyhow::Result<Value> {
        let id = message["alert"].as_str().unwrap_or("");
        let (status, detail) = self.get_json(&format!("/api/alerts/{id}")).await?;
        anyhow::ensure!(status == 200, "alert {id:?}: {status} {detail}");
        Ok(detail)
    }

    pub async fn get_as(&self, token: &str, path: &str) -> anyhow::Result<(u16, Value)> {
        let response = reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    /// POST JSON as the station operator.
    pub async fn post_json(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        self.post_as(&self.token, path, body).await
    }

    pub async fn post_as(
        &self,
        token: &str,
        path: &str,
        body: Value,
    ) -> anyhow::Result<(u16, Value)> {
        let response = reqwest::Client::new()
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    /// Creates an account directly in the store (as `tenwatch admin` would) and signs it in.
    pub async fn volunteer(&self, name: &str, zone: &str) -> anyhow::Result<String> {
        let store = tenwatch_gateway::store::open(&self.config.database_url).await?;
        tenwatch_gateway::accounts::create_volunteer(
            store.as_ref(),
            name,
            PASSWORD,
            &tenwatch_gateway::domain::ZoneCode::parse(zone)?,
            name,
            "",
        )
        .await?;
        login(self.http, name, PASSWORD).await
    }

    pub async fn operator(&self, name: &str, zone: &str) -> anyhow::Result<String> {
        let store = tenwatch_gateway::store::open(&self.config.database_url).await?;
        tenwatch_gateway::accounts::create_operator(
            store.as_ref(),
            name,
            PASSWORD,
            tenwatch_gateway::accounts::Role::Monitor,
            &[tenwatch_gateway::domain::ZoneCode::parse(zone)?],
            name,
        )
        .await?;
        login(self.http, name, PASSWORD).await
    }

    /// The credentials of cluster `c` (0-based), ten devices.
    pub fn cluster(&self, c: usize) -> &[Credential] {
        &self.credentials[c * 10..c * 10 + 10]
    }

    /// Waits until the gateway's counters satisfy `check` (they move after messages are handled).
    pub async fn wait_for_metrics(
        &self,
        what: &str,
        check: impl Fn(&tenwatch_gateway::metrics::MetricsSnapshot) -> bool,
    ) -> anyhow::Result<()> {
        wait_until(what, || check(&self.metrics.snapshot())).await
    }

    pub async fn wait_for_edge(
        &self,
        what: &str,
        check: impl Fn(&tenwatch_broker::EdgeStatsSnapshot) -> bool,
    ) -> anyhow::Result<()> {
        wait_until(what, || check(&self.edge_stats.snapshot())).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Signs in through `POST /api/session`; returns the session token.
pub async fn login(http: SocketAddr, name: &str, password: &str) -> anyhow::Result<String> {
    let response = reqwest::Client::new()
        .post(format!("http://{http}/api/session"))
        .json(&serde_json::json!({ "name": name, "password": password }))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        bail!("login of {name} failed: {status} {body}");
    }
    body["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no token in {body}"))
}

/// Re-checks a condition that changes as a side effect of messages handled elsewhere (a
/// counter), until it holds or [`DEADLINE`] passes.
pub async fn wait_until(what: &str, check: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check() {
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Something a test device saw.
#[derive(Debug)]
pub enum Seen {
    Message {
        topic: String,
        body: Value,
    },
    /// Raw payload that was not JSON.
    Raw {
        topic: String,
        payload: Vec<u8>,
    },
    Connected,
    SubAck(Vec<SubscribeReasonCode>),
    /// The connection ended with this error.
    Disconnected(String),
}

/// An in-home unit speaking MQTT through rumqttc.
pub struct TestDevice {
    pub id: String,
    pub cluster: String,
    pub client: AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
}

impl Drop for TestDevice {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Options of a test device's connection.
#[derive(Debug, Clone, Copy)]
pub struct DeviceOptions {
    /// Reconnect after a lost connection (as real units do) or stop.
    pub reconnect: bool,
    /// Subscribe to `down/#` and the cluster topic on every CONNACK.
    pub subscribe: bool,
    pub keep_alive: Duration,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self {
            reconnect: true,
            subscribe: true,
            keep_alive: Duration::from_secs(30),
        }
    }
}

impl TestDevice {
    /// Connects with the device's own credentials and waits until it is subscribed.
    pub async fn connect(broker: SocketAddr, cred: &Credential) -> anyhow::Result<TestDevice> {
        let mut device = Self::start(broker, cred, &cred.password, DeviceOptions::default());
        device.expect_connected().await?;
        match device.next_seen().await? {
            Seen::SubAck(codes)
                if codes
                    .iter()
                    .all(|c| matches!(c, SubscribeReasonCode::Success(_))) =>
            {
                Ok(device)
            }
            other => bail!(
                "{} expected its subscriptions granted, saw {other:?}",
                cred.device
            ),
        }
    }

    /// Starts the connection without waiting for anything.
    pub fn start(
        broker: SocketAddr,
        cred: &Credential,
        password: &str,
        opts: DeviceOptions,
    ) -> TestDevice {
        let mut options = MqttOptions::new(&cred.device, broker.ip().to_string(), broker.port());
        options
            .set_credentials(&cred.device, password)
            .set_keep_alive(opts.keep_alive)
            .set_clean_session(true);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, seen) = mpsc::unbounded_channel();
        let (sub_client, device, cluster) =
            (client.clone(), cred.device.clone(), cred.cluster.clone());
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(20);
            loop {
                let seen = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff = Duration::from_millis(20);
                        if opts.subscribe {
                            let filters =
                                [format!("tw/d/{device}/down/#"), format!("tw/c/{cluster}/#")];
                            // try_: awaiting the client inside the poll loop can deadlock.
                            let _ = sub_client.try_subscribe_many(
                                filters
                                    .into_iter()
                                    .map(|f| rumqttc::SubscribeFilter::new(f, QoS::AtLeastOnce)),
                            );
                        }
                        Seen::Connected
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => Seen::SubAck(ack.return_codes),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        match serde_json::from_slice::<Value>(&p.payload) {
                            Ok(body) => Seen::Message {
                                topic: p.topic,
                                body,
                            },
                            Err(_) => Seen::Raw {
                                topic: p.topic,
                                payload: p.payload.to_vec(),
                            },
                        }
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        let stop =
                            !opts.reconnect || matches!(e, ConnectionError::ConnectionRefused(_));
                        let _ = tx.send(Seen::Disconnected(format!("{e:?}")));
                        if stop {
                            return;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(500));
                        continue;
                    }
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        TestDevice {
            id: cred.device.clone(),
            cluster: cred.cluster.clone(),
            client,
            seen,
            task,
        }
    }

    pub async fn next_seen(&mut self) -> anyhow::Result<Seen> {
        tokio::time::timeout(DEADLINE, self.seen.recv())
            .await
            .map_err(|_| anyhow!("{}: nothing arrived within {DEADLINE:?}", self.id))?
            .ok_or_else(|| anyhow!("{}: connection task ended", self.id))
    }

    pub async fn expect_connected(&mut self) -> anyhow::Result<()> {
        loop {
            match self.next_seen().await? {
                Seen::Connected => return Ok(()),
                Seen::Disconnected(e) => bail!("{} could not connect: {e}", self.id),
                _ => {}
            }
        }
    }

    /// Waits for the connection to end; returns the error text.
    pub async fn expect_disconnected(&mut self) -> anyhow::Result<String> {
        loop {
            if let Seen::Disconnected(e) = self.next_seen().await? {
                return Ok(e);
            }
        }
    }

    /// Waits for the next JSON message on a topic ending with `suffix`, skipping others.
    pub async fn expect_message(&mut self, suffix: &str) -> anyhow::Result<Value> {
        loop {
            match self.next_seen().await? {
                Seen::Message { topic, body } if topic.ends_with(suffix) => return Ok(body),
                Seen::Disconnected(e) => bail!("{} lost its connection: {e}", self.id),
                _ => {}
            }
        }
    }

    /// Messages already received, without waiting.
    pub fn drain(&mut self) -> Vec<Seen> {
        let mut out = Vec::new();
        while let Ok(seen) = self.seen.try_recv() {
            out.push(seen);
        }
        out
    }

    pub async fn publish(&self, kind: &str, body: Value) -> anyhow::Result<()> {
        self.publish_raw(
            &format!("tw/d/{}/up/{kind}", self.id),
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .context("queueing a publish")
    }

    pub async fn press(&self, seq: u64, kind: &str) -> anyhow::Result<()> {
        self.publish(
            "press",
            serde_json::json!({ "seq": seq, "kind": kind, "ts": chrono_ms() }),
        )
        .await
    }

    /// Presses as a unit that sends its boot id (random at each power-up), and waits for the
    /// `down/ack` of that (boot, seq); returns the ack.
    pub async fn press_after_boot(
        &mut self,
        boot: &str,
        seq: u64,
        kind: &str,
    ) -> anyhow::Result<Value> {
        self.publish(
            "press",
            serde_json::json!({ "seq": seq, "boot": boot, "kind": kind, "ts": chrono_ms() }),
        )
        .await?;
        loop {
            let ack = self.expect_message("/down/ack").await?;
            if ack["seq"] == seq && ack["boot"] == boot {
                return Ok(ack);
            }
        }
    }

    /// Presses and waits for the `down/ack` of that seq; returns the ack.
    pub async fn press_and_wait_ack(&mut self, seq: u64, kind: &str) -> anyhow::Result<Value> {
        self.press(seq, kind).await?;
        self.expect_ack(seq).await
    }

    pub async fn expect_ack(&mut self, seq: u64) -> anyhow::Result<Value> {
        loop {
            let ack = self.expect_message("/down/ack").await?;
            if ack["seq"] == seq {
                return Ok(ack);
            }
        }
    }
}

fn chrono_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Connects every device of the given credentials, in parallel.
pub async fn connect_all(
    broker: SocketAddr,
    creds: &[Credential],
) -> anyhow::Result<Vec<TestDevice>> {
    let tasks: Vec<_> = creds
        .iter()
        .cloned()
        .map(|c| tokio::spawn(async move { TestDevice::connect(broker, &c).await }))
        .collect();
    let mut devices = Vec::with_capacity(tasks.len());
    for t in tasks {
        devices.push(t.await??);
    }
    Ok(devices)
}

/// The `tenwatch` binary `cargo build --workspace` made (in `CARGO_TARGET_DIR`, else the
/// workspace's `target/`), for tests that run it as a person would.
pub fn tenwatch_bin() -> anyhow::Result<std::path::PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"))
        });
    let bin = target.join("debug/tenwatch");
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: build the workspace first (scripts/test.sh does)",
        bin.display()
    );
    Ok(bin)
}

/// Whether a test that needs an outside program may skip without it: never on CI.
pub fn require_tool(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if found {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{tool} is required on CI but is not installed (scripts/test.sh installs it)");
    }
    eprintln!("SKIPPED: {tool} is not installed; run scripts/test.sh to install it");
    false
}

/// A station's feed WebSocket.
pub type Feed =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the station feed as the operator; returns after its snapshot.
pub async fn open_feed(app: &TestApp) -> anyhow::Result<Feed> {
    let mut request = format!("ws://{}/api/feed", app.http).into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {}", app.token).parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    let hello = next_feed(&mut ws).await?;
    assert_eq!(hello["type"], "snapshot", "{hello}");
    Ok(ws)
}

/// The next alert event on the feed, skipping device presence, health and coverage events.
pub async fn next_alert_event(ws: &mut Feed) -> anyhow::Result<Value> {
    loop {
        let event = next_feed(ws).await?;
        if !matches!(
            event["type"].as_str(),
            Some("device" | "device_health" | "coverage")
        ) {
            return Ok(event);
        }
    }
}

/// The next JSON event on the feed, within the deadline.
pub async fn next_feed(ws: &mut Feed) -> anyhow::Result<Value> {
    loop {
        let msg = tokio::time::timeout(DEADLINE, futures::StreamExt::next(ws))
            .await?
            .ok_or_else(|| anyhow::anyhow!("feed closed"))??;
        if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
            return Ok(serde_json::from_str(&text)?);
        }
    }
}

/// Percent-encodes a query value (labels are Chinese, ISO times carry `+` and `:`).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
