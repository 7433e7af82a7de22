//! Heartbeats kept in memory and written in batches.
//!
//! Thousands of units beat every interval, and almost every beat says only "still here, nothing
//! changed". Written one by one, each beat was a store write on the busy path; at 15,000 units
//! every 10 s the writer fell behind, beats waited past their grace, and healthy units were
//! reported offline. The ledger keeps, per device, the readings of its last beat the store
//! applied (the *reference*). A beat with exactly those readings is evidence only: it waits in
//! memory and is written with every other such beat at the next flush, in one statement,
//! at least every [`flush_period`] (a fraction of the grace) and before every supervision pass,
//! so a unit that beats is never found silent. Anything else (a first beat, a new battery level,
//! a tamper switch, a device the station holds offline) takes the full path at once, off the
//! uplink worker, so the unit's own press never waits for it.
//!
//! The store stays the judge: the flush writes a beat only if its device is still online and
//! its readings still match what is stored (a drifting signal, or a state another path changed
//! meanwhile); a beat it refuses takes the full path then. The reference is a hint that saves the
//! write, never a second truth. A restart loses at most one flush of evidence, and
//! `supervise_restart` gives every unit a full interval and grace from the start anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::domain::{DeviceId, Heartbeat};
use crate::feed::Feed;
use crate::metrics::{inc, Metrics};
use crate::store::supervision::FastHeartbeat;
use crate::store::supervision::SupervisionPolicy;
use crate::store::{Store, StoreResult};

/// How often kept beats are written: a quarter of the grace, at most a second, at least 25 ms.
/// A unit's beat is then stored well before the grace after its due time runs out.
pub fn flush_period(policy: &SupervisionPolicy) -> Duration {
    let quarter = u64::try_from(policy.grace_ms / 4).unwrap_or(0);
    Duration::from_millis(quarter.clamp(25, 1000))
}

/// The readings a beat reports, compared whole with the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Readings {
    battery: Option<u8>,
    tamper: bool,
    rssi: Option<i16>,
    firmware: Option<String>,
}

impl From<&Heartbeat> for Readings {
    fn from(hb: &Heartbeat) -> Self {
        Self {
            battery: hb.battery,
            tamper: hb.tamper,
            rssi: hb.rssi,
            firmware: hb.firmware.clone(),
        }
    }
}

#[derive(Default)]
struct Book {
    /// Per device, the readings of its last beat the store applied.
    reference: HashMap<DeviceId, Readings>,
    /// Beats waiting for the next flush, the latest per device.
    kept: HashMap<DeviceId, FastHeartbeat>,
}

/// The ledger. Cheap to share (`Arc`); never holds its lock across an await.
pub struct HeartbeatLedger {
    store: Arc<dyn Store>,
    feed: Feed,
    policy: SupervisionPolicy,
    metrics: Arc<Metrics>,
    clock: Clock,
    book: Mutex<Book>,
    /// One flush at a time: the periodic one and the supervisor's must not interleave.
    flushing: tokio::sync::Mutex<()>,
}

impl HeartbeatLedger {
    pub fn new(
        store: Arc<dyn Store>,
        feed: Feed,
        policy: SupervisionPolicy,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            feed,
            policy,
            metrics,
            clock,
            book: Mutex::default(),
            flushing: tokio::sync::Mutex::new(()),
        })
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a device's beat. Returns at once: a beat like the last one is kept for the next
    /// flush (`None`); any other goes to the store on a task of its own, returned.
    pub fn beat(self: &Arc<Self>, device: DeviceId, hb: Heartbeat) -> Option<JoinHandle<()>> {
        let now_ms = self.clock.now_ms();
        let readings = Readings::from(&hb);
        {
            let mut book = self.book();
            if book.reference.get(&device) == Some(&readings) {
                let fast = fast(&device, &hb, now_ms);
                book.kept.insert(device, fast);
                inc(&self.metrics.heartbeats_kept);
                return None;
            }
        }
        let ledger = self.clone();
        Some(tokio::spawn(async move {
            ledger.apply(device, hb, now_ms).await
        }))
    }

    /// The full path for one beat; its readings become the reference once stored.
    async fn apply(&self, device: DeviceId, hb: Heartbeat, now_ms: i64) {
        let applied = apply_heartbeat(
            self.store.as_ref(),
            &self.feed,
            &self.policy,
            &device,
            &hb,
            now_ms,
        )
        .await;
        match applied {
            Ok(()) => {
                self.book().reference.insert(device, Readings::from(&hb));
            }
            Err(e) => {
                inc(&self.metrics.store_errors);
                self.forget(&device);
                tracing::error!(%device, error = %e, "heartbeat not stored");
            }
        }
    }

    /// Something other than a heartbeat changed what the store holds of `device` (a session
    /// came or went, a deadline moved it offline): its next beat takes the full path.
    pub fn forget(&self, device: &DeviceId) {
        self.book().reference.remove(device);
    }

    /// Writes every kept beat in one go; a beat the store refuses (its device's state or
    /// readings moved meanwhile) takes the full path now.
    pub async fn flush(&self) -> StoreResult<()> {
        let _one = self.flushing.lock().await;
        let kept: Vec<FastHeartbeat> = {
            let mut book = self.book();
            if book.kept.is_empty() {
                return Ok(());
            }
            std::mem::take(&mut book.kept).into_values().collect()
        };
        let (devices, beats): (Vec<DeviceId>, Vec<FastHeartbeat>) =
            kept.into_iter().map(|b| (b.device.clone(), b)).unzip();
        let applied = match self.store.heartbeats_unchanged(beats.clone()).await {
            Ok(applied) => applied,
            Err(e) => {
                // Kept again unless a newer beat came meanwhile: the next flush tries them.
                let mut book = self.book();
                for beat in beats {
                    book.kept.entry(beat.device.clone()).or_insert(beat);
                }
                return Err(e);
            }
        };
        let refused: Vec<(DeviceId, FastHeartbeat)> = devices
            .into_iter()
            .zip(beats)
            .filter(|(device, _)| !applied.contains(device.as_str()))
            .collect();
        for (device, beat) in refused {
            inc(&self.metrics.heartbeats_reapplied);
            self.forget(&device);
            let hb = Heartbeat {
                seq: 0,
                battery: beat.battery.and_then(|b| u8::try_from(b).ok()),
                tamper: beat.tamper,
                rssi: beat.rssi.and_then(|r| i16::try_from(r).ok()),
                firmware: beat.firmware.clone(),
            };
            self.apply(device, hb, beat.now_ms).await;
        }
        Ok(())
    }

    /// Flushes every [`flush_period`] until the task is stopped.
    pub async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        let mut every = tokio::time::interval(flush_period(&self.policy));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = self.flush().await {
                tracing::error!(error = %e, "kept heartbeats not written; retrying");
            }
        }
    }

    /// Beats waiting for the next flush.
    pub fn kept(&self) -> usize {
        self.book().kept.len()
    }

    /// Kept beats that a flush found changed and applied in full, since the start.
    pub fn reapplied(&self) -> u64 {
        self.metrics
            .heartbeats_reapplied
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Applies a heartbeat in full (the store's own busy path first) and reports what changed.
pub async fn apply_heartbeat(
    store: &dyn Store,
    feed: &Feed,
    policy: &SupervisionPolicy,
    device: &DeviceId,
    heartbeat: &Heartbeat,
    now_ms: i64,
) -> StoreResult<()> {
    let reports = store
        .supervise_heartbeat(device, heartbeat, policy, now_ms)
        .await?;
    feed.reports(&reports);
    Ok(())
}

fn fast(device: &DeviceId, hb: &Heartbeat, now_ms: i64) -> FastHeartbeat {
    FastHeartbeat {
        device: device.clone(),
        now_ms,
        battery: hb.battery.map(i64::from),
        rssi: hb.rssi.map(i64::from),
        tamper: hb.tamper,
        firmware: hb.firmware.clone(),
    }
}
