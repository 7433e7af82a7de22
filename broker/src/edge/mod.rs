//! The device edge: the device-facing MQTT listeners (TCP, and TLS) in front of the router.
//!
//! Every device socket gets its own task, so the accept loop never waits on a TLS handshake or
//! a CONNECT. The task authenticates the device through [`DeviceAuthority`], then links it to
//! the router in-process (rumqttd's local links: no second socket, no loopback hop) under its
//! own client id, checking every packet on the way: topic ACL, payload cap, rate limits,
//! keep-alive. The edge answers the device's MQTT itself and runs its QoS 1 window; the why is
//! in the crate's README.

mod limit;
mod session;
mod stats;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

pub use limit::{DeviceBuckets, RateLimit, TokenBucket};
pub use stats::{EdgeStats, EdgeStatsSnapshot};

use crate::{BrokerError, DeviceAuthority, RouterHandle, UplinkSink};
use stats::bump;

/// How long [`Edge::serve`] waits for its sessions to close after the shutdown signal.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// How long to back off after a failed `accept` (typically out of file descriptors), so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Certificate chain and private key, PEM files, for the TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// The edge's limits and deadlines. [`EdgeConfig::default`] holds the production values.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Time a new socket has to send its CONNECT (and the registry to answer, and the router
    /// to accept the link). Idle sockets are closed after it.
    pub connect_timeout: Duration,
    /// Time a TLS client has to finish the handshake.
    pub tls_handshake_timeout: Duration,
    /// Largest PUBLISH payload a device may send; a bigger one closes the connection.
    pub max_payload: usize,
    /// Limit on `tw/d/{device}/up/press`. Devices repeat a press until acknowledged, so a
    /// dropped press is retried, not lost.
    pub press_limit: RateLimit,
    /// Limit on every other uplink publish.
    pub publish_limit: RateLimit,
    /// Limit on one device's logins (with the right password): more are answered "server
    /// unavailable" and the device backs off. Like the publish limits, it is kept per device
    /// across its sessions.
    pub connect_limit: RateLimit,
    /// Device sockets held at once; more are closed at accept. Each device costs
    /// [`FDS_PER_DEVICE`] file descriptor: see [`max_devices_for_fd_limit`].
    pub max_connections: usize,
    /// TLS certificate and key, if a TLS listener is to be served.
    pub tls: Option<TlsFiles>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            tls_handshake_timeout: Duration::from_secs(5),
            max_payload: 2048,
            press_limit: RateLimit {
                burst: 5,
                refill_every: Duration::from_secs(2),
            },
            publish_limit: RateLimit {
                burst: 30,
                refill_every: Duration::from_millis(100),
            },
            connect_limit: RateLimit {
                burst: 20,
                refill_every: Duration::from_secs(3),
            },
            max_connections: 18_000,
            tls: None,
        }
    }
}

impl EdgeConfig {
    /// Refuses settings that would make the edge refuse everyone or never time out.
    pub fn validate(&self) -> Result<(), BrokerError> {
        let bad = |what: &str| Err(BrokerError::EdgeConfig(what.to_owned()));
        if self.connect_timeout.is_zero() || self.tls_handshake_timeout.is_zero() {
            return bad("connect_timeout and tls_handshake_timeout must be positive");
        }
        if self.max_payload == 0 || self.max_payload > 256 * 1024 {
            return bad("max_payload must be between 1 byte and 256 KiB");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        for (name, limit) in [
            ("press_limit", self.press_limit),
            ("publish_limit", self.publish_limit),
            ("connect_limit", self.connect_limit),
        ] {
            if limit.burst == 0 && !limit.refill_every.is_zero() {
                return Err(BrokerError::EdgeConfig(format!(
                    "{name}.burst must be at least 1 (or refill_every zero for no limit)"
                )));
            }
        }
        Ok(())
    }

    /// Loads the TLS acceptor if `tls` is set.
    pub fn tls_acceptor(&self) -> Result<Option<TlsAcceptor>, BrokerError> {
        self.tls
            .as_ref()
            .map(|files| load_tls_acceptor(&files.cert_path, &files.key_path))
            .transpose()
    }
}

/// Builds a TLS acceptor (rustls with the ring provider) from PEM files.
pub fn load_tls_acceptor(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, BrokerError> {
    let err = |path: &Path, detail: String| BrokerError::Tls {
        path: path.to_owned(),
        detail,
    };
    let cert_pem = std::fs::read(cert_path).map_err(|e| err(cert_path, e.to_string()))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(cert_path, format!("unreadable PEM: {e}")))?;
    if certs.is_empty() {
        return Err(err(cert_path, "no CERTIFICATE block found".into()));
    }
    let key_pem = std::fs::read(key_path).map_err(|e| err(key_path, e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| err(key_path, format!("unreadable PEM: {e}")))?
        .ok_or_else(|| err(key_path, "no PRIVATE KEY block found".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(cert_path, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err(key_path, format!("certificate and key do not fit: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// State shared by the edge's listeners and sessions.
struct Shared {
    config: EdgeConfig,
    router: RouterHandle,
    authority: Arc<dyn DeviceAuthority>,
    stats: Arc<EdgeStats>,
    /// The live session of each device, so a reconnect can end the old one first. Locked
    /// only for map operations, never across an await.
    sessions: Mutex<HashMap<String, session::SessionHandle>>,
    /// The devices with a live session, by cluster: where a cluster's downlink goes
    /// ([`EdgeDownlink`]). Kept with `sessions`, by the same register and drop.
    members: Mutex<HashMap<String, HashSet<String>>>,
    /// Session ids, increasing for the life of the process (see `PresenceEvent::Connected`).
    next_session: AtomicU64,
    /// One permit per device socket, shared by all listeners: `max_connections` in total.
    permits: Arc<Semaphore>,
    /// Where devices' publishes go when the gateway shares the process; unset: the router.
    uplink: OnceLock<Arc<dyn UplinkSink>>,
    /// Each device's rate-limit buckets, across its sessions (an entry per device that has
    /// logged in with its password since the edge started).
    limits: Mutex<HashMap<String, Arc<Mutex<DeviceBuckets>>>>,
}

impl Shared {
    /// The device's buckets, made full on its first login since the edge started.
    fn limits(&self, device: &str) -> Arc<Mutex<DeviceBuckets>> {
        let mut limits = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
        limits
            .entry(device.to_owned())
            .or_insert_with(|| {
                let now = tokio::time::Instant::now();
                let config = &self.config;
                Arc::new(Mutex::new(DeviceBuckets {
                    press: TokenBucket::new(config.press_limit, now),
                    publish: TokenBucket::new(config.publish_limit, now),
                    connect: TokenBucket::new(config.connect_limit, now),
                }))
            })
            .clone()
    }

    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, session::SessionHandle>> {
        // A panic elsewhere while holding the lock leaves the map usable: every operation on
        // it is a single insert/remove.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The gateway's downlink delivered straight to the device sessions of this edge, without
/// the router: a device's `tw/d/{device}/…` to its session, a cluster's `tw/c/{cluster}/…` to
/// the sessions of the cluster's devices. Each session still delivers only what the device
/// subscribed to, at the QoS it asked for, in its QoS 1 window. Cheap to clone.
///
/// Why: through the router, each of a press's ten messages woke the router's thread, which
/// woke each unit's session in turn; a tenth of the server's time went to that thread and the
/// wake-ups around it. Here the gateway's worker queues each message on the sessions itself.
#[derive(Clone)]
pub struct EdgeDownlink {
    shared: Arc<Shared>,
}

impl EdgeDownlink {
    /// Queues `payload` on `topic` for every session it is for. Returns `false`, delivering
    /// nothing, for a topic that is neither a device's nor a cluster's: the caller then
    /// publishes it through the router. A session whose queue is full (its device stopped
    /// reading) loses the message, counted in `downlink_dropped`, as when its QoS 1 window
    /// is full.
    pub fn deliver(&self, topic: &str, payload: Bytes) -> bool {
        let mut levels = topic.split('/');
        let (Some("tw"), Some(kind @ ("d" | "c")), Some(id)) =
            (levels.next(), levels.next(), levels.next())
        else {
            return false;
        };
        let topic: Arc<str> = Arc::from(topic);
        let queue = |handle: &session::SessionHandle| {
            handle.queue(session::Direct {
                topic: topic.clone(),
                payload: payload.clone(),
            })
        };
        // Queued under the locks (a queue never waits), in the order register and the
        // registration's drop take them: sessions, then members.
        let sessions = self.shared.sessions();
        let full = if kind == "d" {
            sessions.get(id).map_or(0, |h| usize::from(!queue(h)))
        } else {
            let members = self.shared.members();
            members
                .get(id)
                .into_iter()
                .flatten()
                .filter_map(|device| sessions.get(device))
                .filter(|h| !queue(h))
                .count()
        };
        self.shared
            .stats
            .downlink_dropped
            .fetch_add(full as u64, std::sync::atomic::Ordering::Relaxed);
        true
    }
}

/// A device edge: one set of limits, sessions and counters, served on one or more listeners
/// (for example plain TCP and TLS). Cheap to clone.
#[derive(Clone)]
pub struct Edge {
    shared: Arc<Shared>,
}

impl Edge {
    /// Builds an edge in front of `router`. Fails if `config` is unusable.
    pub fn new(
        config: EdgeConfig,
        router: RouterHandle,
        authority: Arc<dyn DeviceAuthority>,
        stats: Arc<EdgeStats>,
    ) -> Result<Self, BrokerError> {
        config.validate()?;
        warn_if_fds_short(config.max_connections);
        let permits = Arc::new(Semaphore::new(config.max_connections));
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                router,
                authority,
                stats,
                sessions: Mutex::new(HashMap::new()),
                members: Mutex::new(HashMap::new()),
                next_session: AtomicU64::new(1),
                permits,
                uplink: OnceLock::new(),
                limits: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The edge's counters.
    /// Hands devices' publishes to `sink` (the gateway in this process) instead of the router.
    /// Call before serving; an edge keeps the first sink it is given.
    pub fn with_uplink(self, sink: Arc<dyn UplinkSink>) -> Self {
        let _ = self.shared.uplink.set(sink);
        self
    }

    /// The gateway's way to its units' sessions, past the router ([`EdgeDownlink`]).
    pub fn downlink(&self) -> EdgeDownlink {
        EdgeDownlink {
            shared: self.shared.clone(),
        }
    }

    pub fn stats(&self) -> &Arc<EdgeStats> {
        &self.shared.stats
    }

    /// Devices with a live session on this edge.
    pub fn online_devices(&self) -> usize {
        self.shared.sessions().len()
    }

    /// Accepts device connections on `listener` (TLS when `tls` is given) until `shutdown`
    /// completes, then stops accepting, ends this listener's sessions with
    /// `DisconnectReason::Shutdown` and waits (up to 5 s) for them to report.
    pub async fn serve(
        &self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), BrokerError> {
        let local = listener.local_addr().ok();
        tracing::info!(addr = ?local, tls = tls.is_some(), "device edge listening");
        // Sessions watch this to learn about shutdown; each holds a `drain` sender so that
        // `recv` below returns once the last one is gone (mini-redis's pattern).
        let (stop_tx, _) = watch::channel(false);
        let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => self.admit(socket, peer, tls.clone(), stop_tx.subscribe(), drain_tx.clone()),
                    Err(error) => {
                        tracing::warn!(%error, "accept failed; backing off");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        drop(drain_tx);
        if tokio::time::timeout(SHUTDOWN_DRAIN, drain_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!(addr = ?local, "sessions still closing after the shutdown grace");
        }
        tracing::info!(addr = ?local, "device edge stopped");
        Ok(())
    }

    /// Hands an accepted socket to its own task, or closes it at once when full.
    fn admit(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
        tls: Option<TlsAcceptor>,
        stop: watch::Receiver<bool>,
        drain: mpsc::Sender<()>,
    ) {
        let shared = &self.shared;
        bump(&shared.stats.connections_accepted);
        let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
            bump(&shared.stats.over_capacity);
            tracing::warn!(%peer, max = shared.config.max_connections, "edge full; closing new socket");
            return;
        };
        // Small MQTT frames: never wait for Nagle.
        let _ = socket.set_nodelay(true);
        tokio::spawn(handle_socket(
            shared.clone(),
            socket,
            peer,
            tls,
            stop,
            permit,
            drain,
        ));
    }
}

/// One device socket, from TLS handshake to the end of its session.
async fn handle_socket(
    shared: Arc<Shared>,
    socket: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
    _drain: mpsc::Sender<()>,
) {
    let Some(acceptor) = tls else {
        session::run(shared, socket, peer, stop).await;
        return;
    };
    // rumqttd's own TLS accept loop awaits this with no deadline (one silent peer blocks
    // everyone); here it is bounded and off the accept loop.
    match tokio::time::timeout(shared.config.tls_handshake_timeout, acceptor.accept(socket)).await {
        Ok(Ok(stream)) => session::run(shared, stream, peer, stop).await,
        Ok(Err(error)) => {
            bump(&shared.stats.tls_handshake_failures);
            tracing::debug!(%peer, %error, "TLS handshake failed");
        }
        Err(_) => {
            bump(&shared.stats.tls_handshake_failures);
            tracing::debug!(%peer, "TLS handshake timed out");
        }
    }
}

/// File descriptors one device costs this process: its socket. The router link is in-process.
pub const FDS_PER_DEVICE: u64 = 1;

/// Descriptors kept for everything else (gateway, database, HTTP clients).
const FD_RESERVE: u64 = 512;

/// The most devices an edge can hold under a process's open-file limit. Use it to size
/// `max_connections` (the router's own `max_connections` must hold them too).
pub fn max_devices_for_fd_limit(fd_limit: u64) -> u64 {
    fd_limit.saturating_sub(FD_RESERVE) / FDS_PER_DEVICE
}

/// The soft open-file limit from `/proc/self/limits` (Linux), if readable.
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Past the open-file limit, accepts fail (the edge backs off, and rumqttd's own accept loop,
/// which the gateway uses, spins on the error): say so at start-up, not under load.
fn warn_if_fds_short(max_connections: usize) {
    if let Some(limit) = open_file_limit() {
        let fit = max_devices_for_fd_limit(limit);
        if max_connections as u64 > fit {
            tracing::warn!(
                max_connections,
                open_file_limit = limit,
                devices_that_fit = fit,
                "edge max_connections exceeds what the open-file limit allows ({} fds per device)",
                FDS_PER_DEVICE
            );
        }
    }
}

/// Runs one edge listener until `shutdown`; the one-listener form of [`Edge::serve`].
pub async fn run_edge(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    config: EdgeConfig,
    router: RouterHandle,
    authority: Arc<dyn DeviceAuthority>,
    stats: Arc<EdgeStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BrokerError> {
    Edge::new(config, router, authority, stats)?
        .serve(listener, tls, shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_budget() {
        assert_eq!(max_devices_for_fd_limit(20_000), 19_488);
        assert_eq!(max_devices_for_fd_limit(100), 0);
        assert!(open_file_limit().is_some_and(|l| l > 0));
    }

    #[test]
    fn config_validation() {
        assert!(EdgeConfig::default().validate().is_ok());
        let bad = EdgeConfig {
            max_payload: 0,
            ..EdgeConfig::default()
        };
        assert!(matches!(bad.validate(), Err(BrokerError::EdgeConfig(_))));
        let bad = EdgeConfig {
            press_limit: RateLimit {
                burst: 0,
                refill_every: Duration::from_secs(1),
            },
            ..EdgeConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn tls_files_errors_name_the_file() {
        let config = EdgeConfig {
            tls: Some(TlsFiles {
                cert_path: "/nonexistent/cert.pem".into(),
                key_path: "/nonexistent/key.pem".into(),
            }),
            ..EdgeConfig::default()
        };
        match config.tls_acceptor() {
            Err(BrokerError::Tls { path, .. }) => {
                assert_eq!(path, Path::new("/nonexistent/cert.pem"))
            }
            other => panic!("expected a TLS error, got {:?}", other.map(|a| a.is_some())),
        }
    }
}
