//! The broker layer's one error type: everything that can stop the router or the edge from
//! starting. Per-connection trouble never becomes a `BrokerError`; it ends that connection with
//! a [`crate::DisconnectReason`] and a counter instead.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Why the router or the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Binding port 0 on loopback failed, so no port could be picked for the router.
    #[error("could not reserve a loopback port for the router: {0}")]
    RouterPort(#[source] std::io::Error),

    /// The OS refused to start the router's thread.
    #[error("could not start the router thread: {0}")]
    RouterThread(#[source] std::io::Error),

    /// The router did not take an in-process link (it is full, or it stopped).
    #[error("the router refused an in-process link: {0}")]
    RouterLink(String),

    /// rumqttd did not start listening in time (for example another process took the port
    /// between our probe bind and rumqttd's bind).
    #[error("the router did not accept connections on {addr} within {waited:?}: {detail}")]
    RouterNotReady {
        addr: SocketAddr,
        waited: Duration,
        detail: String,
    },

    /// A router setting is unusable; the message says which and what to change.
    #[error("invalid router settings: {0}")]
    RouterSettings(String),

    /// An edge setting is unusable; the message says which and what to change.
    #[error("invalid edge configuration: {0}")]
    EdgeConfig(String),

    /// The TLS certificate or key could not be loaded.
    #[error("TLS setup failed for {path}: {detail}")]
    Tls { path: PathBuf, detail: String },
}
