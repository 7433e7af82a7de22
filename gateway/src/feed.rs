//! The station feed: every alert and device event, serialised once and broadcast to every
//! station WebSocket client.
//!
//! A client that falls behind by more than the channel's capacity is told to resynchronise
//! (`{"type":"resync"}`) and refetches `GET /api/alerts`, so nothing is lost in silence.
//!
//! Several replicas on an external broker: each replica also hands every event it makes to a
//! relay ([`Feed::with_relay`]) that publishes it on `tw/s/feed/…`, and puts the events the
//! other replicas published into its own broadcast ([`Feed::inject`]), so a station connected
//! to any replica sees everything.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::store::supervision::Report;
use crate::store::AlertSummary;

/// Events kept for slow clients before they must resynchronise.
const FEED_CAPACITY: usize = 4096;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeedEvent<'a> {
    /// An alert changed: `event` names what happened (raised, notified, cancelled, coming, …).
    Alert {
        event: &'a str,
        at_ms: i64,
        alert: &'a AlertSummary,
    },
    /// A device came online or went offline: for the operators of its zone.
    Device {
        device: &'a str,
        zone: &'a str,
        online: bool,
        reason: Option<&'a str>,
        at_ms: i64,
    },
    /// A device report of supervision (offline, recovered) or health (battery, tamper):
    /// one per problem opened or closed, so a flapping device is reported once.
    DeviceHealth {
        #[serde(flatten)]
        report: &'a crate::store::supervision::DeviceReport,
    },
    /// A cluster's coverage fell below its threshold or came back.
    Coverage {
        #[serde(flatten)]
        coverage: &'a crate::store::supervision::CoverageReport,
    },
    /// What became of a volunteer's push (the station's recipient list shows it).
    Push {
        alert: crate::domain::AlertId,
        #[serde(skip)]
        zone: &'a str,
        volunteer: &'a str,
        outcome: &'a str,
        at_ms: i64,
    },
}

/// One serialised event and who may receive it.
#[derive(Debug, Clone)]
pub struct FeedItem {
    /// The zone of the alert or device; every event has one (`None`, from an older replica,
    /// goes to nobody).
    pub zone: Option<Arc<str>>,
    /// Device health and coverage are station business, not for the zone's volunteers.
    pub operators_only: bool,
    pub json: Arc<str>,
}

#[derive(Clone)]
pub struct Feed {
    tx: broadcast::Sender<FeedItem>,
    /// To the other replicas, through the broker; `None` on a gateway alone.
    relay: Option<mpsc::Sender<FeedItem>>,
}

/// Events waiting for the relay to the other replicas; past this they are dropped (logged):
/// a station on another replica then catches up on its next resync or reload.
const RELAY_QUEUE: usize = 8192;

/// A feed event as it travels between replicas.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Relayed {
    /// The replica that made it (its MQTT client id); it ignores its own.
    pub origin: String,
    pub zone: Option<String>,
    pub operators_only: bool,
    pub json: String,
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(FEED_CAPACITY);
        Self { tx, relay: None }
    }

    /// A feed whose events also go to the returned queue, for the other replicas.
    pub fn with_relay() -> (Self, mpsc::Receiver<FeedItem>) {
        let (tx, _) = broadcast::channel(FEED_CAPACITY);
        let (relay, queue) = mpsc::channel(RELAY_QUEUE);
        (
            Self {
                tx,
                relay: Some(relay),
            },
            queue,
        )
    }

    /// An event another replica made: to this replica's stations only, not relayed again.
    pub fn inject(&self, item: FeedItem) {
        let _ = self.tx.send(item);
    }

    /// Puts supervision's reports on the feed, each to its zone's operators, and logs them.
    pub fn reports(&self, reports: &[Report]) {
        for report in reports {
            match report {
                Report::Device(report) => {
                    tracing::info!(device = %report.device, event = ?report.event,
                        reason = report.reason.as_deref().unwrap_or(""), "device report");
                    self.publish(&FeedEvent::DeviceHealth { report });
                }
                Report::Coverage(coverage) if coverage.below => {
                    tracing::warn!(cluster = %coverage.cluster, reachable = coverage.reachable,
                        households = coverage.households, "cluster coverage fell below the minimum");
                    self.publish(&FeedEvent::Coverage { coverage });
                }
                Report::Coverage(coverage) => {
                    tracing::info!(cluster = %coverage.cluster, reachable = coverage.reachable,
                        households = coverage.households, "cluster coverage back above the minimum");
                    self.publish(&FeedEvent::Coverage { coverage });
                }
            }
        }
    }

    pub fn publish(&self, event: &FeedEvent<'_>) {
        let zone = match event {
            FeedEvent::Alert { alert, .. } => Some(alert.zone.as_str().into()),
            FeedEvent::Device { zone, .. } => Some((*zone).into()),
            FeedEvent::DeviceHealth { report } => Some(report.zone.as_str().into()),
            FeedEvent::Coverage { coverage } => Some(coverage.zone.as_str().into()),
            FeedEvent::Push { zone, .. } => Some((*zone).into()),
        };
        let operators_only = !matches!(event, FeedEvent::Alert { .. });
        match serde_json::to_string(event) {
            // No receiver is fine: no station is watching right now.
            Ok(json) => {
                let item = FeedItem {
                    zone,
                    operators_only,
                    json: json.into(),
                };
                if let Some(relay) = &self.relay {
                    if relay.try_send(item.clone()).is_err() {
                        tracing::warn!(
                            "feed relay to the other replicas is full: an event stays local"
                        );
                    }
                }
                let _ = self.tx.send(item);
            }
            Err(e) => tracing::error!(error = %e, "feed event does not serialise"),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.tx.subscribe()
    }
}
