//! The load benchmark: presses at a target aggregate rate from random idle devices and measures
//! press → every neighbour of the cluster sounded, and press → ack, with HdrHistograms.
//!
//! Linking works through the alert id: neighbours record when they first received each alert
//! id; the presser's first ack carries the alert id for its (device, seq), whose first send is t0.
//!
//! Scenarios: `steady` (one rate), `find-max` (rising rates until p99 breaks the limit), and in
//! [`crate::burst`] and [`crate::storm`] a burst of presses from many households and a reconnect
//! storm. All share the [`crate::record::Recorder`] and the [`Report`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::creds::Credential;
use crate::device::{Device, DeviceConfig};
use crate::fleet::{Fleet, RampConfig};
use crate::proto::PressKind;
use crate::record::{drain, Recorder};
use crate::report::{FindMax, LoadResult, Machine, ProcStats, Report};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("no device came online at {broker} within {timeout:?}: check the broker address and the credentials")]
    NoneOnline { broker: String, timeout: Duration },
    #[error("invalid benchmark setting: {0}")]
    Invalid(String),
}

/// Settings for `bench`.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub device: DeviceConfig,
    pub ramp: RampConfig,
    /// Target presses per second across all devices.
    pub rate: f64,
    pub warmup: Duration,
    pub duration: Duration,
    /// After the measured time, wait at most this long for outstanding acks and fan-out.
    pub grace: Duration,
    pub scenario: Scenario,
    pub server_pid: Option<u32>,
}

/// What the benchmark does once every device is online.
#[derive(Clone, Debug)]
pub enum Scenario {
    /// Presses at `BenchConfig::rate` for the warm-up and the measured time.
    Steady,
    /// Steps the rate up until press → neighbours p99 exceeds the limit.
    FindMax(FindMaxConfig),
    /// A share of the households press once each within a window.
    Burst(crate::burst::BurstConfig),
    /// Every device drops its connection at once and reconnects; a few press meanwhile.
    Storm(crate::storm::StormConfig),
}

impl Scenario {
    /// The `scenario` field of the report.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Steady => "bench",
            Scenario::FindMax(_) => "bench-find-max",
            Scenario::Burst(_) => "bench-burst",
            Scenario::Storm(_) => "bench-storm",
        }
    }
}

#[derive(Clone, Debug)]
pub struct FindMaxConfig {
    pub rates: Vec<f64>,
    pub step_duration: Duration,
    pub step_warmup: Duration,
    pub p99_limit: Duration,
}

impl Default for FindMaxConfig {
    fn default() -> Self {
        FindMaxConfig {
            rates: vec![250.0, 500.0, 1000.0, 2000.0, 4000.0],
            step_duration: Duration::from_secs(5),
            step_warmup: Duration::from_secs(1),
            p99_limit: Duration::from_millis(50),
        }
    }
}

impl BenchConfig {
    fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Invalid(m.to_owned()));
        match &self.scenario {
            Scenario::Steady => {
                if !(self.rate.is_finite() && self.rate > 0.0) {
                    return bad("--rate must be a positive number of presses per second");
                }
                if self.duration.is_zero() {
                    return bad("--duration must be more than 0 s");
                }
            }
            Scenario::FindMax(fm) => {
                if fm.rates.is_empty() || fm.rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
                    return bad("--steps must list positive rates");
                }
                if fm.step_duration.is_zero() {
                    return bad("--step-duration must be more than 0 s");
                }
            }
            Scenario::Burst(b) => b.validate().map_err(BenchError::Invalid)?,
            Scenario::Storm(st) => st.validate().map_err(BenchError::Invalid)?,
        }
        Ok(())
    }
}

/// Presses at `rate` for `warmup + duration`, then waits up to `grace` for stragglers.
/// Returns the figures for the presses sent after the warm-up.
pub async fn run_load(
    devices: &[Device],
    recorder: &Recorder,
    rate: f64,
    warmup: Duration,
    duration: Duration,
    grace: Duration,
    shutdown: &CancellationToken,
) -> LoadResult {
    recorder.reset();
    recorder.set_measuring(false);
    let mut rng = StdRng::from_entropy();
    let start = Instant::now();
    let measure_start = start + warmup;
    let end = measure_start + duration;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut issued: u64 = 0;
    let mut skipped: u64 = 0;
    let mut measuring = false;
    let mut stopped_at = end;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => { stopped_at = Instant::now(); break; }
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        if now >= end {
            break;
        }
        if !measuring && now >= measure_start {
            measuring = true;
            recorder.set_measuring(true);
        }
        // Catch up to the schedule: a late tick issues the presses it missed.
        let target = (rate * (now - start).as_secs_f64()) as u64;
        while issued < target {
            issued += 1;
            if !press_random_idle(devices, recorder, &mut rng) && measuring {
                skipped += 1;
            }
        }
    }
    recorder.set_measuring(false);
    let measured = stopped_at.saturating_duration_since(measure_start);
    drain(recorder, grace, shutdown).await;

    let mut r = recorder.result(measured);
    r.rate_target = rate;
    r.warmup_s = warmup.as_secs_f64();
    r.presses_skipped_busy = skipped;
    r
}

/// Presses on a random online device with nothing outstanding; false if none was found.
fn press_random_idle(devices: &[Device], recorder: &Recorder, rng: &mut StdRng) -> bool {
    let n = devices.len();
    if n == 0 {
        return false;
    }
    let try_one = |d: &Device| {
        if !d.is_online() || d.pending_presses() > 0 || !recorder.try_claim(d.ctx().index) {
            return false;
        }
        if d.press(PressKind::Help).is_ok() {
            true
        } else {
            recorder.release(d.ctx().index);
            false
        }
    };
    for _ in 0..16 {
        if try_one(&devices[rng.gen_range(0..n)]) {
            return true;
        }
    }
    // Mostly busy: scan once from a random point so a free device is still found.
    let offset = rng.gen_range(0..n);
    (0..n).any(|i| try_one(&devices[(offset + i) % n]))
}

fn step_passes(r: &LoadResult, limit: Duration) -> bool {
    let limit_us = limit.as_micros() as u64;
    let expected = r.rate_target * r.duration_s;
    r.presses_lost == 0
        && r.presses_acked > 0
        && r.neighbours_incomplete == 0
        && r.latency_neighbours_us.p99.is_some_and(|p| p < limit_us)
        && r.presses_sent as f64 >= 0.95 * expected
}

/// Connects the devices, runs the load (or the find-max steps) and builds the report.
pub async fn bench(
    creds: Vec<Credential>,
    cfg: BenchConfig,
    shutdown: CancellationToken,
) -> Result<Report, BenchError> {
    cfg.validate()?;
    let started_at = chrono::Utc::now().to_rfc3339();
    let machine = Machine::probe();
    let broker = format!("{}:{}", cfg.device.host, cfg.device.port);
    let recorder = Arc::new(Recorder::new(&creds));
    let clusters = recorder.clusters.count();
    let total = creds.len();

    let (fleet, outcome) = Fleet::connect(
        creds,
        cfg.device.clone(),
        recorder.clone(),
        &cfg.ramp,
        shutdown.clone(),
    )
    .await;
    if outcome.online == 0 {
        fleet.shutdown(Duration::from_secs(2)).await;
        return Err(BenchError::NoneOnline {
            broker,
            timeout: cfg.ramp.timeout,
        });
    }
    if !outcome.complete() {
        println!(
            "warning: only {}/{} devices online; their neighbours' fan-out will count as incomplete",
            outcome.online, outcome.total
        );
    }

    let disconnects_before = fleet.counters.disconnects.load(Ordering::Acquire);
    let (mut burst, mut storm) = (None, None);
    let (load, find_max) = match &cfg.scenario {
        Scenario::Burst(b) => {
            let (load, report) =
                crate::burst::run(&fleet.devices, &recorder, b, cfg.grace, &shutdown).await;
            burst = Some(report);
            (load, None)
        }
        Scenario::Storm(st) => {
            let (load, report) =
                crate::storm::run(&fleet, &recorder, st, cfg.grace, &shutdown).await;
            storm = Some(report);
            (load, None)
        }
        Scenario::Steady => {
            println!(
                "pressing at {:.0}/s: {:.0} s warm-up, {:.0} s measured",
                cfg.rate,
                cfg.warmup.as_secs_f64(),
                cfg.duration.as_secs_f64()
            );
            let r = run_load(
                &fleet.devices,
                &recorder,
                cfg.rate,
                cfg.warmup,
                cfg.duration,
                cfg.grace,
                &shutdown,
            )
            .await;
            (r, None)
        }
        Scenario::FindMax(fm) => {
            let mut steps = Vec::new();
            let mut best: Option<usize> = None;
            for &rate in &fm.rates {
                if shutdown.is_cancelled() {
                    break;
                }
                let r = run_load(
                    &fleet.devices,
                    &recorder,
                    rate,
                    fm.step_warmup,
                    fm.step_duration,
                    cfg.grace,
                    &shutdown,
                )
                .await;
                let ok = step_passes(&r, fm.p99_limit);
                println!(
                    "step {rate:.0}/s: {} — sent {}, acked {}, lost {}, neighbours {}",
                    if ok { "pass" } else { "FAIL" },
                    r.presses_sent,
                    r.presses_acked,
                    r.presses_lost,
                    r.latency_neighbours_us.human()
                );
                steps.push(r);
                if !ok {
                    break;
                }
                best = Some(steps.len() - 1);
            }
            let headline = best
                .or(steps.len().checked_sub(1))
                .and_then(|i| steps.get(i).cloned())
                .unwrap_or_default();
            let fm_report = FindMax {
                p99_limit_ms: fm.p99_limit.as_secs_f64() * 1000.0,
                step_duration_s: fm.step_duration.as_secs_f64(),
                max_rate_ok: best.and_then(|i| steps.get(i)).map(|s| s.rate_target),
                steps,
            };
            (headline, Some(fm_report))
        }
    };

    let online = fleet.online();
    let sim = ProcStats::read(std::process::id(), online);
    let server = cfg.server_pid.map(|pid| ProcStats::read(pid, online));
    let report = Report {
        scenario: cfg.scenario.name().into(),
        started_at,
        machine,
        broker,
        devices: total,
        devices_online: online,
        clusters,
        connect_time_s: outcome.elapsed.as_secs_f64(),
        disconnects: fleet.counters.disconnects.load(Ordering::Acquire),
        disconnects_unplanned: fleet
            .counters
            .disconnects
            .load(Ordering::Acquire)
            .saturating_sub(disconnects_before)
            .saturating_sub(storm.as_ref().map_or(0, |s| s.devices_dropped as u64)),
        malformed_messages: fleet.counters.malformed.load(Ordering::Acquire),
        load,
        find_max,
        burst,
        storm,
        sim,
        server,
    };
    fleet.shutdown(Duration::from_secs(5)).await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_max_step_verdict() {
        let mut r = LoadResult {
            rate_target: 100.0,
            duration_s: 5.0,
            presses_sent: 500,
            presses_acked: 500,
            ..LoadResult::default()
        };
        r.latency_neighbours_us.p99 = Some(49_000);
        assert!(step_passes(&r, Duration::from_millis(50)));
        r.latency_neighbours_us.p99 = Some(51_000);
        assert!(!step_passes(&r, Duration::from_millis(50)));
        r.latency_neighbours_us.p99 = Some(1_000);
        r.presses_lost = 1;
        assert!(!step_passes(&r, Duration::from_millis(50)));
        r.presses_lost = 0;
        r.presses_sent = 400; // could not keep up with the schedule
        assert!(!step_passes(&r, Duration::from_millis(50)));
    }
}
