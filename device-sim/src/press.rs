//! The `press` command: one device connects, presses once, prints the ack(s) and reports
//! whether the press was acknowledged in time.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::creds::Credential;
use crate::device::{self, DeviceConfig, DeviceCtx, DeviceEvent, EventSink};
use crate::proto::{Ack, PressKind, Topics};
use crate::run::describe_ack;

/// Why the press did not complete.
#[derive(Debug, thiserror::Error)]
pub enum PressFailure {
    #[error("device {device} could not connect to {broker} within {timeout:?}{}: check the broker address and the password", last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    NotConnected {
        device: String,
        broker: String,
        timeout: Duration,
        last_error: Option<String>,
    },
    #[error("broker refused the subscriptions of device {device} (topic ACL?)")]
    SubscribeRefused { device: String },
    #[error("press from {device} was not acknowledged within {timeout:?} ({attempts} attempts): is the gateway running?")]
    NoAck {
        device: String,
        timeout: Duration,
        attempts: u32,
    },
    #[error("interrupted before the press was acknowledged")]
    Interrupted,
}

/// The first ack and how long it took.
#[derive(Clone, Debug)]
pub struct PressOutcome {
    pub ack: Ack,
    pub latency: Duration,
    pub attempts: u32,
}

struct ChannelSink(mpsc::Sender<(Instant, DeviceEvent)>);

impl EventSink for ChannelSink {
    fn event(&self, _d: &DeviceCtx, at: Instant, event: DeviceEvent) {
        // One device produces few events; if the reader lags this badly, dropping is fine.
        let _ = self.0.try_send((at, event));
    }
}

/// Presses once on `cred`'s device; waits up to `timeout` (connecting included) for its ack,
/// then keeps printing later acks for `follow`.
pub async fn press_once(
    cred: Credential,
    mut cfg: DeviceConfig,
    kind: PressKind,
    timeout: Duration,
    follow: Duration,
    shutdown: CancellationToken,
) -> Result<PressOutcome, PressFailure> {
    cfg.heartbeat = None;
    let broker = format!("{}:{}", cfg.host, cfg.port);
    let device_id = cred.device.to_string();
    let (tx, mut rx) = mpsc::channel(256);
    let tracker = TaskTracker::new();
    let stop = shutdown.child_token();
    let ctx = Arc::new(DeviceCtx {
        index: 0,
        topics: Topics::new(&cred.device, &cred.cluster),
        cred,
    });
    let dev = device::spawn(
        ctx,
        Arc::new(cfg),
        Arc::new(ChannelSink(tx)),
        stop.clone(),
        &tracker,
    );
    let deadline = Instant::now() + timeout;
    let mut pressed = false;
    let mut attempts = 0;
    let mut last_error = None;
    let mut outcome = None;
    let mut until = deadline;
    let result = loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break outcome.ok_or(PressFailure::Interrupted),
            _ = tokio::time::sleep_until(until) => None,
            ev = rx.recv() => ev,
        };
        let Some((at, event)) = next else {
            break match outcome {
                Some(o) => Ok(o),
                None if !pressed => Err(PressFailure::NotConnected {
                    device: device_id.clone(),
                    broker: broker.clone(),
                    timeout,
                    last_error: last_error.clone(),
                }),
                None => Err(PressFailure::NoAck {
                    device: device_id.clone(),
                    timeout,
                    attempts,
                }),
            };
        };
        match event {
            DeviceEvent::Online => {
                println!("{device_id}: connected to {broker}");
                if !pressed {
                    pressed = true;
                    if dev.press(kind).is_err() {
                        break Err(PressFailure::Interrupted);
                    }
                }
            }
            DeviceEvent::Offline { error, was_online } => {
                if was_online {
                    println!("{device_id}: connection lost ({error}); reconnecting");
                } else {
                    tracing::info!("{device_id}: connect failed: {error}");
                }
                last_error = Some(error);
            }
            DeviceEvent::SubscribeRefused => {
                break Err(PressFailure::SubscribeRefused {
                    device: device_id.clone(),
                })
            }
            DeviceEvent::PressSent { seq, kind, attempt } => {
                attempts = attempt;
                if attempt == 1 {
                    println!("{device_id}: pressed {kind} (seq {seq})");
                } else {
                    println!("{device_id}: no ack yet, repeating seq {seq} (attempt {attempt})");
                }
            }
            DeviceEvent::Acked {
                ack,
                first,
                pressed_at,
            } => {
                let latency = pressed_at
                    .map(|p| at.saturating_duration_since(p))
                    .unwrap_or_default();
                if first {
                    println!(
                        "{device_id}: {} in {:.1} ms",
                        describe_ack(&ack),
                        latency.as_secs_f64() * 1000.0
                    );
                    until = at + follow;
                    outcome = Some(PressOutcome {
                        ack,
                        latency,
                        attempts,
                    });
                    if follow.is_zero() {
                        break outcome.ok_or(PressFailure::Interrupted);
                    }
                } else {
                    println!("{device_id}: {}", describe_ack(&ack));
                }
            }
            DeviceEvent::Malformed { error } => println!("{device_id}: refused a message: {error}"),
            DeviceEvent::Alert { .. }
            | DeviceEvent::Notice { .. }
            | DeviceEvent::Surveyed { .. }
            | DeviceEvent::Delivered { .. }
            | DeviceEvent::Responded { .. } => {}
        }
    };
    stop.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
    result
}
