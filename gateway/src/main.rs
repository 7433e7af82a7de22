//! The `tenwatch` binary: parses the command line, sets up logging and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use tenwatch_gateway::accounts::{self, Role};
use tenwatch_gateway::app::ExternalMqtt;
use tenwatch_gateway::domain::{ClusterId, DeviceId, HouseholdId, ZoneCode};
use tenwatch_gateway::seed::{self, write_credentials};
use tenwatch_gateway::store::{self, NewCluster, NewHousehold, Store};
use tenwatch_gateway::{Application, Config, Listeners};
use tokio::net::TcpListener;

mod demo;

#[derive(Parser)]
#[command(
    name = "tenwatch",
    version,
    about = "十户联防 — neighbourhood-watch alert network"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker and the gateway.
    Serve(ServeArgs),
    /// Seed a demo neighbourhood if empty, serve it, and simulate residents pressing.
    Demo(DemoArgs),
    /// Manage the registry.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// Directory for the SQLite database and demo files.
    #[arg(long, env = "TENWATCH_DATA_DIR", default_value = "./tenwatch-data")]
    data_dir: PathBuf,
    /// Database URL (`sqlite:PATH`, or `postgres://USER:PASSWORD@HOST:PORT/DATABASE` for
    /// several gateways on one database); overrides the file in --data-dir.
    #[arg(long, env = "TENWATCH_DATABASE_URL")]
    database_url: Option<String>,
}

impl StoreArgs {
    fn url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating the data directory {}", self.data_dir.display()))?;
        Ok(store::sqlite_url_in(&self.data_dir))
    }

    async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        let url = self.url()?;
        store::open(&url)
            .await
            .with_context(|| format!("opening the store {url}"))
    }
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Where devices connect (MQTT over TCP), to the embedded broker's edge.
    #[arg(long, env = "TENWATCH_MQTT_LISTEN", default_value = "0.0.0.0:1883")]
    mqtt_listen: SocketAddr,
    /// An external MQTT broker the devices use instead (mqtt://[user[:password]@]host[:port]):
    /// no embedded broker, no device listener here; the broker asks /api/broker/* or uses
    /// the files of `tenwatch admin export-mosquitto` to let devices in.
    #[arg(long, env = "TENWATCH_MQTT_URL", conflicts_with_all = ["mqtt_tls_listen"])]
    mqtt_url: Option<String>,
    /// The password for --mqtt-url, if not in the URL.
    #[arg(long, env = "TENWATCH_MQTT_PASSWORD", hide_env_values = true)]
    mqtt_password: Option<String>,
    /// This replica's MQTT client id on the external broker: keep it stable across restarts
    /// (the broker keeps the replica's session) and different for each replica.
    #[arg(
        long,
        env = "TENWATCH_MQTT_CLIENT_ID",
        default_value = "tenwatch-gateway-1"
    )]
    mqtt_client_id: String,
    /// The shared-subscription group the replicas share the uplink in.
    #[arg(long, env = "TENWATCH_MQTT_SHARE_GROUP", default_value = "tenwatch")]
    mqtt_share_group: String,
    /// The bearer secret an external broker presents to /api/broker/authenticate and
    /// /api/broker/authorize (EMQX HTTP auth); without it those routes are off.
    #[arg(long, env = "TENWATCH_BROKER_AUTH_SECRET", hide_env_values = true)]
    broker_auth_secret: Option<String>,
    /// Where devices connect with TLS (needs --tls-cert and --tls-key).
    #[arg(long, env = "TENWATCH_MQTT_TLS_LISTEN", requires_all = ["tls_cert", "tls_key"])]
    mqtt_tls_listen: Option<SocketAddr>,
    #[arg(long, env = "TENWATCH_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    #[arg(long, env = "TENWATCH_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// The HTTP API, station feed, station console and volunteer app.
    #[arg(long, env = "TENWATCH_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: SocketAddr,
    /// Mark the session cookie `Secure`: set it when browsers reach the gateway over HTTPS
    /// (a TLS proxy in front), as the volunteer app's push needs in production.
    #[arg(long, env = "TENWATCH_SECURE_COOKIE")]
    secure_cookie: bool,
    /// Seconds after a press during which its presser may cancel it.
    #[arg(long, env = "TENWATCH_CANCEL_WINDOW", default_value_t = 30)]
    cancel_window: u64,
    /// Seconds a device has to send CONNECT after opening its connection.
    #[arg(long, env = "TENWATCH_CONNECT_TIMEOUT", default_value_t = 5)]
    connect_timeout: u64,
    /// Largest payload a device may publish, in bytes.
    #[arg(long, env = "TENWATCH_MAX_PAYLOAD", default_value_t = 2048)]
    max_payload: usize,
    #[command(flatten)]
    console: tenwatch_gateway::http::ConsoleArgs,
    #[command(flatten)]
    rings: RingArgs,
    #[command(flatten)]
    supervision: SupervisionArgs,
    #[command(flatten)]
    push: PushArgs,
}

/// How volunteers' phones are pushed.
#[derive(Args, Clone)]
struct PushArgs {
    /// Contact for the push services in the VAPID signature: mailto:someone@your.station or
    /// an https:// page. Apple's service refuses placeholder addresses.
    #[arg(
        long,
        env = "TENWATCH_VAPID_SUBJECT",
        default_value = "mailto:admin@tenwatch.invalid"
    )]
    vapid_subject: String,
    /// Seconds a push service may keep an alert for a phone that is off (TTL).
    #[arg(long, env = "TENWATCH_PUSH_TTL", default_value_t = 900)]
    push_ttl: u64,
    /// Seconds one request to a push service may take.
    #[arg(long, env = "TENWATCH_PUSH_TIMEOUT", default_value_t = 10.0)]
    push_timeout: f64,
    /// Requests in flight to one push service at once.
    #[arg(long, env = "TENWATCH_PUSH_CONCURRENCY", default_value_t = 16)]
    push_concurrency: usize,
    /// Accept push endpoints on this machine (a local push-service emulator). Testing only.
    #[arg(long, env = "TENWATCH_PUSH_ALLOW_LOOPBACK")]
    push_allow_loopback: bool,
}

impl PushArgs {
    fn config(&self) -> anyhow::Result<tenwatch_gateway::push::PushConfig> {
        if !(self.push_timeout.is_finite() && self.push_timeout > 0.0) {
            bail!("--push-timeout must be a positive number of seconds");
        }
        Ok(tenwatch_gateway::push::PushConfig {
            subject: self.vapid_subject.clone(),
            ttl: Duration::from_secs(self.push_ttl),
            timeout: Duration::from_secs_f64(self.push_timeout),
            per_origin: self.push_concurrency,
            allow_loopback: self.push_allow_loopback,
            ..Default::default()
        })
    }
}

/// How dead devices are noticed.
#[derive(Args, Clone)]
struct SupervisionArgs {
    /// Seconds between a device's heartbeats (set the devices to the same); silent longer is `late`.
    #[arg(long, env = "TENWATCH_HEARTBEAT_INTERVAL", default_value_t = 60.0)]
    heartbeat_interval: f64,
    /// Further seconds of silence before a device is `offline` (heartbeat missed).
    #[arg(long, env = "TENWATCH_HEARTBEAT_GRACE", default_value_t = 30.0)]
    heartbeat_grace: f64,
    /// Seconds a device back online must stay before its offline episode closes (flap debounce).
    #[arg(long, env = "TENWATCH_FLAP_SETTLE", default_value_t = 120.0)]
    flap_settle: f64,
    /// Battery percentage under which a device is reported low.
    #[arg(long, env = "TENWATCH_BATTERY_LOW", default_value_t = 20)]
    battery_low: u8,
    /// Percentage of a cluster's households that must be reachable.
    #[arg(long, env = "TENWATCH_COVERAGE_MIN", default_value_t = 70)]
    coverage_min: u8,
}

impl SupervisionArgs {
    fn policy(&self) -> tenwatch_gateway::supervision::SupervisionPolicy {
        let ms = |s: f64| (s * 1000.0) as i64;
        tenwatch_gateway::supervision::SupervisionPolicy {
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
struct RingArgs {
    /// Seconds without anyone coming before ring 1 (nearby clusters, volunteers within the radius).
    #[arg(long, env = "TENWATCH_RING1_AFTER", default_value_t = 30)]
    ring1_after: u64,
    /// Seconds without anyone coming before ring 2 (every on-duty volunteer of the zone; critical).
    #[arg(long, env = "TENWATCH_RING2_AFTER", default_value_t = 90)]
    ring2_after: u64,
    /// Metres from the pressing household that ring 1 reaches.
    #[arg(long, env = "TENWATCH_RING1_RADIUS", default_value_t = 800.0)]
    ring1_radius: f64,
}

impl RingArgs {
    fn plan(&self) -> anyhow::Result<tenwatch_gateway::store::RingPlan> {
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
        Ok(tenwatch_gateway::store::RingPlan {
            ring1_after_ms: self.ring1_after as i64 * 1000,
            ring2_after_ms: self.ring2_after as i64 * 1000,
            radius_m: self.ring1_radius,
        })
    }
}

#[derive(Args, Clone)]
struct DemoArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    rings: RingArgs,
    #[command(flatten)]
    supervision: SupervisionArgs,
    #[command(flatten)]
    push: PushArgs,
    /// Clusters of ten households to create on first start.
    #[arg(long, default_value_t = 12)]
    clusters: usize,
    #[arg(long, env = "TENWATCH_MQTT_LISTEN", default_value = "127.0.0.1:1883")]
    mqtt_listen: SocketAddr,
    #[arg(long, env = "TENWATCH_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: SocketAddr,
    /// Mean seconds between simulated presses across the neighbourhood.
    #[arg(long, default_value_t = 20.0)]
    press_every: f64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    #[command(flatten)]
    console: tenwatch_gateway::http::ConsoleArgs,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a demo zone with N clusters of ten households and write device credentials.
    SeedDemo {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, default_value_t = 10)]
        clusters: usize,
        /// Where to write the devices' credentials (JSON).
        #[arg(long)]
        credentials_out: PathBuf,
    },
    /// Add a zone (8-digit code: district, street, community, area).
    AddZone {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
    },
    /// Add a cluster of neighbouring households.
    AddCluster {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        id: String,
        #[arg(long)]
        zone: String,
        #[arg(long)]
        name: String,
    },
    /// Add a household.
    AddHousehold {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        id: String,
        #[arg(long)]
        cluster: String,
        /// What neighbours' units show, e.g. "和平路12号".
        #[arg(long)]
        label: String,
        #[arg(long)]
        address: String,
        #[arg(long, allow_hyphen_values = true)]
        lat: f64,
        #[arg(long, allow_hyphen_values = true)]
        lon: f64,
        /// Notes for responders (elderly living alone, medical needs).
        #[arg(long, default_value = "")]
        notes: String,
        #[arg(long, default_value = "")]
        contacts: String,
        /// Make this household the cluster leader (十户长).
        #[arg(long)]
        leader: bool,
    },
    /// Add a device to a household; prints its password once.
    AddDevice {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        id: String,
        #[arg(long)]
        household: String,
    },
    /// Create a station operator (monitor or admin) who sees the given zones.
    CreateOperator {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        name: String,
        /// The password; prefer --password-env so it stays out of the shell history.
        #[arg(long, conflicts_with = "password_env")]
        password: Option<String>,
        /// Read the password from this environment variable.
        #[arg(long)]
        password_env: Option<String>,
        #[arg(long, value_parser = ["monitor", "admin"], default_value = "monitor")]
        role: String,
        /// A zone the operator may see (repeatable).
        #[arg(long = "zone", required = true)]
        zones: Vec<String>,
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// Create a patrol volunteer of one zone.
    CreateVolunteer {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        name: String,
        #[arg(long, conflicts_with = "password_env")]
        password: Option<String>,
        #[arg(long)]
        password_env: Option<String>,
        #[arg(long)]
        zone: String,
        #[arg(long, default_value = "")]
        display_name: String,
        #[arg(long, default_value = "")]
        phone: String,
    },
    /// Import households from CSV (id,cluster,label,address,lat,lon,notes,contacts), one device each.
    ImportHouseholds {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        credentials_out: PathBuf,
    },
    /// Write Mosquitto's password and ACL files for the devices of a credentials file (as
    /// written by seed-demo or import-households; each is checked against the registry), and
    /// for the gateway's own broker user.
    ExportMosquitto {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        credentials: PathBuf,
        #[arg(long)]
        password_file: PathBuf,
        #[arg(long)]
        acl_file: PathBuf,
        /// The gateway's user on the broker (give `tenwatch serve --mqtt-url` the same).
        #[arg(long, default_value = "tenwatch-gateway")]
        gateway_user: String,
        #[arg(long)]
        gateway_password: Option<String>,
        /// Read the gateway's broker password from this environment variable instead.
        #[arg(long)]
        gateway_password_env: Option<String>,
    },
}

fn password_from(password: Option<String>, env: Option<String>) -> anyhow::Result<String> {
    match (password, env) {
        (Some(p), _) => Ok(p),
        (None, Some(var)) => std::env::var(&var)
            .with_context(|| format!("the environment variable {var} holds no password")),
        (None, None) => bail!("give --password or --password-env VAR"),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // rumqttd logs every closed socket as an error (our own readiness probe among them): off
    // unless asked for with RUST_LOG. The demo tells its story on stdout; logs stay quiet.
    let default_filter = match cli.command {
        Command::Demo(_) => "warn,rumqttd=off",
        _ => "info,rumqttd=off,rumqttc=warn,sqlx=warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Demo(args) => demo(args).await,
        Command::Admin(cmd) => admin(cmd).await,
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen for {what} on {addr}: is another tenwatch running? choose another address")
    })
}

async fn ctrl_c() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!(error = %e, "cannot listen for Ctrl-C");
        std::future::pending::<()>().await;
    }
    tracing::info!("Ctrl-C: shutting down");
}

async fn build_app(args: &ServeArgs) -> anyhow::Result<Application> {
    let mut config = Config::new(args.store.url()?);
    config.cancel_window = Duration::from_secs(args.cancel_window);
    config.edge.connect_timeout = Duration::from_secs(args.connect_timeout);
    config.edge.max_payload = args.max_payload;
    config.plan = args.rings.plan()?;
    config.supervision = args.supervision.policy();
    config.push = args.push.config()?;
    config.accounts.secure_cookie = args.secure_cookie;
    config.console = args.console.clone().into_config()?;
    if let Some(secret) = &args.broker_auth_secret {
        anyhow::ensure!(
            secret.len() >= 16,
            "--broker-auth-secret must be at least 16 characters"
        );
        config.broker_auth_secret = Some(tenwatch_gateway::app::Secret(secret.clone()));
    }
    if let Some(url) = &args.mqtt_url {
        let mut ext = ExternalMqtt::parse(url, &args.mqtt_client_id, &args.mqtt_share_group)?;
        if args.mqtt_password.is_some() {
            ext.password = args.mqtt_password.clone();
        }
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
    };
    Application::build(config, listeners).await
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
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
    app.run(ctrl_c()).await
}

/// The demo's station operator, printed at start so a person can sign in to the console.
const DEMO_OPERATOR: (&str, &str) = ("demo", "tenwatch-demo");
/// The demo's patrol volunteer, for the phone app at /app/.
const DEMO_VOLUNTEER: (&str, &str) = ("patrol", "tenwatch-demo");

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let store = args.store.open().await?;
    let credentials_path = args.store.data_dir.join("demo-credentials.json");
    if store.counts().await?.households == 0 {
        let credentials = seed::seed_demo(store.as_ref(), args.clusters).await?;
        write_credentials(&credentials_path, &credentials)?;
        let zone = ZoneCode::parse(seed::DEMO_ZONE)?;
        accounts::create_operator(
            store.as_ref(),
            DEMO_OPERATOR.0,
            DEMO_OPERATOR.1,
            Role::Admin,
            std::slice::from_ref(&zone),
            "值班员 (demo)",
        )
        .await?;
        accounts::create_volunteer(
            store.as_ref(),
            DEMO_VOLUNTEER.0,
            DEMO_VOLUNTEER.1,
            &zone,
            "联防队员 (demo)",
            "",
        )
        .await?;
        println!(
            "seeded the demo neighbourhood: {} clusters, {} households; credentials in {}",
            args.clusters,
            credentials.len(),
            credentials_path.display()
        );
    } else if !credentials_path.exists() {
        bail!(
            "{} already holds households but no demo-credentials.json: \
             run the demo with an empty --data-dir",
            args.store.data_dir.display()
        );
    }
    drop(store);
    let serve = ServeArgs {
        store: args.store.clone(),
        mqtt_listen: args.mqtt_listen,
        mqtt_tls_listen: None,
        tls_cert: None,
        tls_key: None,
        http_listen: args.http_listen,
        mqtt_url: None,
        mqtt_password: None,
        mqtt_client_id: "tenwatch-gateway-1".into(),
        mqtt_share_group: "tenwatch".into(),
        broker_auth_secret: None,
        secure_cookie: false,
        cancel_window: 30,
        connect_timeout: 5,
        max_payload: 2048,
        console: args.console.clone(),
        rings: args.rings.clone(),
        supervision: args.supervision.clone(),
        push: args.push.clone(),
    };
    let app = build_app(&serve).await?;
    let (mqtt, http) = (
        app.mqtt_addr()
            .context("the demo runs the embedded broker")?,
        app.http_addr(),
    );
    let ingest = app.ingest();
    println!("tenwatch demo — 十户联防演示");
    println!(
        "  station console  http://{http}/   (sign in: {} / {})",
        DEMO_OPERATOR.0, DEMO_OPERATOR.1
    );
    println!(
        "  volunteer app    http://{http}/app/   (sign in: {} / {})",
        DEMO_VOLUNTEER.0, DEMO_VOLUNTEER.1
    );
    println!("  station feed     ws://{http}/api/feed");
    println!("  health           http://{http}/healthz");
    println!(
        "  devices          mqtt://{mqtt} (credentials: {})",
        credentials_path.display()
    );
    println!("  press Ctrl-C to stop");
    let stop = tokio_util::sync::CancellationToken::new();
    let shutdown = {
        let stop = stop.clone();
        let duration = args.duration.map(Duration::from_secs);
        async move {
            match duration {
                Some(d) => tokio::select! { _ = tokio::time::sleep(d) => {}, _ = ctrl_c() => {} },
                None => ctrl_c().await,
            }
            stop.cancel();
        }
    };
    let server = tokio::spawn(app.run(shutdown));
    let station = tokio::spawn(demo::station(ingest, stop.clone()));
    let creds = tenwatch_sim::creds::load(&credentials_path)?;
    let mut device = tenwatch_sim::device::DeviceConfig::new(mqtt.ip().to_string(), mqtt.port());
    device.respond_probability = 0.25;
    device.respond_delay = (Duration::from_secs(3), Duration::from_secs(20));
    let run = tenwatch_sim::run::RunConfig {
        device,
        ramp: Default::default(),
        press_every: Some(Duration::from_secs_f64(args.press_every.max(1.0))),
        duration: None,
    };
    let neighbourhood = tokio::spawn(tenwatch_sim::run::run(creds, run, stop.clone()));
    let result = server.await?;
    stop.cancel();
    let _ = neighbourhood.await;
    station.abort();
    result
}

async fn admin(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::SeedDemo {
            store,
            clusters,
            credentials_out,
        } => {
            let s = store.open().await?;
            let credentials = seed::seed_demo(s.as_ref(), clusters).await?;
            write_credentials(&credentials_out, &credentials)
                .with_context(|| format!("writing {}", credentials_out.display()))?;
            println!(
                "created zone {} with {clusters} clusters and {} devices; credentials in {}",
                seed::DEMO_ZONE,
                credentials.len(),
                credentials_out.display()
            );
        }
        AdminCommand::CreateOperator {
            store,
            name,
            password,
            password_env,
            role,
            zones,
            display_name,
        } => {
            let password = password_from(password, password_env)?;
            let zones = zones
                .iter()
                .map(|z| ZoneCode::parse(z))
                .collect::<Result<Vec<_>, _>>()?;
            let role = role.parse::<Role>()?;
            let s = store.open().await?;
            let who = accounts::create_operator(
                s.as_ref(),
                &name,
                &password,
                role,
                &zones,
                &display_name,
            )
            .await?;
            println!(
                "created operator {} ({role}) for zones {:?}",
                who.name,
                zones.iter().map(|z| z.as_str()).collect::<Vec<_>>()
            );
        }
        AdminCommand::CreateVolunteer {
            store,
            name,
            password,
            password_env,
            zone,
            display_name,
            phone,
        } => {
            let password = password_from(password, password_env)?;
            let zone = ZoneCode::parse(&zone)?;
            let s = store.open().await?;
            let who = accounts::create_volunteer(
                s.as_ref(),
                &name,
                &password,
                &zone,
                &display_name,
                &phone,
            )
            .await?;
            println!("created volunteer {} in zone {zone}", who.name);
        }
        AdminCommand::AddZone { store, code, name } => {
            let zone = ZoneCode::parse(&code)?;
            store.open().await?.add_zone(&zone, &name).await?;
            println!("added zone {zone}");
        }
        AdminCommand::AddCluster {
            store,
            id,
            zone,
            name,
        } => {
            let cluster = NewCluster {
                id: ClusterId::parse(&id)?,
                zone: ZoneCode::parse(&zone)?,
                name,
                leader_household: None,
            };
            store.open().await?.add_cluster(&cluster).await?;
            println!("added cluster {id}");
        }
        AdminCommand::AddHousehold {
            store,
            id,
            cluster,
            label,
            address,
            lat,
            lon,
            notes,
            contacts,
            leader,
        } => {
            let household = NewHousehold {
                id: HouseholdId::parse(&id)?,
                cluster: ClusterId::parse(&cluster)?,
                label,
                address,
                lat,
                lon,
                notes,
                contacts,
            };
            let s = store.open().await?;
            s.add_household(&household).await?;
            if leader {
                s.set_cluster_leader(&household.cluster, &household.id)
                    .await?;
            }
            println!("added household {id}");
        }
        AdminCommand::AddDevice {
            store,
            id,
            household,
        } => {
            let device = DeviceId::parse(&id)?;
            let secret = tenwatch_gateway::devices::new_secret();
            let hash = tenwatch_gateway::devices::hash_secret(secret.as_bytes());
            store
                .open()
                .await?
                .add_device(&device, &HouseholdId::parse(&household)?, &hash)
                .await?;
            println!("added device {device}; its password (shown once): {secret}");
        }
        AdminCommand::ImportHouseholds {
            store,
            file,
            credentials_out,
        } => {
            let data =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let households = match seed::parse_households_csv(&data) {
                Ok(rows) => rows,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{}: {e}", file.display());
                    }
                    bail!("{} bad rows: nothing imported", errors.len());
                }
            };
            let s = store.open().await?;
            let credentials = seed::import_households(s.as_ref(), households).await?;
            write_credentials(&credentials_out, &credentials)
                .with_context(|| format!("writing {}", credentials_out.display()))?;
            println!(
                "imported {} households with one device each; credentials in {}",
                credentials.len(),
                credentials_out.display()
            );
        }
        AdminCommand::ExportMosquitto {
            store,
            credentials,
            password_file,
            acl_file,
            gateway_user,
            gateway_password,
            gateway_password_env,
        } => {
            let gateway_password = password_from(gateway_password, gateway_password_env)?;
            let text = std::fs::read_to_string(&credentials)
                .with_context(|| format!("reading {}", credentials.display()))?;
            let creds: Vec<seed::Credential> = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a credentials file", credentials.display()))?;
            let s = store.open().await?;
            let files = tenwatch_gateway::external_broker::mosquitto_files(
                s.as_ref(),
                &creds,
                &gateway_user,
                &gateway_password,
            )
            .await?;
            write_private(&password_file, &files.passwords)?;
            write_private(&acl_file, &files.acl)?;
            println!(
                "wrote {} devices and the gateway user {gateway_user} to {} and {}",
                files.devices,
                password_file.display(),
                acl_file.display()
            );
        }
    }
    Ok(())
}

/// Writes a file only its owner may read (it holds password hashes or ACLs).
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
