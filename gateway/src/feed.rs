//! The station feed: every alert and device event, serialised once and broadcast to every
//! station WebSocket client.
//!
//! A client that falls behind by more than the channel's capacity is told to resynchronise
//! (`{"type":"resync"}`) and refetches `GET /api/alerts`, so nothing is lost in silence.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

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
    /// A device came online or went offline.
    Device {
        device: &'a str,
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
    /// The alert's zone; `None` for device events, which go to operators.
    pub zone: Option<Arc<str>>,
    /// Device health and coverage are station business, not for the zone's volunteers.
    pub operators_only: bool,
    pub json: Arc<str>,
}

#[derive(Clone)]
pub struct Feed {
    tx: broadcast::Sender<FeedItem>,
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(FEED_CAPACITY);
        Self { tx }
    }

    pub fn publish(&self, event: &FeedEvent<'_>) {
        let zone = match event {
            FeedEvent::Alert { alert, .. } => Some(alert.zone.as_str().into()),
            FeedEvent::Device { .. } => None,
            FeedEvent::DeviceHealth { report } => Some(report.zone.as_str().into()),
            FeedEvent::Coverage { coverage } => Some(coverage.zone.as_str().into()),
            FeedEvent::Push { zone, .. } => Some((*zone).into()),
        };
        let operators_only = !matches!(event, FeedEvent::Alert { .. });
        match serde_json::to_string(event) {
            // No receiver is fine: no station is watching right now.
            Ok(json) => {
                let _ = self.tx.send(FeedItem {
                    zone,
                    operators_only,
                    json: json.into(),
                });
            }
            Err(e) => tracing::error!(error = %e, "feed event does not serialise"),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.tx.subscribe()
    }
}
