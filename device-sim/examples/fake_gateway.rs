//! TEST HARNESS ONLY — runs the fake gateway of `tests/common/` (embedded rumqttd + a client
//! that acks presses and publishes cluster alerts) so the `tenwatch-sim` CLI can be tried
//! before the real gateway exists:
//!
//! ```text
//! cargo run -p tenwatch-sim --example fake_gateway -- 18830 50 10 /tmp/creds.json
//! tenwatch-sim bench --credentials /tmp/creds.json --broker 127.0.0.1:18830 --rate 200 --report /tmp/r.json
//! ```
//! Arguments: PORT CLUSTERS PER_CLUSTER CREDENTIALS_OUT. Stops on Ctrl-C.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, clusters, per_cluster, out] = args.as_slice() else {
        anyhow::bail!("usage: fake_gateway PORT CLUSTERS PER_CLUSTER CREDENTIALS_OUT");
    };
    let port: u16 = port.parse()?;
    let (clusters, per_cluster): (usize, usize) = (clusters.parse()?, per_cluster.parse()?);
    let doc = common::credentials_json(clusters, per_cluster);
    std::fs::write(out, serde_json::to_string_pretty(&doc)?)?;
    let creds = common::credentials(clusters, per_cluster);
    common::start_broker(port, &creds);
    common::wait_listening(port).await;
    let stop = CancellationToken::new();
    let stats = common::start_gateway(port, &creds, Default::default(), stop.clone()).await;
    println!(
        "fake gateway (TEST HARNESS) on 127.0.0.1:{port}, pid {}, {} devices written to {out}",
        std::process::id(),
        creds.len()
    );
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => println!(
                "presses {} (repeats {}), delivered {}, responds {}, heartbeats {}, malformed {}",
                stats.presses.load(Ordering::Relaxed),
                stats.press_repeats.load(Ordering::Relaxed),
                stats.delivered.load(Ordering::Relaxed),
                stats.responds.load(Ordering::Relaxed),
                stats.heartbeats.load(Ordering::Relaxed),
                stats.malformed.load(Ordering::Relaxed),
            ),
        }
    }
    stop.cancel();
    Ok(())
}
