//! The demo as a newcomer meets it, through the `tenwatch` binary: `tenwatch demo` started
//! again on a directory whose alerts were left open. Every assertion is on what a person sees:
//! the lines printed.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde_json::{json, Value};
use tenwatch_gateway::seed;
use tenwatch_tests::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// A gateway on a demo data directory, as `tenwatch demo` leaves it.
async fn demo_gateway(
    clusters: usize,
    tune: impl FnOnce(&mut tenwatch_gateway::Config),
) -> anyhow::Result<TestApp> {
    let app = spawn_app_with(clusters, tune).await?;
    seed::write_credentials(
        &app.dir.path().join("demo-credentials.json"),
        &app.credentials,
    )?;
    Ok(app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_monitor_takes_up_the_alerts_a_stopped_demo_left_open() -> anyhow::Result<()> {
    // Rings within a second, so that one alert reaches ring 2 before the stop.
    let mut app = demo_gateway(2, |c| {
        c.plan.ring1_after_ms = 200;
        c.plan.ring2_after_ms = 400;
    })
    .await?;
    let mut feed = open_feed(&app).await?;
    let mut first = connect_all(app.mqtt, app.cluster(0)).await?;
    let mut second = TestDevice::connect(app.mqtt, &app.cluster(1)[0]).await?;

    // A1: a neighbour is coming (acknowledged). A2: nobody comes, it climbs to ring 2.
    let a1 = first[0].press_and_wait_ack(1, "help").await?["alert"].clone();
    first[1]
        .publish("respond", json!({ "alert": a1, "answer": "coming" }))
        .await?;
    let a2 = second.press_and_wait_ack(1, "fire").await?["alert"].clone();
    let (mut a1_acknowledged, mut a2_ring2) = (false, false);
    while !(a1_acknowledged && a2_ring2) {
        let event = next_alert_event(&mut feed).await?;
        let id = &event["alert"]["id"];
        a1_acknowledged |= id == &a1 && event["alert"]["state"] == "acknowledged";
        a2_ring2 |= id == &a2 && event["event"] == "ring2";
    }
    drop((first, second, feed));
    app.stop().await?;

    // The demo again on that directory: its monitor tells and closes both.
    let mut demo = Command::new(tenwatch_bin()?)
        .args(["demo", "--data-dir"])
        .arg(app.dir.path())
        .args([
            "--mqtt-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        // No simulated press of its own during the test (one a million seconds on average).
        .args(["--press-every", "1000000", "--monitor-pace", "0.3"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(demo.stdout.take().context("stdout")?).lines();
    let (a1, a2) = (as_text(&a1)?, as_text(&a2)?);
    let mut wanted = vec![
        format!("🗂  {a1} "),
        format!("🗂  {a2} "),
        format!("📍 {a1} someone is on scene"),
        format!("✅ {a1} resolved: help"),
        format!("✅ {a2} resolved: false_alarm"),
    ];
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !wanted.is_empty() {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .map_err(|_| {
                anyhow!(
                    "the demo never printed {wanted:?}; it printed:\n{}",
                    seen.join("\n")
                )
            })??
            .ok_or_else(|| anyhow!("the demo ended; it printed:\n{}", seen.join("\n")))?;
        wanted.retain(|w| !line.starts_with(w.as_str()));
        seen.push(line);
    }
    let picked_up = seen
        .iter()
        .find(|l| l.starts_with(&format!("🗂  {a1} ")))
        .context("A1")?;
    assert!(picked_up.contains("(acknowledged)"), "{picked_up}");
    let picked_up = seen
        .iter()
        .find(|l| l.starts_with(&format!("🗂  {a2} ")))
        .context("A2")?;
    assert!(picked_up.contains("ring 2"), "{picked_up}");
    demo.kill().await?;
    Ok(())
}

fn as_text(v: &Value) -> anyhow::Result<String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("not an alert id: {v}"))
}
