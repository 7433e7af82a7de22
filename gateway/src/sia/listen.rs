//! The receiver's sockets: TCP (a stream of `<LF>…<CR>` messages, each answered before the
//! next is read) and UDP (one message a datagram, answered to its sender). Bounded: connections
//! are capped, a message longer than [`MAX_FRAME`] is refused without being buffered, a
//! silent connection is closed, and so is one that keeps sending what is refused.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::answer::{Receiver, Verdict};
use super::frame::{self, MAX_FRAME};

/// The receiver's sockets, bound by the caller (`--sia-listen` binds both on one address;
/// tests bind port 0).
pub struct SiaListeners {
    pub tcp: TcpListener,
    pub udp: UdpSocket,
}

/// Accepts panels until `stop` completes; each connection is a task of its own, ended by the
/// same stop.
pub async fn serve_tcp(
    receiver: Arc<Receiver>,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(receiver.settings().max_connections));
    let mut connections = tokio::task::JoinSet::new();
    // Every connection hears the one stop.
    let stopping = CancellationToken::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // A refused or reset connection, or out of files for a moment: the next.
                Err(e) => {
                    tracing::warn!(error = %e, "SIA: accepting a connection failed");
                    continue;
                }
            },
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "SIA: connection refused, at the connection cap");
            drop(stream);
            continue;
        };
        let (receiver, stop) = (receiver.clone(), stopping.clone());
        connections.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = connection(&receiver, stream, peer) => {}
            }
            drop(slot);
        });
    }
    stopping.cancel();
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// One panel's connection: message by message, each answered before the next is read.
async fn connection(receiver: &Receiver, mut stream: TcpStream, peer: SocketAddr) {
    let settings = *receiver.settings();
    let peer_text = peer.to_string();
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    let mut refused_in_a_row = 0u32;
    loop {
        while let Some(end) = buf.iter().position(|&b| b == b'\r') {
            let message: Vec<u8> = buf.drain(..=end).collect();
            let message = message.trim_ascii();
            if message.is_empty() {
                continue;
            }
            let reply = receiver.answer(message, &peer_text).await;
            refused_in_a_row = match reply.verdict {
                Verdict::Ack => 0,
                _ => refused_in_a_row + 1,
            };
            if let Some(bytes) = reply.bytes {
                if write(&mut stream, &bytes, &settings).await.is_err() {
                    return;
                }
            }
            if refused_in_a_row >= settings.max_refused_in_a_row {
                tracing::warn!(peer = %peer_text, refused_in_a_row,
                    "SIA: closing a connection that sends only what is refused");
                close(stream).await;
                return;
            }
        }
        if buf.len() > MAX_FRAME + 1 {
            tracing::warn!(peer = %peer_text, bytes = buf.len(),
                "SIA: a message longer than {MAX_FRAME} bytes: NAK, connection closed");
            let now = chrono::Utc::now();
            let _ = write(&mut stream, &frame::nak(now), &settings).await;
            close(stream).await;
            return;
        }
        let read = tokio::time::timeout(settings.idle_timeout, stream.read(&mut chunk)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {
                tracing::debug!(peer = %peer_text, "SIA: idle connection closed");
                return;
            }
        }
    }
}

/// Closes a connection the sender is still writing to so that the last answer reaches it:
/// FIN first, then what it still sends is read and dropped, briefly and boundedly (closing
/// with unread bytes would reset the connection, and the answer could be lost with it).
async fn close(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut chunk = [0u8; 4096];
    let drain = async {
        let mut dropped = 0usize;
        while dropped < 256 * 1024 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => dropped += n,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}

async fn write(
    stream: &mut TcpStream,
    bytes: &[u8],
    settings: &super::SiaSettings,
) -> std::io::Result<()> {
    tokio::time::timeout(settings.idle_timeout, stream.write_all(bytes))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Answers datagrams until `stop` completes; at most `max_udp_in_flight` at once, the rest
/// dropped (a panel repeats a message it got no answer to).
pub async fn serve_udp(
    receiver: Arc<Receiver>,
    socket: UdpSocket,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let socket = Arc::new(socket);
    let slots = Arc::new(Semaphore::new(receiver.settings().max_udp_in_flight));
    // One byte more than a message may be: a datagram that fills it was longer.
    let mut buf = vec![0u8; MAX_FRAME + 3];
    tokio::pin!(stop);
    loop {
        let (n, peer) = tokio::select! {
            _ = &mut stop => return Ok(()),
            got = socket.recv_from(&mut buf) => match got {
                Ok(g) => g,
                // An ICMP error from an earlier answer, say: not this socket's end.
                Err(e) => {
                    tracing::debug!(error = %e, "SIA: UDP receive failed");
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "SIA: UDP message dropped, too many in hand");
            continue;
        };
        let message = if n == buf.len() {
            // Longer than any message: answered as the garbage it is, without reading on.
            b"oversize".to_vec()
        } else {
            buf[..n].trim_ascii().to_vec()
        };
        let (receiver, socket) = (receiver.clone(), socket.clone());
        tokio::spawn(async move {
            let reply = receiver.answer(&message, &peer.to_string()).await;
            if let Some(bytes) = reply.bytes {
                if let Err(e) = socket.send_to(&bytes, peer).await {
                    tracing::debug!(%peer, error = %e, "SIA: UDP answer not sent");
                }
            }
            drop(slot);
        });
    }
}
