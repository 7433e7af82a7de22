//! The login step: the device's first frame must be an MQTT 3.1.1 CONNECT whose client id is a
//! device id, equal to the user name, with a password the registry accepts. Every refusal is
//! answered with a real CONNACK (rumqttd would just close the socket).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::{device_frame_cap, quote, read_frame, DeviceIo, ReadError};
use crate::codec::{self, packet, CodecError, Connect, ConnectReturnCode};
use crate::edge::stats::bump;
use crate::edge::Shared;
use crate::{acl, AuthRefusal, DeviceGrant, PresenceEvent};

/// A device the registry let in.
pub(super) struct Login {
    /// The client id, checked to be a device id.
    pub(super) device: String,
    /// Its CONNECT: clean-session flag and keep-alive.
    pub(super) connect: Connect,
    /// What the registry granted: the cluster the device may subscribe to.
    pub(super) grant: DeviceGrant,
}

/// Runs the login under the CONNECT deadline. `None` when the device went silent, sent
/// garbage, was refused (it then has its CONNACK) or the edge is stopping.
pub(super) async fn login<S: AsyncRead + AsyncWrite>(
    shared: &Shared,
    device: &mut DeviceIo<S>,
    peer: SocketAddr,
    stop: &mut watch::Receiver<bool>,
) -> Option<Login> {
    let connect = read_connect(shared, device, peer, stop).await?;
    let password = check_identity(shared, &mut device.w, peer, &connect).await?;
    let grant = authenticate(shared, &mut device.w, peer, &connect, &password, stop).await?;
    Some(Login {
        device: connect.client_id.clone(),
        connect,
        grant,
    })
}

/// Reads the first frame (bounded by the CONNECT deadline) and parses it as a CONNECT. Only
/// another protocol version gets an answer (CONNACK 1); anything else malformed just closes.
async fn read_connect<S: AsyncRead + AsyncWrite>(
    shared: &Shared,
    device: &mut DeviceIo<S>,
    peer: SocketAddr,
    stop: &mut watch::Receiver<bool>,
) -> Option<Connect> {
    let config = &shared.config;
    let stats = &shared.stats;
    let frame_cap = device_frame_cap(config);
    let first = tokio::select! {
        r = tokio::time::timeout(config.connect_timeout, read_frame(&mut device.r, &mut device.unread, frame_cap)) => r,
        _ = stop.changed() => return None,
    };
    let frame = match first {
        Err(_) => {
            bump(&stats.connect_timeouts);
            tracing::debug!(%peer, "no CONNECT before the deadline; closing");
            return None;
        }
        Ok(Err(ReadError::Closed | ReadError::Io)) => return None,
        Ok(Err(ReadError::Codec(error))) => {
            bump(&stats.protocol_errors);
            tracing::debug!(%peer, %error, "malformed first packet");
            return None;
        }
        Ok(Ok(frame)) => frame,
    };
    if frame.packet_type() != packet::CONNECT {
        bump(&stats.protocol_errors);
        tracing::debug!(%peer, packet_type = frame.packet_type(), "first packet is not CONNECT");
        return None;
    }
    match codec::parse_connect(frame.body()) {
        Ok(connect) => Some(connect),
        Err(CodecError::UnsupportedProtocol { name, level }) => {
            bump(&stats.logins_refused);
            tracing::info!(%peer, %name, level, "refused: not MQTT 3.1.1");
            refuse(
                &mut device.w,
                ConnectReturnCode::RefusedProtocolVersion,
                config.connect_timeout,
            )
            .await;
            None
        }
        Err(error) => {
            bump(&stats.protocol_errors);
            tracing::debug!(%peer, %error, "malformed CONNECT");
            None
        }
    }
}

/// Checks what the edge can check alone: the client id is a device id (else CONNACK 2) and the
/// user name, with a password (else CONNACK 4). Returns the password to ask the registry with.
async fn check_identity<W: AsyncWrite + Unpin>(
    shared: &Shared,
    dev_w: &mut W,
    peer: SocketAddr,
    connect: &Connect,
) -> Option<Vec<u8>> {
    let config = &shared.config;
    let device = &connect.client_id;
    if !acl::is_valid_device_id(device) {
        bump(&shared.stats.logins_refused);
        tracing::info!(%peer, client_id = ?quote(device), "refused: client id is not a device id");
        refuse(
            dev_w,
            ConnectReturnCode::BadClientId,
            config.connect_timeout,
        )
        .await;
        return None;
    }
    match (&connect.username, &connect.password) {
        (Some(user), Some(password)) if user == device => Some(password.clone()),
        _ => {
            tracing::info!(%peer, %device, "refused: user name must equal client id, with a password");
            refuse_device(shared, dev_w, device, peer, AuthRefusal::BadCredentials).await;
            None
        }
    }
}

/// Asks the registry (under the CONNECT deadline; no answer in time is CONNACK 3) and turns
/// its refusal into the matching CONNACK.
async fn authenticate<W: AsyncWrite + Unpin>(
    shared: &Shared,
    dev_w: &mut W,
    peer: SocketAddr,
    connect: &Connect,
    password: &[u8],
    stop: &mut watch::Receiver<bool>,
) -> Option<DeviceGrant> {
    let config = &shared.config;
    let device = &connect.client_id;
    let auth = tokio::select! {
        r = tokio::time::timeout(config.connect_timeout, shared.authority.authenticate(device, password)) => r,
        _ = stop.changed() => return None,
    };
    match auth {
        Ok(Ok(grant)) => Some(grant),
        Ok(Err(refusal)) => {
            tracing::info!(%peer, %device, ?refusal, "login refused");
            refuse_device(shared, dev_w, device, peer, refusal).await;
            None
        }
        Err(_) => {
            tracing::warn!(%peer, %device, "registry did not answer in time");
            refuse_device(shared, dev_w, device, peer, AuthRefusal::Unavailable).await;
            None
        }
    }
}

/// Refuses the login of a well-formed device id: counts it, reports it (the gateway counts it
/// per id tried; it changes nothing about the device) and answers with the CONNACK that
/// matches `refusal`.
pub(super) async fn refuse_device<W: AsyncWrite + Unpin>(
    shared: &Shared,
    dev_w: &mut W,
    device: &str,
    peer: SocketAddr,
    refusal: AuthRefusal,
) {
    bump(&shared.stats.logins_refused);
    shared.authority.presence(PresenceEvent::Refused {
        device: device.to_owned(),
        peer,
        refusal,
    });
    refuse(dev_w, refusal_code(refusal), shared.config.connect_timeout).await;
}

/// Answers a refused CONNECT with a CONNACK of `code` and closes.
pub(super) async fn refuse<W: AsyncWrite + Unpin>(
    w: &mut W,
    code: ConnectReturnCode,
    limit: Duration,
) {
    answer_and_close(w, &codec::encode_connack(false, code), limit).await;
}

/// Sends a refused device its CONNACK (bounded: a device that does not read must not hold the
/// task) and closes.
async fn answer_and_close<W: AsyncWrite + Unpin>(w: &mut W, connack: &[u8], limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        w.write_all(connack).await?;
        w.shutdown().await
    })
    .await;
}

fn refusal_code(refusal: AuthRefusal) -> ConnectReturnCode {
    match refusal {
        AuthRefusal::BadCredentials => ConnectReturnCode::BadUserNamePassword,
        AuthRefusal::NotAuthorized => ConnectReturnCode::NotAuthorized,
        AuthRefusal::Unavailable => ConnectReturnCode::ServiceUnavailable,
    }
}
