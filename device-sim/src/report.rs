//! The benchmark report: latency summaries from HdrHistograms (microseconds), machine and
//! process figures read from `/proc`, and the JSON document written by `bench --report`.

use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms track; larger values are clamped to it.
pub const MAX_TRACKED_US: u64 = 600_000_000;

/// A microsecond histogram, 1 µs .. 10 min, 3 significant figures.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; a failure here is a programming error.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("valid histogram bounds")
}

/// Records a duration in whole microseconds (at least 1, at most [`MAX_TRACKED_US`]).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    h.saturating_record(us.clamp(1, MAX_TRACKED_US));
}

/// p50/p90/p99/max in microseconds; all `null` when nothing was measured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
    pub count: u64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: Some(h.value_at_quantile(0.50)),
            p90: Some(h.value_at_quantile(0.90)),
            p99: Some(h.value_at_quantile(0.99)),
            max: Some(h.max()),
            count: h.len(),
        }
    }

    /// "p50 1.2 ms, p90 …" for the printed summary.
    pub fn human(&self) -> String {
        let ms = |v: Option<u64>| match v {
            Some(us) => format!("{:.2} ms", us as f64 / 1000.0),
            None => "-".to_owned(),
        };
        format!(
            "p50 {}, p90 {}, p99 {}, max {} (n={})",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max),
            self.count
        )
    }
}

/// `count / seconds`, 0 when no time passed.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s <= 0.0 {
        0.0
    } else {
        count as f64 / s
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub os: String,
    pub kernel: Option<String>,
    pub memory_total_kb: Option<u64>,
    pub memory_available_kb: Option<u64>,
}

impl Machine {
    pub fn probe() -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            os: std::env::consts::OS.to_owned(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_owned()),
            memory_total_kb: kb_field(&meminfo, "MemTotal:"),
            memory_available_kb: kb_field(&meminfo, "MemAvailable:"),
        }
    }
}

/// Reads `Name:   1234 kB` from a `/proc` status-style text.
pub fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Memory and descriptors of one process, read from `/proc/PID`.
#[derive(Clone, Debug, Serialize)]
pub struct ProcStats {
    pub pid: u32,
    pub vm_rss_kb: Option<u64>,
    pub vm_hwm_kb: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    /// Per simulated device (divided by the number of devices online at the end).
    pub rss_kb_per_device: Option<f64>,
    pub fds_per_device: Option<f64>,
}

impl ProcStats {
    pub fn read(pid: u32, devices: usize) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()
            .map(|d| d.count() as u64);
        let vm_rss_kb = kb_field(&status, "VmRSS:");
        let per = |v: Option<u64>| match (v, devices) {
            (Some(v), n) if n > 0 => Some(v as f64 / n as f64),
            _ => None,
        };
        ProcStats {
            pid,
            vm_rss_kb,
            vm_hwm_kb: kb_field(&status, "VmHWM:"),
            threads: kb_field(&status, "Threads:"),
            open_fds,
            rss_kb_per_device: per(vm_rss_kb),
            fds_per_device: per(open_fds),
        }
    }
}

/// Counts of things that should not happen twice.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Duplicates {
    /// One (device, seq) acknowledged with two different alert ids: the gateway's dedup failed.
    pub alerts: u64,
    /// A neighbour received the same alert with the same state and responder count again.
    pub neighbour_deliveries: u64,
    /// Acks repeated for the same (seq, state, responders), e.g. answering a repeated press. Expected
    /// after retries; listed to show how often it happened.
    pub acks_repeated: u64,
}

/// Figures for one load level.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadResult {
    pub rate_target: f64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub presses_sent: u64,
    pub presses_acked: u64,
    /// No ack by the end of the measured time plus the grace period.
    pub presses_lost: u64,
    /// Presses sent more than once before their ack came.
    pub presses_retried: u64,
    /// Scheduled presses skipped because every device had an outstanding press.
    pub presses_skipped_busy: u64,
    /// Acked presses whose alert did not reach every simulated neighbour in time.
    pub neighbours_incomplete: u64,
    /// Acked presses with no simulated neighbour (their cluster is not in the run).
    pub presses_without_neighbours: u64,
    pub duplicates: Duplicates,
    /// Acked presses / measured time.
    pub sustained_presses_per_s: f64,
    /// Press → the last neighbour of the cluster received the cluster alert.
    pub latency_neighbours_us: Latency,
    /// Press → each single neighbour received it (one sample per neighbour).
    pub latency_each_neighbour_us: Latency,
    /// Press → first `down/ack` for its seq.
    pub latency_ack_us: Latency,
}

#[derive(Clone, Debug, Serialize)]
pub struct FindMax {
    /// A step passes when press → neighbours p99 is under this, nothing is lost and at least
    /// 95 % of the target presses were sent.
    pub p99_limit_ms: f64,
    pub step_duration_s: f64,
    pub steps: Vec<LoadResult>,
    /// Highest passing rate, if any.
    pub max_rate_ok: Option<f64>,
}

/// The burst scenario: a share of the households press once each within a window. Its presses'
/// counts and latencies are the report's load figures (`presses_lost` must be 0).
#[derive(Clone, Debug, Default, Serialize)]
pub struct BurstReport {
    /// Share of the online devices that press.
    pub fraction: f64,
    /// The presses' first sends are spread uniformly over this window.
    pub window_s: f64,
    pub presses_planned: u64,
    /// First press sent → last press sent.
    pub press_span_s: Option<f64>,
    /// Last press first sent → last first ack: how long the system took to catch up.
    pub drain_ack_s: Option<f64>,
    /// Last press first sent → last neighbour receipt of any burst alert.
    pub drain_neighbours_s: Option<f64>,
    /// First press sent → last ack.
    pub total_s: Option<f64>,
}

/// The storm scenario: every device drops its connection at once and reconnects with its normal
/// backoff; a share of them press at the moment of the drop. Those presses' counts are the
/// report's load figures (`presses_lost` and `duplicates.alerts` must be 0).
#[derive(Clone, Debug, Default, Serialize)]
pub struct StormReport {
    /// Devices that were online and were dropped.
    pub devices_dropped: usize,
    /// Devices online and subscribed again within the timeout.
    pub devices_back: usize,
    pub all_back: bool,
    /// Drop → the last device back and subscribed (when all came back).
    pub all_back_s: Option<f64>,
    /// Drop → each device back and subscribed (one sample per device that came back).
    pub reconnect_us: Latency,
    /// Connection attempts that failed (refused, timed out) while the fleet came back.
    pub connect_failures: u64,
    /// Why attempts failed since the fleet started (the first connections too), most frequent
    /// first: the error's words, numbers as `#`.
    pub connect_failure_reasons: Vec<(String, u64)>,
    pub timeout_s: f64,
    pub press_fraction: f64,
    pub presses_planned: u64,
    /// Button pressed at the drop → its first ack (offline time included).
    pub press_to_ack_us: Latency,
    /// Distinct alerts the storm's presses were acknowledged with; equals `presses_acked` when
    /// each press became exactly one alert.
    pub alerts_acked: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub started_at: String,
    pub machine: Machine,
    pub broker: String,
    pub devices: usize,
    pub devices_online: usize,
    pub clusters: usize,
    pub connect_time_s: f64,
    pub disconnects: u64,
    /// Connections lost during the scenario that the simulator did not drop itself.
    pub disconnects_unplanned: u64,
    pub malformed_messages: u64,
    #[serde(flatten)]
    pub load: LoadResult,
    pub find_max: Option<FindMax>,
    pub burst: Option<BurstReport>,
    pub storm: Option<StormReport>,
    /// This simulator's own process.
    pub sim: ProcStats,
    /// The server's process, when `--server-pid` was given.
    pub server: Option<ProcStats>,
}

impl Report {
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json + "\n")
    }

    /// The printed summary.
    pub fn human(&self) -> String {
        let l = &self.load;
        let mut s = format!(
            "== tenwatch-sim {} ==\n\
             devices {} ({} online, {} clusters), connected in {:.2} s, {} disconnects\n\
             rate target {:.0}/s over {:.1} s (warm-up {:.1} s)\n\
             presses: {} sent, {} acked, {} lost, {} retried, {} skipped (all busy)\n\
             sustained: {:.1} acked presses/s\n\
             press → all neighbours: {}\n\
             press → each neighbour: {}\n\
             press → ack:            {}\n\
             incomplete fan-out {}, no neighbours {}, duplicate alerts {}, duplicate deliveries {}, repeated acks {}, malformed {}\n",
            self.scenario,
            self.devices,
            self.devices_online,
            self.clusters,
            self.connect_time_s,
            self.disconnects,
            l.rate_target,
            l.duration_s,
            l.warmup_s,
            l.presses_sent,
            l.presses_acked,
            l.presses_lost,
            l.presses_retried,
            l.presses_skipped_busy,
            l.sustained_presses_per_s,
            l.latency_neighbours_us.human(),
            l.latency_each_neighbour_us.human(),
            l.latency_ack_us.human(),
            l.neighbours_incomplete,
            l.presses_without_neighbours,
            l.duplicates.alerts,
            l.duplicates.neighbour_deliveries,
            l.duplicates.acks_repeated,
            self.malformed_messages,
        );
        if let Some(fm) = &self.find_max {
            s.push_str(&format!(
                "find-max (p99 < {} ms, nothing lost):\n",
                fm.p99_limit_ms
            ));
            for st in &fm.steps {
                s.push_str(&format!(
                    "  {:>6.0}/s: sent {}, acked {}, lost {}, sustained {:.1}/s, neighbours {}\n",
                    st.rate_target,
                    st.presses_sent,
                    st.presses_acked,
                    st.presses_lost,
                    st.sustained_presses_per_s,
                    st.latency_neighbours_us.human()
                ));
            }
            match fm.max_rate_ok {
                Some(r) => s.push_str(&format!("  highest passing rate: {r:.0} presses/s\n")),
                None => s.push_str("  no step passed\n"),
            }
        }
        let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3} s"));
        if let Some(b) = &self.burst {
            s.push_str(&format!(
                "burst: {} presses ({:.0} % of devices) over {:.1} s; pressed over {}, drained (last ack) {} and (last neighbour) {} after the last press; first press → last ack {}\n",
                b.presses_planned,
                b.fraction * 100.0,
                b.window_s,
                secs(b.press_span_s),
                secs(b.drain_ack_s),
                secs(b.drain_neighbours_s),
                secs(b.total_s),
            ));
        }
        if let Some(st) = &self.storm {
            s.push_str(&format!(
                "storm: {} dropped, {} back{} (all back after {}), {} failed attempts\n  drop → back: {}\n  {} presses at the drop → ack: {}; {} alerts for {} acked presses\n",
                st.devices_dropped,
                st.devices_back,
                if st.all_back { "" } else { " — NOT ALL" },
                secs(st.all_back_s),
                st.connect_failures,
                st.reconnect_us.human(),
                st.presses_planned,
                st.press_to_ack_us.human(),
                st.alerts_acked,
                self.load.presses_acked,
            ));
        }
        let proc_line = |name: &str, p: &ProcStats| {
            format!(
                "{name} pid {}: RSS {} kB, {} fds ({} kB and {} fds per device)\n",
                p.pid,
                p.vm_rss_kb.map_or("-".into(), |v| v.to_string()),
                p.open_fds.map_or("-".into(), |v| v.to_string()),
                p.rss_kb_per_device
                    .map_or("-".into(), |v| format!("{v:.1}")),
                p.fds_per_device.map_or("-".into(), |v| format!("{v:.2}")),
            )
        };
        s.push_str(&proc_line("sim", &self.sim));
        if let Some(server) = &self.server {
            s.push_str(&proc_line("server", server));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_summary_from_histogram() {
        let mut h = new_histogram();
        assert_eq!(Latency::from_histogram(&h), Latency::default());
        for ms in 1..=100u64 {
            record(&mut h, Duration::from_millis(ms));
        }
        let l = Latency::from_histogram(&h);
        assert_eq!(l.count, 100);
        // 3 significant figures: values within 0.1 % of the exact quantiles.
        let near = |v: Option<u64>, want: u64| {
            let v = v.expect("present");
            v.abs_diff(want) * 1000 <= want
        };
        assert!(near(l.p50, 50_000), "{l:?}");
        assert!(near(l.p90, 90_000), "{l:?}");
        assert!(near(l.p99, 99_000), "{l:?}");
        assert!(near(l.max, 100_000), "{l:?}");
    }

    #[test]
    fn record_clamps_extremes() {
        let mut h = new_histogram();
        record(&mut h, Duration::ZERO);
        record(&mut h, Duration::from_secs(100_000));
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= MAX_TRACKED_US);
    }

    #[test]
    fn rates_and_proc_fields() {
        assert_eq!(per_second(10, Duration::ZERO), 0.0);
        assert!((per_second(500, Duration::from_secs(4)) - 125.0).abs() < 1e-9);
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t7\n";
        assert_eq!(kb_field(status, "VmRSS:"), Some(1024));
        assert_eq!(kb_field(status, "Threads:"), Some(7));
        assert_eq!(kb_field(status, "VmSwap:"), None);
        let me = ProcStats::read(std::process::id(), 4);
        assert!(me.vm_rss_kb.is_some());
        assert!(me.open_fds.is_some());
        assert!(me.fds_per_device.is_some());
    }

    #[test]
    fn report_json_has_the_documented_fields() {
        let report = Report {
            scenario: "bench".into(),
            started_at: "2025-01-01T00:00:00Z".into(),
            machine: Machine::probe(),
            broker: "127.0.0.1:1883".into(),
            devices: 10,
            devices_online: 10,
            clusters: 1,
            connect_time_s: 0.5,
            disconnects: 0,
            disconnects_unplanned: 0,
            malformed_messages: 0,
            load: LoadResult::default(),
            find_max: None,
            burst: None,
            storm: None,
            sim: ProcStats::read(std::process::id(), 10),
            server: None,
        };
        let v = serde_json::to_value(&report).expect("serialises");
        for key in [
            "scenario",
            "started_at",
            "machine",
            "devices",
            "rate_target",
            "duration_s",
            "presses_sent",
            "presses_acked",
            "presses_lost",
            "sustained_presses_per_s",
            "latency_neighbours_us",
            "latency_ack_us",
            "connect_time_s",
            "duplicates",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert!(v["machine"]["cores"].as_u64().is_some());
        assert!(v["latency_ack_us"]["p99"].is_null());
        assert!(report.human().contains("presses:"));
    }
}
