//! `tenwatch serve`: the flags that become a [`Config`], the listeners bound from them, and the
//! server run until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use tokio::net::TcpListener;

use super::StoreArgs;
use crate::app::ExternalMqtt;
use crate::store;
use crate::{Application, Config, Listeners};

#[derive(Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where devices connect (MQTT over TCP), to the embedded broker's edge.
    #[arg(long, env = "TENWATCH_MQTT_LISTEN", default_value = "0.0.0.0:1883")]
    pub mqtt_listen: SocketAddr,
    /// An external MQTT broker the devices use instead (mqtt://[user[:password]@]host[:port]):
    /// no embedded broker, no device listener here; the broker asks /api/broker/* or uses
    /// the files of `tenwatch admin export-mosquitto` to let devices in.
    #[arg(long, env = "TENWATCH_MQTT_URL", conflicts_with_all = ["mqtt_tls_listen"])]
    pub mqtt_url: Option<String>,
    /// The password for --mqtt-url, if not in the URL.
    #[arg(long, env = "TENWATCH_MQTT_PASSWORD", hide_env_values = true)]
    pub mqtt_password: Option<String>,
    /// This replica's MQTT client id on the external broker: keep it stable across restarts
    /// (the broker keeps the replica's session) and different for each replica.
    #[arg(
        long,
        env = "TENWATCH_MQTT_CLIENT_ID",
        default_value = "tenwatch-gateway-1"
    )]
    pub mqtt_client_id: String,
    /// The shared-subscription group the replicas share the uplink in.
    #[arg(long, env = "TENWATCH_MQTT_SHARE_GROUP", default_value = "tenwatch")]
    pub mqtt_share_group: String,
    /// Keep a persistent session on the external broker, which then holds the uplinks sent
    /// while this gateway restarts. Only without replicas: a dead replica's session would keep
    /// its share of the uplink from the others.
    #[arg(long, env = "TENWATCH_MQTT_KEEP_SESSION")]
    pub mqtt_keep_session: bool,
    /// The bearer secret an external broker presents to /api/broker/authenticate and
    /// /api/broker/authorize (EMQX HTTP auth); without it those routes are off.
    #[arg(long, env = "TENWATCH_BROKER_AUTH_SECRET", hide_env_values = true)]
    pub broker_auth_secret: Option<String>,
    /// Where devices connect with TLS (needs --tls-cert and --tls-key).
    #[arg(long, env = "TENWATCH_MQTT_TLS_LISTEN", requires_all = ["tls_cert", "tls_key"])]
    pub mqtt_tls_listen: Option<SocketAddr>,
    #[arg(long, env = "TENWATCH_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, env = "TENWATCH_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// The HTTP API, station feed, station console and volunteer app.
    #[arg(long, env = "TENWATCH_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// Receive alarm panels' SIA DC-09 messages (Contact ID) on this address, TCP and UDP
    /// both (e.g. 0.0.0.0:12128); off when not given. Panels are registered with `tenwatch
    /// admin add-sia-account`.
    #[arg(long, env = "TENWATCH_SIA_LISTEN")]
    pub sia_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub http: HttpArgs,
    /// Mark the session cookie `Secure`: set it when browsers reach the gateway over HTTPS
    /// (a TLS proxy in front), as the volunteer app's push needs in production.
    #[arg(long, env = "TENWATCH_SECURE_COOKIE")]
    pub secure_cookie: bool,
    /// Seconds after a press during which its presser may cancel it.
    #[arg(long, env = "TENWATCH_CANCEL_WINDOW", default_value_t = 30)]
    pub cancel_window: u64,
    /// Seconds: a press of a unit that sends no boot id repeats an earlier one with the same
    /// seq only within this long of it; later it is a new press (its counter started again).
    #[arg(long, env = "TENWATCH_PRESS_REPEAT_WINDOW", default_value_t = 600)]
    pub press_repeat_window: u64,
    /// Seconds: a household's new press joins its open alert of the same kind whose latest
    /// press is at most this old, instead of raising another (0: every press raises its own).
    #[arg(long, env = "TENWATCH_PRESS_MERGE_WINDOW", default_value_t = 600)]
    pub press_merge_window: u64,
    /// How many people coming are enough, per kind: once that many are, the other units hear
    /// "enough help is on the way" and volunteers not coming get a push saying so. KIND=COUNT
    /// pairs; kinds left out keep their default (help=4, medical=4, fire=6, intrusion=4); a
    /// count of 0 sets no limit.
    #[arg(long, env = "TENWATCH_ENOUGH_HELP", default_value = "", value_parser = parse_enough)]
    pub enough_help: crate::lifecycle::EnoughHelp,
    /// Seconds a device has to send CONNECT after opening its connection.
    #[arg(long, env = "TENWATCH_CONNECT_TIMEOUT", default_value_t = 5)]
    pub connect_timeout: u64,
    /// Largest payload a device may publish, in bytes.
    #[arg(long, env = "TENWATCH_MAX_PAYLOAD", default_value_t = 2048)]
    pub max_payload: usize,
    /// Presses one unit may send back to back before the edge holds its presses back (a
    /// flood from one unit's secret). A held-back press is acknowledged at the MQTT level and
    /// dropped; the unit repeats it until the gateway answers, so nothing is lost, only late.
    #[arg(long, env = "TENWATCH_PRESS_BURST", default_value_t = 5)]
    pub press_burst: u32,
    /// Seconds for a unit to earn one press back after its burst; 0 turns the limit off.
    #[arg(long, env = "TENWATCH_PRESS_REFILL", default_value_t = 2.0)]
    pub press_refill: f64,
    #[command(flatten)]
    pub console: crate::http::ConsoleArgs,
    /// The `sender` of the station's public CAP 1.2 messages (/cap/feed.atom): globally
    /// unique, such as tenwatch@station.example.org (no spaces, commas, < or &).
    #[arg(
        long,
        env = "TENWATCH_CAP_SENDER",
        default_value = "tenwatch@localhost"
    )]
    pub cap_sender: String,
    /// The station's contact printed on the 警情公示 bulletin, e.g. "和平里派出所 值班电话
    /// 010-64210000" (at most 200 characters; empty: the bulletin gives only 110).
    #[arg(long, env = "TENWATCH_STATION_CONTACT", default_value = "")]
    pub station_contact: String,
    /// The CJK font the bulletin's PDF is set in: a TrueType font or collection (its first
    /// face). Without it the PDF is answered 503 saying so; the printable page still works.
    #[arg(
        long,
        env = "TENWATCH_BULLETIN_FONT",
        default_value = crate::bulletin::DEFAULT_FONT
    )]
    pub bulletin_font: std::path::PathBuf,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// How the HTTP server meets the network: its connection limits, the reverse proxies it
/// believes, the origin browsers use, and who may read /metrics.
#[derive(Args, Clone)]
pub struct HttpArgs {
    /// Seconds a client has to send a request's head; a kept-alive connection whose next
    /// request has not come within it is closed too (idle and half-sent connections).
    #[arg(long, env = "TENWATCH_HTTP_HEADER_TIMEOUT", default_value_t = 10.0)]
    pub http_header_timeout: f64,
    /// Seconds a connection may go without a byte from its client (a stalled request body, a
    /// station feed whose browser is gone; browsers answer the feed's ping every 20 s).
    #[arg(long, env = "TENWATCH_HTTP_IDLE_TIMEOUT", default_value_t = 60.0)]
    pub http_idle_timeout: f64,
    /// Most HTTP connections at once; more are answered 503 and closed. Never more than the
    /// open-file limit leaves after the device edge's connections and 512 files for the
    /// gateway itself (at least 32), so HTTP cannot take the devices' files.
    #[arg(long, env = "TENWATCH_HTTP_MAX_CONNECTIONS", default_value_t = 1024)]
    pub http_max_connections: usize,
    /// A reverse proxy whose X-Forwarded-For is believed for the client's address (login
    /// limits, logs); repeat for several, or comma-separate in the variable. Without it no
    /// header is believed: the client is the connection's peer.
    #[arg(long, env = "TENWATCH_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Vec<std::net::IpAddr>,
    /// The origin browsers reach the console at when it is not http:// + the Host header the
    /// gateway sees, e.g. https://station.example.cn behind a TLS proxy that rewrites Host.
    /// Writes and the station feed from other origins are refused.
    #[arg(long, env = "TENWATCH_PUBLIC_ORIGIN")]
    pub public_origin: Option<String>,
    /// The bearer token a scraper presents to GET /metrics (at least 16 characters). Without
    /// it and without --metrics-listen, /metrics is off.
    #[arg(long, env = "TENWATCH_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Serve /metrics on this address only (e.g. a private network's), not on --http-listen;
    /// with --metrics-token the token is asked for there too.
    #[arg(long, env = "TENWATCH_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// The flags' defaults, for commands that serve without asking (the demo).
impl Default for HttpArgs {
    fn default() -> Self {
        let limits = crate::http::HttpLimits::default();
        Self {
            http_header_timeout: limits.header_timeout.as_secs_f64(),
            http_idle_timeout: limits.idle_timeout.as_secs_f64(),
            http_max_connections: limits.max_connections,
            trusted_proxy: Vec::new(),
            public_origin: None,
            metrics_token: None,
            metrics_listen: None,
        }
    }
}

impl HttpArgs {
    pub fn config(&self) -> anyhow::Result<crate::http::HttpConfig> {
        let secs = |s: f64, flag: &str| {
            anyhow::ensure!(
                s.is_finite() && s > 0.0,
                "{flag} must be a positive number of seconds"
            );
            Ok(Duration::from_secs_f64(s))
        };
        if let Some(token) = &self.metrics_token {
            anyhow::ensure!(
                token.len() >= 16,
                "--metrics-token must be at least 16 characters"
            );
        }
        let public_origin = self
            .public_origin
            .as_deref()
            .map(crate::http::Trust::parse_origin)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        Ok(crate::http::HttpConfig {
            limits: crate::http::HttpLimits {
                header_timeout: secs(self.http_header_timeout, "--http-header-timeout")?,
                idle_timeout: secs(self.http_idle_timeout, "--http-idle-timeout")?,
                max_connections: self.http_max_connections,
            },
            trust: crate::http::Trust {
                proxies: self.trusted_proxy.clone(),
                public_origin,
            },
            metrics_token: self.metrics_token.clone(),
        })
    }
}

/// The class of service `serve` and `demo` both run with: how an alert nobody answers reaches
/// further, how dead devices are noticed, and how volunteers' phones are pushed.
#[derive(Args, Clone)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub rings: RingArgs,
    #[command(flatten)]
    pub supervision: SupervisionArgs,
    #[command(flatten)]
    pub push: PushArgs,
    #[command(flatten)]
    pub ages: crate::ingest::AlertAgeArgs,
}

impl ServiceArgs {
    /// Sets the rings, the supervision policy and the push settings of `config`.
    fn configure(&self, config: &mut Config) -> anyhow::Result<()> {
        config.plan = self.rings.plan()?;
        config.supervision = self.supervision.policy();
        config.push = self.push.config()?;
        config.ages = self.ages.ages()?;
        Ok(())
    }
}

/// How volunteers' phones are pushed.
#[derive(Args, Clone)]
pub struct PushArgs {
    /// Contact for the push services in the VAPID signature: mailto:someone@your.station or
    /// an https:// page. Apple's service refuses placeholder addresses.
    #[arg(
        long,
        env = "TENWATCH_VAPID_SUBJECT",
        default_value = PLACEHOLDER_VAPID_SUBJECT
    )]
    pub vapid_subject: String,
    /// Seconds a push service may keep an alert for a phone that is off (TTL).
    #[arg(long, env = "TENWATCH_PUSH_TTL", default_value_t = 900)]
    pub push_ttl: u64,
    /// Seconds one request to a push service may take.
    #[arg(long, env = "TENWATCH_PUSH_TIMEOUT", default_value_t = 10.0)]
    pub push_timeout: f64,
    /// Requests in flight to one push service at once.
    #[arg(long, env = "TENWATCH_PUSH_CONCURRENCY", default_value_t = 16)]
    pub push_concurrency: usize,
    /// Accept push endpoints on this machine (a local push-service emulator). Testing only.
    #[arg(long, env = "TENWATCH_PUSH_ALLOW_LOOPBACK")]
    pub push_allow_loopback: bool,
    /// A PEM file of certificates to trust for push services besides the public roots (a push
    /// relay inside the station's network with a certificate of its own).
    #[arg(long, env = "TENWATCH_PUSH_CA_FILE")]
    pub push_ca_file: Option<std::path::PathBuf>,
}

impl PushArgs {
    pub fn config(&self) -> anyhow::Result<crate::push::PushConfig> {
        if !(self.push_timeout.is_finite() && self.push_timeout > 0.0) {
            bail!("--push-timeout must be a positive number of seconds");
        }

        Ok(crate::push::PushConfig {
            subject: self.vapid_subject.clone(),
            ttl: Duration::from_secs(self.push_ttl),
            timeout: Duration::from_secs_f64(self.push_timeout),
            per_origin: self.push_concurrency,
            allow_loopback: self.push_allow_loopback,
            extra_roots: match &self.push_ca_file {
                Some(path) => std::fs::read(path)
                    .with_context(|| format!("--push-ca-file {}", path.display()))?,
                None => Vec::new(),
            },
            ..Default::default()
        })
    }
}

/// How dead devices are noticed.
#[derive(Args, Clone)]
pub struct SupervisionArgs {
    /// Seconds between a device's heartbeats (set the devices to the same); silent longer is `late`.
    #[arg(long, env = "TENWATCH_HEARTBEAT_INTERVAL", default_value_t = 60.0)]
    pub heartbeat_interval: f64,
    /// Further seconds of silence before a device is `offline` (heartbeat missed).
    #[arg(long, env = "TENWATCH_HEARTBEAT_GRACE", default_value_t = 30.0)]
    pub heartbeat_grace: f64,
    /// Seconds a device back online must stay before its offline episode closes (flap debounce).
    #[arg(long, env = "TENWATCH_FLAP_SETTLE", default_value_t = 120.0)]
    pub flap_settle: f64,
    /// Battery percentage under which a device is reported low.
    #[arg(long, env = "TENWATCH_BATTERY_LOW", default_value_t = 20)]
    pub battery_low: u8,
    /// Percentage of a cluster's households that must be reachable.
    #[arg(long, env = "TENWATCH_COVERAGE_MIN", default_value_t = 70)]
    pub coverage_min: u8,
}

impl SupervisionArgs {
    pub fn policy(&self) -> crate::supervision::SupervisionPolicy {
        let ms = |s: f64| (s * 1000.0) as i64;
        crate::supervision::SupervisionPolicy {
            heartbeat_interval_ms: ms(self.heartbeat_interval),
            grace_ms: ms(self.heartbeat_grace),
            settle_ms: ms(self.flap_settle),
            battery_low: self.battery_low,
            coverage_min_percent: self.coverage_min,
        }
    }
}

/// When an alert nobody answers reaches further.
#[derive(Args, Clone)]
pub struct RingArgs {
    /// Seconds without anyone coming before ring 1 (nearby clusters, volunteers within the radius).
    #[arg(long, env = "TENWATCH_RING1_AFTER", default_value_t = 30)]
    pub ring1_after: u64,
    /// Seconds without anyone coming before ring 2 (every on-duty volunteer of the zone; critical).
    #[arg(long, env = "TENWATCH_RING2_AFTER", default_value_t = 90)]
    pub ring2_after: u64,
    /// Metres from the pressing household that ring 1 reaches.
    #[arg(long, env = "TENWATCH_RING1_RADIUS", default_value_t = 800.0)]
    pub ring1_radius: f64,
}

impl RingArgs {
    pub fn plan(&self) -> anyhow::Result<crate::store::RingPlan> {
        if self.ring1_after == 0 || self.ring2_after <= self.ring1_after {
            bail!(
                "--ring2-after ({}) must be later than --ring1-after ({}), and both above 0",
                self.ring2_after,
                self.ring1_after
            );
        }
        if !(self.ring1_radius.is_finite() && self.ring1_radius > 0.0) {
            bail!("--ring1-radius must be a positive number of metres");
        }
        Ok(crate::store::RingPlan {
            ring1_after_ms: self.ring1_after as i64 * 1000,
            ring2_after_ms: self.ring2_after as i64 * 1000,
            radius_m: self.ring1_radius,
        })
    }
}

/// The `--vapid-subject` a station that did not set its own is left with (a warning at start).
pub const PLACEHOLDER_VAPID_SUBJECT: &str = "mailto:admin@tenwatch.invalid";

/// Connections the kernel holds for a listener before `accept` takes them. tokio's `bind`
/// asks for 1,024; when every unit of a neighbourhood reconnects at once (a router reboot, a
/// gateway restart) a larger queue turns refused SYNs, each a unit waiting out its backoff,
/// into connections accepted a moment later. Linux caps it at `net.core.somaxconn` (4,096).
const LISTEN_BACKLOG: u32 = 8192;

pub(super) async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().with_context(|| {
        format!("cannot listen for {what} on {addr}: is another tenwatch running? choose another address")
    })
}

/// Ends when the process is asked to stop: Ctrl-C (SIGINT) in a terminal, or SIGTERM from a
/// service manager (`systemctl stop`, `docker stop`). Either way the gateway shuts down in
/// order: devices are told, the store is left consistent. The handlers are in place when this
/// returns, before anything listens: a SIGTERM that comes as soon as the gateway answers is a
/// stop in order, not the default death by signal.
pub(super) fn stop_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &'static str| {
            let handler = signal(kind);
            async move {
                match handler {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
                name
            }
        };
        (
            listen(SignalKind::interrupt(), "Ctrl-C"),
            listen(SignalKind::terminate(), "SIGTERM"),
        )
    };
    #[cfg(not(unix))]
    let (interrupt, terminate) = (
        async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
            "Ctrl-C"
        },
        std::future::pending::<&str>(),
    );
    async move {
        let why = tokio::select! {
            why = interrupt => why,
            why = terminate => why,
        };
        tracing::info!("{why}: shutting down");
    }
}

fn parse_enough(list: &str) -> Result<crate::lifecycle::EnoughHelp, String> {
    crate::lifecycle::EnoughHelp::parse(list).map_err(|e| e.to_string())
}

fn press_rules(repeat_s: u64, merge_s: u64) -> crate::store::PressRules {
    crate::store::PressRules {
        repeat_window_ms: repeat_s as i64 * 1000,
        merge_window_ms: merge_s as i64 * 1000,
    }
}

pub(super) async fn build_app(args: &ServeArgs) -> anyhow::Result<Application> {
    let mut config = Config::new(args.store.url()?);
    config.cancel_window = Duration::from_secs(args.cancel_window);
    anyhow::ensure!(
        args.press_repeat_window <= 86_400 && args.press_merge_window <= 86_400,
        "--press-repeat-window and --press-merge-window must be at most a day (86400 s)"
    );
    config.presses = press_rules(args.press_repeat_window, args.press_merge_window);
    config.enough = args.enough_help;
    config.edge.connect_timeout = Duration::from_secs(args.connect_timeout);
    config.edge.max_payload = args.max_payload;
    anyhow::ensure!(
        args.press_refill.is_finite() && (0.0..=3600.0).contains(&args.press_refill),
        "--press-refill must be between 0 and 3600 seconds"
    );
    config.edge.press_limit = tenwatch_broker::RateLimit {
        burst: args.press_burst,
        refill_every: Duration::from_secs_f64(args.press_refill),
    };
    args.service.configure(&mut config)?;
    config.accounts.secure_cookie = args.secure_cookie;
    config.http = args.http.config()?;
    config.console = args.console.clone().into_config()?;
    config.console.cap_sender =
        crate::cap::CapSender::parse(args.cap_sender.trim()).map_err(anyhow::Error::msg)?;
    let contact = args.station_contact.trim();
    anyhow::ensure!(
        contact.chars().count() <= 200 && !contact.chars().any(char::is_control),
        "--station-contact must be at most 200 characters on one line"
    );
    config.console.station_contact = contact.to_owned();
    config.console.bulletin_font = args.bulletin_font.clone();
    if let Some(secret) = &args.broker_auth_secret {
        anyhow::ensure!(
            secret.len() >= 16,
            "--broker-auth-secret must be at least 16 characters"
        );
        config.broker_auth_secret = Some(crate::app::Secret(secret.clone()));
    }
    if let Some(url) = &args.mqtt_url {
        let mut ext = ExternalMqtt::parse(url, &args.mqtt_client_id, &args.mqtt_share_group)?;
        if args.mqtt_password.is_some() {
            ext.password = args.mqtt_password.clone();
        }
        ext.keep_session = args.mqtt_keep_session;
        config.external_mqtt = Some(ext);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.edge.tls = Some(tenwatch_broker::TlsFiles {
            cert_path: cert.clone(),
            key_path: key.clone(),
        });
    }
    let listeners = Listeners {
        mqtt: match args.mqtt_url {
            None => Some(bind(args.mqtt_listen, "MQTT devices").await?),
            Some(_) => None,
        },
        mqtt_tls: match args.mqtt_tls_listen {
            Some(addr) => Some(bind(addr, "MQTT devices over TLS").await?),
            None => None,
        },
        http: bind(args.http_listen, "HTTP").await?,
        metrics: match args.http.metrics_listen {
            Some(addr) => Some(bind(addr, "/metrics").await?),
            None => None,
        },
        sia: match args.sia_listen {
            Some(addr) => Some(crate::sia::SiaListeners {
                tcp: bind(addr, "SIA DC-09 alarm panels (TCP)").await?,
                udp: tokio::net::UdpSocket::bind(addr).await.with_context(|| {
                    format!("cannot listen for SIA DC-09 alarm panels (UDP) on {addr}: choose another --sia-listen")
                })?,
            }),
            None => None,
        },
    };
    Application::build(config, listeners).await
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // (The demo keeps the placeholder quietly: its volunteers are simulated.)
    if args.service.push.vapid_subject == PLACEHOLDER_VAPID_SUBJECT {
        tracing::warn!(
            "--vapid-subject is the placeholder {PLACEHOLDER_VAPID_SUBJECT}: push services may \
             refuse or throttle a sender they cannot contact; give a mailto: or https: address \
             of your station"
        );
    }
    // Before anything listens: a stop asked for from now on is a stop in order.
    let stop = stop_signal();
    let app = build_app(&args).await?;
    let devices = match (app.mqtt_addr(), &args.mqtt_url) {
        (Some(addr), _) => format!("mqtt://{addr}"),
        (None, Some(url)) => format!("through {}", store::redacted_url(url)),
        (None, None) => "nowhere".into(),
    };
    println!(
        "tenwatch serving: devices {}{}, station http://{}/ (feed ws://{}/api/feed)",
        devices,
        app.mqtt_tls_addr()
            .map(|a| format!(" and mqtts://{a}"))
            .unwrap_or_default(),
        app.http_addr(),
        app.http_addr()
    );
    if let Some(addr) = app.metrics_addr() {
        println!("metrics http://{addr}/metrics");
    }
    if let Some((tcp, udp)) = app.sia_addrs() {
        println!("alarm panels (SIA DC-09): tcp {tcp}, udp {udp}");
    }
    app.run(stop).await
}
