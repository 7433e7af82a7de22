//! The burst scenario: an earthquake or a blackout. A share of the households (30 % by
//! default) press once each, at moments spread uniformly over a window (60 s by default); each
//! device repeats its press until acknowledged, as real units do. Reported: every press
//! acknowledged or not, press → ack and press → nine neighbours, and how long the system took
//! to drain after the last press.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::device::Device;
use crate::proto::PressKind;
use crate::record::{drain_until, Recorder};
use crate::report::{BurstReport, LoadResult};

/// Settings of the burst.
#[derive(Clone, Debug)]
pub struct BurstConfig {
    /// Share of the online devices that press (each once).
    pub fraction: f64,
    /// The presses are spread uniformly over this window.
    pub window: Duration,
}

impl Default for BurstConfig {
    fn default() -> Self {
        BurstConfig {
            fraction: 0.3,
            window: Duration::from_secs(60),
        }
    }
}

impl BurstConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            return Err(format!(
                "--burst-fraction must be in (0, 1], got {}",
                self.fraction
            ));
        }
        Ok(())
    }
}

/// Chooses `round(fraction × online)` distinct online devices (at least one) and the offset of
/// each one's press in the window, sorted by offset.
fn plan(devices: &[Device], cfg: &BurstConfig, rng: &mut StdRng) -> Vec<(Duration, usize)> {
    let mut online: Vec<usize> = (0..devices.len())
        .filter(|&i| devices[i].is_online())
        .collect();
    online.shuffle(rng);
    let n = ((online.len() as f64 * cfg.fraction).round() as usize)
        .clamp(1, online.len().max(1))
        .min(online.len());
    let mut plan: Vec<(Duration, usize)> = online[..n]
        .iter()
        .map(|&i| (cfg.window.mul_f64(rng.gen_range(0.0..1.0)), i))
        .collect();
    plan.sort();
    plan
}

/// Runs the burst and waits up to `grace` after the window for the stragglers.
pub async fn run(
    devices: &[Device],
    recorder: &Recorder,
    cfg: &BurstConfig,
    grace: Duration,
    shutdown: &CancellationToken,
) -> (LoadResult, BurstReport) {
    let mut rng = StdRng::from_entropy();
    let plan = plan(devices, cfg, &mut rng);
    println!(
        "burst: {} devices press once each within {:.1} s",
        plan.len(),
        cfg.window.as_secs_f64()
    );
    recorder.reset();
    recorder.set_measuring(true);
    let start = Instant::now();
    let mut next = plan.iter().peekable();
    let mut not_taken = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    while next.peek().is_some() {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let elapsed = start.elapsed();
        while let Some(&&(_, i)) = next.peek().filter(|(at, _)| *at <= elapsed) {
            next.next();
            let d = &devices[i];
            // A device whose press is refused (its queue full, or stopped) counts as not
            // taken: it never sent, so it cannot be lost; it is reported apart.
            if !recorder.try_claim(i) || d.press(PressKind::Help).is_err() {
                recorder.release(i);
                not_taken += 1;
            }
        }
    }
    // Presses the loop could not issue before a shutdown count as not taken as well.
    not_taken += next.count() as u64;
    let window = start.elapsed().max(cfg.window);
    // A press is sent only while its device is online: count against what was pressed, not
    // against what was sent, so a press that never left its device counts as lost.
    let taken = plan.len() as u64 - not_taken;
    drain_until(grace, shutdown, || recorder.acked() >= taken).await;
    recorder.set_measuring(false);

    let mut load = recorder.result(window);
    load.rate_target = plan.len() as f64 / cfg.window.as_secs_f64().max(1e-3);
    load.presses_skipped_busy = not_taken;
    load.presses_lost = load
        .presses_lost
        .max(taken.saturating_sub(load.presses_acked));
    let t = recorder.timeline();
    let since = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_duration_since(a).as_secs_f64()),
        _ => None,
    };
    let report = BurstReport {
        fraction: cfg.fraction,
        window_s: cfg.window.as_secs_f64(),
        presses_planned: plan.len() as u64,
        press_span_s: since(t.first_sent, t.last_sent),
        drain_ack_s: since(t.last_sent, t.last_ack),
        drain_neighbours_s: since(t.last_sent, t.last_neighbour),
        total_s: since(t.first_sent, t.last_ack),
    };
    (load, report)
}
