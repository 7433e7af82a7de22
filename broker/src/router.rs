//! Starts the embedded rumqttd 0.20 router on a loopback-only listener that accepts only the
//! internal credential, so the gateway and the edge are its only clients and nothing on the
//! host can bypass the edge's ACL by connecting to it directly.
//!
//! rumqttd has no shutdown: the router thread and its listener thread live as long as the
//! process. Start it once per process (tests start one per test; the leaked threads are idle).

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings, Strategy};

use crate::BrokerError;

/// The user name of the internal credential.
pub const INTERNAL_USERNAME: &str = "tenwatch-internal";

/// How the router is sized. [`RouterSettings::default`] is sized for 12,000 devices.
#[derive(Clone)]
pub struct RouterSettings {
    /// Connections the router admits: devices through the edge plus internal clients
    /// (gateway). rumqttd refuses everyone beyond it, so keep headroom over the edge's own cap.
    pub max_connections: usize,
    /// Largest payload the router accepts, for gateway publishes; the edge caps devices lower.
    pub max_payload_size: usize,
    /// Unacknowledged QoS 1 messages per connection (rumqttd caps outgoing at 100 anyway).
    pub max_inflight_count: usize,
    /// Messages the router sends a connection per scheduling round.
    pub max_outgoing_packet_count: u64,
    /// Size of one in-memory commit-log segment per filter. rumqttd never frees filter logs,
    /// so segment size × count bounds the memory one busy filter can hold.
    pub max_segment_size: usize,
    /// Segments kept per filter (see `max_segment_size`).
    pub max_segment_count: usize,
    /// How long rumqttd waits for a CONNECT on a new socket.
    pub connection_timeout_ms: u16,
    /// The internal password; `None` generates a random one at start (nothing outside this
    /// process needs it unless the gateway runs elsewhere).
    pub password: Option<String>,
    /// How long [`start_router`] waits for the listener to accept a TCP connection.
    pub start_timeout: Duration,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            max_connections: 12_500,
            max_payload_size: 64 * 1024,
            max_inflight_count: 100,
            max_outgoing_packet_count: 200,
            max_segment_size: 4 * 1024 * 1024,
            max_segment_count: 4,
            connection_timeout_ms: 5_000,
            password: None,
            start_timeout: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for RouterSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterSettings")
            .field("max_connections", &self.max_connections)
            .field("max_payload_size", &self.max_payload_size)
            .field("max_inflight_count", &self.max_inflight_count)
            .field("max_outgoing_packet_count", &self.max_outgoing_packet_count)
            .field("max_segment_size", &self.max_segment_size)
            .field("max_segment_count", &self.max_segment_count)
            .field("connection_timeout_ms", &self.connection_timeout_ms)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("start_timeout", &self.start_timeout)
            .finish()
    }
}

impl RouterSettings {
    /// Refuses values rumqttd would accept but then misbehave with (it panics on segments under
    /// 1 KiB and silently refuses every client with `max_connections = 0`).
    fn validate(&self) -> Result<(), BrokerError> {
        let bad = |what: &str| Err(BrokerError::RouterSettings(what.to_owned()));
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.max_segment_size < 1024 {
            return bad("max_segment_size must be at least 1024 bytes");
        }
        if self.max_segment_count == 0 {
            return bad("max_segment_count must be at least 1");
        }
        if self.max_payload_size == 0 || self.max_inflight_count == 0 {
            return bad("max_payload_size and max_inflight_count must be positive");
        }
        if self.max_outgoing_packet_count == 0 {
            return bad("max_outgoing_packet_count must be positive");
        }
        if self.password.as_deref() == Some("") {
            return bad("password must not be empty (leave it unset to generate one)");
        }
        Ok(())
    }
}

/// Where the running router listens and how to log in. Cheap to clone.
#[derive(Clone)]
pub struct RouterHandle {
    addr: SocketAddr,
    password: Arc<str>,
}

impl RouterHandle {
    /// The loopback address of the router's MQTT 3.1.1 listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The internal user name ([`INTERNAL_USERNAME`]).
    pub fn username(&self) -> &str {
        INTERNAL_USERNAME
    }

    /// The internal password.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for RouterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterHandle")
            .field("addr", &self.addr)
            .field("username", &INTERNAL_USERNAME)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Starts rumqttd on a dedicated thread and returns once its listener accepts TCP.
///
/// Blocks the calling thread for at most `settings.start_timeout` (normally a few
/// milliseconds); call it at start-up, not from a busy async task.
pub fn start_router(settings: RouterSettings) -> Result<RouterHandle, BrokerError> {
    settings.validate()?;

    // rumqttd binds by itself and never reports the port, so pick a free one first. Another
    // process could take it in between; the readiness probe below then fails clearly.
    let addr = {
        let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(BrokerError::RouterPort)?;
        probe.local_addr().map_err(BrokerError::RouterPort)?
    };

    let password: Arc<str> = match &settings.password {
        Some(p) => p.as_str().into(),
        None => {
            let mut raw = [0u8; 24];
            rand::thread_rng().fill_bytes(&mut raw);
            hex::encode(raw).into()
        }
    };

    let config = build_config(&settings, addr, &password);
    let (failed_tx, failed_rx) = std::sync::mpsc::channel::<String>();
    std::thread::Builder::new()
        .name("tenwatch-router".into())
        .spawn(move || {
            // Broker::new spawns the router thread; start() then runs the listener and only
            // returns if it fails (for example the port was taken).
            let mut broker = Broker::new(config);
            let outcome = match broker.start() {
                Ok(()) => "rumqttd stopped".to_owned(),
                Err(e) => format!("rumqttd failed: {e}"),
            };
            tracing::error!(%outcome, "router thread ended");
            let _ = failed_tx.send(outcome);
        })
        .map_err(BrokerError::RouterThread)?;

    wait_until_listening(addr, settings.start_timeout, &failed_rx)?;
    tracing::info!(%addr, "router listening (loopback, internal credential only)");
    Ok(RouterHandle { addr, password })
}

/// Every RouterConfig field is set on purpose: its `Default` refuses all clients.
fn build_config(settings: &RouterSettings, addr: SocketAddr, password: &str) -> Config {
    let router = RouterConfig {
        max_connections: settings.max_connections,
        max_outgoing_packet_count: settings.max_outgoing_packet_count,
        max_segment_size: settings.max_segment_size,
        max_segment_count: settings.max_segment_count,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Strategy::RoundRobin,
    };
    let connections = ConnectionSettings {
        connection_timeout_ms: settings.connection_timeout_ms,
        max_payload_size: settings.max_payload_size,
        max_inflight_count: settings.max_inflight_count,
        // rumqttd compares the static map in constant time.
        auth: Some(HashMap::from([(
            INTERNAL_USERNAME.to_owned(),
            password.to_owned(),
        )])),
        external_auth: None,
        // Filters are created on first subscribe (devices' down/ and cluster topics).
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "tenwatch-internal-v4".into(),
        listen: addr,
        tls: None,
        // rumqttd sleeps this long after every accept; any delay throttles reconnect storms
        // through the edge, which already paces devices itself.
        next_connection_delay_ms: 0,
        connections,
    };
    Config {
        id: 0,
        router,
        v4: Some(HashMap::from([("internal".to_owned(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    }
}

/// Polls the listener with plain TCP connects until one succeeds, the router thread reports a
/// failure, or the deadline passes.
fn wait_until_listening(
    addr: SocketAddr,
    timeout: Duration,
    failed: &std::sync::mpsc::Receiver<String>,
) -> Result<(), BrokerError> {
    let started = Instant::now();
    loop {
        if let Ok(detail) = failed.try_recv() {
            return Err(BrokerError::RouterNotReady {
                addr,
                waited: started.elapsed(),
                detail,
            });
        }
        let error = match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_probe) => return Ok(()),
            Err(e) => e,
        };
        if started.elapsed() >= timeout {
            return Err(BrokerError::RouterNotReady {
                addr,
                waited: started.elapsed(),
                detail: error.to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_passwords() {
        let settings = RouterSettings {
            password: Some("hunter2".into()),
            ..RouterSettings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
        let handle = RouterHandle {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 1)),
            password: "hunter2".into(),
        };
        assert!(!format!("{handle:?}").contains("hunter2"));
        assert_eq!(handle.password(), "hunter2");
    }

    #[test]
    fn invalid_settings_are_refused() {
        for s in [
            RouterSettings {
                max_connections: 0,
                ..RouterSettings::default()
            },
            RouterSettings {
                max_segment_size: 10,
                ..RouterSettings::default()
            },
            RouterSettings {
                password: Some(String::new()),
                ..RouterSettings::default()
            },
        ] {
            assert!(matches!(
                start_router(s),
                Err(BrokerError::RouterSettings(_))
            ));
        }
    }

    #[test]
    fn starts_and_accepts_tcp_with_generated_password() {
        let handle = start_router(RouterSettings::default()).expect("router starts");
        assert!(handle.addr().ip().is_loopback());
        assert_eq!(handle.password().len(), 48);
        assert_eq!(handle.username(), INTERNAL_USERNAME);
        TcpStream::connect(handle.addr()).expect("listener up");
    }
}
