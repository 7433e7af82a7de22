//! The reconnect storm: every connected device drops its connection at the same instant (the
//! socket closes under it, no DISCONNECT, as when a broker restarts or the access network
//! blinks) and comes back with its normal behaviour: reconnect after a jittered backoff
//! (250 ms × 0.5–1.5, doubling on each failure up to 10 s), resubscribe, resend what is
//! pending. A share of the devices (1 % by default, at least one) press at the moment of the
//! drop, so their presses go out while the whole fleet is reconnecting.
//!
//! Reported: drop → each device back and subscribed (p50/p90/p99/max) and until all are back;
//! the presses acknowledged, each with exactly one alert (`presses_lost` = 0,
//! `duplicates.alerts` = 0, `alerts_acked` = `presses_acked`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fleet::Fleet;
use crate::proto::PressKind;
use crate::record::{drain_until, Recorder};
use crate::report::{new_histogram, record, Latency, LoadResult, StormReport};

/// Settings of the storm.
#[derive(Clone, Debug)]
pub struct StormConfig {
    /// Share of the devices that press at the moment of the drop (at least one device).
    pub press_fraction: f64,
    /// Stop waiting for the fleet to come back after this long.
    pub timeout: Duration,
}

impl Default for StormConfig {
    fn default() -> Self {
        StormConfig {
            press_fraction: 0.01,
            timeout: Duration::from_secs(120),
        }
    }
}

impl StormConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.press_fraction) {
            return Err(format!(
                "--storm-press-fraction must be between 0 and 1, got {}",
                self.press_fraction
            ));
        }
        if self.timeout.is_zero() {
            return Err("--storm-timeout must be more than 0 s".into());
        }
        Ok(())
    }
}

/// Drops every online device, presses on a few, waits until all are back (or the timeout) and
/// then up to `grace` for the presses' acks.
pub async fn run(
    fleet: &Fleet,
    recorder: &Recorder,
    cfg: &StormConfig,
    grace: Duration,
    shutdown: &CancellationToken,
) -> (LoadResult, StormReport) {
    let devices = &fleet.devices;
    let mut online: Vec<usize> = (0..devices.len())
        .filter(|&i| devices[i].is_online())
        .collect();
    online.shuffle(&mut StdRng::from_entropy());
    let pressers = if cfg.press_fraction > 0.0 {
        ((online.len() as f64 * cfg.press_fraction).round() as usize).clamp(1, online.len())
    } else {
        0
    };
    println!(
        "storm: dropping {} connections at once; {pressers} of them press at the drop",
        online.len()
    );

    recorder.reset();
    recorder.set_measuring(true);
    let failures_before = fleet.counters.connect_failures.load(Ordering::Acquire);
    let dropped_at = Instant::now();
    recorder.track_reconnects(dropped_at);
    for &i in &online {
        devices[i].drop_connection();
    }
    let mut pressed: HashMap<u32, Instant> = HashMap::new();
    for &i in &online[..pressers] {
        if recorder.try_claim(i) && devices[i].press(PressKind::Help).is_ok() {
            pressed.insert(i as u32, Instant::now());
        } else {
            recorder.release(i);
        }
    }

    // Back = online and subscribed again; counted in the device tasks, checked every 20 ms.
    let deadline = dropped_at + cfg.timeout;
    let mut check = tokio::time::interval(Duration::from_millis(20));
    let mut last_progress = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = check.tick() => {}
        }
        let back = recorder.devices_back() as usize;
        if back >= online.len() || Instant::now() >= deadline {
            break;
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            println!("storm: {back}/{} back", online.len());
        }
    }
    let times = recorder.reconnect_times();
    let back_window = dropped_at.elapsed();
    // The presses had to wait for the reconnect; give them `grace` from here. Measuring stays
    // on until then: a press goes out (attempt 1) only once its device is back.
    let taken = pressed.len() as u64;
    drain_until(grace, shutdown, || recorder.acked() >= taken).await;
    recorder.set_measuring(false);

    let mut reconnect = new_histogram();
    for d in times.values() {
        record(&mut reconnect, *d);
    }
    let mut press_to_ack = new_histogram();
    for ((dev, _seq), at) in recorder.ack_times() {
        if let Some(&pressed_at) = pressed.get(&dev) {
            record(&mut press_to_ack, at.saturating_duration_since(pressed_at));
        }
    }
    let all_back = times.len() >= online.len();
    let mut load = recorder.result(back_window);
    load.presses_lost = load
        .presses_lost
        .max(taken.saturating_sub(load.presses_acked));
    let report = StormReport {
        devices_dropped: online.len(),
        devices_back: times.len(),
        all_back,
        all_back_s: all_back.then(|| {
            times
                .values()
                .max()
                .copied()
                .unwrap_or_default()
                .as_secs_f64()
        }),
        reconnect_us: Latency::from_histogram(&reconnect),
        connect_failures: fleet
            .counters
            .connect_failures
            .load(Ordering::Acquire)
            .saturating_sub(failures_before),
        connect_failure_reasons: fleet.counters.failure_reasons(),
        timeout_s: cfg.timeout.as_secs_f64(),
        press_fraction: cfg.press_fraction,
        presses_planned: pressers as u64,
        press_to_ack_us: Latency::from_histogram(&press_to_ack),
        alerts_acked: recorder.distinct_alerts_acked(),
    };
    (load, report)
}
