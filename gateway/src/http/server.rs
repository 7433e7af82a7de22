//! The HTTP server's own accept loop: hyper's HTTP/1 connection with a header-read timeout, a
//! read-idle timeout on every connection (request bodies and WebSockets too), and a cap on
//! connections, so that idle or half-sent HTTP connections cannot take the open files the
//! device edge needs.
//!
//! `axum::serve` has none of these knobs (no header timeout, no cap), so the loop is written
//! here on the same parts axum uses: hyper's `http1::Builder` (whose `header_read_timeout` is
//! the well-kept slow-loris defence) and hyper-util's tokio glue. Only HTTP/1.1 is spoken: the
//! console, the app, scrapers and reverse proxies all speak it.
//!
//! # The open-file budget
//! Every HTTP connection is one open file, as is every device socket. The cap on HTTP is
//! therefore derived from the process's open-file limit (`RLIMIT_NOFILE`, soft):
//! `limit − the edge's max_connections − FD_RESERVE` (files for the database, the push client
//! and the gateway itself), never above `--http-max-connections` and never below
//! [`MIN_HTTP_CONNECTIONS`]. HTTP can then never use the files kept for the devices.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::Service;

/// The HTTP connection settings of `tenwatch serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's head must have arrived this long after the server began waiting for it
    /// (hyper starts the clock when it waits for a head, so a kept-alive connection whose next
    /// request does not come within it is closed too).
    pub header_timeout: Duration,
    /// A connection whose client sent nothing for this long is closed: a stalled request body,
    /// a WebSocket whose browser is gone (the feed pings every 20 s; browsers answer).
    pub idle_timeout: Duration,
    /// The most HTTP connections at once, before the open-file budget (see the module
    /// header); one more is answered 503 and closed at once.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

impl HttpLimits {
    pub fn validate(&self) -> Result<(), String> {
        if self.header_timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err("--http-header-timeout and --http-idle-timeout must be above 0".into());
        }
        if self.max_connections == 0 {
            return Err("--http-max-connections must be at least 1".into());
        }
        Ok(())
    }
}

/// Open files kept for the gateway itself: database, push client, logs, the router.
pub const FD_RESERVE: u64 = 512;
/// HTTP keeps at least this many connections, even on a starved open-file limit, so that a
/// station and a health check can always get in.
pub const MIN_HTTP_CONNECTIONS: usize = 32;

/// How many HTTP connections the server admits: `wanted`, but never more than what the
/// open-file limit leaves once the devices (`device_connections`) and [`FD_RESERVE`] have
/// theirs, and never fewer than [`MIN_HTTP_CONNECTIONS`].
pub fn connection_cap(wanted: usize, fd_limit: Option<u64>, device_connections: usize) -> usize {
    let Some(limit) = fd_limit else {
        return wanted;
    };
    let left = limit
        .saturating_sub(device_connections as u64)
        .saturating_sub(FD_RESERVE);
    let left = usize::try_from(left).unwrap_or(usize::MAX);
    wanted.min(left.max(MIN_HTTP_CONNECTIONS))
}

/// Refused connections get this, best effort, before they are closed.
const FULL_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Type: application/json\r\nRetry-After: 5\r\nContent-Length: 59\r\n\r\n\
{\"error\":\"too many connections to the gateway: try again\"}\n";

/// After a failed accept (out of files), wait this long before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, asks every
/// connection to finish its request and close, and returns once all have (the caller bounds
/// the wait). Peers' addresses reach handlers as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    cap: usize,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), max_connections = cap, "HTTP listening");
    let permits = Arc::new(Semaphore::new(cap));
    let (stop_tx, _) = watch::channel(false);
    let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "HTTP accept failed; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = cap, "HTTP full; refusing a connection");
            // Never wait on a client that is being refused.
            let _ = socket.try_write(FULL_RESPONSE);
            continue;
        };
        tokio::spawn(connection(
            socket,
            peer,
            router.clone(),
            http.clone(),
            limits.idle_timeout,
            stop_tx.subscribe(),
            (permit, drain_tx.clone()),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(drain_tx);
    let _ = drain_rx.recv().await;
    Ok(())
}

/// One connection, until it closes or the server stops; the drain sender is held until then.
/// The permit goes with the socket, so that a connection upgraded to a WebSocket (which
/// outlives this task) still counts against the cap.
async fn connection(
    socket: TcpStream,
    peer: SocketAddr,
    router: Router,
    http: Arc<hyper::server::conn::http1::Builder>,
    idle_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    (permit, _drain): (OwnedSemaphorePermit, mpsc::Sender<()>),
) {
    let _ = socket.set_nodelay(true);
    let io = TokioIo::new(IdleTimeout::new(socket, idle_timeout, permit));
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move { router.call(req).await }
    });
    let conn = http.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "HTTP connection ended");
            }
        }
        // The watch's guard is dropped inside: it must not live across the awaits below.
        _ = async { drop(stop.wait_for(|s| *s).await) } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A socket that fails its reads with `TimedOut` once the client has sent nothing for
/// `idle`; hyper (or the WebSocket on top) then closes the connection.
struct IdleTimeout<T> {
    inner: T,
    /// The connection's place under the cap, given back when the socket is closed.
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    /// When the client last sent a byte.
    last_read: Instant,
    /// Armed at `last_read + idle`; re-armed lazily when it fires early.
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    fn new(inner: T, idle: Duration, permit: OwnedSemaphorePermit) -> Self {
        let now = Instant::now();
        Self {
            inner,
            _permit: permit,
            idle,
            last_read: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.last_read = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                // Polled until it is pending, so that the task is woken when it is due.
                while self.timer.as_mut().poll(cx).is_ready() {
                    let due = self.last_read + self.idle;
                    if due <= Instant::now() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client sent nothing within the idle timeout",
                        )));
                    }
                    self.timer.as_mut().reset(due);
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_whole_response() {
        let text = std::str::from_utf8(FULL_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
    }

    #[test]
    fn http_never_takes_the_devices_files() {
        // This machine's limit: 20,000 files, 18,000 for devices, 512 kept: 1,488 left.
        assert_eq!(connection_cap(1024, Some(20_000), 18_000), 1024);
        assert_eq!(connection_cap(4096, Some(20_000), 18_000), 1488);
        // A starved limit: HTTP keeps its floor, the rest stays with the devices.
        assert_eq!(
            connection_cap(1024, Some(1024), 18_000),
            MIN_HTTP_CONNECTIONS
        );
        assert_eq!(connection_cap(1024, Some(1024), 0), 512);
        // A small cap asked for is kept; an unknown limit leaves the flag alone.
        assert_eq!(connection_cap(8, Some(1024), 0), 8);
        assert_eq!(connection_cap(1024, None, 18_000), 1024);
    }
}
