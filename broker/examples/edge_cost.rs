//! Measures what the device edge costs per device: open file descriptors, resident memory and
//! added uplink latency, with N idle devices connected through the edge versus straight to the
//! router. Everything (router, edge, devices, subscriber) runs in this one process, so the
//! difference between the two modes is the edge's own cost.
//!
//! Run each mode in its own process (RSS does not shrink after a run), in release:
//! `cargo run --release -p tenwatch-broker --example edge_cost -- direct 2000`
//! `cargo run --release -p tenwatch-broker --example edge_cost -- edge 2000`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::BytesMut;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tenwatch_broker::codec::{self, Connect};
use tenwatch_broker::{
    start_router, AuthRefusal, BoxFuture, DeviceAuthority, DeviceGrant, Edge, EdgeConfig,
    EdgeStats, PresenceEvent, RateLimit, RouterSettings,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Accepts every device; the point here is the transport, not the registry.
struct AnyDevice;

impl DeviceAuthority for AnyDevice {
    fn authenticate<'a>(
        &'a self,
        device: &'a str,
        _password: &'a [u8],
    ) -> BoxFuture<'a, Result<DeviceGrant, AuthRefusal>> {
        Box::pin(async move {
            Ok(DeviceGrant {
                cluster: format!("c{}", device.len()),
            })
        })
    }

    fn presence(&self, _event: PresenceEvent) {}
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A bare MQTT device: CONNECT, wait for CONNACK, keep the socket.
async fn raw_device(
    addr: std::net::SocketAddr,
    id: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let connect = codec::encode_connect(&Connect {
        clean_session: true,
        keep_alive: 600,
        client_id: id.into(),
        will: None,
        username: Some(user.into()),
        password: Some(password.as_bytes().to_vec()),
    })?;
    s.write_all(&connect).await?;
    let mut buf = BytesMut::with_capacity(16);
    loop {
        if let Some(f) = codec::next_frame(&mut buf, 64)? {
            let (_, code) = codec::parse_connack(f.body())?;
            if code != 0 {
                bail!("{id}: CONNACK {code}");
            }
            return Ok(s);
        }
        if s.read_buf(&mut buf).await? == 0 {
            bail!("{id}: closed before CONNACK");
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "edge".into());
    let n: usize = args.next().map_or(Ok(2000), |s| s.parse())?;
    let samples: usize = 2000;

    let router = start_router(RouterSettings::default())?;
    let target = match mode.as_str() {
        "direct" => router.addr(),
        "edge" => {
            let config = EdgeConfig {
                // The latency probe publishes faster than a real device may.
                publish_limit: RateLimit {
                    burst: 1,
                    refill_every: Duration::ZERO,
                },
                ..EdgeConfig::default()
            };
            let edge = Edge::new(
                config,
                router.clone(),
                Arc::new(AnyDevice),
                Arc::new(EdgeStats::default()),
            )?;
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            tokio::spawn(async move { edge.serve(listener, None, std::future::pending()).await });
            addr
        }
        other => bail!("mode must be direct or edge, not {other}"),
    };

    // The gateway's uplink subscription, straight on the router.
    let mut opts = MqttOptions::new("gateway", "127.0.0.1", router.addr().port());
    opts.set_credentials(router.username(), router.password());
    let (gateway, mut eventloop) = AsyncClient::new(opts, 64);
    gateway
        .subscribe("tw/d/+/up/#", QoS::AtMostOnce)
        .await
        .context("subscribe")?;
    let (arrived_tx, mut arrived) = mpsc::channel::<Instant>(16);
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Event::Incoming(Packet::Publish(_)) => {
                    // The receiver goes away when the measurement is done.
                    let _ = arrived_tx.send(Instant::now()).await;
                }
                _ => {}
            }
        }
    });
    subscribed.await.context("gateway SUBACK")?;

    let (fd0, rss0) = (open_fds(), rss_kib());
    let started = Instant::now();
    let mut devices = Vec::with_capacity(n);
    // 50 logins in flight at a time: rumqttd registers connections one by one.
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let logins = chunk.iter().map(|i| {
            let id = format!("d{i:05}");
            let (user, password) = if mode == "direct" {
                (router.username().to_owned(), router.password().to_owned())
            } else {
                (id.clone(), "secret".to_owned())
            };
            async move { raw_device(target, &id, &user, &password).await }
        });
        for s in futures_join_all(logins).await {
            devices.push(s?);
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    // Let allocations from the login burst settle into their steady state.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (fd1, rss1) = (open_fds(), rss_kib());

    // Latency: one device publishes QoS 1, the gateway's arrival is timed.
    let probe = devices.first_mut().context("at least one device")?;
    let topic = "tw/d/d00000/up/heartbeat";
    let (mut rd, mut wr) = probe.split();
    let mut lat = Vec::with_capacity(samples);
    let mut sink = [0u8; 4096];
    for seq in 0..(samples + 200) {
        let bytes = codec::encode_publish(
            topic,
            1,
            false,
            Some((seq % 60_000 + 1) as u16),
            format!("{{\"seq\":{seq}}}").as_bytes(),
        )?;
        let t0 = Instant::now();
        wr.write_all(&bytes).await?;
        let t1 = arrived.recv().await.context("gateway stream ended")?;
        // Drain the PUBACK so the socket buffer never fills.
        let _ = tokio::time::timeout(Duration::from_millis(5), rd.read(&mut sink)).await;
        if seq >= 200 {
            lat.push(t1 - t0);
        }
    }
    lat.sort();

    let per_dev_fd = (fd1 - fd0) as f64 / n as f64;
    let per_dev_kib = (rss1.saturating_sub(rss0)) as f64 / n as f64;
    println!(
        "{{\"mode\":\"{mode}\",\"devices\":{n},\"connect_secs\":{connect_secs:.2},\
         \"fds_before\":{fd0},\"fds_after\":{fd1},\"fds_per_device\":{per_dev_fd:.2},\
         \"rss_kib_before\":{rss0},\"rss_kib_after\":{rss1},\"rss_kib_per_device\":{per_dev_kib:.1},\
         \"latency_us\":{{\"p50\":{:.0},\"p99\":{:.0},\"max\":{:.0},\"samples\":{}}}}}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        lat.len()
    );
    Ok(())
}

/// Awaits every future concurrently (a tiny join_all, to keep the example's dependencies to
/// what the crate already has).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}
