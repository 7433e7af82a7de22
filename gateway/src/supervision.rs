//! Device supervision: knowing that a panic button is dead, within the configured time, and
//! telling the right people once.
//!
//! Evidence is the edge's presence reports (connected; disconnected with a reason) and the
//! devices' heartbeats: only what an authenticated device did. A refused login is no evidence:
//! anyone who reaches the port can send a CONNECT naming any device id, so it is counted
//! ([`LoginRefusals`]) and shown to the station, never attributed to the device. Evidence is
//! never rumqttd's last will never rumqttd's last will (it names the wrong session
//! when a client id reconnects). A device is `online` while its evidence is fresh, `late` once
//! its heartbeat is overdue, and `offline` after the interval plus the grace of silence, even if
//! its TCP session still looks alive. The store applies each piece of evidence atomically (see
//! [`crate::store::supervision`]); this module maps edge reports onto it, runs the deadline task
//! (like [`crate::escalation`], from stored times on [`Clock`], so tests move a manual clock),
//! and publishes the debounced reports on the station feed. The station's API over the same
//! store is [`crate::http::supervision`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tenwatch_broker::{AuthRefusal, DisconnectReason, PresenceEvent};

use crate::clock::Clock;
use crate::domain::{DeviceId, ZoneCode};
use crate::feed::Feed;
use crate::heartbeats::HeartbeatLedger;
use crate::store::supervision::{PresenceReport, Report};
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

/// How the station reads why a session ended.
pub fn reason_text(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::Clean => "clean disconnect".into(),
        DisconnectReason::KeepAliveTimeout => "keep-alive lost".into(),
        DisconnectReason::ConnectionLost => "connection lost".into(),
        DisconnectReason::Replaced => "replaced by a new connection".into(),
        DisconnectReason::Violation(why) => format!("closed by the edge: {why}"),
        DisconnectReason::RouterClosed => "broker closed the link".into(),
        DisconnectReason::Shutdown => "gateway shutting down".into(),
    }
}

/// What the store keeps of a session opened or ended, seen at `now_ms`; `None` for any other
/// event, or a device id that does not parse.
pub fn presence_report(event: &PresenceEvent, now_ms: i64) -> Option<PresenceReport> {
    let (device, session, online, reason) = match event {
        PresenceEvent::Connected {
            device, session, ..
        } => (device, *session, true, None),
        PresenceEvent::Disconnected {
            device,
            session,
            reason,
        } => (device, *session, false, Some(reason)),
        PresenceEvent::Subscribed { .. } | PresenceEvent::Refused { .. } => return None,
    };
    Some(PresenceReport {
        device: DeviceId::parse(device).ok()?,
        session,
        online,
        disconnect_reason: reason.map(reason_text),
        seen_ms: now_ms,
        offline: reason.and_then(offline_reason),
    })
}

/// Applied by the heartbeat ledger's module; named here too, beside the rest of supervision.
pub use crate::heartbeats::apply_heartbeat;

/// Distinct device ids whose refused logins are kept one by one. Past this, the id refused
/// least recently is forgotten (its attempts stay in the total): someone trying thousands of
/// made-up ids costs a bounded amount of memory.
pub const REFUSED_IDS_KEPT: usize = 1024;

/// Refused device logins, counted in total and per device id tried, in memory (a flood of
/// wrong passwords must cost no database write). Shown on `/metrics` and to the station; never
/// a device's state.
#[derive(Debug, Default)]
pub struct LoginRefusals {
    total: AtomicU64,
    /// Never held across an await.
    by_id: Mutex<HashMap<String, RefusedId>>,
}

/// The refused logins that named one device id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedId {
    /// The device id tried (a well-formed one; it need not be registered).
    pub device: String,
    pub count: u64,
    pub first_at_ms: i64,
    pub last_at_ms: i64,
    /// Where the last one came from, when known.
    pub last_peer: Option<IpAddr>,
    /// Why the last one was refused: `bad_credentials` (unknown id or wrong password),
    /// `not_authorized` (disabled) or `unavailable` (the registry could not be asked).
    pub last_reason: &'static str,
}

impl LoginRefusals {
    /// Counts a refused login naming `device`.
    pub fn record(&self, device: &str, peer: Option<IpAddr>, refusal: AuthRefusal, now_ms: i64) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let last_reason = match refusal {
            AuthRefusal::BadCredentials => "bad_credentials",
            AuthRefusal::NotAuthorized => "not_authorized",
            AuthRefusal::Unavailable => "unavailable",
        };
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seen) = by_id.get_mut(device) {
            seen.count += 1;
            seen.last_at_ms = now_ms;
            seen.last_peer = peer;
            seen.last_reason = last_reason;
            return;
        }
        if by_id.len() >= REFUSED_IDS_KEPT {
            let stalest = by_id
                .values()
                .min_by_key(|r| (r.last_at_ms, r.count))
                .map(|r| r.device.clone());
            if let Some(stalest) = stalest {
                by_id.remove(&stalest);
            }
        }
        by_id.insert(
            device.to_owned(),
            RefusedId {
                device: device.to_owned(),
                count: 1,
                first_at_ms: now_ms,
                last_at_ms: now_ms,
                last_peer: peer,
                last_reason,
            },
        );
    }

    /// Refused logins since the gateway started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Distinct device ids kept now.
    pub fn ids(&self) -> usize {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The ids `shown` accepts, most refused first (then the latest), at most `limit`.
    pub fn list(&self, shown: impl Fn(&str) -> bool, limit: usize) -> Vec<RefusedId> {
        let mut list: Vec<RefusedId> = {
            let by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
            by_id
                .values()
                .filter(|r| shown(&r.device))
                .cloned()
                .collect()
        };
        list.sort_by(|a, b| {
            (b.count, b.last_at_ms, &a.device).cmp(&(a.count, a.last_at_ms, &b.device))
        });
        list.truncate(limit);
        list
    }
}

/// The supervisor: presence evidence and the deadline task. Cheap to clone.
#[derive(Clone)]
pub struct Supervision {
    pub store: Arc<dyn Store>,
    pub feed: Feed,
    pub clock: Clock,
    pub policy: SupervisionPolicy,
    /// Where refused logins are counted (they change no device's state).
    pub refusals: Arc<LoginRefusals>,
    /// The heartbeats kept in memory, when the gateway keeps them: written before every pass,
    /// and told of every device whose state moved by another path.
    pub heartbeats: Option<Arc<HeartbeatLedger>>,
}

impl Supervision {
    /// Applies one edge presence report: a session opened or ended is stored and supervised
    /// ([`Supervision::apply_presence`]); a refused login is only counted.
    pub async fn presence(&self, event: &PresenceEvent) {
        match event {
            PresenceEvent::Refused {
                device,
                peer,
                refusal,
            } => {
                let now = self.clock.now_ms();
                self.refusals.record(device, Some(peer.ip()), *refusal, now);
            }
            PresenceEvent::Subscribed { .. } => {}
            PresenceEvent::Connected { .. } | PresenceEvent::Disconnected { .. } => {
                if let Some(report) = presence_report(event, crate::domain::now_ms()) {
                    self.apply_presence(&[report]).await;
                }
            }
        }
    }

    /// Edge reports of sessions opened and ended, in the order they came: stored and applied
    /// in one write ([`SupervisionStore::apply_presence`]), the reports published. Gives each
    /// report's device zone (`None`: unknown device, or not stored). Should the write fail,
    /// each report is tried alone, so that one that cannot be stored loses no other.
    pub async fn apply_presence(&self, reports: &[PresenceReport]) -> Vec<Option<ZoneCode>> {
        if let Some(ledger) = &self.heartbeats {
            for report in reports.iter().filter(|r| r.evidence().is_some()) {
                ledger.forget(&report.device);
            }
        }
        let now = self.clock.now_ms();
        let all = self
            .store
            .apply_presence(reports.to_vec(), &self.policy, now)
            .await;
        let applied = match all {
            Ok(applied) => applied,
            Err(e) if reports.len() > 1 => {
                tracing::warn!(reports = reports.len(), error = %e,
                    "presence reports not stored together: trying each alone");
                let mut zones = Vec::with_capacity(reports.len());
                for report in reports {
                    let one = self
                        .store
                        .apply_presence(vec![report.clone()], &self.policy, now)
                        .await;
                    match one {
                        Ok(applied) => {
                            self.feed.reports(&applied.reports);
                            zones.extend(applied.zones);
                        }
                        Err(e) => {
                            tracing::error!(device = %report.device, error = %e, "presence not stored");
                            zones.push(None);
                        }
                    }
                }
                return zones;
            }
            Err(e) => {
                let device = reports.first().map(|r| r.device.as_str()).unwrap_or("");
                tracing::error!(%device, error = %e, "presence not stored");
                return vec![None; reports.len()];
            }
        };
        self.feed.reports(&applied.reports);
        applied.zones
    }

    /// Applies every deadline due now; returns the reports (also published).
    pub async fn tick(&self) -> StoreResult<Vec<Report>> {
        if let Some(ledger) = &self.heartbeats {
            // A unit whose beat waits in memory is not silent.
            ledger.flush().await?;
        }
        let reports = self
            .store
            .supervise_due(&self.policy, self.clock.now_ms())
            .await?;
        if let Some(ledger) = &self.heartbeats {
            for report in &reports {
                if let Report::Device(report) = report {
                    ledger.forget(&report.device);
                }
            }
        }
        self.feed.reports(&reports);
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
    fn refused_logins_are_counted_per_id_within_a_bound() {
        let refusals = LoginRefusals::default();
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..3 {
            refusals.record("d-1", Some(peer), AuthRefusal::BadCredentials, i);
        }
        refusals.record("d-2", None, AuthRefusal::NotAuthorized, 5);
        let list = refusals.list(|_| true, 10);
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].device.as_str(), list[0].count), ("d-1", 3));
        assert_eq!((list[0].first_at_ms, list[0].last_at_ms), (0, 2));
        assert_eq!(list[0].last_peer, Some(peer));
        assert_eq!(list[1].last_reason, "not_authorized");
        assert_eq!(refusals.list(|d| d == "d-2", 10).len(), 1);
        // Made-up ids by the thousand: the total counts them all, memory keeps the bound,
        // and the id refused least recently goes first.
        for i in 0..(REFUSED_IDS_KEPT as i64 * 2) {
            refusals.record(&format!("x{i}"), None, AuthRefusal::BadCredentials, 10 + i);
        }
        assert_eq!(refusals.total(), 4 + REFUSED_IDS_KEPT as u64 * 2);
        assert_eq!(refusals.ids(), REFUSED_IDS_KEPT);
    }

    #[test]
    fn seven_of_ten_is_enough() {
        let p = SupervisionPolicy::default();
        assert!(!p.below(7, 10));
        assert!(p.below(6, 10));
        assert!(!p.below(0, 0));
    }
}
