//! `tenwatch-sim`: parses the command line, sets up tracing and the runtime, and calls the
//! library's `run`, `press` or `bench`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use tenwatch_sim::bench::{BenchConfig, FindMaxConfig, Scenario};
use tenwatch_sim::burst::BurstConfig;
use tenwatch_sim::creds::{self, Credential};
use tenwatch_sim::device::DeviceConfig;
use tenwatch_sim::fleet::RampConfig;
use tenwatch_sim::proto::PressKind;
use tenwatch_sim::run::RunConfig;
use tenwatch_sim::storm::StormConfig;

#[derive(Parser, Debug)]
#[command(
    name = "tenwatch-sim",
    version,
    about = "Simulated tenwatch households: panic buttons and in-home units over MQTT"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug)]
struct Common {
    /// Credentials file: JSON array of {device, password, cluster, household[, label]}.
    #[arg(long, env = "TENWATCH_SIM_CREDENTIALS")]
    credentials: PathBuf,
    /// MQTT broker (the device edge) as HOST:PORT.
    #[arg(long, env = "TENWATCH_SIM_BROKER", default_value = "127.0.0.1:1883")]
    broker: String,
    /// MQTT keep-alive in seconds.
    #[arg(long, env = "TENWATCH_SIM_KEEP_ALIVE", default_value_t = 60)]
    keep_alive: u64,
    /// Units of an older firmware: presses carry no boot id, only their seq (counted from 1
    /// at each start of this program, as after a power cycle).
    #[arg(long, env = "TENWATCH_SIM_NO_BOOT_ID")]
    no_boot_id: bool,
    /// What a household answers when the gateway asks about its resolved alert:
    /// `satisfied` (满意), `unsatisfied` (不满意) or `none` (it does not answer).
    #[arg(long, env = "TENWATCH_SIM_SATISFACTION", default_value = "satisfied",
        value_parser = ["satisfied", "unsatisfied", "none"])]
    satisfaction: String,
}

#[derive(Args, Debug)]
struct FleetArgs {
    /// Simulate only the first N devices of the credentials file (default: all).
    /// Each device holds one socket: N devices need N open files in this process.
    #[arg(long, env = "TENWATCH_SIM_DEVICES")]
    devices: Option<usize>,
    /// New connections per second while ramping up.
    #[arg(long, env = "TENWATCH_SIM_CONNECT_RATE", default_value_t = 500.0)]
    connect_rate: f64,
    /// Stop waiting for all devices to come online after this many seconds.
    #[arg(long, env = "TENWATCH_SIM_CONNECT_TIMEOUT", default_value_t = 120)]
    connect_timeout: u64,
    /// Heartbeat period in seconds (0: none).
    #[arg(long, env = "TENWATCH_SIM_HEARTBEAT", default_value_t = 60)]
    heartbeat: u64,
}

/// What `bench` does once every device is online.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ScenarioName {
    /// Presses at --rate for --warmup + --duration.
    Steady,
    /// Steps through --steps until press → neighbours p99 exceeds --p99-limit-ms.
    FindMax,
    /// --burst-fraction of the households press once each within --burst-window.
    Burst,
    /// Every device drops its connection at once and reconnects; --storm-press-fraction press.
    Storm,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// A living neighbourhood: units connect, heartbeat, press now and then, sound and answer.
    Run {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Mean seconds between presses across the whole neighbourhood (exponential); 0: never.
        #[arg(long, env = "TENWATCH_SIM_PRESS_EVERY", default_value_t = 30.0)]
        press_every: f64,
        /// Probability that a neighbour's unit answers "I'm coming".
        #[arg(long, env = "TENWATCH_SIM_RESPOND_PROBABILITY", default_value_t = 0.5)]
        respond_probability: f64,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long, env = "TENWATCH_SIM_DURATION")]
        duration: Option<f64>,
    },
    /// One device presses once and waits for the ack (exit 0 if acked, 1 otherwise).
    Press {
        #[command(flatten)]
        common: Common,
        /// Device id from the credentials file.
        #[arg(long, env = "TENWATCH_SIM_DEVICE")]
        device: String,
        /// help, medical, fire, intrusion or cancel.
        #[arg(long, default_value = "help")]
        kind: PressKind,
        /// Give up after this many seconds (connecting included).
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        /// After the first ack, keep printing later acks for this many seconds.
        #[arg(long, default_value_t = 0.0)]
        follow: f64,
    },
    /// Load benchmark (--scenario steady, find-max, burst or storm): measures fan-out and ack
    /// latency, losses and duplicates, and writes a JSON report.
    Bench {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Target presses per second across all devices.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Measured seconds (after the warm-up).
        #[arg(long, default_value_t = 30.0)]
        duration: f64,
        /// Warm-up seconds, pressing but not measuring.
        #[arg(long, default_value_t = 5.0)]
        warmup: f64,
        /// After the measured time, wait at most this long for outstanding acks.
        #[arg(long, default_value_t = 10.0)]
        grace: f64,
        /// Probability that a neighbour answers "coming" (adds gateway load).
        #[arg(long, default_value_t = 0.0)]
        respond_probability: f64,
        /// The scenario (default: steady).
        #[arg(long, value_enum, default_value = "steady")]
        scenario: ScenarioName,
        /// Same as --scenario find-max: step the rate up and report the highest whose
        /// press → neighbours p99 stays under --p99-limit-ms.
        #[arg(long)]
        find_max: bool,
        /// Rates tried by --find-max, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000")]
        steps: Vec<f64>,
        /// Measured seconds per --find-max step (plus 1 s warm-up).
        #[arg(long, default_value_t = 5.0)]
        step_duration: f64,
        #[arg(long, default_value_t = 50.0)]
        p99_limit_ms: f64,
        /// Burst: share of the online households that press, once each.
        #[arg(long, default_value_t = 0.3)]
        burst_fraction: f64,
        /// Burst: seconds over which their presses are spread (uniformly).
        #[arg(long, default_value_t = 60.0)]
        burst_window: f64,
        /// Storm: share of the devices that press at the moment of the drop (at least one).
        #[arg(long, default_value_t = 0.01)]
        storm_press_fraction: f64,
        /// Storm: stop waiting for every device to be back after this many seconds.
        #[arg(long, default_value_t = 120.0)]
        storm_timeout: f64,
        /// Also report VmRSS and open fds of this process (the server) at the end.
        #[arg(long)]
        server_pid: Option<u32>,
        /// The floor: no gateway. A press is the presser publishing the cluster alert itself
        /// (QoS 1); its own copy counts as the ack. Use against a broker with no auth.
        #[arg(long)]
        floor: bool,
        /// Start a plain rumqttd (no auth, no gateway) in this process on --broker (loopback).
        #[arg(long, requires = "floor")]
        embedded_broker: bool,
        /// Where to write the JSON report.
        #[arg(long)]
        report: PathBuf,
    },
    /// A plain rumqttd (no auth, no ACL, no gateway) for the benchmark's floor; runs until
    /// killed or --duration ends.
    FloorBroker {
        /// Loopback address to listen on.
        #[arg(long, default_value = "127.0.0.1:1883")]
        listen: std::net::SocketAddr,
        /// Exit after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        duration: Option<f64>,
    },
}

fn secs(v: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| anyhow::anyhow!("{what} must be a non-negative number of seconds, got {v}"))
}

fn device_config(common: &Common, heartbeat: u64) -> anyhow::Result<DeviceConfig> {
    let (host, port) = tenwatch_sim::parse_broker(&common.broker).map_err(anyhow::Error::msg)?;
    let mut cfg = DeviceConfig::new(host, port);
    cfg.boot_ids = !common.no_boot_id;
    cfg.satisfaction = match common.satisfaction.as_str() {
        "satisfied" => Some(true),
        "unsatisfied" => Some(false),
        _ => None,
    };
    if common.keep_alive < 5 {
        bail!("--keep-alive must be at least 5 seconds");
    }
    cfg.keep_alive = Duration::from_secs(common.keep_alive);
    cfg.heartbeat = (heartbeat > 0).then(|| Duration::from_secs(heartbeat));
    Ok(cfg)
}

fn check_probability(p: f64) -> anyhow::Result<f64> {
    if !(0.0..=1.0).contains(&p) {
        bail!("--respond-probability must be between 0 and 1, got {p}");
    }
    Ok(p)
}

/// Soft open-files limit of this process, from /proc.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn load_fleet(common: &Common, fleet: &FleetArgs) -> anyhow::Result<(Vec<Credential>, RampConfig)> {
    let mut all = creds::load(&common.credentials)?;
    if let Some(n) = fleet.devices {
        if n == 0 || n > all.len() {
            bail!(
                "--devices {n}: the credentials file lists {} devices",
                all.len()
            );
        }
        all.truncate(n);
    }
    if let Some(limit) = open_files_limit() {
        // Each device is one TCP socket; keep some room for stdio, the runtime and the report.
        let need = all.len() as u64 + 64;
        if need > limit {
            bail!(
                "{} devices need {} open files (one socket each, plus some), but this process may open {limit}: lower --devices or raise `ulimit -n`",
                all.len(),
                need
            );
        }
    }
    if !(fleet.connect_rate.is_finite() && fleet.connect_rate > 0.0) {
        bail!("--connect-rate must be a positive number of connections per second");
    }
    let ramp = RampConfig {
        per_second: fleet.connect_rate,
        timeout: Duration::from_secs(fleet.connect_timeout),
        progress: true,
    };
    Ok((all, ramp))
}

async fn real_main(cli: Cli, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Run {
            common,
            fleet,
            press_every,
            respond_probability,
            duration,
        } => {
            let (creds, ramp) = load_fleet(&common, &fleet)?;
            let mut device = device_config(&common, fleet.heartbeat)?;
            device.respond_probability = check_probability(respond_probability)?;
            device.respond_delay = (Duration::from_secs(1), Duration::from_secs(5));
            let cfg = RunConfig {
                device,
                ramp,
                press_every: (press_every > 0.0)
                    .then(|| secs(press_every, "--press-every"))
                    .transpose()?,
                duration: duration.map(|d| secs(d, "--duration")).transpose()?,
            };
            tenwatch_sim::run::run(creds, cfg, shutdown).await;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Press {
            common,
            device,
            kind,
            timeout,
            follow,
        } => {
            let all = creds::load(&common.credentials)?;
            let cred = all
                .into_iter()
                .find(|c| c.device.as_str() == device)
                .with_context(|| {
                    format!(
                        "device {device:?} is not in {}",
                        common.credentials.display()
                    )
                })?;
            let cfg = device_config(&common, 0)?;
            match tenwatch_sim::press::press_once(
                cred,
                cfg,
                kind,
                secs(timeout, "--timeout")?,
                secs(follow, "--follow")?,
                shutdown,
            )
            .await
            {
                Ok(_) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Cmd::Bench {
            common,
            fleet,
            rate,
            duration,
            warmup,
            grace,
            respond_probability,
            scenario,
            find_max,
            steps,
            step_duration,
            p99_limit_ms,
            burst_fraction,
            burst_window,
            storm_press_fraction,
            storm_timeout,
            server_pid,
            floor,
            embedded_broker,
            report,
        } => {
            let (creds, ramp) = load_fleet(&common, &fleet)?;
            let mut device = device_config(&common, fleet.heartbeat)?;
            device.respond_probability = check_probability(respond_probability)?;
            device.floor = floor;
            if embedded_broker {
                let addr: std::net::SocketAddr = common.broker.parse().with_context(|| {
                    format!(
                        "--embedded-broker needs --broker as IP:PORT, got {}",
                        common.broker
                    )
                })?;
                tenwatch_sim::plain_broker::start(addr)?;
                println!("embedded rumqttd (no auth, no gateway) listening on {addr}");
            }
            let cfg = BenchConfig {
                device,
                ramp,
                rate,
                warmup: secs(warmup, "--warmup")?,
                duration: secs(duration, "--duration")?,
                grace: secs(grace, "--grace")?,
                scenario: match (scenario, find_max) {
                    (ScenarioName::Steady, false) => Scenario::Steady,
                    (ScenarioName::Steady | ScenarioName::FindMax, _) => {
                        Scenario::FindMax(FindMaxConfig {
                            rates: steps,
                            step_duration: secs(step_duration, "--step-duration")?,
                            step_warmup: Duration::from_secs(1),
                            p99_limit: secs(p99_limit_ms / 1000.0, "--p99-limit-ms")?,
                        })
                    }
                    (_, true) => bail!("--find-max and --scenario {scenario:?} exclude each other"),
                    (ScenarioName::Burst, false) => Scenario::Burst(BurstConfig {
                        fraction: burst_fraction,
                        window: secs(burst_window, "--burst-window")?,
                    }),
                    (ScenarioName::Storm, false) => Scenario::Storm(StormConfig {
                        press_fraction: storm_press_fraction,
                        timeout: secs(storm_timeout, "--storm-timeout")?,
                    }),
                },
                server_pid,
            };
            let result = tenwatch_sim::bench::bench(creds, cfg, shutdown).await?;
            result
                .write(&report)
                .with_context(|| format!("cannot write report {}", report.display()))?;
            print!("{}", result.human());
            println!("report written to {}", report.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::FloorBroker { listen, duration } => {
            tenwatch_sim::plain_broker::start(listen)?;
            println!("rumqttd (no auth, no gateway) listening on {listen}");
            match duration {
                Some(d) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(secs(d, "--duration")?) => {}
                    }
                }
                None => shutdown.cancelled().await,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,tenwatch_sim=info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("Ctrl-C: stopping");
                on_signal.cancel();
            }
        });
        match real_main(cli, shutdown).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}
