//! Escalation rings: when nobody is coming, the alert reaches further.
//!
//! Ring 0 goes out with the press (the nine neighbours and the station). The store keeps each
//! alert's next ring deadline; this task fires rings that are due: ring 1 after
//! `ring1_after` (units of nearby clusters, on-duty volunteers within the radius, nearest
//! first), ring 2 after `ring2_after` (every on-duty volunteer of the zone; critical on the
//! station feed). Any "coming" clears the deadline. Deadlines live in the store, so after a
//! restart every overdue ring fires, and the store's compare-and-set on the ring number makes
//! each ring fire once even when several gateways share the database.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::downlink::Downlink;
use crate::feed::{Feed, FeedEvent};
use crate::push::{PushReason, Pusher};
use crate::store::{RecipientKind, RingFired, RingPlan, Store};

/// Even with no deadline in sight, look again this often: another gateway sharing the
/// database may have stored one.
const POLL: Duration = Duration::from_secs(1);

/// How the press path tells the escalator of a new deadline. Only a deadline earlier than the
/// one the escalator already waits for wakes it: at a steady rate of presses, each new alert's
/// ring 1 falls after the earliest one pending, and the escalator reads the store once a
/// second instead of twice a press.
#[derive(Debug)]
pub struct RingWake {
    /// The earliest deadline the escalator knows of (ms of the clock), `i64::MAX` for none.
    earliest_ms: AtomicI64,
    notify: Notify,
}

impl Default for RingWake {
    fn default() -> Self {
        Self {
            earliest_ms: AtomicI64::new(i64::MAX),
            notify: Notify::new(),
        }
    }
}

impl RingWake {
    /// A deadline was stored: wakes the escalator if it falls before what it waits for.
    pub fn announce(&self, at_ms: i64) {
        if self.earliest_ms.fetch_min(at_ms, Ordering::AcqRel) > at_ms {
            self.notify.notify_one();
        }
    }

    /// The escalator is about to read the store's earliest deadline: anything announced from
    /// now on wakes it, so nothing stored while it reads is missed.
    fn forget(&self) {
        self.earliest_ms.store(i64::MAX, Ordering::Release);
    }

    /// What the store said is earliest; returns the earliest known, announced ones included.
    fn learn(&self, at_ms: Option<i64>) -> Option<i64> {
        let at_ms = at_ms.unwrap_or(i64::MAX);
        let earliest = self
            .earliest_ms
            .fetch_min(at_ms, Ordering::AcqRel)
            .min(at_ms);
        (earliest != i64::MAX).then_some(earliest)
    }
}

/// The escalator's handles: where deadlines are stored, whom a ring reaches and how they are
/// told. Cheap to clone.
#[derive(Clone)]
pub struct Escalation {
    pub store: Arc<dyn Store>,
    /// When rings fire and how far ring 1 reaches.
    pub plan: RingPlan,
    pub clock: Clock,
    /// The units of the clusters a ring reaches.
    pub downlink: Downlink,
    /// Volunteers a ring reaches.
    pub pusher: Pusher,
    /// The station.
    pub feed: Feed,
}

/// Fires every ring due now; returns what fired.
pub async fn tick(esc: &Escalation) -> anyhow::Result<Vec<RingFired>> {
    let now = esc.clock.now_ms();
    let mut fired = Vec::new();
    for alert in esc.store.due_rings(now).await? {
        // Both rings may be overdue (a gateway that was down past both deadlines): fire each
        // in order, once.
        while let Some(ring) = esc.store.fire_ring(alert, &esc.plan, now).await? {
            tracing::warn!(alert = %alert, ring = ring.ring, added = ring.added.len(),
                clusters = ring.clusters.len(), "nobody coming: escalated");
            for cluster in &ring.clusters {
                esc.downlink
                    .cluster_alert(cluster.as_str(), &ring.alert)
                    .await;
            }
            // Volunteers this ring reached, nearest first: each gets one push.
            for r in &ring.added {
                if r.kind == RecipientKind::Volunteer {
                    esc.pusher
                        .notify(&ring.alert, &r.who, r.distance_m, PushReason::Alert);
                }
            }
            esc.feed.publish(&FeedEvent::Alert {
                event: if ring.ring == 1 { "ring1" } else { "ring2" },
                at_ms: now,
                alert: &ring.alert,
            });
            fired.push(ring);
        }
    }
    Ok(fired)
}

/// Fires rings as they fall due until the task is stopped.
pub async fn run(esc: Escalation, wake: Arc<RingWake>) -> anyhow::Result<()> {
    loop {
        wake.forget();
        if let Err(e) = tick(&esc).await {
            tracing::error!(error = %e, "escalation check failed; retrying");
        }
        let stored = match esc.store.next_ring_deadline().await {
            Ok(at) => at,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the next ring deadline; retrying");
                None
            }
        };
        let poll = tokio::time::Instant::now() + POLL;
        let next = match wake.learn(stored) {
            Some(at) => esc.clock.instant_at(at).min(poll),
            None => poll,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = wake.notify.notified() => {}
            _ = esc.clock.moved() => {}
        }
    }
}
