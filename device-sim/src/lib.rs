//! Simulated tenwatch households: panic buttons and in-home units speaking the device side of
//! the MQTT contract in `docs/protocol.md`, for demos (`run`), smoke checks (`press`) and load
//! measurement (`bench`). An independent implementation: it shares no code with the gateway.
//!
//! # Layout
//! - [`proto`]: topics and JSON payloads, parsed into typed values at the edge.
//! - [`creds`]: the credentials file (devices, passwords, clusters).
//! - [`device`]: one unit on one MQTT connection: reconnect with backoff, resubscribe, press
//!   repeated until acked, heartbeats, sounding and answering neighbours' alerts.
//! - [`fleet`]: many devices, connected at a bounded rate.
//! - [`run`], [`press`], [`bench`]: the three commands; [`report`]: the benchmark report;
//!   [`record`]: what a benchmark run saw (press → ack → neighbours), shared by every scenario.
//! - [`burst`], [`storm`]: the bench scenarios beyond a steady rate (many households press at
//!   once; every connection drops and comes back).
//! - [`plain_broker`]: a bare rumqttd (no auth, no gateway) for the benchmark's floor.

pub mod bench;
pub mod burst;
pub mod creds;
pub mod device;
pub mod fleet;
pub mod plain_broker;
pub mod press;
pub mod proto;
pub mod record;
pub mod report;
pub mod run;
pub mod storm;

/// Splits `HOST:PORT` (or `[v6]:PORT`) into its parts.
pub fn parse_broker(addr: &str) -> Result<(String, u16), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("broker address {addr:?} must be HOST:PORT, e.g. 127.0.0.1:1883"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("broker address {addr:?}: {port:?} is not a port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("broker address {addr:?} has no host"));
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::parse_broker;

    #[test]
    fn broker_addresses() {
        assert_eq!(
            parse_broker("127.0.0.1:1883"),
            Ok(("127.0.0.1".to_owned(), 1883))
        );
        assert_eq!(parse_broker("[::1]:1884"), Ok(("::1".to_owned(), 1884)));
        assert!(parse_broker("127.0.0.1").is_err());
        assert!(parse_broker(":1883").is_err());
        assert!(parse_broker("h:99999").is_err());
    }
}
