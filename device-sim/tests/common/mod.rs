//! TEST HARNESS ONLY — a fake gateway for exercising the simulator without the real one.
//!
//! A plain embedded rumqttd (password auth from the credentials, no ACL, no edge) plus one
//! rumqttc client playing the gateway: on `up/press` it assigns an alert id (deduplicating on
//! (device, seq)), publishes the cluster alert, then acks the presser; on `up/respond` "coming"
//! it re-acks with `acknowledged` and the responder count. Nothing here is durable or checks
//! the contract the way the real gateway must; it only lets the device side run for real.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use serde_json::{json, Value};
use tenwatch_sim::creds::Credential;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const GATEWAY_ID: &str = "fake-gateway";
pub const GATEWAY_PASSWORD: &str = "fake-gateway-secret";

/// A credentials document: `clusters` clusters of `per_cluster` households, one device each.
pub fn credentials_json(clusters: usize, per_cluster: usize) -> Value {
    let mut list = Vec::with_capacity(clusters * per_cluster);
    for c in 0..clusters {
        let cluster = format!("1101{:04}-{:02}", c / 100, c % 100);
        for h in 0..per_cluster {
            list.push(json!({
                "device": format!("tw-{cluster}-{h:02}"),
                "password": format!("pw-{c}-{h}"),
                "cluster": cluster,
                "household": format!("hh-{c}-{h}"),
                "label": format!("和平路{}号", c * per_cluster + h + 1),
                "lat": 39.9, "lon": 116.4,
            }));
        }
    }
    Value::Array(list)
}

pub fn credentials(clusters: usize, per_cluster: usize) -> Vec<Credential> {
    let text = credentials_json(clusters, per_cluster).to_string();
    tenwatch_sim::creds::parse(&text, "generated").expect("generated credentials parse")
}

/// A free loopback port (bound then released; fine for tests on one machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts rumqttd on 127.0.0.1:`port` on its own thread (it has no shutdown: it lives as long
/// as the process). Only the listed devices and the fake gateway may log in.
pub fn start_broker(port: u16, creds: &[Credential]) {
    use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};
    let mut auth: HashMap<String, String> = creds
        .iter()
        .map(|c| (c.device.to_string(), c.password.expose().to_owned()))
        .collect();
    auth.insert(GATEWAY_ID.into(), GATEWAY_PASSWORD.into());
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let server = ServerSettings {
        name: "fake-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: 20 * 1024,
            max_inflight_count: 500,
            auth: Some(auth),
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 20_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("fake-v4".to_owned(), server)])),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name("fake-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                eprintln!("fake broker stopped: {e}");
            }
        })
        .expect("broker thread");
}

/// Waits until something accepts TCP on `port` (the broker binds asynchronously).
pub async fn wait_listening(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("broker did not listen on {port}");
}

/// What the fake gateway saw.
#[derive(Debug, Default)]
pub struct GatewayStats {
    pub presses: AtomicU64,
    pub press_repeats: AtomicU64,
    pub alerts: AtomicU64,
    pub delivered: AtomicU64,
    pub responds: AtomicU64,
    pub heartbeats: AtomicU64,
    pub malformed: AtomicU64,
}

impl GatewayStats {
    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Acquire)
    }
}

#[derive(Clone, Debug, Default)]
pub struct GatewayBehaviour {
    /// Ignore the first copy of every press, so devices must repeat it.
    pub ignore_first_attempt: bool,
}

struct AlertInfo {
    presser: String,
    seq: u64,
    responders: u32,
}

/// Connects the fake gateway to the broker on `port`; it runs until `shutdown`.
pub async fn start_gateway(
    port: u16,
    creds: &[Credential],
    behaviour: GatewayBehaviour,
    shutdown: CancellationToken,
) -> Arc<GatewayStats> {
    let directory: HashMap<String, (String, String)> = creds
        .iter()
        .map(|c| {
            (
                c.device.to_string(),
                (c.cluster.to_string(), c.display_label().to_owned()),
            )
        })
        .collect();
    let mut opts = MqttOptions::new(GATEWAY_ID, "127.0.0.1", port);
    opts.set_credentials(GATEWAY_ID, GATEWAY_PASSWORD)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000)
        .set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
    eventloop.network_options.set_tcp_nodelay(true);
    let stats = Arc::new(GatewayStats::default());
    // Unbounded on purpose (test harness): the poll task must never wait on the handler,
    // which itself waits on the poll task to drain publishes.
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Vec<u8>)>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();

    let poll_client = client.clone();
    let poll_stop = shutdown.clone();
    tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        loop {
            let ev = tokio::select! {
                _ = poll_stop.cancelled() => break,
                ev = eventloop.poll() => ev,
            };
            match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    // rumqttd allows 100 unacknowledged QoS 1 messages per client, which caps
                    // one uplink client at ~2,500 msg/s on loopback; the high-volume topics come
                    // at QoS 0 so the harness, not the simulator, is not what a bench measures.
                    let _ = poll_client.try_subscribe_many([
                        SubscribeFilter::new("tw/d/+/up/press".into(), QoS::AtLeastOnce),
                        SubscribeFilter::new("tw/d/+/up/respond".into(), QoS::AtLeastOnce),
                        SubscribeFilter::new("tw/d/+/up/delivered".into(), QoS::AtMostOnce),
                        SubscribeFilter::new("tw/d/+/up/heartbeat".into(), QoS::AtMostOnce),
                    ]);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(r) = ready_tx.take() {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });

    let st = stats.clone();
    tokio::spawn(async move {
        let mut by_press: HashMap<(String, u64), String> = HashMap::new();
        let mut alerts: HashMap<String, AlertInfo> = HashMap::new();
        let mut next_alert = 1u64;
        loop {
            let (topic, payload) = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = rx.recv() => match m { Some(m) => m, None => break },
            };
            let parts: Vec<&str> = topic.split('/').collect();
            let (device, what) = match parts.as_slice() {
                ["tw", "d", device, "up", what] => (device.to_string(), *what),
                _ => continue,
            };
            let Ok(body) = serde_json::from_slice::<Value>(&payload) else {
                st.malformed.fetch_add(1, Ordering::AcqRel);
                continue;
            };
            let ack = |client: &AsyncClient,
                       device: &str,
                       seq: u64,
                       alert: &str,
                       state: &str,
                       responders: u32| {
                let client = client.clone();
                let topic = format!("tw/d/{device}/down/ack");
                let body =
                    json!({"seq": seq, "alert": alert, "state": state, "responders": responders})
                        .to_string();
                async move { client.publish(topic, QoS::AtLeastOnce, false, body).await }
            };
            match what {
                "press" => {
                    let (Some(seq), Some(kind)) = (body["seq"].as_u64(), body["kind"].as_str())
                    else {
                        st.malformed.fetch_add(1, Ordering::AcqRel);
                        continue;
                    };
                    let Some((cluster, label)) = directory.get(&device) else {
                        continue;
                    };
                    let key = (device.clone(), seq);
                    match by_press.get(&key) {
                        Some(alert) if !alert.is_empty() => {
                            st.press_repeats.fetch_add(1, Ordering::AcqRel);
                            let _ = ack(&client, &device, seq, alert, "raised", 0).await;
                            continue;
                        }
                        // The first copy was ignored on purpose: act on this repeat.
                        Some(_) => {
                            st.press_repeats.fetch_add(1, Ordering::AcqRel);
                        }
                        None => {
                            st.presses.fetch_add(1, Ordering::AcqRel);
                            if behaviour.ignore_first_attempt {
                                by_press.insert(key, String::new());
                                continue;
                            }
                        }
                    }
                    let alert = format!("A{next_alert}");
                    next_alert += 1;
                    raise(&client, &st, cluster, label, kind, &alert).await;
                    by_press.insert(key, alert.clone());
                    alerts.insert(
                        alert.clone(),
                        AlertInfo {
                            presser: device.clone(),
                            seq,
                            responders: 0,
                        },
                    );
                    let _ = ack(&client, &device, seq, &alert, "raised", 0).await;
                }
                "respond" => {
                    st.responds.fetch_add(1, Ordering::AcqRel);
                    let Some(alert) = body["alert"].as_str() else {
                        continue;
                    };
                    if body["answer"] != "coming" {
                        continue;
                    }
                    if let Some(info) = alerts.get_mut(alert) {
                        info.responders += 1;
                        let _ = ack(
                            &client,
                            &info.presser,
                            info.seq,
                            alert,
                            "acknowledged",
                            info.responders,
                        )
                        .await;
                    }
                }
                "delivered" => {
                    st.delivered.fetch_add(1, Ordering::AcqRel);
                }
                "heartbeat" => {
                    st.heartbeats.fetch_add(1, Ordering::AcqRel);
                }
                _ => {}
            }
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(10), ready_rx).await;
    stats
}

async fn raise(
    client: &AsyncClient,
    st: &GatewayStats,
    cluster: &str,
    label: &str,
    kind: &str,
    alert: &str,
) {
    st.alerts.fetch_add(1, Ordering::AcqRel);
    let body =
        json!({"alert": alert, "from_label": label, "kind": kind, "state": "raised"}).to_string();
    let _ = client
        .publish(
            format!("tw/c/{cluster}/alert"),
            QoS::AtLeastOnce,
            false,
            body,
        )
        .await;
}
