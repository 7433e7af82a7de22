//! `tenwatch demo`: seeds a neighbourhood on first start (with a station operator and a
//! patrol volunteer to sign in as), serves it on the embedded broker, plays its households
//! with the simulator and narrates every alert's life through [`super::station`].
//! `tenwatch demo press HOUSEHOLD` ([`super::demo_press`]) presses as a spare unit of a
//! household of a running demo.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::serve::{build_app, stop_signal, ServeArgs, ServiceArgs};
use super::station::{station, Pace};
use super::StoreArgs;
use crate::accounts::{self, Role};
use crate::domain::ZoneCode;
use crate::seed::{self, write_credentials};

#[derive(Args, Clone)]
// `tenwatch demo press …` takes its own flags: the demo's own ones do not go with it.
#[command(args_conflicts_with_subcommands = true)]
pub struct DemoArgs {
    #[command(subcommand)]
    pub action: Option<DemoAction>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Clusters of ten households to create on first start.
    #[arg(long, default_value_t = 12)]
    pub clusters: usize,
    #[arg(long, env = "TENWATCH_MQTT_LISTEN", default_value = "127.0.0.1:1883")]
    pub mqtt_listen: SocketAddr,
    #[arg(long, env = "TENWATCH_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// Mean seconds between simulated presses across the neighbourhood.
    #[arg(long, default_value_t = 20.0)]
    pub press_every: f64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Seconds each step of the simulated station monitor takes (on scene, resolved, a
    /// call to a household nobody came to); by default 15 s to on scene, 20 s to resolved.
    #[arg(long)]
    pub monitor_pace: Option<f64>,
    #[command(flatten)]
    pub console: crate::http::ConsoleArgs,
}

#[derive(Subcommand, Clone)]
pub enum DemoAction {
    /// Press the panic button of a household of the running demo, as a spare unit of that
    /// household (its own simulated unit keeps its connection), and print what the unit is
    /// told: the alert, how many neighbours' units sounded, how many are coming.
    // Boxed: the demo's own flags stay the larger part of `tenwatch demo`.
    Press(Box<super::demo_press::PressArgs>),
}

/// The demo's station operator, printed at start so a person can sign in to the console.
const DEMO_OPERATOR: (&str, &str) = ("demo", "tenwatch-demo");
/// The demo's patrol volunteer, for the phone app at /app/.
const DEMO_VOLUNTEER: (&str, &str) = ("patrol", "tenwatch-demo");

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    if let Some(DemoAction::Press(press)) = args.action {
        return super::demo_press::press(*press).await;
    }
    let pace = match args.monitor_pace {
        None => Pace::default(),
        Some(s) if s.is_finite() && s >= 0.0 => Pace::every(Duration::from_secs_f64(s)),
        Some(s) => bail!("--monitor-pace {s}: expected seconds, 0 or more"),
    };
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
        sia_listen: None,
        tls_cert: None,
        tls_key: None,
        http_listen: args.http_listen,
        mqtt_url: None,
        mqtt_password: None,
        mqtt_client_id: "tenwatch-gateway-1".into(),
        mqtt_share_group: "tenwatch".into(),
        mqtt_keep_session: false,
        broker_auth_secret: None,
        http: Default::default(),
        secure_cookie: false,
        cancel_window: 30,
        press_repeat_window: 600,
        press_merge_window: 600,
        enough_help: crate::lifecycle::EnoughHelp::default(),
        connect_timeout: 5,
        max_payload: 2048,
        press_burst: 5,
        press_refill: 2.0,
        console: args.console.clone(),
        cap_sender: crate::cap::CapSender::default().to_string(),
        station_contact: String::new(),
        bulletin_font: crate::bulletin::DEFAULT_FONT.into(),
        service: args.service.clone(),
    };
    let app = build_app(&serve).await?;
    let (mqtt, http) = (
        app.mqtt_addr()
            .context("the demo runs the embedded broker")?,
        app.http_addr(),
    );
    // Subscribed before the gateway runs: the monitor hears what it says at start-up.
    let (ingest, feed, store) = (app.ingest(), app.feed().subscribe(), app.store());
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
        let asked = stop_signal();
        async move {
            match duration {
                Some(d) => {
                    tokio::select! { _ = tokio::time::sleep(d) => {}, _ = asked => {} }
                }
                None => asked.await,
            }
            stop.cancel();
        }
    };
    let server = tokio::spawn(app.run(shutdown));
    let zone = ZoneCode::parse(seed::DEMO_ZONE)?;
    let station = tokio::spawn(station(ingest, feed, store, zone, pace, stop.clone()));
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
