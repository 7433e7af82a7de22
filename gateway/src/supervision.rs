//! Device supervision: knowing that a panic button is dead, within the configured time, and
//! telling the right people once.
//!
//! Evidence is the edge's presence reports (connected; disconnected with a reason; login
//! refused) and the devices' heartbeats, never rumqttd's last will (it names the wrong session
//! when a client id reconnects). A device is `online` while its evidence is fresh, `late` once
//! its heartbeat is overdue, and `offline` after the interval plus the grace of silence, even if
//! its TCP session still looks alive. The store applies each piece of evidence atomically (see
//! [`crate::store::supervision`]); this module maps edge reports onto it, runs the deadline task
//! (like [`crate::escalation`], from stored times on [`Clock`], so tests move a manual clock),
//! and publishes the debounced reports on the station feed. The station's API over the same
//! store is [`crate::http::supervision`].

use std::sync::Arc;
use std::time::Duration;

use tenwatch_broker::{DisconnectReason, PresenceEvent};

use crate::clock::Clock;
use crate::domain::{DeviceId, Heartbeat};
use crate::feed::{Feed, FeedEvent};
use crate::store::supervision::{PresenceEvidence, Report};
use crate::store::{Store, StoreResult};

pub use crate::store::supervision::SupervisionPolicy;

/// Even with no deadline in sight, look again this often: another gateway sharing the
/// database may have stored evidence, and a deadline stored after the last look may be near.
const POLL: Duration = Duration::from_secs(1);

/// Why a supervision setting cannot be used; says what to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("the heartbeat interval must be at least 100 ms (--heartbeat-interval)")]
    Interval,
    #[error("the heartbeat grace must be at least 100 ms (--heartbeat-grace)")]
    Grace,
    #[error("the low-battery threshold is a percentage, 0 to 100 (--battery-low)")]
    Battery,
    #[error("the coverage minimum is a percentage, 0 to 100 (--coverage-min)")]
    Coverage,
}

/// Checks a policy at start-up.
pub fn validate(policy: &SupervisionPolicy) -> Result<(), PolicyError> {
    if policy.heartbeat_interval_ms < 100 {
        return Err(PolicyError::Interval);
    }
    if policy.grace_ms < 100 {
        return Err(PolicyError::Grace);
    }
    if policy.battery_low > 100 {
        return Err(PolicyError::Battery);
    }
    if policy.coverage_min_percent > 100 {
        return Err(PolicyError::Coverage);
    }
    Ok(())
}

/// The offline reason for a disconnect, or `None` when the disconnect says nothing about the
/// device: a replaced session means the device is back already, and a gateway shutdown is
/// ours, not the device's (the restart gives every device a fresh grace instead).
pub fn offline_reason(reason: &DisconnectReason) -> Option<&'static str> {
    match reason {
        DisconnectReason::Clean => Some("clean_disconnect"),
        DisconnectReason::KeepAliveTimeout => Some("keepalive_lost"),
        DisconnectReason::ConnectionLost => Some("connection_lost"),
        DisconnectReason::Violation(_) => Some("closed_by_edge"),
        DisconnectReason::RouterClosed => Some("broker_closed"),
        DisconnectReason::Replaced | DisconnectReason::Shutdown => None,
    }
}

/// Puts reports on the station feed, each to its zone's operators.
pub fn publish(feed: &Feed, reports: &[Report]) {
    for report in reports {
        match report {
            Report::Device(report) => {
                tracing::info!(device = %report.device, event = ?report.event,
                    reason = report.reason.as_deref().unwrap_or(""), "device report");
                feed.publish(&FeedEvent::DeviceHealth { report });
            }
            Report::Coverage(coverage) => {
                tracing::warn!(cluster = %coverage.cluster, reachable = coverage.reachable,
                    households = coverage.households, below = coverage.below, "cluster coverage");
                feed.publish(&FeedEvent::Coverage { coverage });
            }
        }
    }
}

/// Applies a heartbeat (from the uplink workers) and reports what changed.
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
    publish(feed, &reports);
    Ok(())
}

/// The supervisor: presence evidence and the deadline task. Cheap to clone.
#[derive(Clone)]
pub struct Supervision {
    pub store: Arc<dyn Store>,
    pub feed: Feed,
    pub clock: Clock,
    pub policy: SupervisionPolicy,
}

impl Supervision {
    /// Applies an edge presence report; call it after the store recorded the session.
    pub async fn presence(&self, event: &PresenceEvent) {
        let (device, evidence) = match event {
            PresenceEvent::Connected {
                device, session, ..
            } => (device, PresenceEvidence::Connected { session: *session }),
            PresenceEvent::Disconnected {
                device,
                session,
                reason,
            } => match offline_reason(reason) {
                Some(reason) => (
                    device,
                    PresenceEvidence::Disconnected {
                        session: *session,
                        reason,
                    },
                ),
                None => return,
            },
            PresenceEvent::Refused { device, .. } => (device, PresenceEvidence::Refused),
            PresenceEvent::Subscribed { .. } => return,
        };
        // A refused login may name anything; only registered ids are supervised.
        let Ok(id) = DeviceId::parse(device) else {
            return;
        };
        match self
            .store
            .supervise_presence(&id, evidence, &self.policy, self.clock.now_ms())
            .await
        {
            Ok(reports) => publish(&self.feed, &reports),
            Err(e) => tracing::error!(%device, error = %e, "presence not supervised"),
        }
    }

    /// Applies every deadline due now; returns the reports (also published).
    pub async fn tick(&self) -> StoreResult<Vec<Report>> {
        let reports = self
            .store
            .supervise_due(&self.policy, self.clock.now_ms())
            .await?;
        publish(&self.feed, &reports);
        Ok(reports)
    }

    /// Gives devices that were online a fresh deadline, then applies deadlines as they fall
    /// due until the task is stopped.
    pub async fn run(self) -> anyhow::Result<()> {
        let restarted = self.store.supervise_restart(self.clock.now_ms()).await?;
        if restarted > 0 {
            tracing::info!(
                devices = restarted,
                "devices online before the restart have one interval and grace to come back"
            );
        }
        loop {
            if let Err(e) = self.tick().await {
                tracing::error!(error = %e, "supervision check failed; retrying");
            }
            let next = match self.store.supervise_next_deadline(&self.policy).await {
                Ok(Some(at)) => self
                    .clock
                    .instant_at(at)
                    .min(tokio::time::Instant::now() + POLL),
                Ok(None) | Err(_) => tokio::time::Instant::now() + POLL,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.clock.moved() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnects_that_say_nothing_about_the_device_are_ignored() {
        assert_eq!(offline_reason(&DisconnectReason::Replaced), None);
        assert_eq!(offline_reason(&DisconnectReason::Shutdown), None);
        assert_eq!(
            offline_reason(&DisconnectReason::KeepAliveTimeout),
            Some("keepalive_lost")
        );
    }

    #[test]
    fn policies_are_checked() {
        assert_eq!(validate(&SupervisionPolicy::default()), Ok(()));
        let bad = SupervisionPolicy {
            grace_ms: 0,
            ..Default::default()
        };
        assert_eq!(validate(&bad), Err(PolicyError::Grace));
    }

    #[test]
    fn seven_of_ten_is_enough() {
        let p = SupervisionPolicy::default();
        assert!(!p.below(7, 10));
        assert!(p.below(6, 10));
        assert!(!p.below(0, 0));
    }
}
