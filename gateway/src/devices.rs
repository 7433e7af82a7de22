//! The registry as the device edge sees it: device logins against hashed secrets, and
//! presence events written to the store and the station feed.
//!
//! Device secrets are 128-bit random tokens made by tenwatch itself, so a fast hash (SHA-256)
//! is enough to make a stolen database useless; a slow password KDF would only make a
//! reconnect storm of thousands of devices take minutes. Comparison is constant-time.

use std::sync::Arc;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tenwatch_broker::{AuthRefusal, BoxFuture, DeviceAuthority, DeviceGrant, PresenceEvent};
use tokio::sync::mpsc;

use crate::domain::{now_ms, ClusterId, DeviceId};
use crate::feed::{Feed, FeedEvent};
use crate::metrics::{inc, Metrics};
use crate::store::supervision::PresenceReport;
use crate::store::Store;

/// Presence events queued before the edge's reports are dropped (and counted).
const PRESENCE_QUEUE: usize = 65_536;

/// A new device secret: 16 random bytes as 32 hex characters.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn hash_secret(secret: &[u8]) -> String {
    hex::encode(Sha256::digest(secret))
}

fn secret_matches(secret: &[u8], stored_hash: &str) -> bool {
    let Ok(stored) = hex::decode(stored_hash) else {
        return false;
    };
    let digest: [u8; 32] = Sha256::digest(secret).into();
    digest[..].ct_eq(&stored[..]).into()
}

pub struct RegistryAuthority {
    store: Arc<dyn Store>,
    presence: mpsc::Sender<PresenceEvent>,
    metrics: Arc<Metrics>,
    /// Sends a unit back online the alerts it missed; off the presence queue, so that a
    /// reconnect storm's presence writes do not hold it up.
    catch_up: Option<crate::ingest::Ingest>,
}

impl RegistryAuthority {
    /// Returns the authority and the receiving end of its presence queue, for [`run_presence`].
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> (Self, mpsc::Receiver<PresenceEvent>) {
        let (presence, rx) = mpsc::channel(PRESENCE_QUEUE);
        (
            Self {
                store,
                presence,
                metrics,
                catch_up: None,
            },
            rx,
        )
    }

    /// Units whose subscriptions are back get the open alerts of their cluster from `ingest`.
    pub fn with_catch_up(mut self, ingest: crate::ingest::Ingest) -> Self {
        self.catch_up = Some(ingest);
        self
    }
}

impl DeviceAuthority for RegistryAuthority {
    fn authenticate<'a>(
        &'a self,
        device: &'a str,
        password: &'a [u8],
    ) -> BoxFuture<'a, Result<DeviceGrant, AuthRefusal>> {
        Box::pin(async move {
            let cluster = check_login(self.store.as_ref(), device, password).await?;
            Ok(DeviceGrant {
                cluster: cluster.to_string(),
            })
        })
    }

    fn presence(&self, event: PresenceEvent) {
        if let PresenceEvent::Subscribed { device, .. } = &event {
            if let (Some(ingest), Ok(id)) = (&self.catch_up, DeviceId::parse(device)) {
                // Stamped now, when the subscriptions are in place: alerts raised later reach
                // the unit on its cluster topic anyway.
                let since = ingest.now();
                let ingest = ingest.clone();
                tokio::spawn(async move { ingest.catch_up(&id, since).await });
            }
            return;
        }
        match self.presence.try_send(event) {
            Ok(()) => {}
            // The gateway's own stop closes every session at once: those reports say nothing
            // about the devices (the next start gives each a fresh grace), so losing them to a
            // full queue is not worth an error line per device.
            Err(mpsc::error::TrySendError::Full(PresenceEvent::Disconnected {
                reason: tenwatch_broker::DisconnectReason::Shutdown,
                ..
            })) => {}
            Err(mpsc::error::TrySendError::Full(event)) => {
                inc(&self.metrics.presence_dropped);
                tracing::error!(?event, "presence queue full: an edge report was dropped");
            }
            // The gateway is shutting down; the next start marks devices from scratch.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Checks a device's login against the registry (the edge's, and an external broker's
/// through [`crate::http::broker_auth`]): its cluster, or why not.
pub async fn check_login(
    store: &dyn Store,
    device: &str,
    password: &[u8],
) -> Result<ClusterId, AuthRefusal> {
    let Ok(id) = DeviceId::parse(device) else {
        return Err(AuthRefusal::BadCredentials);
    };
    let credential = match store.device_credential(&id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            // Hash anyway so that an unknown device takes as long as a wrong password.
            let _ = secret_matches(password, "");
            return Err(AuthRefusal::BadCredentials);
        }
        Err(e) => {
            tracing::error!(%device, error = %e, "registry unavailable for a login");
            return Err(AuthRefusal::Unavailable);
        }
    };
    if !secret_matches(password, &credential.secret_hash) {
        return Err(AuthRefusal::BadCredentials);
    }
    if !credential.enabled {
        return Err(AuthRefusal::NotAuthorized);
    }
    Ok(credential.cluster)
}

/// Presence reports written at once, each device's in order: a device's reports go to one of
/// these workers, picked by its id. One worker wrote a storm of 15,000 units coming back one
/// report after another, each waiting for its own commit; the station saw them back a minute
/// later, and the queue overflowed.
const PRESENCE_WORKERS: usize = 16;

/// Writes the edge's presence reports to the store and the station feed, in order per device.
pub async fn run_presence(
    mut rx: mpsc::Receiver<PresenceEvent>,
    feed: Feed,
    supervision: crate::supervision::Supervision,
) -> anyhow::Result<()> {
    let mut workers = Vec::with_capacity(PRESENCE_WORKERS);
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..PRESENCE_WORKERS {
        let (tx, worker_rx) = mpsc::channel(PRESENCE_QUEUE / PRESENCE_WORKERS);
        let (feed, supervision) = (feed.clone(), supervision.clone());
        running.spawn(presence_worker(worker_rx, feed, supervision));
        workers.push(tx);
    }
    while let Some(event) = rx.recv().await {
        let device = match &event {
            PresenceEvent::Connected { device, .. }
            | PresenceEvent::Disconnected { device, .. } => device,
            // Handled by the authority as it happens (see `RegistryAuthority::presence`).
            PresenceEvent::Subscribed { .. } => continue,
            // Counted in memory at once: no store write to wait for.
            PresenceEvent::Refused {
                device,
                peer,
                refusal,
            } => {
                tracing::warn!(%device, %peer, ?refusal, "device login refused");
                supervision.presence(&event).await;
                continue;
            }
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(device, &mut h);
        let worker = &workers[(std::hash::Hasher::finish(&h) as usize) % PRESENCE_WORKERS];
        if worker.send(event).await.is_err() {
            break;
        }
    }
    drop(workers);
    while running.join_next().await.is_some() {}
    Ok(())
}

/// Reports a worker takes from its queue at once: stored and applied in one write.
const PRESENCE_BATCH: usize = 64;

/// One worker of [`run_presence`]: its devices' reports in order, what has queued up taken
/// together (a storm of units coming back is a few writes, and each cluster touched is
/// recounted once a write, not once a unit).
async fn presence_worker(
    mut rx: mpsc::Receiver<PresenceEvent>,
    feed: Feed,
    supervision: crate::supervision::Supervision,
) {
    let mut events = Vec::with_capacity(PRESENCE_BATCH);
    while rx.recv_many(&mut events, PRESENCE_BATCH).await > 0 {
        let now = now_ms();
        let reports: Vec<PresenceReport> = events
            .drain(..)
            .filter_map(|event| crate::supervision::presence_report(&event, now))
            .collect();
        if reports.is_empty() {
            continue;
        }
        // After each session is stored, in the same write: supervision checks it is the
        // device's latest.
        let zones = supervision.apply_presence(&reports).await;
        for (report, zone) in reports.iter().zip(zones) {
            // Only the operators of the device's zone hear of it.
            let Some(zone) = zone else { continue };
            feed.publish(&FeedEvent::Device {
                device: report.device.as_str(),
                zone: zone.as_str(),
                online: report.online,
                reason: report.disconnect_reason.as_deref(),
                at_ms: report.seen_ms,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_verify_against_their_hash_only() {
        let secret = new_secret();
        assert_eq!(secret.len(), 32);
        let hash = hash_secret(secret.as_bytes());
        assert!(secret_matches(secret.as_bytes(), &hash));
        assert!(!secret_matches(b"wrong", &hash));
        assert!(!secret_matches(secret.as_bytes(), "not hex"));
    }
}
