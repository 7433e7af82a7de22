//! A plain rumqttd for the benchmark's *floor*: no authentication, no ACL, no edge, no gateway;
//! the same (vendored, `TCP_NODELAY`) rumqttd that tenwatch embeds. Loopback only.
//!
//! rumqttd has no shutdown: the broker lives as long as the process that started it.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings, Strategy};

/// Why the plain broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum PlainBrokerError {
    #[error("the plain broker listens on loopback only, not on {0}")]
    NotLoopback(SocketAddr),
    #[error("cannot start the broker thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("rumqttd did not listen on {addr} within {waited:?}: {detail}")]
    NotReady {
        addr: SocketAddr,
        waited: Duration,
        detail: String,
    },
}

/// Starts rumqttd on `addr` (a 127.x address) on its own thread and returns once it accepts TCP.
/// Sized like tenwatch's router (`broker/src/router.rs`) but with room for 20,000 clients.
pub fn start(addr: SocketAddr) -> Result<(), PlainBrokerError> {
    if !addr.ip().is_loopback() {
        return Err(PlainBrokerError::NotLoopback(addr));
    }
    let server = ServerSettings {
        name: "floor-v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: 64 * 1024,
            max_inflight_count: 100,
            // No auth at all: the floor measures MQTT fan-out alone.
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    // Every RouterConfig field is set on purpose: its Default refuses all clients.
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 20_500,
            max_outgoing_packet_count: 200,
            max_segment_size: 4 * 1024 * 1024,
            max_segment_count: 4,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Strategy::RoundRobin,
        },
        v4: Some(HashMap::from([("floor".to_owned(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    let (failed_tx, failed_rx) = std::sync::mpsc::channel::<String>();
    std::thread::Builder::new()
        .name("floor-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            let outcome = match broker.start() {
                Ok(()) => "rumqttd stopped".to_owned(),
                Err(e) => format!("rumqttd failed: {e}"),
            };
            tracing::error!(%outcome, "floor broker ended");
            let _ = failed_tx.send(outcome);
        })
        .map_err(PlainBrokerError::Thread)?;

    let started = Instant::now();
    let timeout = Duration::from_secs(5);
    loop {
        if let Ok(detail) = failed_rx.try_recv() {
            return Err(PlainBrokerError::NotReady {
                addr,
                waited: started.elapsed(),
                detail,
            });
        }
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_probe) => return Ok(()),
            Err(e) if started.elapsed() >= timeout => {
                return Err(PlainBrokerError::NotReady {
                    addr,
                    waited: started.elapsed(),
                    detail: e.to_string(),
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}
