//! One device connection, as a sequence of steps: [`login`] (CONNECT, credentials, registry),
//! [`register`] and [`hand_over`] (the device's map entry, and the end of its older session),
//! [`link`] (the loopback connection to the router), [`relay`] (every frame checked on its way)
//! and [`teardown`] (both sockets closed, exactly one `Disconnected` presence).
//!
//! The relay is a single task with four bounded buffers (in/out on each side) and no blocking
//! write: it stops reading a side while the buffer towards the other side is full, so a slow
//! device slows only itself and the two directions can never deadlock on each other.

mod link;
mod login;
mod relay;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};

use super::stats::bump;
use super::{EdgeConfig, Shared};
use crate::codec::{self, CodecError, Frame};
use crate::{DisconnectReason, PresenceEvent};
use link::RouterIo;
use login::Login;
use relay::Relay;

/// Bytes a PUBLISH frame may carry beyond its payload (fixed header, topic, packet id). Device
/// topics are under 100 bytes; this leaves room without letting a frame grow unbounded.
const FRAME_OVERHEAD: usize = 1024;

/// Largest frame accepted from the router (it caps payloads itself, at 64 KiB by default).
const ROUTER_FRAME_CAP: usize = 1024 * 1024;

/// Read buffer growth step.
const READ_CHUNK: usize = 4096;

/// How long a replaced session may take to hand over, and a closing session to let the router
/// drop the link, before we go on without it.
const HANDOVER_GRACE: Duration = Duration::from_secs(2);

/// The longest topic quoted in a log line or violation reason.
const MAX_QUOTED_TOPIC: usize = 128;

/// What the device map holds for a live session.
pub(super) struct SessionHandle {
    id: u64,
    control: mpsc::Sender<Control>,
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
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut sessions = self.shared.sessions();
        if sessions.get(&self.device).is_some_and(|h| h.id == self.id) {
            sessions.remove(&self.device);
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

/// Both sides of a connected session.
struct Sockets<S> {
    device: DeviceIo<S>,
    router: RouterIo,
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

    // `registration` gives the map entry back when `run` returns, whichever way it returns.
    let (registration, mut control, previous) = register(&shared, &device);
    let session = registration.id;
    let replaced = hand_over(&shared, previous).await;

    let Some((router, connack)) = link::open(&shared, &mut dev.w, &connect, peer).await else {
        report_replaced(&shared, &device, replaced);
        return;
    };
    announce(&shared, &device, session, peer, &grant.cluster);
    report_replaced(&shared, &device, replaced);

    let mut sockets = Sockets {
        device: dev,
        router,
    };
    let mut relay = Relay::new(
        &shared,
        &device,
        grant.cluster,
        session,
        connect.keep_alive,
        &connack,
    );
    let end = relay.run(&mut sockets, &mut control, &mut stop).await;
    let unsent = relay.unsent_to_router();
    teardown(&shared, &device, session, end, control, sockets, unsent).await;
}

/// Puts this session in the device map under a new session id; from here on the device owns
/// the map entry (the [`Registration`] guard gives it back). Returns the older session's
/// handle, if the device had one, which [`hand_over`] must end.
fn register(
    shared: &Arc<Shared>,
    device: &str,
) -> (Registration, mpsc::Receiver<Control>, Option<SessionHandle>) {
    let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let (control_tx, control_rx) = mpsc::channel(1);
    let previous = shared.sessions().insert(
        device.to_owned(),
        SessionHandle {
            id: session,
            control: control_tx,
        },
    );
    let registration = Registration {
        shared: shared.clone(),
        device: device.to_owned(),
        id: session,
    };
    (registration, control_rx, previous)
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

/// Closes the router link and the device socket the way `end` requires, then reports the
/// session's one `Disconnected` (or hands it to the session that replaced this one).
async fn teardown<S: AsyncRead + AsyncWrite>(
    shared: &Shared,
    device: &str,
    session: u64,
    end: End,
    control: mpsc::Receiver<Control>,
    Sockets {
        device: mut dev,
        mut router,
    }: Sockets<S>,
    mut unsent: BytesMut,
) {
    // After a DISCONNECT the router removes the connection itself; closing our side before it
    // has done so lets rumqttd's link report a second disconnect for a connection id it may
    // already have reused, so in that case wait for the router to close first.
    let (reason, handover) = match end {
        End::Reason(DisconnectReason::Clean) => {
            drop(control);
            link::close_after_disconnect(&mut router, &unsent).await;
            (DisconnectReason::Clean, None)
        }
        End::Replaced(done) => {
            unsent.extend_from_slice(&codec::encode_disconnect());
            link::close_after_disconnect(&mut router, &unsent).await;
            (DisconnectReason::Replaced, Some(done))
        }
        End::Reason(reason) => {
            // Any order the replacer sent after this point is dropped with the receiver; it
            // then knows this session reports for itself.
            drop(control);
            drop(router);
            (reason, None)
        }
    };
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
