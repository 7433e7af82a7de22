//! The edge's counters: lock-free atomics bumped on the hot path, read as one serializable
//! snapshot for `/metrics` and `/healthz`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters shared by every listener and session of an edge.
#[derive(Debug, Default)]
pub struct EdgeStats {
    /// TCP connections accepted by the device listeners (before TLS and CONNECT).
    pub connections_accepted: AtomicU64,
    /// Devices online through this edge right now (a gauge).
    pub connected: AtomicU64,
    /// CONNECTs answered with a refusing CONNACK (protocol, identifier, credentials, router).
    pub logins_refused: AtomicU64,
    /// PUBLISHes to a topic outside the device's ACL (each closes the connection).
    pub acl_publish_refused: AtomicU64,
    /// SUBSCRIBE filters outside the device's ACL (answered 0x80).
    pub acl_subscribe_refused: AtomicU64,
    /// PUBLISHes over the payload cap (each closes the connection).
    pub oversize_refused: AtomicU64,
    /// PUBLISHes dropped by the press or uplink rate limit.
    pub rate_limited: AtomicU64,
    /// Sockets closed for sending no CONNECT within the deadline.
    pub connect_timeouts: AtomicU64,
    /// Malformed or unexpected packets.
    pub protocol_errors: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: AtomicU64,
    /// Sockets closed at once because the edge was at `max_connections`.
    pub over_capacity: AtomicU64,
    /// Logins that failed because the router could not be reached or refused the link.
    pub router_unavailable: AtomicU64,
    /// Sessions ended because the same device connected again.
    pub sessions_replaced: AtomicU64,
    /// Messages for devices dropped because the device's QoS 1 window (100 unacknowledged)
    /// and the queue behind it (1,000) were full: the device stopped acknowledging.
    pub downlink_dropped: AtomicU64,
}

/// A point-in-time copy of [`EdgeStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EdgeStatsSnapshot {
    pub connections_accepted: u64,
    pub connected: u64,
    pub logins_refused: u64,
    pub acl_publish_refused: u64,
    pub acl_subscribe_refused: u64,
    pub oversize_refused: u64,
    pub rate_limited: u64,
    pub connect_timeouts: u64,
    pub protocol_errors: u64,
    pub tls_handshake_failures: u64,
    pub over_capacity: u64,
    pub router_unavailable: u64,
    pub sessions_replaced: u64,
    pub downlink_dropped: u64,
}

impl EdgeStats {
    /// Reads every counter. The values are read one by one, so a snapshot taken during
    /// traffic is not a single instant; fine for monitoring.
    pub fn snapshot(&self) -> EdgeStatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EdgeStatsSnapshot {
            connections_accepted: r(&self.connections_accepted),
            connected: r(&self.connected),
            logins_refused: r(&self.logins_refused),
            acl_publish_refused: r(&self.acl_publish_refused),
            acl_subscribe_refused: r(&self.acl_subscribe_refused),
            oversize_refused: r(&self.oversize_refused),
            rate_limited: r(&self.rate_limited),
            connect_timeouts: r(&self.connect_timeouts),
            protocol_errors: r(&self.protocol_errors),
            tls_handshake_failures: r(&self.tls_handshake_failures),
            over_capacity: r(&self.over_capacity),
            router_unavailable: r(&self.router_unavailable),
            sessions_replaced: r(&self.sessions_replaced),
            downlink_dropped: r(&self.downlink_dropped),
        }
    }
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
