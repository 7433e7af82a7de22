//! Starts the embedded rumqttd 0.20 router, reached in-process through its local links
//! ([`RouterHandle::link`]), and on a loopback-only listener that accepts only the internal
//! credential, so nothing on the host can bypass the edge's ACL by connecting to it directly.
//!
//! rumqttd has no shutdown: the router thread and its listener thread live as long as the
//! process. Start it once per process (tests start one per test; the leaked threads are idle).

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use rumqttd::local::{LinkBuilder, LinkError, LinkRx, LinkTx};
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{ConnAck, Packet};
use rumqttd::{
    ConnectionSettings, LinkType, Notification, Router, RouterConfig, Server, ServerSettings,
    Strategy,
};

use crate::BrokerError;

/// The user name of the internal credential.
pub const INTERNAL_USERNAME: &str = "tenwatch-internal";

/// How the router is sized. [`RouterSettings::default`] is sized for 18,000 devices (the edge's default cap).
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
            max_connections: 18_500,
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

/// Opens an in-process link to the router: (client id, clean session). rumqttd's channel type
/// into its router is not nameable outside the crate, so the handle keeps this closure over it.
/// rumqttd's `LinkError` is large (it can hold a whole event): the closure says why in words.
type LinkFactory =
    dyn Fn(&str, bool) -> Result<(LinkTx, LinkRx, Notification), String> + Send + Sync;

/// Where the running router listens, how to log in, and how to link to it in-process. Cheap to
/// clone.
#[derive(Clone)]
pub struct RouterHandle {
    addr: SocketAddr,
    password: Arc<str>,
    links: Arc<LinkFactory>,
}

/// An in-process connection to the router: no socket, no file descriptor. Publishes and
/// subscriptions on it are QoS 0 (rumqttd's local links carry no QoS 1 state); the router and
/// its links share one process and one fate, so the hop loses nothing the store and the units'
/// repeat-until-ack do not already cover.
pub struct LocalLink {
    pub tx: LinkTx,
    pub rx: LinkRx,
    /// The router kept a session for this client id (a reconnect with clean session off).
    pub session_present: bool,
}

impl RouterHandle {
    /// Connects `client_id` to the router in-process. It **blocks** the calling thread until
    /// the router answers (a few microseconds, longer while it is busy): call it from
    /// `tokio::task::spawn_blocking`. A client id already connected is taken over, as over TCP.
    pub fn link(&self, client_id: &str, clean_session: bool) -> Result<LocalLink, BrokerError> {
        let (tx, rx, first) =
            (self.links)(client_id, clean_session).map_err(BrokerError::RouterLink)?;
        let session_present = match first {
            Notification::DeviceAck(ack) => match Packet::from(ack) {
                Packet::ConnAck(
                    ConnAck {
                        session_present, ..
                    },
                    _,
                ) => session_present,
                _ => false,
            },
            _ => false,
        };
        Ok(LocalLink {
            tx,
            rx,
            session_present,
        })
    }

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

    let (router_config, server_settings) = build_config(&settings, addr, &password);
    // Router::spawn starts rumqttd's router thread and gives the channel into it; the TCP
    // listener and the local links all send there.
    let router_tx = Router::new(0, router_config).spawn();
    let (failed_tx, failed_rx) = std::sync::mpsc::channel::<String>();
    {
        let router_tx = router_tx.clone();
        std::thread::Builder::new()
            .name("tenwatch-router".into())
            .spawn(move || {
                // What Broker::start does for one v4 listener: its own current-thread runtime;
                // start() only returns if it fails (for example the port was taken).
                let outcome = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        let mut server = Server::new(server_settings, router_tx, V4);
                        match rt.block_on(server.start(LinkType::Remote)) {
                            Ok(()) => "rumqttd stopped".to_owned(),
                            Err(e) => format!("rumqttd failed: {e}"),
                        }
                    }
                    Err(e) => format!("rumqttd's runtime did not start: {e}"),
                };
                tracing::error!(%outcome, "router thread ended");
                let _ = failed_tx.send(outcome);
            })
            .map_err(BrokerError::RouterThread)?;
    }

    wait_until_listening(addr, &password, settings.start_timeout, &failed_rx)?;
    tracing::info!(%addr, "router listening (loopback, internal credential only)");
    let links: Arc<LinkFactory> = Arc::new(move |client_id: &str, clean_session: bool| {
        LinkBuilder::new(client_id, router_tx.clone())
            .clean_session(clean_session)
            // As on the TCP listener: a publish to a topic no one subscribed to yet creates its
            // filter. Without it rumqttd drops the whole link on such a publish.
            .dynamic_filters(true)
            .build()
            .map_err(|e: LinkError| e.to_string())
    });
    Ok(RouterHandle {
        addr,
        password,
        links,
    })
}

/// Every RouterConfig field is set on purpose: its `Default` refuses all clients.
fn build_config(
    settings: &RouterSettings,
    addr: SocketAddr,
    password: &str,
) -> (RouterConfig, ServerSettings) {
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
    (router, server)
}

/// Polls the listener until it accepts a connection, the router thread reports a failure, or
/// the deadline passes. The connection that gets through says a proper MQTT hello before it
/// closes ([`hello_and_goodbye`]): a bare TCP probe closed at once made rumqttd log an error
/// at every start.
fn wait_until_listening(
    addr: SocketAddr,
    password: &str,
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
            Ok(probe) => {
                // Listening is what was asked; a hello that goes wrong only says so.
                if let Err(e) = hello_and_goodbye(probe, password) {
                    tracing::debug!(error = %e, "the router's readiness probe did not say goodbye");
                }
                return Ok(());
            }
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

/// MQTT 3.1.1 on a fresh connection to the router: CONNECT with the internal credential (clean
/// session), wait for the CONNACK, close.
fn hello_and_goodbye(mut probe: TcpStream, password: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let field = |out: &mut Vec<u8>, s: &[u8]| {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s);
    };
    let mut body = Vec::new();
    field(&mut body, b"MQTT");
    // Level 4; user name, password and a clean session; keep-alive 10 s.
    body.extend_from_slice(&[4, 0b1100_0010, 0, 10]);
    field(&mut body, b"tenwatch-router-probe");
    field(&mut body, INTERNAL_USERNAME.as_bytes());
    field(&mut body, password.as_bytes());
    let mut packet = vec![0x10];
    let mut left = body.len();
    loop {
        let mut byte = (left % 128) as u8;
        left /= 128;
        if left > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if left == 0 {
            break;
        }
    }
    packet.extend_from_slice(&body);
    probe.set_read_timeout(Some(Duration::from_secs(1)))?;
    probe.write_all(&packet)?;
    let mut connack = [0u8; 4];
    probe.read_exact(&mut connack)?;
    // Closed without a DISCONNECT: rumqttd takes that as a peer gone (an info line); a
    // DISCONNECT packet then the close reach its router twice, and it logs an error.
    match connack {
        [0x20, 0x02, _, 0] => Ok(()),
        other => Err(std::io::Error::other(format!("CONNACK {other:?}"))),
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
            links: Arc::new(|_: &str, _: bool| Err("no router in this test".to_owned())),
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

#[cfg(test)]
mod link_tests {
    use super::*;

    /// Two in-process links: what one publishes on a topic the other subscribed to arrives,
    /// and the router's Unschedule is answered so that a long stream keeps flowing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_links_carry_messages_both_ways() {
        let router = start_router(RouterSettings::default()).expect("router starts");
        let (r1, r2) = (router.clone(), router.clone());
        let mut sub = tokio::task::spawn_blocking(move || r1.link("sub", true))
            .await
            .unwrap()
            .expect("link");
        let mut publ = tokio::task::spawn_blocking(move || r2.link("pub", true))
            .await
            .unwrap()
            .expect("link");
        assert!(!sub.session_present);
        // A publish no one listens to yet does not cost the publisher its link.
        publ.tx.publish("nobody/listens", "x").expect("publish");
        sub.tx.subscribe("t/#").expect("subscribe");
        // The SUBACK says the filter is in place.
        loop {
            match sub.rx.next().await.expect("rx") {
                Some(Notification::DeviceAck(_)) => break,
                Some(Notification::Unschedule) => sub.rx.wake().await.expect("wake"),
                _ => {}
            }
        }
        const N: usize = 5_000;
        for i in 0..N {
            publ.tx
                .publish(format!("t/{i}"), format!("{i}"))
                .expect("publish");
        }
        let mut got = 0;
        while got < N {
            match sub.rx.next().await.expect("rx") {
                Some(Notification::Forward(f)) => {
                    assert_eq!(f.publish.payload, format!("{got}").into_bytes());
                    got += 1;
                }
                Some(Notification::Unschedule) => sub.rx.wake().await.expect("wake"),
                _ => {}
            }
        }
    }

    /// A link that says "ready" after its own DISCONNECT (the race of a replaced session and
    /// a busy router) must not stop the router for everyone else (vendor/rumqttd/TENWATCH.md).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wake_after_a_disconnect_leaves_the_router_serving() {
        use rumqttd::protocol::{Disconnect, DisconnectReasonCode};
        let router = start_router(RouterSettings::default()).expect("router starts");
        // A plain thread, not spawn_blocking: if the router dies, the blocked opener must not
        // keep the test's runtime from shutting down.
        let open = |id: &'static str| {
            let (router, (tx, rx)) = (router.clone(), tokio::sync::oneshot::channel());
            std::thread::spawn(move || tx.send(router.link(id, true)));
            rx
        };
        let mut gone = open("gone").await.unwrap().expect("link");
        gone.tx
            .send(Packet::Disconnect(
                Disconnect {
                    reason_code: DisconnectReasonCode::NormalDisconnection,
                },
                None,
            ))
            .await
            .expect("disconnect sent");
        // The same channel, in order: the router has removed "gone" when it reads this.
        gone.rx.wake().await.expect("wake sent");
        let serving = async {
            let mut sub = open("sub").await.unwrap().expect("link");
            let mut publ = open("pub").await.unwrap().expect("link");
            sub.tx.subscribe("t").expect("subscribe");
            loop {
                match sub.rx.next().await.expect("the router still answers") {
                    Some(Notification::DeviceAck(_)) => break,
                    Some(Notification::Unschedule) => sub.rx.wake().await.expect("wake"),
                    _ => {}
                }
            }
            publ.tx.publish("t", "still here").expect("publish");
            loop {
                match sub.rx.next().await.expect("the router still forwards") {
                    Some(Notification::Forward(f)) => {
                        assert_eq!(f.publish.payload, "still here".as_bytes());
                        break;
                    }
                    Some(Notification::Unschedule) => sub.rx.wake().await.expect("wake"),
                    _ => {}
                }
            }
        };
        // A dead router thread leaves these waits hanging: give up loudly instead.
        tokio::time::timeout(Duration::from_secs(10), serving)
            .await
            .expect("the router stopped serving after a wake from a removed link");
    }
}
