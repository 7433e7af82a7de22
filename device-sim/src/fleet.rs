//! Many devices at once: ramped connection (the broker registers connections serially, so
//! connecting thousands at once causes timeouts), progress lines, online counters, shutdown.
//!
//! Every device holds one TCP socket: N devices need N file descriptors in this process (the
//! machine allows 20,000 per process), plus the same number in the broker.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::creds::Credential;
use crate::device::{self, Device, DeviceConfig, DeviceCtx, DeviceEvent, EventSink};
use crate::proto::Topics;

/// Fleet-wide counters, kept by a sink wrapper in front of the caller's sink.
#[derive(Debug, Default)]
pub struct FleetCounters {
    pub online: AtomicUsize,
    pub disconnects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub subscribe_refused: AtomicU64,
    pub malformed: AtomicU64,
    /// Why connection attempts failed: the error's words (numbers and addresses left out) →
    /// how many times.
    pub failure_reasons: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl FleetCounters {
    /// The failure reasons so far, most frequent first.
    pub fn failure_reasons(&self) -> Vec<(String, u64)> {
        let reasons = self
            .failure_reasons
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut list: Vec<(String, u64)> = reasons.iter().map(|(k, v)| (k.clone(), *v)).collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        list
    }
}

/// An error's words without its numbers (ports, addresses, counts), so that failures of one
/// kind are counted together.
fn reason_of(error: &str) -> String {
    let words: String = error
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    words.chars().take(120).collect()
}

struct CountingSink {
    inner: Arc<dyn EventSink>,
    counters: Arc<FleetCounters>,
}

impl EventSink for CountingSink {
    fn event(&self, device: &DeviceCtx, at: Instant, event: DeviceEvent) {
        let c = &self.counters;
        match &event {
            DeviceEvent::Online => {
                c.online.fetch_add(1, Ordering::AcqRel);
            }
            DeviceEvent::Offline { error, was_online } => {
                if *was_online {
                    c.online.fetch_sub(1, Ordering::AcqRel);
                    c.disconnects.fetch_add(1, Ordering::AcqRel);
                } else {
                    c.connect_failures.fetch_add(1, Ordering::AcqRel);
                    let mut reasons = c
                        .failure_reasons
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    *reasons.entry(reason_of(error)).or_default() += 1;
                }
            }
            DeviceEvent::SubscribeRefused => {
                c.subscribe_refused.fetch_add(1, Ordering::AcqRel);
            }
            DeviceEvent::Malformed { .. } => {
                c.malformed.fetch_add(1, Ordering::AcqRel);
            }
            _ => {}
        }
        self.inner.event(device, at, event);
    }
}

/// How the fleet should connect.
#[derive(Clone, Debug)]
pub struct RampConfig {
    /// New connections started per second.
    pub per_second: f64,
    /// Give up waiting for everyone to be online after this long (the run goes on regardless).
    pub timeout: Duration,
    /// Print a progress line every second.
    pub progress: bool,
}

impl Default for RampConfig {
    fn default() -> Self {
        RampConfig {
            per_second: 500.0,
            timeout: Duration::from_secs(120),
            progress: true,
        }
    }
}

/// Result of the connection ramp.
#[derive(Clone, Debug)]
pub struct ConnectOutcome {
    pub total: usize,
    pub online: usize,
    /// From the first connection attempt until all were online (or the timeout).
    pub elapsed: Duration,
}

impl ConnectOutcome {
    pub fn complete(&self) -> bool {
        self.online == self.total
    }
}

/// Running simulated devices.
pub struct Fleet {
    pub devices: Vec<Device>,
    pub counters: Arc<FleetCounters>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Fleet {
    /// Starts every device, `ramp.per_second` at a time, and waits until all are online or
    /// `ramp.timeout` passes. Stops early (with what it has) if `shutdown` fires.
    pub async fn connect(
        creds: Vec<Credential>,
        cfg: DeviceConfig,
        sink: Arc<dyn EventSink>,
        ramp: &RampConfig,
        shutdown: CancellationToken,
    ) -> (Fleet, ConnectOutcome) {
        let counters = Arc::new(FleetCounters::default());
        let sink: Arc<dyn EventSink> = Arc::new(CountingSink {
            inner: sink,
            counters: counters.clone(),
        });
        let cfg = Arc::new(cfg);
        let tracker = TaskTracker::new();
        let total = creds.len();
        let mut devices = Vec::with_capacity(total);
        let mut creds = creds.into_iter().enumerate();

        let start = Instant::now();
        let deadline = start + ramp.timeout;
        let per_second = ramp.per_second.max(1.0);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut last_progress = start;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let target = ((now - start).as_secs_f64() * per_second).ceil() as usize;
            while devices.len() < target.min(total) {
                let Some((index, cred)) = creds.next() else {
                    break;
                };
                let topics = Topics::new(&cred.device, &cred.cluster);
                let ctx = Arc::new(DeviceCtx {
                    index,
                    cred,
                    topics,
                });
                devices.push(device::spawn(
                    ctx,
                    cfg.clone(),
                    sink.clone(),
                    shutdown.clone(),
                    &tracker,
                ));
            }
            let online = counters.online.load(Ordering::Acquire);
            if ramp.progress && now - last_progress >= Duration::from_secs(1) {
                last_progress = now;
                println!(
                    "connecting: {}/{} started, {}/{} online, {} failed attempts",
                    devices.len(),
                    total,
                    online,
                    total,
                    counters.connect_failures.load(Ordering::Acquire)
                );
            }
            if online >= total || now >= deadline {
                break;
            }
        }
        let elapsed = start.elapsed();
        let online = counters.online.load(Ordering::Acquire);
        if ramp.progress {
            println!(
                "connected: {online}/{total} online in {:.2} s",
                elapsed.as_secs_f64()
            );
        }
        (
            Fleet {
                devices,
                counters,
                shutdown,
                tracker,
            },
            ConnectOutcome {
                total,
                online,
                elapsed,
            },
        )
    }

    pub fn online(&self) -> usize {
        self.counters.online.load(Ordering::Acquire)
    }

    /// Stops every device (each sends DISCONNECT if connected) and waits up to `grace`.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some device tasks did not stop within {grace:?}");
        }
    }
}
