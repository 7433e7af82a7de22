//! What a benchmark run saw: the [`Recorder`] every scenario (steady, find-max, burst, storm)
//! shares, linking each press to its ack and to every neighbour that sounded, and [`drain`] /
//! [`drain_until`], which wait for the stragglers at the end of a run.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::creds::{Clusters, Credential};
use crate::device::{DeviceCtx, DeviceEvent, EventSink};
use crate::proto::{AlertId, AlertState};
use crate::report::{new_histogram, per_second, record, Duplicates, Latency, LoadResult};

/// What is known about one press.
struct PressRec {
    /// First send of the press (attempt 1).
    t0: Instant,
    /// Sent while the measured window was open.
    measured: bool,
    attempts: u32,
    ack_at: Option<Instant>,
    alert: Option<AlertId>,
    /// The alert's press count in the first ack: 1 for the press that raised it, more for a
    /// press that joined its household's open alert. Its fan-out is the cluster alert with
    /// that count.
    presses: u32,
}

#[derive(Default)]
struct AlertRec {
    /// First receipt per device index.
    receipts: HashMap<u32, Instant>,
    /// (device, state, responders) seen, to spot duplicate deliveries (a change of state or
    /// of the responder count is an update, not a duplicate; another press count is another
    /// record).
    states_seen: HashSet<(u32, AlertState, u32)>,
}

#[derive(Default)]
struct RecState {
    presses: HashMap<(u32, u64), PressRec>,
    /// By (alert, its press count): a press that joins an open alert is heard again by the
    /// neighbours with the count it made.
    alerts: HashMap<(AlertId, u32), AlertRec>,
    acks_seen: HashSet<(u32, u64, AlertState, u32)>,
    duplicates: Duplicates,
}

/// When each device came back (online and subscribed) after the storm's drop.
struct Reconnects {
    /// Only `Online` events after this count.
    since: Instant,
    back: HashMap<u32, Instant>,
}

/// First and last moments of the measured presses (for the burst's drain time).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timeline {
    pub first_sent: Option<Instant>,
    pub last_sent: Option<Instant>,
    /// The last first ack of a measured press.
    pub last_ack: Option<Instant>,
    /// The last first receipt of a measured press's alert by one of its neighbours.
    pub last_neighbour: Option<Instant>,
}

/// The benchmark's event sink: timestamps everything, computes the figures at the end.
pub struct Recorder {
    pub(crate) clusters: Clusters,
    state: Mutex<RecState>,
    /// Armed by the storm: who is back since when.
    reconnects: Mutex<Option<Reconnects>>,
    /// `reconnects.back.len()`, readable without the lock.
    back: AtomicU64,
    /// Per device: a press was scheduled and has not been acked yet.
    busy: Vec<AtomicBool>,
    /// Presses sent now count towards the figures.
    measuring: AtomicBool,
    /// Measured presses sent and not yet acked (lets the grace period end early).
    outstanding: AtomicU64,
    /// Measured presses acked (for scenarios whose presses may be sent late, after a reconnect).
    acked: AtomicU64,
}

impl Recorder {
    pub fn new(creds: &[Credential]) -> Self {
        Recorder {
            clusters: Clusters::new(creds),
            state: Mutex::new(RecState::default()),
            reconnects: Mutex::new(None),
            back: AtomicU64::new(0),
            busy: (0..creds.len()).map(|_| AtomicBool::new(false)).collect(),
            measuring: AtomicBool::new(false),
            outstanding: AtomicU64::new(0),
            acked: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RecState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets everything measured so far (between find-max steps). Busy flags stay: a press
    /// still outstanding from the last step keeps its device out of the next one until acked.
    pub fn reset(&self) {
        *self.lock() = RecState::default();
        self.outstanding.store(0, Ordering::Release);
        self.acked.store(0, Ordering::Release);
    }

    pub fn set_measuring(&self, on: bool) {
        self.measuring.store(on, Ordering::Release);
    }

    /// Marks `device` busy if it was idle; false if it already has a press outstanding.
    pub fn try_claim(&self, device: usize) -> bool {
        self.busy.get(device).is_some_and(|b| {
            b.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    }

    pub fn release(&self, device: usize) {
        if let Some(b) = self.busy.get(device) {
            b.store(false, Ordering::Release);
        }
    }

    pub fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Measured presses acked so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// From now on, notes when each device comes back online (first time after `since`).
    pub fn track_reconnects(&self, since: Instant) {
        *self.reconnects.lock().unwrap_or_else(|e| e.into_inner()) = Some(Reconnects {
            since,
            back: HashMap::new(),
        });
        self.back.store(0, Ordering::Release);
    }

    /// Devices back online since [`Recorder::track_reconnects`].
    pub fn devices_back(&self) -> u64 {
        self.back.load(Ordering::Acquire)
    }

    /// Each device's time from the drop until it was back, by device index.
    pub fn reconnect_times(&self) -> HashMap<u32, Duration> {
        let guard = self.reconnects.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .map(|r| {
                r.back
                    .iter()
                    .map(|(&d, &at)| (d, at.saturating_duration_since(r.since)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// When each measured press was first acked, by (device index, seq).
    pub fn ack_times(&self) -> HashMap<(u32, u64), Instant> {
        self.lock()
            .presses
            .iter()
            .filter(|(_, p)| p.measured)
            .filter_map(|(&k, p)| p.ack_at.map(|at| (k, at)))
            .collect()
    }

    /// Distinct alert ids the measured presses were first acknowledged with.
    pub fn distinct_alerts_acked(&self) -> u64 {
        let st = self.lock();
        let ids: HashSet<&AlertId> = st
            .presses
            .values()
            .filter(|p| p.measured)
            .filter_map(|p| p.alert.as_ref())
            .collect();
        ids.len() as u64
    }

    /// First and last moments of the measured presses, their acks and their fan-out.
    pub fn timeline(&self) -> Timeline {
        let st = self.lock();
        let mut t = Timeline::default();
        let later = |a: Option<Instant>, b: Instant| Some(a.map_or(b, |a| a.max(b)));
        for (&(dev, _), p) in st.presses.iter().filter(|(_, p)| p.measured) {
            t.first_sent = Some(t.first_sent.map_or(p.t0, |f| f.min(p.t0)));
            t.last_sent = later(t.last_sent, p.t0);
            if let Some(at) = p.ack_at {
                t.last_ack = later(t.last_ack, at);
            }
            let Some(alert) = p
                .alert
                .as_ref()
                .and_then(|a| st.alerts.get(&(a.clone(), p.presses)))
            else {
                continue;
            };
            for n in self.clusters.neighbours(dev as usize) {
                if let Some(&at) = alert.receipts.get(n) {
                    t.last_neighbour = later(t.last_neighbour, at);
                }
            }
        }
        t
    }

    /// Computes the figures for the presses sent while measuring.
    pub fn result(&self, measured: Duration) -> LoadResult {
        let st = self.lock();
        let mut nb = new_histogram();
        let mut each = new_histogram();
        let mut ack = new_histogram();
        let mut r = LoadResult {
            duration_s: measured.as_secs_f64(),
            duplicates: st.duplicates.clone(),
            ..LoadResult::default()
        };
        for (&(dev, _seq), p) in st.presses.iter().filter(|(_, p)| p.measured) {
            r.presses_sent += 1;
            if p.attempts > 1 {
                r.presses_retried += 1;
            }
            let (Some(ack_at), Some(alert)) = (p.ack_at, p.alert.as_ref()) else {
                r.presses_lost += 1;
                continue;
            };
            r.presses_acked += 1;
            record(&mut ack, ack_at.saturating_duration_since(p.t0));
            let neighbours = self.clusters.neighbours(dev as usize);
            if neighbours.is_empty() {
                r.presses_without_neighbours += 1;
                continue;
            }
            let receipts = st
                .alerts
                .get(&(alert.clone(), p.presses))
                .map(|a| &a.receipts);
            let mut last = Some(p.t0);
            for n in neighbours {
                match receipts.and_then(|rc| rc.get(n)) {
                    Some(&at) => {
                        record(&mut each, at.saturating_duration_since(p.t0));
                        last = last.map(|l| l.max(at));
                    }
                    None => last = None,
                }
            }
            match last {
                Some(at) => record(&mut nb, at.saturating_duration_since(p.t0)),
                None => r.neighbours_incomplete += 1,
            }
        }
        r.sustained_presses_per_s = per_second(r.presses_acked, measured);
        r.latency_neighbours_us = Latency::from_histogram(&nb);
        r.latency_each_neighbour_us = Latency::from_histogram(&each);
        r.latency_ack_us = Latency::from_histogram(&ack);
        r
    }
}

impl EventSink for Recorder {
    fn event(&self, device: &DeviceCtx, at: Instant, event: DeviceEvent) {
        let idx = device.index as u32;
        match event {
            DeviceEvent::Online => {
                let mut guard = self.reconnects.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(r) = guard.as_mut() {
                    if at >= r.since && !r.back.contains_key(&idx) {
                        r.back.insert(idx, at);
                        self.back.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
            DeviceEvent::PressSent { seq, attempt, .. } => {
                let mut st = self.lock();
                if attempt <= 1 {
                    let measured = self.measuring.load(Ordering::Acquire);
                    if measured {
                        self.outstanding.fetch_add(1, Ordering::AcqRel);
                    }
                    st.presses.insert(
                        (idx, seq),
                        PressRec {
                            t0: at,
                            measured,
                            attempts: 1,
                            ack_at: None,
                            alert: None,
                            presses: 1,
                        },
                    );
                } else if let Some(p) = st.presses.get_mut(&(idx, seq)) {
                    p.attempts = attempt;
                }
            }
            DeviceEvent::Acked { ack, first, .. } => {
                if first {
                    self.release(device.index);
                }
                let mut st = self.lock();
                if !st
                    .acks_seen
                    .insert((idx, ack.seq, ack.state, ack.responders))
                {
                    st.duplicates.acks_repeated += 1;
                }
                let mut newly_acked_measured = false;
                let mut conflicting = false;
                if let Some(p) = st.presses.get_mut(&(idx, ack.seq)) {
                    match &p.alert {
                        None => {
                            p.ack_at = Some(at);
                            p.alert = Some(ack.alert.clone());
                            p.presses = ack.presses;
                            newly_acked_measured = p.measured;
                        }
                        Some(a) if *a != ack.alert => conflicting = true,
                        Some(_) => {}
                    }
                }
                if conflicting {
                    st.duplicates.alerts += 1;
                }
                if newly_acked_measured {
                    self.outstanding.fetch_sub(1, Ordering::AcqRel);
                    self.acked.fetch_add(1, Ordering::AcqRel);
                }
            }
            DeviceEvent::Alert { alert, .. } => {
                let mut st = self.lock();
                let rec = st.alerts.entry((alert.alert, alert.presses)).or_default();
                rec.receipts.entry(idx).or_insert(at);
                let dup = !rec.states_seen.insert((idx, alert.state, alert.responders));
                if dup {
                    st.duplicates.neighbour_deliveries += 1;
                }
            }
            DeviceEvent::Malformed { error } => {
                tracing::warn!(device = %device.cred.device, "{error}");
            }
            _ => {}
        }
    }
}

/// Waits up to `grace` for every measured press to be acked, then (within `grace`) half a second
/// more for the last fan-out to land. The counter it watches moves in device tasks, so it is
/// polled every 20 ms.
pub async fn drain(recorder: &Recorder, grace: Duration, shutdown: &CancellationToken) {
    drain_until(grace, shutdown, || recorder.outstanding() == 0).await
}

/// [`drain`] with its own test of "everything is in".
pub async fn drain_until(grace: Duration, shutdown: &CancellationToken, done: impl Fn() -> bool) {
    let grace_end = Instant::now() + grace;
    let mut check = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = check.tick() => {}
        }
        if done() || Instant::now() >= grace_end {
            break;
        }
    }
    let settle = grace_end
        .saturating_duration_since(Instant::now())
        .min(Duration::from_millis(500));
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(settle) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Ack, ClusterAlert, PressKind, Topics};

    fn creds(n: usize, per_cluster: usize) -> Vec<Credential> {
        let text = serde_json::to_string(
            &(0..n)
                .map(|i| {
                    serde_json::json!({
                        "device": format!("d{i}"),
                        "password": "p",
                        "cluster": format!("c{}", i / per_cluster),
                        "household": format!("h{i}"),
                    })
                })
                .collect::<Vec<_>>(),
        )
        .expect("serialises");
        crate::creds::parse(&text, "test").expect("parses")
    }

    fn ctxs(creds: &[Credential]) -> Vec<DeviceCtx> {
        creds
            .iter()
            .enumerate()
            .map(|(index, c)| DeviceCtx {
                index,
                cred: c.clone(),
                topics: Topics::new(&c.device, &c.cluster),
            })
            .collect()
    }

    fn ack(seq: u64, alert: &str, state: AlertState) -> DeviceEvent {
        DeviceEvent::Acked {
            ack: Ack {
                seq,
                boot: None,
                alert: AlertId(alert.into()),
                state,
                responders: 0,
                presses: 1,
                survey: false,
            },
            first: state == AlertState::Raised,
            pressed_at: None,
        }
    }

    fn alert(id: &str, state: AlertState) -> DeviceEvent {
        DeviceEvent::Alert {
            alert: ClusterAlert {
                alert: AlertId(id.into()),
                from_label: String::new(),
                kind: PressKind::Help,
                state,
                responders: 0,
                presses: 1,
                enough: false,
                from_device: None,
            },
            own: false,
            first: true,
        }
    }

    fn sent(seq: u64, attempt: u32) -> DeviceEvent {
        DeviceEvent::PressSent {
            seq,
            kind: PressKind::Help,
            attempt,
        }
    }

    #[test]
    fn links_press_ack_and_neighbour_receipts() {
        let creds = creds(6, 3); // clusters {0,1,2} and {3,4,5}
        let c = ctxs(&creds);
        let rec = Recorder::new(&creds);
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);

        // Warm-up press: not measured.
        rec.event(&c[3], ms(0), sent(1, 1));
        rec.set_measuring(true);
        // Press 1 from device 0: neighbours 1 and 2 hear it at 5 and 9 ms, ack at 12 ms.
        rec.event(&c[0], ms(0), sent(100, 1));
        rec.event(&c[1], ms(5), alert("A1", AlertState::Raised));
        rec.event(&c[0], ms(6), alert("A1", AlertState::Raised)); // presser's own copy
        rec.event(&c[2], ms(9), alert("A1", AlertState::Raised));
        rec.event(&c[2], ms(10), alert("A1", AlertState::Raised)); // duplicate delivery
        let mut update = alert("A1", AlertState::Raised);
        if let DeviceEvent::Alert { alert, .. } = &mut update {
            alert.responders = 1; // an update, not a duplicate
        }
        rec.event(&c[2], ms(11), update);
        rec.event(&c[0], ms(12), ack(100, "A1", AlertState::Raised));
        rec.event(&c[0], ms(13), ack(100, "A1", AlertState::Raised)); // repeated ack
                                                                      // Press 2 from device 4: acked, retried, but neighbour 5 never hears it.
        rec.event(&c[4], ms(20), sent(7, 1));
        rec.event(&c[4], ms(2020), sent(7, 2));
        rec.event(&c[3], ms(2021), alert("A2", AlertState::Raised));
        rec.event(&c[4], ms(2030), ack(7, "A2", AlertState::Raised));
        rec.event(&c[4], ms(2031), ack(7, "A3", AlertState::Notified)); // second alert id!
                                                                        // Press 3 from device 1: never acked.
        rec.event(&c[1], ms(30), sent(55, 1));
        assert_eq!(rec.outstanding(), 1);

        let r = rec.result(Duration::from_secs(2));
        assert_eq!(r.presses_sent, 3);
        assert_eq!(r.presses_acked, 2);
        assert_eq!(r.presses_lost, 1);
        assert_eq!(r.presses_retried, 1);
        assert_eq!(r.neighbours_incomplete, 1);
        assert_eq!(r.duplicates.neighbour_deliveries, 1);
        assert_eq!(r.duplicates.acks_repeated, 1);
        assert_eq!(r.duplicates.alerts, 1);
        assert!((r.sustained_presses_per_s - 1.0).abs() < 1e-9);
        let nb = r.latency_neighbours_us;
        assert_eq!(nb.count, 1);
        assert!(nb.max.expect("one sample").abs_diff(9_000) <= 9, "{nb:?}");
        assert_eq!(r.latency_each_neighbour_us.count, 3); // 5 ms, 9 ms, and 3's 2001 ms
        let a = r.latency_ack_us;
        assert_eq!(a.count, 2);
        assert!(a.p50.expect("sample").abs_diff(12_000) <= 12, "{a:?}");
        assert!(a.max.expect("sample").abs_diff(2_010_000) <= 2_010, "{a:?}");
    }

    #[test]
    fn a_press_joining_an_open_alert_is_linked_to_its_own_fan_out() {
        let creds = creds(3, 3);
        let c = ctxs(&creds);
        let rec = Recorder::new(&creds);
        rec.set_measuring(true);
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        rec.event(&c[0], ms(0), sent(1, 1));
        rec.event(&c[1], ms(4), alert("A1", AlertState::Raised));
        rec.event(&c[2], ms(5), alert("A1", AlertState::Raised));
        rec.event(&c[0], ms(6), ack(1, "A1", AlertState::Raised));
        // The household presses again: the same alert, heard again with two presses.
        rec.event(&c[0], ms(1000), sent(2, 1));
        let mut again = alert("A1", AlertState::Notified);
        if let DeviceEvent::Alert { alert, .. } = &mut again {
            alert.presses = 2;
        }
        rec.event(&c[1], ms(1003), again.clone());
        rec.event(&c[2], ms(1007), again);
        let mut merged = ack(2, "A1", AlertState::Notified);
        if let DeviceEvent::Acked { ack, .. } = &mut merged {
            ack.presses = 2;
        }
        rec.event(&c[0], ms(1008), merged);
        let r = rec.result(Duration::from_secs(1));
        assert_eq!((r.presses_acked, r.neighbours_incomplete), (2, 0));
        assert_eq!(r.duplicates.neighbour_deliveries, 0);
        let nb = r.latency_neighbours_us;
        // 5 ms for the first press, 7 ms (not 0) for the second.
        assert_eq!(nb.count, 2);
        assert!(nb.max.expect("samples").abs_diff(7_000) <= 7, "{nb:?}");
    }

    #[test]
    fn claims_are_exclusive_until_acked() {
        let creds = creds(3, 3);
        let c = ctxs(&creds);
        let rec = Recorder::new(&creds);
        assert!(rec.try_claim(1));
        assert!(!rec.try_claim(1));
        rec.event(&c[1], Instant::now(), ack(1, "A", AlertState::Raised));
        assert!(rec.try_claim(1));
        assert!(!rec.try_claim(99));
    }
}
