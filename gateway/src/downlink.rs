//! What the gateway tells devices: the cluster alert the neighbours' units sound
//! (`tw/c/{cluster}/alert`), the presser's feedback (`tw/d/{device}/down/ack`) and the alerts a
//! unit back online missed (`tw/d/{device}/down/alert`); notices to residents
//! (`tw/c/{cluster}/notice`, and `tw/d/{device}/down/notice` for a unit that was away). One
//! narrow handle, shared by the press
//! path ([`crate::ingest`]) and the rings ([`crate::escalation`]); the payloads carry no
//! personal data.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use rumqttc::{AsyncClient, QoS};
use serde::Serialize;
use tenwatch_broker::inproc::Publisher;
use tenwatch_broker::EdgeDownlink;

use crate::clock::Clock;
use crate::domain::{AlertId, AlertState, BootId, DeviceId, NoticeId};
use crate::lifecycle::EnoughHelp;
use crate::metrics::{inc, Metrics};
use crate::store::notices::{Notice, NoticeKind};
use crate::store::AlertSummary;

/// `tw/c/{cluster}/notice` and `tw/d/{device}/down/notice`: a notice the unit shows its
/// residents and reports `delivered` on `up/notice`.
#[derive(Debug, Serialize)]
struct NoticeBody<'a> {
    notice: NoticeId,
    kind: NoticeKind,
    title: &'a str,
    body: &'a str,
    /// When the station sent it.
    ts: i64,
}

/// `tw/c/{cluster}/alert`: what the neighbours' units show. No personal data.
#[derive(Debug, Serialize)]
struct ClusterAlert<'a> {
    alert: AlertId,
    from_label: &'a str,
    kind: &'a str,
    state: AlertState,
    /// How many are coming: units show "2 coming" so neighbours know help is on its way.
    responders: u32,
    /// Presses the household made on it: units sound again when it grows.
    presses: u32,
    /// Enough people are coming ([`EnoughHelp`]): a unit shows "enough help is on the way"
    /// and its resident need not go.
    enough: bool,
    ts: i64,
}

/// `tw/d/{device}/down/ack`: feedback to the presser.
#[derive(Debug, Serialize)]
struct Ack<'a> {
    seq: u64,
    /// The boot id of the press answered, when it had one: with `seq`, what the unit
    /// matches its pending press on.
    #[serde(skip_serializing_if = "Option::is_none")]
    boot: Option<&'a BootId>,
    alert: AlertId,
    state: AlertState,
    responders: u32,
    presses: u32,
    /// Enough people are coming ([`EnoughHelp`]).
    enough: bool,
    /// Set on the ack of a resolved alert: the household may say on `up/satisfaction`
    /// whether it is satisfied with how it was handled.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    survey: bool,
}

/// How the gateway reaches the broker.
#[derive(Clone)]
pub enum Link {
    /// The embedded broker, in-process: the units' edge sessions directly once the edge is
    /// built ([`Downlink::edge_slot`]), the router before and for any other topic (QoS 0 on
    /// that hop; the edge delivers to each unit at the QoS it subscribed with).
    InProcess(Publisher),
    /// An external broker through rumqttc, QoS 1.
    Mqtt(AsyncClient),
}

/// Publishes to devices through the gateway's link to the broker. Cheap to clone.
#[derive(Clone)]
pub struct Downlink {
    link: Link,
    /// Counts publishes that could not be queued.
    metrics: Arc<Metrics>,
    /// Stamps each cluster alert with the gateway's time.
    clock: Clock,
    /// How many coming are enough, per kind.
    enough: EnoughHelp,
    /// The embedded broker's edge, once it is built: devices' and clusters' topics go to the
    /// units' sessions directly, past the router ([`EdgeDownlink`]). Shared by the clones.
    edge: Arc<OnceLock<EdgeDownlink>>,
}

impl Downlink {
    pub fn new(link: Link, metrics: Arc<Metrics>, clock: Clock, enough: EnoughHelp) -> Self {
        Self {
            link,
            metrics,
            clock,
            enough,
            edge: Arc::default(),
        }
    }

    /// Where to hand the edge once it is built (every clone of this downlink then delivers
    /// through it); until then, and for any other topic, the router.
    pub fn edge_slot(&self) -> Arc<OnceLock<EdgeDownlink>> {
        self.edge.clone()
    }

    /// `tw/c/{cluster}/alert` with the alert's current state.
    pub async fn cluster_alert(&self, cluster: &str, alert: &AlertSummary) {
        let body = self.cluster_body(alert);
        self.publish(format!("tw/c/{cluster}/alert"), &body).await;
    }

    /// The cluster alert's body on one unit's own `down/alert` (a unit back online).
    pub async fn device_alert(&self, device: &DeviceId, alert: &AlertSummary) {
        let body = self.cluster_body(alert);
        self.publish(format!("tw/d/{device}/down/alert"), &body)
            .await;
    }

    /// `tw/d/{device}/down/ack`: the press `seq` is stored; the alert's state and how many
    /// are coming.
    /// `down/ack` for the press `(seq, boot)` of `device`, with the alert it raised, joined
    /// or cancelled.
    pub async fn ack(
        &self,
        device: &DeviceId,
        (seq, boot): (u64, Option<&BootId>),
        alert: &AlertSummary,
    ) {
        let body = Ack {
            seq,
            boot,
            alert: alert.id,
            state: alert.state,
            responders: alert.responders,
            presses: alert.presses,
            enough: self.enough.is_enough(&alert.kind, alert.responders),
            survey: alert.state == AlertState::Resolved,
        };
        self.publish(format!("tw/d/{device}/down/ack"), &body).await;
    }

    /// `tw/c/{cluster}/notice`: a notice for every unit of the cluster.
    pub async fn cluster_notice(&self, cluster: &str, notice: &Notice) {
        self.publish(format!("tw/c/{cluster}/notice"), &notice_body(notice))
            .await;
    }

    /// A notice on one unit's own `down/notice` (a unit back online that still owes its
    /// receipt).
    pub async fn device_notice(&self, device: &DeviceId, notice: &Notice) {
        self.publish(format!("tw/d/{device}/down/notice"), &notice_body(notice))
            .await;
    }

    fn cluster_body<'a>(&self, alert: &'a AlertSummary) -> ClusterAlert<'a> {
        ClusterAlert {
            alert: alert.id,
            from_label: &alert.label,
            kind: &alert.kind,
            state: alert.state,
            responders: alert.responders,
            presses: alert.presses,
            enough: self.enough.is_enough(&alert.kind, alert.responders),
            ts: self.clock.now_ms(),
        }
    }

    async fn publish(&self, topic: String, body: &impl Serialize) {
        let payload = match serde_json::to_vec(body) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "payload does not serialise");
                return;
            }
        };
        let queued = match &self.link {
            Link::InProcess(publisher) => match self.edge.get() {
                Some(edge) => {
                    let payload = Bytes::from(payload);
                    if edge.deliver(&topic, payload.clone()) {
                        return;
                    }
                    publisher.publish(topic, payload.to_vec())
                }
                None => publisher.publish(topic, payload),
            }
            .map_err(|e| e.to_string()),
            Link::Mqtt(client) => client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = queued {
            inc(&self.metrics.publish_errors);
            tracing::error!(error = %e, "publish not queued");
        }
    }
}

fn notice_body(n: &Notice) -> NoticeBody<'_> {
    NoticeBody {
        notice: NoticeId(n.id),
        kind: n.kind,
        title: &n.title,
        body: &n.body,
        ts: n.created_at_ms,
    }
}
