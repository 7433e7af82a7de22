//! The MQTT layer of tenwatch: an embedded rumqttd router behind the **device edge**.
//!
//! # Layout
//! - [`router`]: starts rumqttd, reached in-process through its local links (the edge and the
//!   gateway) and on a loopback listener that accepts only the internal credential.
//! - [`edge`]: the device-facing listener (TCP, optional TLS). It applies handshake and CONNECT
//!   deadlines, authenticates each device through [`DeviceAuthority`], answers refusals with a
//!   proper CONNACK, links each device to the router in-process, enforces the per-device topic
//!   ACL on every PUBLISH and SUBSCRIBE, caps payload size and press rate, delivers at the
//!   device's QoS, and reports presence through [`DeviceAuthority::presence`]. The gateway in
//!   the same process hands its downlink straight to the sessions ([`EdgeDownlink`]).
//! - [`inproc`]: the gateway's in-process client of the router (publish and subscribe with no
//!   socket).
//! - [`acl`]: the topic rules of `docs/protocol.md` as pure functions.
//! - [`codec`]: the MQTT 3.1.1 the edge speaks with devices (frame boundaries, CONNECT,
//!   PUBLISH, SUBSCRIBE, UNSUBSCRIBE parsed from borrowed bytes; the packets it answers with).
//! - [`error`]: [`BrokerError`], why the router or the edge could not start.
//!
//! The gateway implements [`DeviceAuthority`]; this crate knows nothing of its storage.

pub mod acl;
pub mod codec;
pub mod edge;
pub mod error;
pub mod inproc;
pub mod router;

pub use edge::{
    load_tls_acceptor, max_devices_for_fd_limit, open_file_limit, run_edge, Edge, EdgeConfig,
    EdgeDownlink, EdgeStats, EdgeStatsSnapshot, RateLimit, TlsFiles,
};
pub use error::BrokerError;
pub use router::{start_router, RouterHandle, RouterSettings};

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

/// A device's identity as granted by the registry after a successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceGrant {
    /// The cluster whose `tw/c/{cluster}/#` topics the device may subscribe to.
    pub cluster: String,
}

/// Why a login was refused; mapped onto MQTT 3.1.1 CONNACK return codes by the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// Unknown device or wrong password (CONNACK 4: bad user name or password). The two are
    /// never told apart to the client.
    BadCredentials,
    /// The device exists but is disabled (CONNACK 5: not authorized).
    NotAuthorized,
    /// The registry could not be asked (CONNACK 3: server unavailable).
    Unavailable,
}

/// Why a device's connection ended, as reported in [`PresenceEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The device sent DISCONNECT.
    Clean,
    /// Nothing arrived within 1.5 × the device's keep-alive.
    KeepAliveTimeout,
    /// The socket closed or failed without DISCONNECT.
    ConnectionLost,
    /// A new connection with the same device id took over.
    Replaced,
    /// The edge closed it for breaking a rule (forged topic, oversize payload, protocol error).
    Violation(String),
    /// The router side of the link closed.
    RouterClosed,
    /// The edge is shutting down.
    Shutdown,
}

/// What the edge tells the gateway about a device's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    Connected {
        device: String,
        /// Increases with every accepted connection in this process; a `Disconnected` whose
        /// session is not the device's latest one is stale and must not mark it offline.
        session: u64,
        peer: SocketAddr,
    },
    Disconnected {
        device: String,
        session: u64,
        reason: DisconnectReason,
    },
    /// The device's subscriptions to its own downlink and to its cluster are both in place
    /// (their SUBACKs went out), once per session: what it missed while away can be sent now
    /// and will not be lost to a subscription not yet made.
    Subscribed { device: String, session: u64 },
    /// A login naming this well-formed device id was refused (reported so the gateway can
    /// count it; it says nothing about the device, whose id anyone can send).
    Refused {
        device: String,
        peer: SocketAddr,
        refusal: AuthRefusal,
    },
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The registry as the edge sees it. Implemented by the gateway.
pub trait DeviceAuthority: Send + Sync + 'static {
    /// Checks a device's password. Called once per CONNECT, off the accept loop.
    fn authenticate<'a>(
        &'a self,
        device: &'a str,
        password: &'a [u8],
    ) -> BoxFuture<'a, Result<DeviceGrant, AuthRefusal>>;

    /// Receives a presence event. Must not block; the gateway queues it.
    fn presence(&self, event: PresenceEvent);
}

/// The gateway's end of devices' uplink when it runs in the edge's process
/// ([`Edge::with_uplink`]): every publish a device may make (`tw/d/{id}/up/...`, after the
/// ACL, the size check and the rate limits) is handed over here instead of going through the
/// router, which saves the router a pass and the gateway a wake-up per message. A device's
/// publishes are handed over one after another, in the order they came.
pub trait UplinkSink: Send + Sync + 'static {
    /// Takes one publish; waits while the gateway's queue for it is full (the device's session
    /// waits with it, and reads nothing more from that device meanwhile). `Err` once the
    /// gateway has stopped.
    fn uplink(&self, topic: &str, payload: bytes::Bytes)
        -> BoxFuture<'_, Result<(), UplinkClosed>>;
}

/// The gateway behind an [`UplinkSink`] has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UplinkClosed;
