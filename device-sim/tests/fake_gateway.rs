//! The simulator against a real MQTT broker (embedded rumqttd) and the fake gateway of
//! `common/`: presses are acked, neighbours sound, repeats happen, late brokers are survived,
//! and the bench loop produces a sensible report.

mod common;

use std::time::Duration;

use common::{GatewayBehaviour, GatewayStats};
use tenwatch_sim::bench::{BenchConfig, FindMaxConfig, Scenario};
use tenwatch_sim::device::DeviceConfig;
use tenwatch_sim::fleet::RampConfig;
use tenwatch_sim::press::{press_once, PressFailure};
use tenwatch_sim::proto::{AlertState, PressKind};
use tokio_util::sync::CancellationToken;

async fn setup(
    clusters: usize,
    per_cluster: usize,
    behaviour: GatewayBehaviour,
) -> (
    u16,
    Vec<tenwatch_sim::creds::Credential>,
    std::sync::Arc<GatewayStats>,
    CancellationToken,
) {
    let creds = common::credentials(clusters, per_cluster);
    let port = common::free_port();
    common::start_broker(port, &creds);
    common::wait_listening(port).await;
    let stop = CancellationToken::new();
    let stats = common::start_gateway(port, &creds, behaviour, stop.clone()).await;
    (port, creds, stats, stop)
}

fn quick_device(port: u16) -> DeviceConfig {
    let mut cfg = DeviceConfig::new("127.0.0.1", port);
    cfg.connect_timeout_s = 2;
    cfg.reconnect_min = Duration::from_millis(100);
    cfg.reconnect_max = Duration::from_millis(500);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn press_is_acknowledged() {
    let (port, creds, stats, stop) = setup(1, 3, GatewayBehaviour::default()).await;
    let out = press_once(
        creds[0].clone(),
        quick_device(port),
        PressKind::Medical,
        Duration::from_secs(10),
        Duration::ZERO,
        CancellationToken::new(),
    )
    .await
    .expect("acked");
    assert_eq!(out.ack.state, AlertState::Raised);
    assert_eq!(out.attempts, 1);
    assert_eq!(GatewayStats::get(&stats.presses), 1);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn press_is_repeated_until_acknowledged() {
    let behaviour = GatewayBehaviour {
        ignore_first_attempt: true,
    };
    let (port, creds, stats, stop) = setup(1, 2, behaviour).await;
    let out = press_once(
        creds[1].clone(),
        quick_device(port),
        PressKind::Help,
        Duration::from_secs(10),
        Duration::ZERO,
        CancellationToken::new(),
    )
    .await
    .expect("acked on the repeat");
    assert_eq!(out.attempts, 2);
    assert!(out.latency >= Duration::from_millis(1900), "{out:?}");
    assert_eq!(GatewayStats::get(&stats.presses), 1);
    assert_eq!(GatewayStats::get(&stats.press_repeats), 1);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn press_survives_a_broker_that_starts_late() {
    let creds = common::credentials(1, 2);
    let port = common::free_port();
    let cred = creds[0].clone();
    let press = tokio::spawn(press_once(
        cred,
        quick_device(port),
        PressKind::Fire,
        Duration::from_secs(20),
        Duration::ZERO,
        CancellationToken::new(),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    common::start_broker(port, &creds);
    common::wait_listening(port).await;
    let stop = CancellationToken::new();
    let stats =
        common::start_gateway(port, &creds, GatewayBehaviour::default(), stop.clone()).await;
    let out = press
        .await
        .expect("task")
        .expect("acked after reconnecting");
    assert_eq!(out.ack.state, AlertState::Raised);
    assert_eq!(GatewayStats::get(&stats.presses), 1);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_gives_a_clear_error() {
    let (port, creds, _stats, stop) = setup(1, 1, GatewayBehaviour::default()).await;
    let mut cred = creds[0].clone();
    cred.password = tenwatch_sim::creds::Password::new("wrong");
    let err = press_once(
        cred,
        quick_device(port),
        PressKind::Help,
        Duration::from_secs(3),
        Duration::ZERO,
        CancellationToken::new(),
    )
    .await
    .expect_err("refused");
    assert!(matches!(err, PressFailure::NotConnected { .. }), "{err}");
    assert!(err.to_string().contains("could not connect"), "{err}");
    stop.cancel();
}

fn bench_config(port: u16) -> BenchConfig {
    let mut device = quick_device(port);
    device.respond_probability = 0.2;
    BenchConfig {
        device,
        ramp: RampConfig {
            per_second: 500.0,
            timeout: Duration::from_secs(20),
            progress: false,
        },
        rate: 25.0,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(2),
        grace: Duration::from_secs(5),
        scenario: Scenario::Steady,
        server_pid: Some(std::process::id()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_measures_fan_out_and_acks() {
    let (port, creds, stats, stop) = setup(4, 10, GatewayBehaviour::default()).await;
    let report = tenwatch_sim::bench::bench(creds, bench_config(port), CancellationToken::new())
        .await
        .expect("bench runs");
    let l = &report.load;
    assert_eq!(report.devices, 40);
    assert_eq!(report.devices_online, 40);
    assert_eq!(report.clusters, 4);
    assert!(l.presses_sent >= 40, "{l:?}");
    assert_eq!(l.presses_lost, 0, "{l:?}");
    assert_eq!(l.presses_acked, l.presses_sent);
    assert_eq!(l.neighbours_incomplete, 0, "{l:?}");
    assert_eq!(l.latency_neighbours_us.count, l.presses_acked);
    assert_eq!(l.latency_each_neighbour_us.count, 9 * l.presses_acked);
    assert_eq!(l.duplicates.alerts, 0);
    assert_eq!(l.presses_retried, 0, "{l:?}");
    assert!(l.latency_ack_us.p99.is_some());
    assert!(l.sustained_presses_per_s > 15.0, "{l:?}");
    // Every neighbour told the gateway its unit sounded (warm-up presses included).
    assert!(GatewayStats::get(&stats.delivered) >= 9 * l.presses_acked);
    let server = report.server.as_ref().expect("server stats");
    assert!(server.open_fds.expect("fds") >= 40);
    let json = serde_json::to_value(&report).expect("serialises");
    assert!(json["latency_neighbours_us"]["p99"].as_u64().is_some());
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_max_steps_up_and_reports_each_step() {
    let (port, creds, _stats, stop) = setup(3, 10, GatewayBehaviour::default()).await;
    let mut cfg = bench_config(port);
    cfg.scenario = Scenario::FindMax(FindMaxConfig {
        rates: vec![10.0, 20.0],
        step_duration: Duration::from_secs(1),
        step_warmup: Duration::from_millis(200),
        // Generous: this checks the stepping logic, not the speed of a debug build.
        p99_limit: Duration::from_secs(2),
    });
    let report = tenwatch_sim::bench::bench(creds, cfg, CancellationToken::new())
        .await
        .expect("bench runs");
    let fm = report.find_max.as_ref().expect("find-max section");
    assert_eq!(fm.steps.len(), 2);
    assert_eq!(fm.max_rate_ok, Some(20.0));
    assert_eq!(report.scenario, "bench-find-max");
    assert_eq!(report.load.rate_target, 20.0);
    stop.cancel();
}

/// The floor: no gateway, a plain rumqttd with no auth; the press is the cluster alert itself
/// and the presser's own copy is its ack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floor_fans_out_without_a_gateway() {
    let creds = common::credentials(3, 10);
    let port = common::free_port();
    tenwatch_sim::plain_broker::start(([127, 0, 0, 1], port).into()).expect("plain broker");
    let mut cfg = bench_config(port);
    cfg.device.floor = true;
    cfg.device.respond_probability = 0.0;
    let report = tenwatch_sim::bench::bench(creds, cfg, CancellationToken::new())
        .await
        .expect("bench runs");
    let l = &report.load;
    assert_eq!(report.devices_online, 30);
    assert!(l.presses_sent >= 40, "{l:?}");
    assert_eq!(l.presses_lost, 0, "{l:?}");
    assert_eq!(l.presses_acked, l.presses_sent);
    assert_eq!(l.neighbours_incomplete, 0, "{l:?}");
    assert_eq!(l.latency_each_neighbour_us.count, 9 * l.presses_acked);
    assert_eq!(l.duplicates.alerts, 0);
    assert_eq!(l.presses_retried, 0, "{l:?}");
}

/// The burst: a share of the devices press once each within the window; every press is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_presses_once_per_chosen_device_and_drains() {
    let (port, creds, stats, stop) = setup(4, 10, GatewayBehaviour::default()).await;
    let mut cfg = bench_config(port);
    cfg.device.respond_probability = 0.0;
    cfg.scenario = Scenario::Burst(tenwatch_sim::burst::BurstConfig {
        fraction: 0.5,
        window: Duration::from_secs(1),
    });
    let report = tenwatch_sim::bench::bench(creds, cfg, CancellationToken::new())
        .await
        .expect("bench runs");
    let (l, b) = (&report.load, report.burst.as_ref().expect("burst section"));
    assert_eq!(report.scenario, "bench-burst");
    assert_eq!(b.presses_planned, 20);
    assert_eq!(l.presses_sent, 20, "{l:?}");
    assert_eq!(l.presses_acked, 20, "{l:?}");
    assert_eq!(l.presses_lost, 0, "{l:?}");
    assert_eq!(l.neighbours_incomplete, 0, "{l:?}");
    assert_eq!(GatewayStats::get(&stats.presses), 20);
    assert!(b.drain_ack_s.is_some() && b.total_s.is_some(), "{b:?}");
    stop.cancel();
}

/// The storm: every connection drops at once, every device comes back and resubscribes, and
/// the presses made at the drop are acked once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_brings_every_device_back_and_loses_no_press() {
    let (port, creds, stats, stop) = setup(3, 10, GatewayBehaviour::default()).await;
    let mut cfg = bench_config(port);
    cfg.device.respond_probability = 0.0;
    cfg.scenario = Scenario::Storm(tenwatch_sim::storm::StormConfig {
        press_fraction: 0.1,
        timeout: Duration::from_secs(20),
    });
    let report = tenwatch_sim::bench::bench(creds, cfg, CancellationToken::new())
        .await
        .expect("bench runs");
    let (l, st) = (&report.load, report.storm.as_ref().expect("storm section"));
    assert_eq!(report.scenario, "bench-storm");
    assert_eq!(st.devices_dropped, 30);
    assert_eq!(st.devices_back, 30, "{st:?}");
    assert!(st.all_back && st.all_back_s.is_some(), "{st:?}");
    assert_eq!(st.reconnect_us.count, 30);
    assert_eq!(st.presses_planned, 3);
    assert_eq!(l.presses_acked, 3, "{l:?}");
    assert_eq!(l.presses_lost, 0, "{l:?}");
    assert_eq!(l.duplicates.alerts, 0, "{l:?}");
    assert_eq!(st.alerts_acked, 3);
    assert_eq!(GatewayStats::get(&stats.presses), 3);
    assert_eq!(report.devices_online, 30);
    assert_eq!(report.disconnects, 30);
    stop.cancel();
}
