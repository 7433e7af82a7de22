//! The session's loopback link to the router: opened with a rewritten CONNECT once the device
//! is logged in, and closed so rumqttd never sees a connection end twice.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::login::{answer_and_close, refuse_device};
use super::{read_frame, ReadError, HANDOVER_GRACE, READ_CHUNK, ROUTER_FRAME_CAP};
use crate::codec::{self, connack, packet, Connect, Frame};
use crate::edge::stats::bump;
use crate::edge::Shared;
use crate::AuthRefusal;

/// rumqttd refuses keep-alive 0 (closes without CONNACK), so a device asking for "no
/// keep-alive" gets the largest one on the router link; the edge itself then applies none.
const ROUTER_KEEP_ALIVE_FOR_ZERO: u16 = u16::MAX;

/// The router side of a session, split like the device's, and the bytes read from it but not
/// handled yet.
pub(super) struct RouterIo {
    pub(super) r: OwnedReadHalf,
    pub(super) w: OwnedWriteHalf,
    pub(super) unread: BytesMut,
}

/// Opens the router link for a logged-in device (under the CONNECT deadline) and returns it
/// with the router's CONNACK, which the relay forwards to the device. When the router cannot
/// be reached or refuses, the device gets its CONNACK here and `None` is returned.
pub(super) async fn open<W: AsyncWrite + Unpin>(
    shared: &Shared,
    dev_w: &mut W,
    connect: &Connect,
    peer: SocketAddr,
) -> Option<(RouterIo, Frame)> {
    let config = &shared.config;
    let device = &connect.client_id;
    let link = tokio::time::timeout(config.connect_timeout, open_router_link(shared, connect))
        .await
        .unwrap_or_else(|_| Err("router link timed out".to_owned()));
    let (router, unread, connack_frame, code) = match link {
        Ok(link) => link,
        Err(error) => {
            bump(&shared.stats.router_unavailable);
            tracing::error!(%device, %error, "router link failed; answering server unavailable");
            refuse_device(shared, dev_w, device, peer, AuthRefusal::Unavailable).await;
            return None;
        }
    };
    if code != connack::ACCEPTED {
        bump(&shared.stats.router_unavailable);
        tracing::error!(%device, code, "router refused the link");
        // Relayed as received, as an accepting CONNACK is.
        answer_and_close(dev_w, &connack_frame.bytes, config.connect_timeout).await;
        return None;
    }
    let (r, w) = router.into_split();
    Some((RouterIo { r, w, unread }, connack_frame))
}

/// Opens the loopback link: TCP to the router, the rewritten CONNECT, its CONNACK.
/// Returns the stream, bytes read past the CONNACK, the CONNACK frame and its return code.
async fn open_router_link(
    shared: &Shared,
    device: &Connect,
) -> Result<(TcpStream, BytesMut, Frame, u8), String> {
    let mut stream = TcpStream::connect(shared.router.addr())
        .await
        .map_err(|e| format!("connect to router: {e}"))?;
    let _ = stream.set_nodelay(true);
    let connect = Connect {
        clean_session: device.clean_session,
        // Twice the device's: a silent device must be noticed by the edge (1.5 × keep-alive,
        // reason KeepAliveTimeout), not by rumqttd racing it to the same deadline.
        keep_alive: match device.keep_alive {
            0 => ROUTER_KEEP_ALIVE_FOR_ZERO,
            ka => ka.saturating_mul(2),
        },
        client_id: device.client_id.clone(),
        // No will: rumqttd publishes the wrong one when a client id reconnects; the edge's
        // presence events replace it.
        will: None,
        username: Some(shared.router.username().to_owned()),
        password: Some(shared.router.password().as_bytes().to_vec()),
    };
    let bytes = codec::encode_connect(&connect).map_err(|e| format!("encode CONNECT: {e}"))?;
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| format!("send CONNECT: {e}"))?;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let frame = match read_frame(&mut stream, &mut buf, ROUTER_FRAME_CAP).await {
        Ok(frame) => frame,
        Err(ReadError::Closed) => return Err("router closed the link without CONNACK".into()),
        Err(ReadError::Io) => return Err("router link failed before CONNACK".into()),
        Err(ReadError::Codec(e)) => return Err(format!("router sent garbage: {e}")),
    };
    if frame.packet_type() != packet::CONNACK {
        return Err(format!(
            "router answered packet type {}",
            frame.packet_type()
        ));
    }
    let (_, code) = codec::parse_connack(frame.body()).map_err(|e| e.to_string())?;
    Ok((stream, buf, frame, code))
}

/// After a DISCONNECT has been queued: send what is pending, then wait (bounded) for the
/// router to close the link.
pub(super) async fn close_after_disconnect(router: &mut RouterIo, pending: &[u8]) {
    let _ = tokio::time::timeout(HANDOVER_GRACE, async {
        router.w.write_all(pending).await?;
        let mut sink = [0u8; 1024];
        while router.r.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}
