//! How late does ring 1 fire? A measurement, not a test of speed: run with
//! `cargo test --release -p tenwatch-tests --test ring_delay -- --ignored --nocapture`.
//! It raises alerts nobody answers on a gateway with ring 1 after 2 s, records when a unit of
//! a neighbouring cluster hears each one, and writes docs/bench/ring-delay.json.

use std::time::{Duration, Instant};

use tenwatch_tests::*;

const RING1_AFTER_MS: i64 = 2_000;
const ALERTS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run on purpose, in release"]
async fn ring1_delay_against_the_configured_time() -> anyhow::Result<()> {
    let app = spawn_app_with(12, |c| {
        c.plan.ring1_after_ms = RING1_AFTER_MS;
        c.plan.ring2_after_ms = 3_600_000;
    })
    .await?;
    // Presses in cluster 3; a unit of cluster 4, next along the street, listens for ring 1.
    let mut pressers = connect_all(app.mqtt, app.cluster(2)).await?;
    let mut listener = TestDevice::connect(app.mqtt, &app.cluster(3)[0]).await?;
    let mut late_ms = Vec::with_capacity(ALERTS);
    for (i, seq) in (0..ALERTS).zip(1u64..) {
        let presser = &mut pressers[i % 10];
        let t0 = Instant::now();
        let ack = presser.press_and_wait_ack(seq, "help").await?;
        let heard = loop {
            let body = listener.expect_message("/alert").await?;
            if body["alert"] == ack["alert"] {
                break t0.elapsed();
            }
        };
        late_ms.push(heard.as_secs_f64() * 1000.0 - RING1_AFTER_MS as f64);
        // Let the next alert start from a quiet gateway.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    late_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| late_ms[((late_ms.len() - 1) as f64 * p).round() as usize];
    let report = serde_json::json!({
        "what": "press -> ring-1 cluster alert received by a unit of a neighbouring cluster, minus the configured ring time",
        "ring1_after_ms": RING1_AFTER_MS,
        "alerts": ALERTS,
        "late_ms": { "p50": pct(0.5), "p90": pct(0.9), "max": pct(1.0), "min": pct(0.0) },
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "measured_at": chrono_now(),
    });
    println!("{report:#}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/bench/ring-delay.json");
    std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    assert!(
        late_ms[0] >= -1.0,
        "ring 1 fired before its time: {late_ms:?}"
    );
    Ok(())
}

fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("unix {secs}")
}
