//! One device connection, as a sequence of steps: [`login`] (CONNECT, credentials, registry),
//! [`register`] and [`hand_over`] (the device's map entry, and the end of its older session),
//! [`link`] (the device's in-process link to the router, and the edge's own CONNACK),
//! [`relay`] (every packet checked on its way, deliveries at the device's QoS) and [`teardown`]
//! (the router told, the socket closed, exactly one `Disconnected` presence).
//!
//! The router is reached through rumqttd's local links, not a socket: a device costs one file
//! descriptor (its own), and a message crosses no loopback connection. The edge therefore
//! speaks MQTT to the device itself (CONNACK, PUBACK, SUBACK, UNSUBACK, PINGRESP, and the
//! QoS 1 window of [`outbox`]); the router sees each device as a QoS 0 client under the
//! device's own client id. [`subscriptions`] keeps which filters the device holds at which QoS.

mod link;
mod login;
mod outbox;
mod relay;
mod subscriptions;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};

use super::stats::bump;
use super::{EdgeConfig, Shared};
use crate::codec::{self, CodecError, ConnectReturnCode, Frame};
use crate::{DisconnectReason, PresenceEvent};
use link::RouterLink;
use login::Login;
use relay::Relay;

/// Bytes a PUBLISH frame may carry beyond its payload (fixed header, topic, packet id). Device
/// topics are under 100 bytes; this leaves room without letting a frame grow unbounded.
const FRAME_OVERHEAD: usize = 1024;

/// Read buffer growth step.
const READ_CHUNK: usize = 4096;

/// How long a replaced session may take to hand over before the new one goes on without it.
const HANDOVER_GRACE: Duration = Duration::from_secs(2);

/// The longest topic quoted in a log line or violation reason.
const MAX_QUOTED_TOPIC: usize = 128;

/// Messages from the gateway waiting for a session ([`crate::edge::EdgeDownlink`]): a
/// press's fan-out is one; past this the device has stopped reading.
const DIRECT_QUEUE: usize = 256;

/// What the device map holds for a live session.
pub(super) struct SessionHandle {
    id: u64,
    control: mpsc::Sender<Control>,
    /// The gateway's messages for the device, past the router.
    direct: mpsc::Sender<Direct>,
}

impl SessionHandle {
    /// Queues a message for the session without waiting; `false` when its queue is full (a
    /// session that has ended drops what it is sent, as its device is gone).
    pub(super) fn queue(&self, message: Direct) -> bool {
        !matches!(
            self.direct.try_send(message),
            Err(mpsc::error::TrySendError::Full(_))
        )
    }
}

/// A message from the gateway for the device of a session, if it subscribed to its topic.
pub(crate) struct Direct {
    /// Shared by every session of a cluster the message goes to.
    pub(crate) topic: Arc<str>,
    pub(crate) payload: Bytes,
}

/// Orders a live session can receive.
enum Control {
    /// The same device logged in again: close, then confirm on `done`. Confirming hands the
    /// `Disconnected { reason: Replaced }` over to the new session, which reports it after its
    /// own `Connected` so the gateway never sees the device offline in between.
    Replace { done: oneshot::Sender<()> },
}

/// How the relay loop ended.
enum End {
    Reason(DisconnectReason),
    Replaced(oneshot::Sender<()>),
}

/// Removes the device's map entry when the session ends, unless a newer session owns it.
struct Registration {
    shared: Arc<Shared>,
    device: String,
    cluster: String,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut sessions = self.shared.sessions();
        if sessions.get(&self.device).is_some_and(|h| h.id == self.id) {
            sessions.remove(&self.device);
            // Under the sessions' lock, so that a new session of the device cannot register
            // in between and lose its membership here.
            let mut members = self.shared.members();
            if let Some(devices) = members.get_mut(&self.cluster) {
                devices.remove(&self.device);
                if devices.is_empty() {
                    members.remove(&self.cluster);
                }
            }
        }
    }
}

/// The device's socket, split so the relay can read and write at once, and the bytes read
/// from it but not handled yet (a device may pipeline frames behind its CONNECT).
struct DeviceIo<S> {
    r: ReadHalf<S>,
    w: WriteHalf<S>,
    unread: BytesMut,
}

impl<S: AsyncRead + AsyncWrite> DeviceIo<S> {
    fn new(stream: S) -> Self {
        let (r, w) = tokio::io::split(stream);
        Self {
            r,
            w,
            unread: BytesMut::with_capacity(512),
        }
    }
}

/// Runs one device connection to its end.
pub(super) async fn run<S>(
    shared: Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut dev = DeviceIo::new(stream);
    let Some(Login {
        device,
        connect,
        grant,
    }) = login::login(&shared, &mut dev, peer, &mut stop).await
    else {
        return;
    };

    // A device that logs in too often (a loop of reconnects, or its secret in a flood) is
    // told to come back later; its buckets outlive its sessions, so reconnecting resets
    // nothing.
    let limits = shared.limits(&device);
    let may_connect = limits
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .connect
        .try_take(tokio::time::Instant::now());
    if !may_connect {
        bump(&shared.stats.logins_refused);
        tracing::warn!(%device, %peer, "logins too frequent: refused, come back later");
        let code = ConnectReturnCode::ServiceUnavailable;
        login::refuse(&mut dev.w, code, shared.config.connect_timeout).await;
        return;
    }

    // `registration` gives the map entry back when `run` returns, whichever way it returns.
    let (registration, mut control, mut direct, previous) =
        register(&shared, &device, &grant.cluster);
    let session = registration.id;
    let replaced = hand_over(&shared, previous).await;

    // No will is given to the router: rumqttd publishes the wrong one when a client id
    // reconnects; the edge's presence events replace it.
    let Some(mut link) =
        link::open(&shared, &mut dev.w, &device, connect.clean_session, peer).await
    else {
        report_replaced(&shared, &device, replaced);
        return;
    };
    let connack = codec::encode_connack(link.session_present(), ConnectReturnCode::Success);
    announce(&shared, &device, session, peer, &grant.cluster);
    report_replaced(&shared, &device, replaced);

    let mut relay = Relay::new(
        &shared,
        &device,
        limits,
        grant.cluster,
        session,
        connect.keep_alive,
        &connack,
    );
    let end = relay
        .run(&mut dev, &mut link, (&mut control, &mut direct), &mut stop)
        .await;
    teardown(&shared, &device, session, end, control, dev, link).await;
}

/// Puts this session in the device map under a new session id; from here on the device owns
/// the map entry (the [`Registration`] guard gives it back). Returns the older session's
/// handle, if the device had one, which [`hand_over`] must end.
fn register(
    shared: &Arc<Shared>,
    device: &str,
    cluster: &str,
) -> (
    Registration,
    mpsc::Receiver<Control>,
    mpsc::Receiver<Direct>,
    Option<SessionHandle>,
) {
    let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let (control_tx, control_rx) = mpsc::channel(1);
    let (direct_tx, direct_rx) = mpsc::channel(DIRECT_QUEUE);
    let previous = {
        let mut sessions = shared.sessions();
        let previous = sessions.insert(
            device.to_owned(),
            SessionHandle {
                id: session,
                control: control_tx,
                direct: direct_tx,
            },
        );
        shared
            .members()
            .entry(cluster.to_owned())
            .or_default()
            .insert(device.to_owned());
        previous
    };
    let registration = Registration {
        shared: shared.clone(),
        device: device.to_owned(),
        cluster: cluster.to_owned(),
        id: session,
    };
    (registration, control_rx, direct_rx, previous)
}

/// Tells the device's older session, if any, to close, and waits (bounded) for it to confirm.
/// Returns its session id when it did: its `Disconnected { reason: Replaced }` is then owed by
/// this session, through [`report_replaced`].
async fn hand_over(shared: &Shared, previous: Option<SessionHandle>) -> Option<u64> {
    let old = previous?;
    bump(&shared.stats.sessions_replaced);
    let (done_tx, done_rx) = oneshot::channel();
    if old
        .control
        .try_send(Control::Replace { done: done_tx })
        .is_ok()
        && matches!(
            tokio::time::timeout(HANDOVER_GRACE, done_rx).await,
            Ok(Ok(()))
        )
    {
        return Some(old.id);
    }
    // Otherwise the old session ended on its own and reported its own reason.
    None
}

/// Reports the `Disconnected { reason: Replaced }` a confirmed [`hand_over`] left owed: after
/// this session's `Connected`, or as soon as this session fails, so it is never lost.
fn report_replaced(shared: &Shared, device: &str, replaced: Option<u64>) {
    if let Some(old) = replaced {
        shared.authority.presence(PresenceEvent::Disconnected {
            device: device.to_owned(),
            session: old,
            reason: DisconnectReason::Replaced,
        });
    }
}

/// Counts the device as connected and reports `Connected`; [`teardown`] undoes both.
fn announce(shared: &Shared, device: &str, session: u64, peer: SocketAddr, cluster: &str) {
    shared.stats.connected.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%device, session, %peer, %cluster, "device connected");
    shared.authority.presence(PresenceEvent::Connected {
        device: device.to_owned(),
        session,
        peer,
    });
}

/// Tells the router the connection is over, closes the device socket, then reports the
/// session's one `Disconnected` (or hands it to the session that replaced this one).
async fn teardown<S: AsyncRead + AsyncWrite>(
    shared: &Shared,
    device: &str,
    session: u64,
    end: End,
    control: mpsc::Receiver<Control>,
    mut dev: DeviceIo<S>,
    link: RouterLink,
) {
    let (reason, handover) = match end {
        End::Replaced(done) => (DisconnectReason::Replaced, Some(done)),
        End::Reason(reason) => {
            // Any order the replacer sent after this point is dropped with the receiver; it
            // then knows this session reports for itself.
            drop(control);
            (reason, None)
        }
    };
    if reason == DisconnectReason::RouterClosed {
        link.dropped_by_router();
    } else {
        // Before the hand-over is confirmed: the replacing session's link then reaches the
        // router after this one's DISCONNECT, and a kept session (clean session off) is saved
        // before it is resumed.
        link.close().await;
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), dev.w.shutdown()).await;
    drop(dev);
    shared.stats.connected.fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(%device, session, ?reason, "device disconnected");

    let handed_over = handover.is_some_and(|done| done.send(()).is_ok());
    if !handed_over {
        shared.authority.presence(PresenceEvent::Disconnected {
            device: device.to_owned(),
            session,
            reason,
        });
    }
}

/// Largest frame accepted from a device: the payload cap and room for the headers.
fn device_frame_cap(config: &EdgeConfig) -> usize {
    config.max_payload + FRAME_OVERHEAD
}

enum ReadError {
    Closed,
    Io,
    Codec(CodecError),
}

/// Reads until one complete frame is buffered.
async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    cap: usize,
) -> Result<Frame, ReadError> {
    loop {
        if let Some(frame) = codec::next_frame(buf, cap).map_err(ReadError::Codec)? {
            return Ok(frame);
        }
        buf.reserve(READ_CHUNK.min(cap));
        match r.read_buf(buf).await {
            Ok(0) => return Err(ReadError::Closed),
            Ok(_) => {}
            Err(_) => return Err(ReadError::Io),
        }
    }
}

/// A device-chosen string cut to a length fit for logs.
fn quote(s: &str) -> &str {
    match s.char_indices().nth(MAX_QUOTED_TOPIC) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}
