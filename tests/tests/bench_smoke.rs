//! Smoke of the benchmark harness (`tenwatch-sim bench`): each scenario — steady, find-max,
//! burst, storm — runs for a few seconds with 60–100 simulated devices against a real gateway
//! started in this process, so the harness keeps working as the gateway changes. Asserts what
//! the harness reports (nothing lost, nothing raised twice, every device back after the storm,
//! the report's JSON fields), never a latency: a debug build on shared cores says nothing
//! about speed. The figures come from `scripts/bench-*.sh` (docs/bench/README.md).

use std::time::Duration;

use serde_json::Value;
use tenwatch_sim::bench::{BenchConfig, FindMaxConfig, Scenario};
use tenwatch_sim::burst::BurstConfig;
use tenwatch_sim::device::DeviceConfig;
use tenwatch_sim::fleet::RampConfig;
use tenwatch_sim::report::Report;
use tenwatch_sim::storm::StormConfig;
use tenwatch_tests::{spawn_app, TestApp};
use tokio_util::sync::CancellationToken;

/// The gateway's credentials in the simulator's credentials-file format.
fn sim_credentials(app: &TestApp) -> Vec<tenwatch_sim::creds::Credential> {
    let text = serde_json::to_string(&app.credentials).expect("credentials serialise");
    tenwatch_sim::creds::parse(&text, "spawn_app").expect("the simulator reads them")
}

fn config(app: &TestApp, scenario: Scenario) -> BenchConfig {
    let mut device = DeviceConfig::new(app.mqtt.ip().to_string(), app.mqtt.port());
    device.heartbeat = None;
    BenchConfig {
        device,
        ramp: RampConfig {
            per_second: 500.0,
            timeout: Duration::from_secs(20),
            progress: false,
        },
        rate: 20.0,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(3),
        // Retries come after 2 s, 2 s, 4 s: room for two of them.
        grace: Duration::from_secs(10),
        scenario,
        server_pid: Some(std::process::id()),
    }
}

/// Runs the bench and checks what every report must say: every device online, nothing lost,
/// no press raised twice, no message malformed, and the JSON written to a file reads back
/// with the documented fields.
async fn run(app: &TestApp, scenario: Scenario) -> (Report, Value) {
    let creds = sim_credentials(app);
    let n = creds.len();
    let report = tenwatch_sim::bench::bench(creds, config(app, scenario), CancellationToken::new())
        .await
        .expect("the bench runs");
    let l = &report.load;
    assert_eq!(report.devices, n);
    assert_eq!(report.devices_online, n, "{}", report.human());
    assert!(l.presses_sent > 0, "{}", report.human());
    assert_eq!(l.presses_lost, 0, "{}", report.human());
    assert_eq!(l.presses_acked, l.presses_sent, "{}", report.human());
    assert_eq!(l.duplicates.alerts, 0, "{}", report.human());
    assert_eq!(report.malformed_messages, 0);
    assert_eq!(report.disconnects_unplanned, 0, "{}", report.human());

    let path = app.dir.path().join("report.json");
    report.write(&path).expect("report written");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("JSON");
    for key in [
        "scenario",
        "started_at",
        "machine",
        "devices",
        "devices_online",
        "presses_sent",
        "presses_acked",
        "presses_lost",
        "presses_retried",
        "duplicates",
        "latency_neighbours_us",
        "latency_each_neighbour_us",
        "latency_ack_us",
        "find_max",
        "burst",
        "storm",
        "sim",
        "server",
    ] {
        assert!(json.get(key).is_some(), "report lacks {key}: {json}");
    }
    assert_eq!(json["scenario"], report.scenario.as_str());
    assert!(json["server"]["open_fds"].as_u64().is_some());
    (report, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady() {
    let app = spawn_app(6).await.expect("gateway");
    let (report, json) = run(&app, Scenario::Steady).await;
    let l = &report.load;
    assert_eq!(json["scenario"], "bench");
    assert_eq!(l.neighbours_incomplete, 0, "{}", report.human());
    assert_eq!(l.latency_neighbours_us.count, l.presses_acked);
    assert_eq!(l.latency_each_neighbour_us.count, 9 * l.presses_acked);
    assert!(json["latency_neighbours_us"]["p99"].as_u64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_max() {
    let app = spawn_app(6).await.expect("gateway");
    let (report, json) = run(
        &app,
        Scenario::FindMax(FindMaxConfig {
            rates: vec![10.0, 20.0],
            step_duration: Duration::from_millis(1500),
            step_warmup: Duration::from_millis(300),
            // Checks the stepping, not the speed: no debug build fails a minute.
            p99_limit: Duration::from_secs(60),
        }),
    )
    .await;
    let fm = report.find_max.as_ref().expect("find-max section");
    assert_eq!(fm.steps.len(), 2);
    assert!(
        fm.steps.iter().all(|s| s.presses_lost == 0),
        "{}",
        report.human()
    );
    assert_eq!(fm.max_rate_ok, Some(20.0), "{}", report.human());
    assert_eq!(json["find_max"]["steps"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst() {
    let app = spawn_app(10).await.expect("gateway");
    let (report, json) = run(
        &app,
        Scenario::Burst(BurstConfig {
            fraction: 0.3,
            window: Duration::from_secs(2),
        }),
    )
    .await;
    let (l, b) = (&report.load, report.burst.as_ref().expect("burst section"));
    assert_eq!(b.presses_planned, 30);
    assert_eq!(l.presses_acked, 30, "{}", report.human());
    assert_eq!(l.neighbours_incomplete, 0, "{}", report.human());
    // Stored exactly once each: thirty alerts, repeats (if any) answered from the store.
    app.wait_for_metrics("thirty alerts raised", |m| m.alerts_raised >= 30)
        .await
        .expect("alerts raised");
    assert_eq!(app.metrics.snapshot().alerts_raised, 30);
    for key in [
        "drain_ack_s",
        "drain_neighbours_s",
        "total_s",
        "press_span_s",
    ] {
        assert!(
            json["burst"][key].as_f64().is_some(),
            "burst lacks {key}: {json}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm() {
    let app = spawn_app(10).await.expect("gateway");
    let (report, json) = run(
        &app,
        Scenario::Storm(StormConfig {
            press_fraction: 0.05,
            timeout: Duration::from_secs(30),
        }),
    )
    .await;
    let (l, st) = (&report.load, report.storm.as_ref().expect("storm section"));
    assert_eq!(st.devices_dropped, 100);
    assert_eq!(st.devices_back, 100, "{}", report.human());
    assert!(st.all_back, "{}", report.human());
    assert_eq!(st.reconnect_us.count, 100);
    assert_eq!(st.presses_planned, 5);
    assert_eq!(l.presses_acked, 5, "{}", report.human());
    assert_eq!(st.alerts_acked, 5, "{}", report.human());
    // Every dropped connection was seen by the edge and every device is connected again.
    assert_eq!(report.disconnects, 100);
    app.wait_for_metrics("five alerts raised", |m| m.alerts_raised >= 5)
        .await
        .expect("alerts raised");
    assert_eq!(app.metrics.snapshot().alerts_raised, 5);
    assert!(json["storm"]["all_back_s"].as_f64().is_some(), "{json}");
    assert!(
        json["storm"]["reconnect_us"]["max"].as_u64().is_some(),
        "{json}"
    );
}
