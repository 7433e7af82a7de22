//! How long from a press to the push service accepting the push, with 100 volunteers
//! subscribed? A measurement, not a test of speed: run with
//! `cargo test --release -p tenwatch-tests --test push_bench -- --ignored --nocapture`
//! (`scripts/bench-push.sh`). Ring 1 is set to fire 1 ms after the press so that every alert
//! goes to all 100 on-duty volunteers at once; each push is verified and decrypted by the
//! push-service emulator, whose acceptance time is the end of the measurement. Writes
//! docs/bench/push-100.json.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tenwatch_tests::push::{require_push_emulator, PushEmulator};
use tenwatch_tests::*;

const VOLUNTEERS: usize = 100;
const ALERTS: usize = 20;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run on purpose, in release"]
async fn press_to_push_accepted_with_100_volunteers() -> anyhow::Result<()> {
    assert!(require_push_emulator(), "the push emulator is needed");
    let emulator = PushEmulator::start().await?;
    let app = spawn_app_with(1, |c| {
        c.plan.ring1_after_ms = 1;
        c.plan.ring2_after_ms = 3_600_000;
        c.push.allow_loopback = true;
        // A hundred volunteers sign in from one address here: not a password spray.
        c.accounts.limits.peer_burst = 1_000;
    })
    .await?;
    let centre = app.cluster(0)[0].clone();
    let mut subs = Vec::with_capacity(VOLUNTEERS);
    for i in 0..VOLUNTEERS {
        let sub = emulator.subscribe().await?;
        let name = format!("vol-{i:03}");
        let token = app.volunteer(&name, "11010501").await?;
        app.post_as(&token, "/api/volunteer/duty", json!({ "on_duty": true }))
            .await?;
        // Spread over a few hundred metres around the pressing household, inside ring 1.
        let (dy, dx) = ((i % 10) as f64 - 4.5, (i / 10) as f64 - 4.5);
        let position = json!({ "lat": centre.lat + dy * 0.0006, "lon": centre.lon + dx * 0.0008 });
        app.post_as(&token, "/api/volunteer/position", position)
            .await?;
        let (status, body) = app
            .post_as(&token, "/api/push/subscriptions", sub.to_json())
            .await?;
        anyhow::ensure!(status == 201, "subscription refused: {body}");
        subs.push(sub);
    }

    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    let mut latencies_ms = Vec::with_capacity(VOLUNTEERS * ALERTS);
    let mut first_ms = Vec::with_capacity(ALERTS);
    let mut last_ms = Vec::with_capacity(ALERTS);
    for (n, seq) in (1..=ALERTS).zip(1u64..) {
        let presser = &mut units[n % 10];
        let pressed_at = now_ms();
        presser.press_and_wait_ack(seq, "help").await?;
        let mut this_alert = Vec::with_capacity(VOLUNTEERS);
        for sub in &subs {
            let messages = emulator
                .wait_for_messages(&sub.id, n, Duration::from_secs(60))
                .await?;
            let at = messages[n - 1].received_at_ms;
            this_alert.push(at.saturating_sub(pressed_at) as f64);
        }
        this_alert.sort_by(f64::total_cmp);
        first_ms.push(this_alert[0]);
        last_ms.push(this_alert[this_alert.len() - 1]);
        latencies_ms.extend(this_alert);
        // Each alert starts from a quiet gateway and emulator.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    latencies_ms.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    first_ms.sort_by(f64::total_cmp);
    last_ms.sort_by(f64::total_cmp);
    let metrics = app.metrics.snapshot();
    let report = json!({
        "what": "press sent by a unit -> push accepted (201) by the push-service emulator, per volunteer; ring 1 set to 1 ms so that each alert goes to every volunteer at once",
        "volunteers": VOLUNTEERS,
        "alerts": ALERTS,
        "pushes": latencies_ms.len(),
        "press_to_push_accepted_ms": {
            "p50": pct(&latencies_ms, 0.5),
            "p90": pct(&latencies_ms, 0.9),
            "p99": pct(&latencies_ms, 0.99),
            "max": pct(&latencies_ms, 1.0),
            "min": pct(&latencies_ms, 0.0),
        },
        "first_volunteer_of_an_alert_ms_p50": pct(&first_ms, 0.5),
        "last_volunteer_of_an_alert_ms_p50": pct(&last_ms, 0.5),
        "gateway": {
            "pushes_sent": metrics.pushes_sent,
            "pushes_accepted": metrics.pushes_accepted,
            "push_retries": metrics.push_retries,
            "pushes_failed": metrics.pushes_failed,
        },
        "emulator": "tests/push-emulator/emulator.py (Python, verifies VAPID, decrypts aes128gcm), same machine",
        "machine": "2 cores, 24 GiB; gateway, units and emulator on the same cores",
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "measured_at_unix_ms": now_ms(),
    });
    println!("{report:#}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/bench/push-100.json");
    std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    Ok(())
}
