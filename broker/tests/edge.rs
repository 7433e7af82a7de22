//! The device edge against the real thing: an embedded rumqttd router, real TCP (and TLS), and
//! rumqttc as the device client. Each test starts its own router and edge on port 0 and awaits
//! events (presence, MQTT packets, socket EOF) rather than sleeping.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
    SubscribeFilter, SubscribeReasonCode,
};
use rumqttd::Notification;
use tenwatch_broker::codec::{self, connack, packet, Connect};
use tenwatch_broker::router::LocalLink;
use tenwatch_broker::{
    start_router, AuthRefusal, BoxFuture, DeviceAuthority, DeviceGrant, DisconnectReason, Edge,
    EdgeConfig, EdgeStats, PresenceEvent, RateLimit, RouterHandle, RouterSettings, UplinkClosed,
    UplinkSink,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout, timeout_at, Instant};

/// Upper bound for anything a test awaits; generous for a loaded 2-core CI box.
const WAIT: Duration = Duration::from_secs(10);

/// What dev1 subscribes to in normal operation: its downlink and its cluster, at QoS 1.
const DEVICE_FILTERS: [(&str, QoS); 2] = [
    ("tw/d/dev1/down/#", QoS::AtLeastOnce),
    ("tw/c/cl1/#", QoS::AtLeastOnce),
];

/// A registry of (device → password, cluster) that reports presence into a bounded channel.
struct TestAuthority {
    devices: HashMap<String, (String, String)>,
    presence: mpsc::Sender<PresenceEvent>,
}

impl DeviceAuthority for TestAuthority {
    fn authenticate<'a>(
        &'a self,
        device: &'a str,
        password: &'a [u8],
    ) -> BoxFuture<'a, Result<DeviceGrant, AuthRefusal>> {
        Box::pin(async move {
            match self.devices.get(device) {
                Some((p, cluster)) if p.as_bytes() == password => Ok(DeviceGrant {
                    cluster: cluster.clone(),
                }),
                Some(_) if device == "disabled" => Err(AuthRefusal::NotAuthorized),
                _ => Err(AuthRefusal::BadCredentials),
            }
        })
    }

    fn presence(&self, event: PresenceEvent) {
        self.presence
            .try_send(event)
            .expect("test presence queue has room");
    }
}

struct Harness {
    router: RouterHandle,
    addr: SocketAddr,
    tls_addr: SocketAddr,
    edge: Edge,
    stats: Arc<EdgeStats>,
    presence: mpsc::Receiver<PresenceEvent>,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Router + edge (TCP and TLS listeners) with devices dev1..dev3 in cluster cl1, dev4 in cl2.
async fn spawn_edge(config: EdgeConfig) -> Harness {
    spawn_edge_with(config, None).await
}

async fn spawn_edge_with(config: EdgeConfig, uplink: Option<Arc<dyn UplinkSink>>) -> Harness {
    let router = start_router(RouterSettings::default()).expect("router starts");
    let (tx, presence) = mpsc::channel(1024);
    let mut devices = HashMap::new();
    for (d, c) in [
        ("dev1", "cl1"),
        ("dev2", "cl1"),
        ("dev3", "cl1"),
        ("dev4", "cl2"),
        ("disabled", "cl1"),
    ] {
        devices.insert(d.to_owned(), (format!("pw-{d}"), c.to_owned()));
    }
    let authority = Arc::new(TestAuthority {
        devices,
        presence: tx,
    });
    let stats = Arc::new(EdgeStats::default());
    let mut edge =
        Edge::new(config, router.clone(), authority, stats.clone()).expect("edge config");
    if let Some(sink) = uplink {
        edge = edge.with_uplink(sink);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tls_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let tls_addr = tls_listener.local_addr().expect("addr");
    let acceptor = tenwatch_broker::load_tls_acceptor(
        &fixture("localhost.cert.pem"),
        &fixture("localhost.key.pem"),
    )
    .expect("tls fixture loads");
    let (shutdown, shutdown_rx) = oneshot::channel::<()>();
    let (e1, e2) = (edge.clone(), edge.clone());
    let served = tokio::spawn(async move {
        let signal = async move {
            let _ = shutdown_rx.await;
        };
        let (tls_stop_tx, tls_stop_rx) = oneshot::channel::<()>();
        let tls = tokio::spawn(async move {
            e2.serve(tls_listener, Some(acceptor), async move {
                let _ = tls_stop_rx.await;
            })
            .await
        });
        e1.serve(listener, None, signal).await.expect("edge serves");
        let _ = tls_stop_tx.send(());
        let _ = tls.await;
    });
    Harness {
        router,
        addr,
        tls_addr,
        edge,
        stats,
        presence,
        shutdown: Some(shutdown),
        served: Some(served),
    }
}

fn quick_config() -> EdgeConfig {
    EdgeConfig {
        connect_timeout: Duration::from_millis(600),
        tls_handshake_timeout: Duration::from_millis(600),
        ..EdgeConfig::default()
    }
}

impl Harness {
    async fn next_presence(&mut self) -> PresenceEvent {
        timeout(WAIT, self.presence.recv())
            .await
            .expect("presence event in time")
            .expect("presence channel open")
    }

    /// Awaits the next `Connected` for `device` and returns its session id.
    async fn connected(&mut self, device: &str) -> u64 {
        match self.next_presence().await {
            PresenceEvent::Connected {
                device: d, session, ..
            } if d == device => session,
            other => panic!("expected Connected({device}), got {other:?}"),
        }
    }

    async fn disconnected(&mut self, device: &str) -> (u64, DisconnectReason) {
        match self.next_presence().await {
            PresenceEvent::Disconnected {
                device: d,
                session,
                reason,
            } if d == device => (session, reason),
            other => panic!("expected Disconnected({device}), got {other:?}"),
        }
    }

    /// A rumqttc client logged in with `device`'s own password, CONNACK received.
    async fn device(&mut self, device: &str) -> Client {
        let client = Client::connect(self.addr, device, &format!("pw-{device}"), 5)
            .await
            .expect("device connects");
        self.connected(device).await;
        client
    }

    /// An in-process client of the router (as the edge's own links are), subscribed to
    /// `filter` once the router confirmed it.
    async fn local(&self, filter: &str) -> LocalLink {
        let router = self.router.clone();
        let mut link = tokio::task::spawn_blocking(move || router.link("watcher", true))
            .await
            .expect("link task")
            .expect("link");
        link.tx.subscribe(filter).expect("subscribe");
        loop {
            match next_notification(&mut link).await {
                Notification::DeviceAck(_) => return link,
                _ => continue,
            }
        }
    }

    /// A rumqttc client straight on the router with the internal credential, subscribed to
    /// `filter`.
    async fn internal(&self, filter: &str) -> Client {
        let mut opts = MqttOptions::new("gateway-test", "127.0.0.1", self.router.addr().port());
        opts.set_credentials(self.router.username(), self.router.password());
        let mut client = Client::start(opts).await.expect("internal client connects");
        client.subscribe(&[(filter, QoS::AtLeastOnce)]).await;
        client
    }
}

/// The next notification on an in-process link, waking it when the router pauses it.
async fn next_notification(link: &mut LocalLink) -> Notification {
    let deadline = Instant::now() + WAIT;
    loop {
        match timeout_at(deadline, link.rx.next())
            .await
            .expect("notification in time")
            .expect("link open")
        {
            Some(Notification::Unschedule) => link.rx.wake().await.expect("wake"),
            Some(n) => return n,
            None => continue,
        }
    }
}

/// A rumqttc client whose event loop runs in its own task, until its first error.
struct Client {
    client: AsyncClient,
    events: mpsc::Receiver<Result<Packet, ConnectionError>>,
}

impl Client {
    async fn connect(
        addr: SocketAddr,
        id: &str,
        password: &str,
        keep_alive: u64,
    ) -> Result<Self, ConnectionError> {
        let mut opts = MqttOptions::new(id, "127.0.0.1", addr.port());
        opts.set_credentials(id, password);
        opts.set_keep_alive(Duration::from_secs(keep_alive));
        opts.set_max_packet_size(256 * 1024, 256 * 1024);
        Self::start(opts).await
    }

    async fn start(opts: MqttOptions) -> Result<Self, ConnectionError> {
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        // Poll until CONNACK here so a refusal surfaces as the error rumqttc reports.
        loop {
            match timeout(WAIT, eventloop.poll())
                .await
                .expect("CONNACK in time")?
            {
                Event::Incoming(Packet::ConnAck(_)) => break,
                _ => continue,
            }
        }
        let (tx, events) = mpsc::channel(1024);
        tokio::spawn(pump(eventloop, tx));
        Ok(Self { client, events })
    }

    /// The next incoming packet matching `want`, skipping others; `Err` if the connection
    /// ended first. One deadline for the whole wait: keep-alive PINGRESPs must not extend it.
    async fn next(
        &mut self,
        want: impl Fn(&Packet) -> bool,
    ) -> Result<Packet, Option<ConnectionError>> {
        let deadline = Instant::now() + WAIT;
        loop {
            match timeout_at(deadline, self.events.recv())
                .await
                .expect("packet in time")
            {
                Some(Ok(p)) if want(&p) => return Ok(p),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(Some(e)),
                None => return Err(None),
            }
        }
    }

    /// The next PUBLISH.
    async fn next_publish(&mut self) -> rumqttc::Publish {
        publish_of(
            self.next(|p| matches!(p, Packet::Publish(_)))
                .await
                .expect("PUBLISH"),
        )
    }

    /// Subscribes to `filters` in one packet and returns the SUBACK's codes.
    async fn subscribe(&mut self, filters: &[(&str, QoS)]) -> Vec<SubscribeReasonCode> {
        let filters = filters
            .iter()
            .map(|(filter, qos)| SubscribeFilter::new((*filter).to_owned(), *qos));
        self.client
            .subscribe_many(filters)
            .await
            .expect("subscribe");
        match self.next(|p| matches!(p, Packet::SubAck(_))).await {
            Ok(Packet::SubAck(ack)) => ack.return_codes,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    async fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("queue publish");
    }

    /// Waits until the connection has ended (error from the event loop).
    async fn closed(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            match timeout_at(deadline, self.events.recv())
                .await
                .expect("close in time")
            {
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return,
            }
        }
    }
}

/// Forwards incoming packets; stops at the first error so rumqttc never reconnects on its own
/// (a reconnecting client would fight the replacement tests).
async fn pump(mut eventloop: EventLoop, tx: mpsc::Sender<Result<Packet, ConnectionError>>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(p)) => {
                if tx.send(Ok(p)).await.is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(_)) => {}
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

fn publish_of(p: Packet) -> rumqttc::Publish {
    match p {
        Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

/// A raw MQTT 3.1.1 CONNECT for tests that need exact control of the bytes.
fn raw_connect(id: &str, password: &str, keep_alive: u16) -> Vec<u8> {
    codec::encode_connect(&Connect {
        clean_session: true,
        keep_alive,
        client_id: id.into(),
        will: None,
        username: Some(id.into()),
        password: Some(password.as_bytes().to_vec()),
    })
    .expect("encode")
}

/// A device speaking raw MQTT, for tests that must not acknowledge or must see exact packets.
struct RawDevice {
    s: TcpStream,
    buf: BytesMut,
}

impl RawDevice {
    /// Logs in as `id` (keep-alive 30 s, clean session) and reads the CONNACK, which must
    /// accept.
    async fn login(addr: SocketAddr, id: &str) -> Self {
        let (dev, connack) = Self::connect(addr, &raw_connect(id, &format!("pw-{id}"), 30)).await;
        assert_eq!(connack, (false, connack::ACCEPTED));
        dev
    }

    /// Sends `connect`; returns the device and its CONNACK (session present, code).
    async fn connect(addr: SocketAddr, connect: &[u8]) -> (Self, (bool, u8)) {
        let s = TcpStream::connect(addr).await.expect("connect");
        let mut dev = Self {
            s,
            buf: BytesMut::new(),
        };
        dev.send(connect).await;
        let f = dev.frame().await;
        assert_eq!(f.packet_type(), packet::CONNACK);
        let connack = codec::parse_connack(f.body()).expect("CONNACK");
        (dev, connack)
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.expect("write");
    }

    /// The next frame from the edge.
    async fn frame(&mut self) -> codec::Frame {
        loop {
            if let Some(f) = codec::next_frame(&mut self.buf, 1 << 20).expect("valid frame") {
                return f;
            }
            let n = timeout(WAIT, self.s.read_buf(&mut self.buf))
                .await
                .expect("frame in time")
                .expect("read");
            assert!(n > 0, "closed before a full frame");
        }
    }

    /// The next PUBLISH as (QoS, packet id, payload).
    async fn publish(&mut self) -> (u8, Option<u16>, Vec<u8>) {
        let f = self.frame().await;
        assert_eq!(f.packet_type(), packet::PUBLISH, "expected a PUBLISH");
        let p = codec::parse_publish(f.flags(), f.body()).expect("PUBLISH");
        (p.qos, p.packet_id, p.payload.to_vec())
    }

    /// Nothing arrives for `quiet` (asserting an absence has nothing to await).
    async fn nothing_for(&mut self, quiet: Duration) {
        if !self.buf.is_empty() {
            panic!("unexpected bytes: {:?}", &self.buf[..]);
        }
        if let Ok(read) = timeout(quiet, self.s.read_buf(&mut self.buf)).await {
            panic!("unexpected read {read:?}: {:?}", &self.buf[..]);
        }
    }
}

/// Reads one frame (e.g. a CONNACK) from a raw stream.
async fn read_raw_frame<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> codec::Frame {
    let mut buf = BytesMut::with_capacity(64);
    loop {
        if let Some(f) = codec::next_frame(&mut buf, 4096).expect("valid frame") {
            return f;
        }
        let n = timeout(WAIT, s.read_buf(&mut buf))
            .await
            .expect("frame in time")
            .expect("read");
        assert!(n > 0, "closed before a full frame");
    }
}

#[tokio::test]
async fn good_login_publishes_reach_the_internal_subscriber() {
    let mut h = spawn_edge(quick_config()).await;
    let mut gateway = h.internal("tw/d/+/up/#").await;
    let mut dev = h.device("dev1").await;

    dev.publish("tw/d/dev1/up/press", br#"{"seq":1,"kind":"help"}"#.to_vec())
        .await;
    let got = gateway.next_publish().await;
    assert_eq!(got.topic, "tw/d/dev1/up/press");
    assert_eq!(&got.payload[..], br#"{"seq":1,"kind":"help"}"#);
    dev.next(|p| matches!(p, Packet::PubAck(_)))
        .await
        .expect("the edge's PUBACK");
    assert_eq!(h.stats.snapshot().connected, 1);
    assert_eq!(h.edge.online_devices(), 1);

    dev.client.disconnect().await.expect("disconnect");
    let (_, reason) = h.disconnected("dev1").await;
    assert_eq!(reason, DisconnectReason::Clean);
    assert_eq!(h.stats.snapshot().connected, 0);
}

#[tokio::test]
async fn refused_logins_get_a_real_connack() {
    let mut h = spawn_edge(quick_config()).await;
    let cases = [
        ("dev1", "wrong", ConnectReturnCode::BadUserNamePassword),
        (
            "nobody",
            "pw-nobody",
            ConnectReturnCode::BadUserNamePassword,
        ),
        ("disabled", "nope", ConnectReturnCode::NotAuthorized),
        ("a/b", "x", ConnectReturnCode::BadClientId),
    ];
    for (id, password, code) in cases {
        match Client::connect(h.addr, id, password, 5).await {
            Err(ConnectionError::ConnectionRefused(got)) => assert_eq!(got, code, "{id}"),
            Err(other) => panic!("{id}: expected a CONNACK refusal, got {other:?}"),
            Ok(_) => panic!("{id}: login must be refused"),
        }
    }
    for (id, refusal) in [
        ("dev1", AuthRefusal::BadCredentials),
        ("nobody", AuthRefusal::BadCredentials),
        ("disabled", AuthRefusal::NotAuthorized),
    ] {
        match h.next_presence().await {
            PresenceEvent::Refused {
                device, refusal: r, ..
            } => assert_eq!((device.as_str(), r), (id, refusal)),
            other => panic!("expected Refused({id}), got {other:?}"),
        }
    }
    assert_eq!(h.stats.snapshot().logins_refused, 4);
}

#[tokio::test]
async fn username_must_equal_client_id() {
    let h = spawn_edge(quick_config()).await;
    let mut opts = MqttOptions::new("dev1", "127.0.0.1", h.addr.port());
    opts.set_credentials("dev2", "pw-dev2");
    match Client::start(opts).await {
        Err(ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, ConnectReturnCode::BadUserNamePassword)
        }
        Err(other) => panic!("expected refusal, got {other:?}"),
        Ok(_) => panic!("borrowed credentials must be refused"),
    }
}

#[tokio::test]
async fn other_protocol_levels_get_connack_1() {
    let h = spawn_edge(quick_config()).await;
    let mut bytes = raw_connect("dev1", "pw-dev1", 30);
    bytes[8] = 5; // protocol level byte
    let mut s = TcpStream::connect(h.addr).await.expect("connect");
    s.write_all(&bytes).await.expect("write");
    let f = read_raw_frame(&mut s).await;
    assert_eq!(f.packet_type(), codec::packet::CONNACK);
    assert_eq!(
        codec::parse_connack(f.body()),
        Ok((false, connack::UNACCEPTABLE_PROTOCOL))
    );
}

#[tokio::test]
async fn forged_publish_is_dropped_and_closes_the_connection() {
    let mut h = spawn_edge(quick_config()).await;
    let mut gateway = h.internal("tw/d/+/up/#").await;
    let mut forger = h.device("dev1").await;
    let honest = h.device("dev2").await;

    forger
        .publish("tw/d/dev2/up/press", br#"{"seq":9}"#.to_vec())
        .await;
    let (_, reason) = h.disconnected("dev1").await;
    assert_eq!(
        reason,
        DisconnectReason::Violation("forged topic tw/d/dev2/up/press".into())
    );
    forger.closed().await;
    assert_eq!(h.stats.snapshot().acl_publish_refused, 1);

    // The next uplink the gateway sees is dev2's own: the forged one never reached the router.
    honest
        .publish("tw/d/dev2/up/heartbeat", b"{}".to_vec())
        .await;
    let got = gateway.next_publish().await;
    assert_eq!(got.topic, "tw/d/dev2/up/heartbeat");
}

#[tokio::test]
async fn subscribe_refuses_foreign_filters_in_the_same_packet() {
    let mut h = spawn_edge(quick_config()).await;
    let gateway = h.internal("tw/d/+/up/#").await;
    let mut dev = h.device("dev1").await;

    let codes = dev
        .subscribe(&[
            ("#", QoS::AtLeastOnce),
            ("tw/c/cl2/#", QoS::AtLeastOnce),
            ("tw/c/cl1/#", QoS::AtLeastOnce),
            ("tw/d/dev1/down/ack", QoS::AtLeastOnce),
        ])
        .await;
    assert_eq!(
        codes,
        vec![
            SubscribeReasonCode::Failure,
            SubscribeReasonCode::Failure,
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
        ]
    );

    // A packet with nothing allowed is answered by the edge alone.
    let codes = dev
        .subscribe(&[("tw/d/dev2/down/#", QoS::AtLeastOnce)])
        .await;
    assert_eq!(codes, vec![SubscribeReasonCode::Failure]);
    assert_eq!(h.stats.snapshot().acl_subscribe_refused, 3);

    // Cluster cl2's alert is not delivered; cl1's (published after it) is the first to arrive.
    gateway
        .client
        .publish("tw/c/cl2/alert", QoS::AtLeastOnce, false, b"cl2".to_vec())
        .await
        .expect("publish");
    gateway
        .client
        .publish("tw/c/cl1/alert", QoS::AtLeastOnce, false, b"cl1".to_vec())
        .await
        .expect("publish");
    let got = dev.next_publish().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("tw/c/cl1/alert", &b"cl1"[..])
    );
    gateway
        .client
        .publish(
            "tw/d/dev1/down/ack",
            QoS::AtLeastOnce,
            false,
            b"ack".to_vec(),
        )
        .await
        .expect("publish");
    let got = dev.next_publish().await;
    assert_eq!(got.topic, "tw/d/dev1/down/ack");
    // The device is still connected: refused filters are not a violation.
    assert_eq!(h.stats.snapshot().connected, 1);
}

#[tokio::test]
async fn oversize_payload_is_refused() {
    let mut h = spawn_edge(quick_config()).await;
    let mut gateway = h.internal("tw/d/+/up/#").await;

    // Just over the cap: parsed, then refused.
    let mut dev = h.device("dev1").await;
    dev.publish("tw/d/dev1/up/heartbeat", vec![b'x'; 2049])
        .await;
    let (_, reason) = h.disconnected("dev1").await;
    assert_eq!(
        reason,
        DisconnectReason::Violation("oversize payload".into())
    );
    dev.closed().await;

    // Far over: refused from the frame header, before the body is buffered.
    let mut dev = h.device("dev1").await;
    dev.publish("tw/d/dev1/up/heartbeat", vec![b'x'; 200_000])
        .await;
    let (_, reason) = h.disconnected("dev1").await;
    assert_eq!(
        reason,
        DisconnectReason::Violation("oversize payload".into())
    );
    dev.closed().await;
    assert_eq!(h.stats.snapshot().oversize_refused, 2);

    // At the cap is fine.
    let dev = h.device("dev1").await;
    dev.publish("tw/d/dev1/up/heartbeat", vec![b'x'; 2048])
        .await;
    let got = gateway.next_publish().await;
    assert_eq!(got.payload.len(), 2048);
}

#[tokio::test]
async fn press_flood_is_rate_limited_without_starving_others() {
    let config = EdgeConfig {
        press_limit: RateLimit {
            burst: 5,
            // No refill during the test, so the count is exact.
            refill_every: Duration::from_secs(600),
        },
        ..quick_config()
    };
    let mut h = spawn_edge(config).await;
    let mut gateway = h.internal("tw/d/+/up/#").await;
    let mut flooder = h.device("dev1").await;
    let other = h.device("dev2").await;

    for seq in 0..20 {
        flooder
            .publish(
                "tw/d/dev1/up/press",
                format!("{{\"seq\":{seq}}}").into_bytes(),
            )
            .await;
    }
    // Every press is acknowledged (the dropped ones by the edge), so the device's inflight
    // window never stalls.
    for _ in 0..20 {
        flooder
            .next(|p| matches!(p, Packet::PubAck(_)))
            .await
            .expect("PUBACK");
    }
    other
        .publish("tw/d/dev2/up/press", br#"{"seq":1}"#.to_vec())
        .await;

    // The router has taken dev1's forwarded presses before acking them, so they precede
    // dev2's in the gateway's stream.
    let mut from_flooder = 0;
    loop {
        let p = gateway.next_publish().await;
        match p.topic.as_str() {
            "tw/d/dev1/up/press" => from_flooder += 1,
            "tw/d/dev2/up/press" => break,
            other => panic!("unexpected topic {other}"),
        }
    }
    assert_eq!(from_flooder, 5);
    assert_eq!(h.stats.snapshot().rate_limited, 15);
    assert_eq!(h.stats.snapshot().connected, 2);
}

#[tokio::test]
async fn press_limits_survive_a_reconnect() {
    let config = EdgeConfig {
        press_limit: RateLimit {
            burst: 3,
            // No refill during the test, so the count is exact.
            refill_every: Duration::from_secs(600),
        },
        ..quick_config()
    };
    let mut h = spawn_edge(config).await;
    let mut gateway = h.internal("tw/d/+/up/#").await;
    let press = |seq: u32| format!("{{\"seq\":{seq}}}").into_bytes();
    let mut flooder = h.device("dev1").await;
    for seq in 0..3 {
        flooder.publish("tw/d/dev1/up/press", press(seq)).await;
        flooder
            .next(|p| matches!(p, Packet::PubAck(_)))
            .await
            .expect("PUBACK");
    }
    flooder.client.disconnect().await.expect("disconnect");
    h.disconnected("dev1").await;
    // A new session does not bring a new bucket.
    let flooder = h.device("dev1").await;
    for seq in 3..6 {
        flooder.publish("tw/d/dev1/up/press", press(seq)).await;
    }
    let other = h.device("dev2").await;
    other.publish("tw/d/dev2/up/press", press(1)).await;

    let mut from_flooder = 0;
    loop {
        let p = gateway.next_publish().await;
        match p.topic.as_str() {
            "tw/d/dev1/up/press" => from_flooder += 1,
            "tw/d/dev2/up/press" => break,
            other => panic!("unexpected topic {other}"),
        }
    }
    assert_eq!(from_flooder, 3, "the burst, across both sessions");
    assert_eq!(h.stats.snapshot().rate_limited, 3);
}

#[tokio::test]
async fn a_device_logging_in_too_often_is_told_to_come_back_later() {
    let config = EdgeConfig {
        connect_limit: RateLimit {
            burst: 2,
            refill_every: Duration::from_secs(600),
        },
        ..quick_config()
    };
    let mut h = spawn_edge(config).await;
    for _ in 0..2 {
        let dev = h.device("dev1").await;
        dev.client.disconnect().await.expect("disconnect");
        h.disconnected("dev1").await;
    }
    match Client::connect(h.addr, "dev1", "pw-dev1", 5).await {
        Err(ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, ConnectReturnCode::ServiceUnavailable)
        }
        Err(other) => panic!("expected a CONNACK refusal, got {other:?}"),
        Ok(_) => panic!("the third login within the limit's period must be refused"),
    }
    // Another device is not held back by it.
    h.device("dev2").await;
    assert_eq!(h.stats.snapshot().logins_refused, 1);
}

#[tokio::test]
async fn idle_socket_does_not_block_others_and_is_closed_after_the_deadline() {
    let mut h = spawn_edge(quick_config()).await;
    let started = Instant::now();
    let mut idle = TcpStream::connect(h.addr).await.expect("connect");

    // Another device logs in while the idle socket holds its slot.
    let _dev = h.device("dev1").await;
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "login waited for the idle socket"
    );

    let mut buf = [0u8; 16];
    let n = timeout(WAIT, idle.read(&mut buf))
        .await
        .expect("idle socket closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "nothing is sent to a socket that never sent CONNECT");
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(h.stats.snapshot().connect_timeouts, 1);
}

/// A TLS client trusting the fixture CA.
fn tls_connector() -> tokio_rustls::TlsConnector {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(fixture("ca.cert.pem")).expect("CA fixture");
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("CA PEM")).expect("CA cert");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn tls_idle_handshake_does_not_block_tls_logins() {
    let mut h = spawn_edge(quick_config()).await;
    let started = Instant::now();
    // A TCP peer on the TLS port that never sends a ClientHello (rumqttd's own TLS listener
    // would stop accepting behind it).
    let mut idle = TcpStream::connect(h.tls_addr).await.expect("connect");

    let tcp = TcpStream::connect(h.tls_addr).await.expect("connect");
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = tls_connector()
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    tls.write_all(&raw_connect("dev1", "pw-dev1", 30))
        .await
        .expect("CONNECT");
    let f = read_raw_frame(&mut tls).await;
    assert_eq!(
        codec::parse_connack(f.body()),
        Ok((false, connack::ACCEPTED))
    );
    h.connected("dev1").await;
    assert!(started.elapsed() < Duration::from_millis(600));

    let mut buf = [0u8; 16];
    let n = timeout(WAIT, idle.read(&mut buf))
        .await
        .expect("idle TLS socket closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(h.stats.snapshot().tls_handshake_failures, 1);
}

#[tokio::test]
async fn reconnect_replaces_the_old_session() {
    let mut h = spawn_edge(quick_config()).await;
    let mut gateway = h.internal("tw/d/+/up/#").await;
    let mut old = Client::connect(h.addr, "dev1", "pw-dev1", 5)
        .await
        .expect("first login");
    let first = h.connected("dev1").await;

    let new = Client::connect(h.addr, "dev1", "pw-dev1", 5)
        .await
        .expect("second login");
    let second = h.connected("dev1").await;
    assert!(second > first);
    let (session, reason) = h.disconnected("dev1").await;
    assert_eq!((session, reason), (first, DisconnectReason::Replaced));
    old.closed().await;

    // The device ends online, on the new session, and still works.
    assert_eq!(h.edge.online_devices(), 1);
    assert_eq!(h.stats.snapshot().connected, 1);
    new.publish("tw/d/dev1/up/heartbeat", b"{}".to_vec()).await;
    let got = gateway.next_publish().await;
    assert_eq!(got.topic, "tw/d/dev1/up/heartbeat");
    assert!(h.presence.try_recv().is_err(), "no further presence events");
}

#[tokio::test]
async fn keep_alive_loss_is_detected() {
    let mut h = spawn_edge(quick_config()).await;
    let started = Instant::now();
    // Keep-alive 1 s, then silence: the edge must give up after 1.5 s.
    let mut s = TcpStream::connect(h.addr).await.expect("connect");
    s.write_all(&raw_connect("dev1", "pw-dev1", 1))
        .await
        .expect("CONNECT");
    let f = read_raw_frame(&mut s).await;
    assert_eq!(
        codec::parse_connack(f.body()),
        Ok((false, connack::ACCEPTED))
    );
    h.connected("dev1").await;

    let (_, reason) = h.disconnected("dev1").await;
    assert_eq!(reason, DisconnectReason::KeepAliveTimeout);
    assert!(started.elapsed() >= Duration::from_millis(1_400));
    let mut buf = [0u8; 16];
    let n = timeout(WAIT, s.read(&mut buf))
        .await
        .expect("socket closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn second_connect_is_a_violation() {
    let mut h = spawn_edge(quick_config()).await;
    let mut s = TcpStream::connect(h.addr).await.expect("connect");
    s.write_all(&raw_connect("dev1", "pw-dev1", 30))
        .await
        .expect("CONNECT");
    read_raw_frame(&mut s).await;
    h.connected("dev1").await;
    s.write_all(&raw_connect("dev1", "pw-dev1", 30))
        .await
        .expect("CONNECT again");
    let (_, reason) = h.disconnected("dev1").await;
    assert_eq!(reason, DisconnectReason::Violation("second CONNECT".into()));
}

#[tokio::test]
async fn shutdown_closes_sessions_with_reason_shutdown() {
    let mut h = spawn_edge(quick_config()).await;
    let mut dev = h.device("dev1").await;
    h.shutdown.take().expect("once").send(()).expect("signal");
    let (_, reason) = h.disconnected("dev1").await;
    assert_eq!(reason, DisconnectReason::Shutdown);
    dev.closed().await;
    timeout(WAIT, h.served.take().expect("once"))
        .await
        .expect("serve returns")
        .expect("serve task");
    assert!(TcpStream::connect(h.addr).await.is_err(), "listener closed");
}

/// An uplink sink that records what it is handed.
struct Recorded(mpsc::UnboundedSender<(String, Vec<u8>)>);

impl UplinkSink for Recorded {
    fn uplink(
        &self,
        topic: &str,
        payload: bytes::Bytes,
    ) -> BoxFuture<'_, Result<(), UplinkClosed>> {
        let sent = self.0.send((topic.to_owned(), payload.to_vec()));
        Box::pin(async move { sent.map_err(|_| UplinkClosed) })
    }
}

#[tokio::test]
async fn with_an_uplink_sink_device_publishes_go_to_it_in_order_not_through_the_router() {
    let (tx, mut handed) = mpsc::unbounded_channel();
    let mut h = spawn_edge_with(quick_config(), Some(Arc::new(Recorded(tx)))).await;
    let mut watcher = h.local("tw/d/+/up/#").await;
    let mut dev = h.device("dev1").await;

    dev.publish("tw/d/dev1/up/press", br#"{"seq":1,"kind":"help"}"#.to_vec())
        .await;
    dev.publish("tw/d/dev1/up/heartbeat", br#"{"seq":2}"#.to_vec())
        .await;
    dev.next(|p| matches!(p, Packet::PubAck(_)))
        .await
        .expect("the edge's PUBACK");
    let first = timeout(Duration::from_secs(5), handed.recv()).await;
    let second = timeout(Duration::from_secs(5), handed.recv()).await;
    assert_eq!(
        first.expect("handed over").expect("sink open"),
        (
            "tw/d/dev1/up/press".into(),
            br#"{"seq":1,"kind":"help"}"#.to_vec()
        )
    );
    assert_eq!(
        second.expect("handed over").expect("sink open"),
        ("tw/d/dev1/up/heartbeat".into(), br#"{"seq":2}"#.to_vec())
    );
    // A marker published on the router after them is the first thing the router's
    // subscriber sees: the device's publishes never went that way.
    let router = h.router.clone();
    let mut marker = tokio::task::spawn_blocking(move || router.link("marker", true))
        .await
        .expect("link task")
        .expect("link");
    marker
        .tx
        .publish("tw/d/dev9/up/marker", "m")
        .expect("marker published");
    loop {
        if let Notification::Forward(f) = next_notification(&mut watcher).await {
            assert_eq!(&f.publish.topic[..], b"tw/d/dev9/up/marker");
            break;
        }
    }
}

#[tokio::test]
async fn qos1_publish_is_acked_by_the_edge_and_reaches_an_in_process_subscriber() {
    let mut h = spawn_edge(quick_config()).await;
    let mut watcher = h.local("tw/d/+/up/#").await;
    let mut dev = h.device("dev1").await;

    dev.publish("tw/d/dev1/up/heartbeat", br#"{"up":1}"#.to_vec())
        .await;
    let Packet::PubAck(ack) = dev
        .next(|p| matches!(p, Packet::PubAck(_)))
        .await
        .expect("PUBACK")
    else {
        unreachable!()
    };
    assert_ne!(ack.pkid, 0);
    loop {
        if let Notification::Forward(f) = next_notification(&mut watcher).await {
            assert_eq!(&f.publish.topic[..], b"tw/d/dev1/up/heartbeat");
            assert_eq!(&f.publish.payload[..], br#"{"up":1}"#);
            break;
        }
    }
}

#[tokio::test]
async fn qos1_delivery_numbers_messages_and_reuses_the_window() {
    let mut h = spawn_edge(quick_config()).await;
    let gateway = h.internal("tw/d/+/up/#").await;
    let mut dev = h.device("dev1").await;
    let codes = dev.subscribe(&DEVICE_FILTERS).await;
    assert_eq!(
        codes,
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce); 2]
    );
    // What the gateway sends as soon as it hears this is not lost.
    match h.next_presence().await {
        PresenceEvent::Subscribed { device, .. } => assert_eq!(device, "dev1"),
        other => panic!("expected Subscribed, got {other:?}"),
    }

    gateway.publish("tw/d/dev1/down/ack", b"0".to_vec()).await;
    let first = dev.next_publish().await;
    assert_eq!(first.qos, QoS::AtLeastOnce);
    assert_ne!(first.pkid, 0);
    assert_eq!(&first.payload[..], b"0");

    // rumqttc acknowledges each one; 150 more only arrive if acks free the window of 100.
    for n in 1..=150 {
        gateway
            .publish("tw/c/cl1/alert", n.to_string().into_bytes())
            .await;
    }
    let mut ids = std::collections::HashSet::new();
    for n in 1..=150 {
        let p = dev.next_publish().await;
        assert_eq!(p.qos, QoS::AtLeastOnce);
        assert_eq!(p.payload, n.to_string().into_bytes(), "in order");
        ids.insert(p.pkid);
    }
    assert_eq!(ids.len(), 150, "packet ids are not reused while in flight");
    assert_eq!(h.stats.snapshot().downlink_dropped, 0);
}

#[tokio::test]
async fn a_device_that_never_acknowledges_gets_100_in_flight_and_keeps_its_session() {
    let mut h = spawn_edge(quick_config()).await;
    let mut gateway = h.internal("tw/d/+/up/#").await;
    let mut dev = RawDevice::login(h.addr, "dev1").await;
    h.connected("dev1").await;
    // QoS 2 asked, QoS 1 granted: the edge runs no QoS 2 exchange.
    dev.send(&codec::encode_subscribe(1, &[("tw/d/dev1/down/#", 2)]).expect("encode"))
        .await;
    let f = dev.frame().await;
    assert_eq!(f.packet_type(), packet::SUBACK);
    assert_eq!(f.body(), &[0, 1, 1]);

    for n in 0..150 {
        gateway
            .publish("tw/d/dev1/down/msg", n.to_string().into_bytes())
            .await;
    }
    // The router has all 150 once it has acknowledged them.
    for _ in 0..150 {
        gateway
            .next(|p| matches!(p, Packet::PubAck(_)))
            .await
            .expect("router PUBACK");
    }
    let mut in_flight = Vec::new();
    for n in 0..100 {
        let (qos, id, payload) = dev.publish().await;
        assert_eq!((qos, payload), (1, n.to_string().into_bytes()));
        in_flight.push(id.expect("QoS 1 has a packet id"));
    }
    dev.nothing_for(Duration::from_millis(300)).await;

    // Still connected: PINGREQ answered, no presence change.
    dev.send(&[0xc0, 0]).await;
    assert_eq!(dev.frame().await.packet_type(), packet::PINGRESP);
    assert_eq!(h.stats.snapshot().connected, 1);
    assert!(h.presence.try_recv().is_err(), "no presence change");

    // Acknowledging releases the 50 that waited, in order.
    for id in in_flight {
        dev.send(&codec::encode_puback(id)).await;
    }
    for n in 100..150 {
        let (qos, _, payload) = dev.publish().await;
        assert_eq!((qos, payload), (1, n.to_string().into_bytes()));
    }
    assert_eq!(h.stats.snapshot().downlink_dropped, 0);
}

#[tokio::test]
async fn pingreq_is_answered_by_the_edge() {
    let mut h = spawn_edge(quick_config()).await;
    let mut dev = RawDevice::login(h.addr, "dev1").await;
    h.connected("dev1").await;
    for _ in 0..3 {
        dev.send(&[0xc0, 0]).await;
        assert_eq!(dev.frame().await.packet_type(), packet::PINGRESP);
    }
}

#[tokio::test]
async fn unsubscribe_is_answered_and_stops_delivery() {
    let mut h = spawn_edge(quick_config()).await;
    let gateway = h.internal("tw/d/+/up/#").await;
    let mut dev = h.device("dev1").await;
    dev.subscribe(&DEVICE_FILTERS).await;
    dev.client
        .unsubscribe("tw/c/cl1/#")
        .await
        .expect("unsubscribe");
    dev.next(|p| matches!(p, Packet::UnsubAck(_)))
        .await
        .expect("UNSUBACK");

    // The cluster message is not delivered; the downlink one, published after it, arrives.
    gateway.publish("tw/c/cl1/alert", b"cl1".to_vec()).await;
    gateway.publish("tw/d/dev1/down/ack", b"ack".to_vec()).await;
    let got = dev.next_publish().await;
    assert_eq!(got.topic, "tw/d/dev1/down/ack");
}

#[tokio::test]
async fn a_burst_past_the_routers_link_buffer_is_delivered_in_full() {
    // rumqttd pauses a link whose buffer holds 200 notifications until the link wakes it;
    // a burst of 2,000 arrives whole only if the edge does.
    const N: usize = 2_000;
    let mut h = spawn_edge(quick_config()).await;
    let mut dev = h.device("dev1").await;
    dev.subscribe(&[("tw/d/dev1/down/#", QoS::AtMostOnce)])
        .await;
    let router = h.router.clone();
    let mut publisher = tokio::task::spawn_blocking(move || router.link("burst", true))
        .await
        .expect("link task")
        .expect("link");
    for n in 0..N {
        publisher
            .tx
            .publish("tw/d/dev1/down/msg", n.to_string())
            .expect("publish");
    }
    for n in 0..N {
        let p = dev.next_publish().await;
        assert_eq!(p.payload, n.to_string().into_bytes());
    }
}

#[tokio::test]
async fn a_kept_session_is_reported_in_the_connack() {
    let mut h = spawn_edge(quick_config()).await;
    let connect = codec::encode_connect(&Connect {
        clean_session: false,
        keep_alive: 30,
        client_id: "dev1".into(),
        will: None,
        username: Some("dev1".into()),
        password: Some(b"pw-dev1".to_vec()),
    })
    .expect("encode");
    let (mut dev, connack) = RawDevice::connect(h.addr, &connect).await;
    assert_eq!(connack, (false, connack::ACCEPTED));
    h.connected("dev1").await;
    dev.send(&[0xe0, 0]).await; // DISCONNECT
    let (_, reason) = h.disconnected("dev1").await;
    assert_eq!(reason, DisconnectReason::Clean);

    let (_dev, connack) = RawDevice::connect(h.addr, &connect).await;
    assert_eq!(connack, (true, connack::ACCEPTED));
    h.connected("dev1").await;
}

/// The gateway's downlink past the router (`EdgeDownlink`): a device's topic reaches its own
/// session, a cluster's topic the sessions of that cluster's devices, each only when its device
/// holds a filter the topic matches, at that filter's QoS; another cluster hears nothing, an
/// offline device is nobody, and a topic that is neither a device's nor a cluster's is left to
/// the router.
#[tokio::test]
async fn the_gateway_downlink_reaches_only_the_subscribed_sessions_it_is_for() {
    let mut h = spawn_edge(quick_config()).await;
    let downlink = h.edge.downlink();
    let mut dev1 = h.device("dev1").await;
    // dev2 is in cl1 too, but holds only its own downlink.
    let mut dev2 = h.device("dev2").await;
    let mut dev4 = h.device("dev4").await;
    dev1.subscribe(&DEVICE_FILTERS).await;
    dev2.subscribe(&[("tw/d/dev2/down/#", QoS::AtMostOnce)])
        .await;
    dev4.subscribe(&[
        ("tw/d/dev4/down/#", QoS::AtLeastOnce),
        ("tw/c/cl2/#", QoS::AtLeastOnce),
    ])
    .await;

    assert!(downlink.deliver("tw/c/cl1/alert", Bytes::from_static(b"cluster 1")));
    assert!(downlink.deliver("tw/d/dev2/down/ack", Bytes::from_static(b"ack 2")));
    assert!(downlink.deliver("tw/d/dev3/down/ack", Bytes::from_static(b"offline")));
    assert!(!downlink.deliver("tw/z/cl1/alert", Bytes::from_static(b"not ours")));
    // A last word to each, so that what came before it is all that came.
    for device in ["dev1", "dev2", "dev4"] {
        assert!(downlink.deliver(&format!("tw/d/{device}/down/end"), Bytes::new()));
    }

    let got = dev1.next_publish().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..], got.qos),
        ("tw/c/cl1/alert", &b"cluster 1"[..], QoS::AtLeastOnce)
    );
    assert_eq!(dev1.next_publish().await.topic, "tw/d/dev1/down/end");

    let got = dev2.next_publish().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..], got.qos),
        ("tw/d/dev2/down/ack", &b"ack 2"[..], QoS::AtMostOnce)
    );
    assert_eq!(dev2.next_publish().await.topic, "tw/d/dev2/down/end");

    assert_eq!(dev4.next_publish().await.topic, "tw/d/dev4/down/end");
    assert_eq!(h.stats.snapshot().downlink_dropped, 0);
}

/// A flood of the gateway's messages for one unit: the session's queue keeps the first 256 in
/// order, the rest are dropped and counted, and the unit stays connected and gets those 256.
#[tokio::test]
async fn a_downlink_flood_keeps_the_first_messages_and_counts_the_rest() {
    let mut h = spawn_edge(quick_config()).await;
    let downlink = h.edge.downlink();
    let mut dev1 = h.device("dev1").await;
    dev1.subscribe(&DEVICE_FILTERS).await;
    // One thread for the test: no session runs while this loop queues.
    for n in 0..2_000 {
        downlink.deliver("tw/d/dev1/down/ack", Bytes::from(format!("{n}")));
    }
    assert_eq!(h.stats.snapshot().downlink_dropped, 2_000 - 256);
    for n in 0..256 {
        let got = dev1.next_publish().await;
        assert_eq!(got.payload, format!("{n}").into_bytes());
    }
    downlink.deliver("tw/d/dev1/down/end", Bytes::new());
    assert_eq!(dev1.next_publish().await.topic, "tw/d/dev1/down/end");
}
