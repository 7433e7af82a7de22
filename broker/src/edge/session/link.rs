//! The session's in-process link to the router (rumqttd's local link, [`RouterHandle::link`]):
//! opened under the device's own client id and clean-session flag once the device is logged
//! in, and closed with a DISCONNECT so the router frees the connection. No socket, no file
//! descriptor, no loopback hop.
//!
//! Everything sent on the link goes into the router's 1,000-slot channel with flume's blocking
//! `send`, so a send made while that channel is full blocks this tokio worker until the router
//! thread takes an event. That is bounded backpressure, not a deadlock: the router thread never
//! waits on tokio, it only drains the channel. Notifications come back through a buffer the
//! router fills and signals; its `Unschedule` must be answered with [`RouterLink::wake`].
//!
//! [`RouterHandle::link`]: crate::RouterHandle::link

use std::net::SocketAddr;

use bytes::Bytes;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{
    Disconnect, DisconnectReasonCode, Filter, Packet, QoS, RetainForwardRule, Subscribe,
    Unsubscribe,
};
use rumqttd::Notification;
use tokio::io::AsyncWrite;
use tokio::task::JoinHandle;

use super::login::refuse_device;
use crate::edge::stats::bump;
use crate::edge::Shared;
use crate::router::LocalLink;
use crate::{AuthRefusal, BrokerError};

/// The router's channel is gone: its thread ended, or it dropped this link.
#[derive(Debug)]
pub(super) struct RouterGone;

/// An open link to the router. Dropping it without [`RouterLink::close`] (a panic) still tells
/// the router, from a spawned task, so no link is ever left registered.
pub(super) struct RouterLink {
    /// `None` once the router has been told (or has dropped the link itself).
    tx: Option<LinkTx>,
    rx: LinkRx,
    /// The router kept a session for this client id (the device's CONNACK says so).
    session_present: bool,
}

/// Opens the router link for a logged-in device, under the CONNECT deadline. When the router
/// cannot take it, the device gets CONNACK 3 (server unavailable) here and `None` is returned.
pub(super) async fn open<W: AsyncWrite + Unpin>(
    shared: &Shared,
    dev_w: &mut W,
    device: &str,
    clean_session: bool,
    peer: SocketAddr,
) -> Option<RouterLink> {
    let router = shared.router.clone();
    let client_id = device.to_owned();
    // `link` blocks until the router thread has registered the connection.
    let mut opening = tokio::task::spawn_blocking(move || router.link(&client_id, clean_session));
    let error = match tokio::time::timeout(shared.config.connect_timeout, &mut opening).await {
        Ok(Ok(Ok(link))) => return Some(RouterLink::new(link)),
        Ok(Ok(Err(error))) => error.to_string(),
        Ok(Err(join)) => format!("link task failed: {join}"),
        Err(_) => {
            close_when_open(opening);
            "router link timed out".to_owned()
        }
    };
    bump(&shared.stats.router_unavailable);
    tracing::error!(%device, %error, "router link failed; answering server unavailable");
    refuse_device(shared, dev_w, device, peer, AuthRefusal::Unavailable).await;
    None
}

/// A link that opens after its device was refused for waiting too long is closed at once.
fn close_when_open(opening: JoinHandle<Result<LocalLink, BrokerError>>) {
    tokio::spawn(async move {
        if let Ok(Ok(link)) = opening.await {
            RouterLink::new(link).close().await;
        }
    });
}

impl RouterLink {
    fn new(link: LocalLink) -> Self {
        Self {
            tx: Some(link.tx),
            rx: link.rx,
            session_present: link.session_present,
        }
    }

    /// Whether the router resumed a session kept for this client id.
    pub(super) fn session_present(&self) -> bool {
        self.session_present
    }

    fn tx(&mut self) -> Result<&mut LinkTx, RouterGone> {
        self.tx.as_mut().ok_or(RouterGone)
    }

    /// Hands a device's publish to the router, at QoS 0: the router and the edge share one
    /// process and one fate, so a QoS 1 exchange on this hop would protect against nothing.
    /// Topic and payload are copied out of the device's read buffer so the router's log does
    /// not pin that whole buffer.
    pub(super) fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), RouterGone> {
        let topic = Bytes::copy_from_slice(topic.as_bytes());
        let payload = Bytes::copy_from_slice(payload);
        self.tx()?.publish(topic, payload).map_err(|_| RouterGone)?;
        Ok(())
    }

    /// Subscribes the link to `filters` at QoS 0 (the edge delivers to the device at the
    /// device's QoS itself), in one packet under the device's packet id: the router answers
    /// with one SubAck carrying that id.
    pub(super) async fn subscribe(
        &mut self,
        packet_id: u16,
        filters: Vec<String>,
    ) -> Result<(), RouterGone> {
        let filters = filters
            .into_iter()
            .map(|path| Filter {
                path,
                qos: QoS::AtMostOnce,
                nolocal: false,
                preserve_retain: false,
                // What rumqttd's own MQTT 3.1.1 parser sets.
                retain_forward_rule: RetainForwardRule::OnEverySubscribe,
            })
            .collect();
        let subscribe = Subscribe {
            pkid: packet_id,
            filters,
        };
        self.send(Packet::Subscribe(subscribe, None)).await
    }

    /// Removes `filters` from the link's subscriptions.
    pub(super) async fn unsubscribe(
        &mut self,
        packet_id: u16,
        filters: Vec<String>,
    ) -> Result<(), RouterGone> {
        let unsubscribe = Unsubscribe {
            pkid: packet_id,
            filters,
        };
        self.send(Packet::Unsubscribe(unsubscribe, None)).await
    }

    async fn send(&mut self, packet: Packet) -> Result<(), RouterGone> {
        self.tx()?.send(packet).await.map_err(|_| RouterGone)?;
        Ok(())
    }

    /// The next notification from the router; `Ok(None)` when a signal found the buffer
    /// already drained (not the end). Cancel-safe: the buffer is taken in the same poll that
    /// sees the signal.
    pub(super) async fn next(&mut self) -> Result<Option<Notification>, RouterGone> {
        self.rx.next().await.map_err(|_| RouterGone)
    }

    /// Answers `Notification::Unschedule`: the router has paused this link because its buffer
    /// filled, and resumes it only on this (else delivery stops for good). rumqttd's router
    /// panics on a wake for a connection it no longer holds; `close` takes the link by value,
    /// so no wake can follow this session's DISCONNECT.
    pub(super) async fn wake(&self) -> Result<(), RouterGone> {
        self.rx.wake().await.map_err(|_| RouterGone)
    }

    /// Tells the router the connection is over (a DISCONNECT: it drops the connection and,
    /// for a clean session, its state). Events on the router's channel keep their order, so
    /// a new link for the same device opened after this returns finds this one gone.
    pub(super) async fn close(mut self) {
        if let Some(mut tx) = self.tx.take() {
            let _ = tx.send(disconnect()).await;
        }
    }

    /// The router dropped the link itself: nothing to tell it.
    pub(super) fn dropped_by_router(mut self) {
        self.tx = None;
    }
}

impl Drop for RouterLink {
    fn drop(&mut self) {
        // Only reached when the session ended without teardown (a panic); teardown closes
        // in order, this catches the rest so the router never keeps a dead connection.
        if let (Some(mut tx), Ok(runtime)) = (self.tx.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move {
                let _ = tx.send(disconnect()).await;
            });
        }
    }
}

fn disconnect() -> Packet {
    Packet::Disconnect(
        Disconnect {
            reason_code: DisconnectReasonCode::NormalDisconnection,
        },
        None,
    )
}
