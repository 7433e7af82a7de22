//! The `run` scenario: a living neighbourhood. Units connect, heartbeat, now and then someone
//! presses; neighbours' units sound and some answer "coming"; every step is printed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::creds::Credential;
use crate::device::{Device, DeviceConfig, DeviceCtx, DeviceEvent, EventSink};
use crate::fleet::{Fleet, RampConfig};
use crate::proto::{Ack, AlertState, PressKind};

/// Settings for `run`.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub device: DeviceConfig,
    pub ramp: RampConfig,
    /// Mean time between presses across the whole neighbourhood (exponential intervals);
    /// `None`: nobody presses, the units only listen.
    pub press_every: Option<Duration>,
    /// Stop after this long; `None`: until the shutdown signal.
    pub duration: Option<Duration>,
}

/// Prints one line per thing a resident would notice.
pub struct PrintSink {
    /// Per device: it has been online before, so a new `Online` is a reconnection.
    was_online: Vec<AtomicBool>,
}

impl PrintSink {
    pub fn new(devices: usize) -> Self {
        PrintSink {
            was_online: (0..devices).map(|_| AtomicBool::new(false)).collect(),
        }
    }
}

/// What the presser's unit shows for an ack.
pub fn describe_ack(ack: &Ack) -> String {
    let coming = match ack.responders {
        0 => String::new(),
        1 => ", 1 neighbour coming".to_owned(),
        n => format!(", {n} neighbours coming"),
    };
    let what = match ack.state {
        AlertState::Raised => "received".to_owned(),
        AlertState::Notified => "neighbours notified".to_owned(),
        AlertState::Acknowledged => match ack.responders {
            0 => "acknowledged".to_owned(),
            1 => "1 neighbour coming".to_owned(),
            n => format!("{n} neighbours coming"),
        },
        AlertState::OnScene => "help is on scene".to_owned(),
        AlertState::Resolved => "resolved".to_owned(),
        AlertState::Cancelled => "cancelled".to_owned(),
    };
    if ack.state == AlertState::Acknowledged {
        format!("{what} (alert {}, seq {})", ack.alert, ack.seq)
    } else {
        format!("{what}{coming} (alert {}, seq {})", ack.alert, ack.seq)
    }
}

impl EventSink for PrintSink {
    fn event(&self, d: &DeviceCtx, _at: Instant, event: DeviceEvent) {
        let (cluster, unit) = (&d.cred.cluster, &d.cred.device);
        match event {
            DeviceEvent::Online => {
                let again = self
                    .was_online
                    .get(d.index)
                    .is_some_and(|w| w.swap(true, Ordering::AcqRel));
                if again {
                    println!("[{cluster}] 🔌 unit {unit} back online");
                }
            }
            DeviceEvent::Offline { error, was_online } => {
                if was_online {
                    println!("[{cluster}] ⚠️  unit {unit} offline: {error} (reconnecting)");
                } else {
                    tracing::debug!(device = %unit, "connect failed: {error}");
                }
            }
            DeviceEvent::SubscribeRefused => {
                println!("[{cluster}] ⛔ unit {unit}: broker refused its subscriptions")
            }
            DeviceEvent::PressSent { seq, kind, attempt } => {
                if attempt == 1 {
                    println!(
                        "[{cluster}] 🔴 unit {unit} ({}) pressed {kind} (seq {seq})",
                        d.cred.display_label()
                    );
                } else {
                    println!(
                        "[{cluster}] 🔁 unit {unit} repeats press seq {seq} (attempt {attempt}, no ack yet)"
                    );
                }
            }
            DeviceEvent::Acked { ack, .. } => {
                println!("[{cluster}] ✅ unit {unit}: {}", describe_ack(&ack));
            }
            DeviceEvent::Alert { alert, own, first } => {
                if own {
                    return;
                }
                if first && !alert.state.is_closed() {
                    println!(
                        "[{cluster}] 📢 unit {unit} sounds: alert {} from {} ({})",
                        alert.alert, alert.from_label, alert.kind
                    );
                } else if alert.state.is_closed() {
                    println!(
                        "[{cluster}] 🔕 unit {unit}: alert {} {}",
                        alert.alert,
                        alert.state.as_str()
                    );
                }
            }
            DeviceEvent::Delivered { .. } => {}
            DeviceEvent::Responded { alert, answer } => {
                let answer = match answer {
                    crate::proto::Answer::Coming => "I'm coming",
                    crate::proto::Answer::Declined => "can't come",
                };
                println!("[{cluster}] 🏃 unit {unit} answers \"{answer}\" to alert {alert}");
            }
            DeviceEvent::Notice { notice, first } => {
                if first {
                    println!(
                        "[{cluster}] 📣 unit {unit} shows notice {} [{}] {}: {}",
                        notice.notice, notice.kind, notice.title, notice.body
                    );
                }
            }
            DeviceEvent::Surveyed { alert, satisfied } => {
                let answer = if satisfied {
                    "满意 satisfied"
                } else {
                    "不满意 not satisfied"
                };
                println!("[{cluster}] 📝 unit {unit} answers \"{answer}\" on its alert {alert}");
            }
            DeviceEvent::Malformed { error } => {
                println!("[{cluster}] ❓ unit {unit} refused a message: {error}");
            }
        }
    }
}

/// Mostly calls for help; sometimes something more specific.
fn random_kind(rng: &mut StdRng) -> PressKind {
    match rng.gen_range(0..100) {
        0..70 => PressKind::Help,
        70..85 => PressKind::Medical,
        85..95 => PressKind::Intrusion,
        _ => PressKind::Fire,
    }
}

/// An exponential interval with the given mean (a Poisson process of presses).
pub fn exponential(rng: &mut impl Rng, mean: Duration) -> Duration {
    let u: f64 = rng.gen_range(0.0..1.0);
    // Cap at 20 means so one unlucky draw cannot silence a short demo.
    mean.mul_f64((-(1.0 - u).ln()).min(20.0))
}

/// Any unit without a pending press: a resident may press while the unit is offline; it sends
/// the press once it is back (that is how a press survives a broker or gateway restart).
fn pick_idle(devices: &[Device], rng: &mut StdRng) -> Option<usize> {
    let n = devices.len();
    if n == 0 {
        return None;
    }
    let offset = rng.gen_range(0..n);
    (0..n)
        .map(|i| (offset + i) % n)
        .find(|&i| devices[i].pending_presses() == 0)
}

/// Runs the neighbourhood until `duration` or `shutdown`.
pub async fn run(creds: Vec<Credential>, cfg: RunConfig, shutdown: CancellationToken) {
    let sink = Arc::new(PrintSink::new(creds.len()));
    let stop_at = cfg.duration.map(|d| Instant::now() + d);
    let (fleet, outcome) =
        Fleet::connect(creds, cfg.device.clone(), sink, &cfg.ramp, shutdown.clone()).await;
    if !outcome.complete() {
        println!(
            "warning: {}/{} units online; the rest keep retrying",
            outcome.online, outcome.total
        );
    }
    match cfg.press_every {
        Some(mean) => println!(
            "neighbourhood running: a press every {:.1} s on average; Ctrl-C to stop",
            mean.as_secs_f64()
        ),
        None => println!("neighbourhood running (no automatic presses); Ctrl-C to stop"),
    }

    let mut rng = StdRng::from_entropy();
    let far = Duration::from_secs(24 * 3600);
    let mut next_press = cfg
        .press_every
        .map(|m| Instant::now() + exponential(&mut rng, m));
    let mut status = tokio::time::interval(Duration::from_secs(60));
    status.tick().await;
    loop {
        let wake = next_press.unwrap_or_else(|| Instant::now() + far);
        let stop = stop_at.unwrap_or_else(|| Instant::now() + far);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(stop) => break,
            _ = status.tick() => {
                println!("status: {}/{} units online", fleet.online(), fleet.devices.len());
            }
            _ = tokio::time::sleep_until(wake) => {
                if let Some(mean) = cfg.press_every {
                    next_press = Some(Instant::now() + exponential(&mut rng, mean));
                }
                match pick_idle(&fleet.devices, &mut rng) {
                    Some(i) => {
                        let kind = random_kind(&mut rng);
                        let d = &fleet.devices[i];
                        if !d.is_online() {
                            println!(
                                "[{}] 🔴 unit {} pressed {kind} while offline: it will send when back online",
                                d.ctx().cred.cluster, d.ctx().cred.device
                            );
                        }
                        if let Err(e) = d.press(kind) {
                            tracing::warn!("press not taken: {e}");
                        }
                    }
                    None => println!("(every unit has a press pending)"),
                }
            }
        }
    }
    println!("stopping: disconnecting {} units", fleet.devices.len());
    fleet.shutdown(Duration::from_secs(5)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::AlertId;

    #[test]
    fn ack_lines_read_like_the_unit_display() {
        let mut a = Ack {
            seq: 9,
            boot: None,
            alert: AlertId("A12".into()),
            state: AlertState::Raised,
            responders: 0,
            presses: 1,
            survey: false,
        };
        assert_eq!(describe_ack(&a), "received (alert A12, seq 9)");
        a.state = AlertState::Acknowledged;
        a.responders = 2;
        assert_eq!(describe_ack(&a), "2 neighbours coming (alert A12, seq 9)");
        a.state = AlertState::Resolved;
        assert_eq!(
            describe_ack(&a),
            "resolved, 2 neighbours coming (alert A12, seq 9)"
        );
    }

    #[test]
    fn exponential_intervals_have_the_requested_mean() {
        let mut rng = StdRng::seed_from_u64(7);
        let mean = Duration::from_secs(10);
        let n = 20_000;
        let total: f64 = (0..n)
            .map(|_| exponential(&mut rng, mean).as_secs_f64())
            .sum();
        let got = total / n as f64;
        assert!((got - 10.0).abs() < 0.3, "mean {got}");
    }
}
