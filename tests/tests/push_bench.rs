//! How long from a press to the push service accepting the push, with 100 volunteers
//! subscribed? A measurement, not a test of speed: run with
//! `cargo test --release -p tenwatch-tests --test push_bench -- --ignored --nocapture`
//! (`scripts/bench-push.sh`). Ring 1 is set to fire 1 ms after the press so that every alert
//! goes to all 100 on-duty volunteers at once; each push is verified and decrypted by the
//! push-service emulator, whose acceptance time is the end of the measurement. Twice: to the
//! emulator in plain HTTP/1.1, and to it behind nginx speaking TLS and HTTP/2 (as the browsers'
//! push services do). The gateway's CPU per push is stated beside the emulator's. Writes
//! docs/bench/push-100.json.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tenwatch_tests::push::{require_push_emulator, PushEmulator, PushFront};
use tenwatch_tests::*;

const VOLUNTEERS: usize = 100;
const ALERTS: usize = 20;

/// Waits until the emulator accepted `n` pushes in all.
async fn wait_pushes(emulator: &PushEmulator, n: u64) -> anyhow::Result<()> {
    let seen = emulator.wait_total(n, Duration::from_secs(60)).await?;
    anyhow::ensure!(
        seen.messages >= n,
        "{} of {n} pushes accepted",
        seen.messages
    );
    Ok(())
}

/// The value at fraction `p` of `v` (sorted here).
fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn summary(v: &mut [f64]) -> serde_json::Value {
    json!({
        "p50": percentile(v, 0.5),
        "p90": percentile(v, 0.9),
        "p99": percentile(v, 0.99),
        "max": percentile(v, 1.0),
        "min": percentile(v, 0.0),
    })
}

/// This process's user + system CPU time, seconds (Linux, `/proc/self/stat`).
fn process_cpu_s() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11).zip(fields.get(12)).map_or(Ok(0), |(u, s)| {
        Ok::<u64, std::num::ParseIntError>(u.parse::<u64>()? + s.parse::<u64>()?)
    })?;
    // USER_HZ is 100 on Linux.
    Ok(ticks as f64 / 100.0)
}

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
    assert!(
        require_tool("nginx") && require_tool("openssl"),
        "nginx and openssl are needed for the HTTP/2 front"
    );
    let plain = {
        let emulator = PushEmulator::start().await?;
        measure(&emulator, Vec::new()).await?
    };
    let http2 = {
        let front = PushFront::start().await?;
        measure(&front.emulator, front.certificate_pem()?).await?
    };
    let report = json!({
        "what": "press sent by a unit -> push request at the push-service emulator (arrived) and accepted (201, after the emulator verified VAPID and decrypted it), per volunteer; ring 1 set to 1 ms so that each alert goes to every volunteer at once",
        "volunteers": VOLUNTEERS,
        "alerts": ALERTS,
        "http1_plain": plain,
        "http2_tls": http2,
        "emulator": "tests/push-emulator/emulator.py (Python, verifies VAPID, decrypts aes128gcm), same machine; http2_tls: behind nginx (TLS, HTTP/2) as tests/src/push.rs PushFront sets it up",
        "machine": "2 cores, 24 GiB; gateway, units, nginx and emulator on the same cores",
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "measured_at_unix_ms": now_ms(),
    });
    println!("{report:#}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/bench/push-100.json");
    std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    Ok(())
}

/// One run of [`ALERTS`] alerts to [`VOLUNTEERS`] volunteers subscribed at `emulator`, the
/// gateway trusting `roots` besides the public ones; its figures.
async fn measure(emulator: &PushEmulator, roots: Vec<u8>) -> anyhow::Result<serde_json::Value> {
    let app = spawn_app_with(1, move |c| {
        c.plan.ring1_after_ms = 1;
        c.plan.ring2_after_ms = 3_600_000;
        c.push.allow_loopback = true;
        c.push.extra_roots = roots;
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

    let station = app.operator("bench-duty", "11010501").await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    let mut pressed_at = Vec::with_capacity(ALERTS);
    let mut acked_ms = Vec::with_capacity(ALERTS);
    // CPU of this process (the gateway, ten units and this loop's one wait per alert) and of
    // the emulator, over the alerts only.
    let (gateway_cpu_0, emulator_0) = (process_cpu_s()?, emulator.stats().await?);
    for (n, seq) in (1..=ALERTS).zip(1u64..) {
        let presser = &mut units[n % 10];
        let at = now_ms();
        let ack = presser.press_and_wait_ack(seq, "help").await?;
        acked_ms.push((now_ms() - at) as f64);
        pressed_at.push(at);
        // Every volunteer's push about this alert, then (resolved by the station, so that the
        // household's next press is a new alert) every volunteer's "over" push.
        let before = ((n - 1) * 2 * VOLUNTEERS) as u64;
        wait_pushes(emulator, before + VOLUNTEERS as u64).await?;
        let id = ack["alert"].as_str().unwrap_or_default();
        let resolve = json!({ "category": "help", "note": "" });
        let path = format!("/api/alerts/{id}/resolve");
        let (status, body) = app.post_as(&station, &path, resolve).await?;
        anyhow::ensure!(status == 200, "resolve: {body}");
        wait_pushes(emulator, before + 2 * VOLUNTEERS as u64).await?;
        // Each alert starts from a quiet gateway and emulator.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (gateway_cpu_1, emulator_1) = (process_cpu_s()?, emulator.stats().await?);
    let pushes = (emulator_1.messages - emulator_0.messages) as f64;

    // Per push: when its request reached the emulator (the gateway's doing alone) and when
    // the emulator accepted it (after verifying and decrypting it).
    let mut arrived = Vec::with_capacity(ALERTS * VOLUNTEERS);
    let mut accepted = Vec::with_capacity(ALERTS * VOLUNTEERS);
    let (mut first_arrived, mut first_accepted, mut last_accepted) = (
        vec![f64::MAX; ALERTS],
        vec![f64::MAX; ALERTS],
        vec![0f64; ALERTS],
    );
    for sub in &subs {
        let messages = emulator.messages(&sub.id).await?;
        anyhow::ensure!(messages.rejections.is_empty(), "{:?}", messages.rejections);
        anyhow::ensure!(
            messages.messages.len() == 2 * ALERTS,
            "two pushes per alert"
        );
        // The alert's push of each pair; the other says it is over.
        for (i, m) in messages.messages.iter().step_by(2).enumerate() {
            let a = m.arrived_at_ms.saturating_sub(pressed_at[i]) as f64;
            let r = m.received_at_ms.saturating_sub(pressed_at[i]) as f64;
            arrived.push(a);
            accepted.push(r);
            first_arrived[i] = first_arrived[i].min(a);
            first_accepted[i] = first_accepted[i].min(r);
            last_accepted[i] = last_accepted[i].max(r);
        }
    }
    let metrics = app.metrics.snapshot();
    Ok(json!({
        "pushes": accepted.len(),
        "pushes_in_all": pushes,
        "press_to_ack_ms_p50": percentile(&mut acked_ms, 0.5),
        "press_to_push_arrived_ms": summary(&mut arrived),
        "press_to_push_accepted_ms": summary(&mut accepted),
        "first_volunteer_of_an_alert_arrived_ms_p50": percentile(&mut first_arrived, 0.5),
        "first_volunteer_of_an_alert_ms_p50": percentile(&mut first_accepted, 0.5),
        "last_volunteer_of_an_alert_ms_p50": percentile(&mut last_accepted, 0.5),
        "cpu_ms_per_push": {
            "gateway_process": (gateway_cpu_1 - gateway_cpu_0) * 1000.0 / pushes,
            "emulator": (emulator_1.cpu_s - emulator_0.cpu_s) * 1000.0 / pushes,
            "note": "over every push (the alerts' and the 'over' ones); the gateway's process also runs the ten pressing units and this loop; CPU read from /proc/self/stat (10 ms ticks) and the emulator's time.process_time()",
        },
        "gateway": {
            "pushes_sent": metrics.pushes_sent,
            "pushes_accepted": metrics.pushes_accepted,
            "push_retries": metrics.push_retries,
            "pushes_failed": metrics.pushes_failed,
        },
    }))
}
