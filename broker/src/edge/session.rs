//! One device connection: CONNECT and login, the loopback link to the router, then the relay
//! loop that checks every frame, and exactly one `Disconnected` presence at the end.
//!
//! The relay is a single task with four bounded buffers (in/out on each side) and no blocking
//! write: it stops reading a side while the buffer towards the other side is full, so a slow
//! device slows only itself and the two directions can never deadlock on each other.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::limit::TokenBucket;
use super::stats::bump;
use super::Shared;
use crate::codec::{self, connack, packet, CodecError, Connect, Frame};
use crate::{acl, AuthRefusal, DisconnectReason, PresenceEvent};

/// Bytes a PUBLISH frame may carry beyond its payload (fixed header, topic, packet id). Device
/// topics are under 100 bytes; this leaves room without letting a frame grow unbounded.
const FRAME_OVERHEAD: usize = 1024;

/// Largest frame accepted from the router (it caps payloads itself, at 64 KiB by default).
const ROUTER_FRAME_CAP: usize = 1024 * 1024;

/// Stop reading one side while this much is waiting to be written to the other.
const OUT_CAP: usize = 64 * 1024;

/// Read buffer growth step.
const READ_CHUNK: usize = 4096;

/// How long a replaced session may take to hand over, and a closing session to let the router
/// drop the link, before we go on without it.
const HANDOVER_GRACE: Duration = Duration::from_secs(2);

/// Subscriptions with refused filters waiting for the router's SUBACK (to splice 0x80 in).
/// Devices subscribe once or twice per connection; more in flight is abuse.
const MAX_PENDING_SUBSCRIBES: usize = 16;

/// The longest topic quoted in a log line or violation reason.
const MAX_QUOTED_TOPIC: usize = 128;

/// rumqttd refuses keep-alive 0 (closes without CONNACK), so a device asking for "no
/// keep-alive" gets the largest one on the router link; the edge itself then applies none.
const ROUTER_KEEP_ALIVE_FOR_ZERO: u16 = u16::MAX;

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

/// Runs one device connection to its end.
pub(super) async fn run<S>(
    shared: Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut dev_r, mut dev_w) = tokio::io::split(stream);
    let mut dev_in = BytesMut::with_capacity(512);
    let config = &shared.config;
    let stats = &shared.stats;
    let frame_cap = config.max_payload + FRAME_OVERHEAD;

    let first = tokio::select! {
        r = tokio::time::timeout(config.connect_timeout, read_frame(&mut dev_r, &mut dev_in, frame_cap)) => r,
        _ = stop.changed() => return,
    };
    let frame = match first {
        Err(_) => {
            bump(&stats.connect_timeouts);
            tracing::debug!(%peer, "no CONNECT before the deadline; closing");
            return;
        }
        Ok(Err(ReadError::Closed | ReadError::Io)) => return,
        Ok(Err(ReadError::Codec(error))) => {
            bump(&stats.protocol_errors);
            tracing::debug!(%peer, %error, "malformed first packet");
            return;
        }
        Ok(Ok(frame)) => frame,
    };
    if frame.packet_type() != packet::CONNECT {
        bump(&stats.protocol_errors);
        tracing::debug!(%peer, packet_type = frame.packet_type(), "first packet is not CONNECT");
        return;
    }
    let connect = match codec::parse_connect(frame.body()) {
        Ok(c) => c,
        Err(CodecError::UnsupportedProtocol { name, level }) => {
            bump(&stats.logins_refused);
            tracing::info!(%peer, %name, level, "refused: not MQTT 3.1.1");
            refuse(
                &mut dev_w,
                connack::UNACCEPTABLE_PROTOCOL,
                config.connect_timeout,
            )
            .await;
            return;
        }
        Err(error) => {
            bump(&stats.protocol_errors);
            tracing::debug!(%peer, %error, "malformed CONNECT");
            return;
        }
    };

    let device = connect.client_id.clone();
    if !acl::is_valid_device_id(&device) {
        bump(&stats.logins_refused);
        tracing::info!(%peer, client_id = ?quote(&device), "refused: client id is not a device id");
        refuse(
            &mut dev_w,
            connack::IDENTIFIER_REJECTED,
            config.connect_timeout,
        )
        .await;
        return;
    }
    let refused = |refusal: AuthRefusal| {
        bump(&stats.logins_refused);
        shared.authority.presence(PresenceEvent::Refused {
            device: device.clone(),
            peer,
            refusal,
        });
    };
    let password = match (&connect.username, &connect.password) {
        (Some(user), Some(password)) if *user == device => password.clone(),
        _ => {
            refused(AuthRefusal::BadCredentials);
            tracing::info!(%peer, %device, "refused: user name must equal client id, with a password");
            refuse(&mut dev_w, connack::BAD_CREDENTIALS, config.connect_timeout).await;
            return;
        }
    };

    let auth = tokio::select! {
        r = tokio::time::timeout(config.connect_timeout, shared.authority.authenticate(&device, &password)) => r,
        _ = stop.changed() => return,
    };
    let grant = match auth {
        Ok(Ok(grant)) => grant,
        Ok(Err(refusal)) => {
            refused(refusal);
            tracing::info!(%peer, %device, ?refusal, "login refused");
            refuse(&mut dev_w, refusal_code(refusal), config.connect_timeout).await;
            return;
        }
        Err(_) => {
            refused(AuthRefusal::Unavailable);
            tracing::warn!(%peer, %device, "registry did not answer in time");
            refuse(
                &mut dev_w,
                connack::SERVER_UNAVAILABLE,
                config.connect_timeout,
            )
            .await;
            return;
        }
    };

    // From here on the device owns the map entry; an older session is told to close first.
    let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let (control_tx, mut control_rx) = mpsc::channel(1);
    let previous = shared.sessions().insert(
        device.clone(),
        SessionHandle {
            id: session,
            control: control_tx,
        },
    );
    let _registration = Registration {
        shared: shared.clone(),
        device: device.clone(),
        id: session,
    };
    let mut owed_replaced: Option<u64> = None;
    if let Some(old) = previous {
        bump(&stats.sessions_replaced);
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
            owed_replaced = Some(old.id);
        }
        // Otherwise the old session ended on its own and reported its own reason.
    }
    let report_replaced = |shared: &Shared| {
        if let Some(old) = owed_replaced {
            shared.authority.presence(PresenceEvent::Disconnected {
                device: device.clone(),
                session: old,
                reason: DisconnectReason::Replaced,
            });
        }
    };

    let link = tokio::time::timeout(config.connect_timeout, open_router_link(&shared, &connect))
        .await
        .unwrap_or_else(|_| Err("router link timed out".to_owned()));
    let (router, mut rtr_in, connack_frame, code) = match link {
        Ok(link) => link,
        Err(error) => {
            bump(&stats.router_unavailable);
            refused(AuthRefusal::Unavailable);
            tracing::error!(%device, %error, "router link failed; answering server unavailable");
            refuse(
                &mut dev_w,
                connack::SERVER_UNAVAILABLE,
                config.connect_timeout,
            )
            .await;
            report_replaced(&shared);
            return;
        }
    };
    if code != connack::ACCEPTED {
        bump(&stats.router_unavailable);
        tracing::error!(%device, code, "router refused the link");
        refuse(&mut dev_w, code, config.connect_timeout).await;
        report_replaced(&shared);
        return;
    }

    stats.connected.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%device, session, %peer, cluster = %grant.cluster, "device connected");
    shared.authority.presence(PresenceEvent::Connected {
        device: device.clone(),
        session,
        peer,
    });
    report_replaced(&shared);

    let (mut rtr_r, mut rtr_w) = router.into_split();
    let now = Instant::now();
    let keep_alive =
        (connect.keep_alive > 0).then(|| Duration::from_secs(u64::from(connect.keep_alive)));
    let mut relay = Relay {
        shared: &shared,
        device: &device,
        cluster: grant.cluster,
        press: TokenBucket::new(config.press_limit, now),
        publish: TokenBucket::new(config.publish_limit, now),
        pending_subscribes: HashMap::new(),
        session,
        awaited_subacks: Vec::new(),
        subscribed: (false, false),
        pingresps_to_swallow: 0,
        keep_alive,
        last_to_router: now,
        to_dev: BytesMut::from(&connack_frame.bytes[..]),
        to_rtr: BytesMut::new(),
        drops: 0,
    };

    // The "read deadline": 1.5 × keep-alive since the last byte from the device.
    let idle_limit = keep_alive.map(|ka| ka + ka / 2);
    let far = Duration::from_secs(86_400 * 365);
    let idle = tokio::time::sleep(idle_limit.unwrap_or(far));
    tokio::pin!(idle);
    let mut dev_unflushed = false;

    // Frames the device pipelined behind its CONNECT are already buffered.
    let mut end = relay.drain_device(&mut dev_in, frame_cap).err();
    if end.is_none() {
        relay.drain_router(&mut rtr_in);
    }
    let end = match end.take() {
        Some(end) => end,
        None => loop {
            if dev_in.capacity() - dev_in.len() < READ_CHUNK / 4 {
                dev_in.reserve(READ_CHUNK);
            }
            if rtr_in.capacity() - rtr_in.len() < READ_CHUNK / 4 {
                rtr_in.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                Some(Control::Replace { done }) = control_rx.recv() => break End::Replaced(done),
                _ = stop.changed() => break End::Reason(DisconnectReason::Shutdown),
                _ = &mut idle, if idle_limit.is_some() => break End::Reason(DisconnectReason::KeepAliveTimeout),
                r = write_or_flush(&mut dev_w, &relay.to_dev), if !relay.to_dev.is_empty() || dev_unflushed => match r {
                    Ok(Some(n)) if n > 0 => {
                        let _ = relay.to_dev.split_to(n);
                        dev_unflushed = true;
                    }
                    Ok(None) => dev_unflushed = false,
                    _ => break End::Reason(DisconnectReason::ConnectionLost),
                },
                r = rtr_w.write(&relay.to_rtr), if !relay.to_rtr.is_empty() => match r {
                    Ok(n) if n > 0 => {
                        let _ = relay.to_rtr.split_to(n);
                    }
                    _ => break End::Reason(DisconnectReason::RouterClosed),
                },
                r = dev_r.read_buf(&mut dev_in), if relay.to_rtr.len() < OUT_CAP => match r {
                    Ok(n) if n > 0 => {
                        if let Some(limit) = idle_limit {
                            idle.as_mut().reset(Instant::now() + limit);
                        }
                        if let Err(end) = relay.drain_device(&mut dev_in, frame_cap) {
                            break end;
                        }
                    }
                    _ => break End::Reason(DisconnectReason::ConnectionLost),
                },
                r = rtr_r.read_buf(&mut rtr_in), if relay.to_dev.len() < OUT_CAP => match r {
                    Ok(n) if n > 0 => {
                        if !relay.drain_router(&mut rtr_in) {
                            break End::Reason(DisconnectReason::RouterClosed);
                        }
                    }
                    _ => break End::Reason(DisconnectReason::RouterClosed),
                },
            }
        },
    };

    // Teardown. After a DISCONNECT the router removes the connection itself; closing our side
    // before it has done so lets rumqttd's link report a second disconnect for a connection id
    // it may already have reused, so in that case wait for the router to close first.
    let (reason, handover) = match end {
        End::Reason(DisconnectReason::Clean) => {
            drop(control_rx);
            close_router_after_disconnect(&mut rtr_r, &mut rtr_w, &relay.to_rtr).await;
            (DisconnectReason::Clean, None)
        }
        End::Replaced(done) => {
            relay.to_rtr.extend_from_slice(&codec::DISCONNECT);
            close_router_after_disconnect(&mut rtr_r, &mut rtr_w, &relay.to_rtr).await;
            (DisconnectReason::Replaced, Some(done))
        }
        End::Reason(reason) => {
            // Any order the replacer sent after this point is dropped with the receiver; it
            // then knows this session reports for itself.
            drop(control_rx);
            drop(rtr_w);
            drop(rtr_r);
            (reason, None)
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), dev_w.shutdown()).await;
    drop(dev_w);
    drop(dev_r);
    stats.connected.fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(%device, session, ?reason, "device disconnected");

    let handed_over = handover.is_some_and(|done| done.send(()).is_ok());
    if !handed_over {
        shared.authority.presence(PresenceEvent::Disconnected {
            device,
            session,
            reason,
        });
    }
}

/// The per-session relay state: everything the frame checks need.
struct Relay<'a> {
    shared: &'a Shared,
    device: &'a str,
    cluster: String,
    press: TokenBucket,
    publish: TokenBucket,
    /// SUBSCRIBE packet id → which of the device's filters were allowed (forwarded).
    pending_subscribes: HashMap<u16, Vec<bool>>,
    /// This connection's session id, for the presence events.
    session: u64,
    /// SUBSCRIBE packet ids forwarded with a filter on the device's downlink (`.0`) or its
    /// cluster (`.1`), waiting for their SUBACK.
    awaited_subacks: Vec<(u16, bool, bool)>,
    /// The downlink's and the cluster's subscriptions are acknowledged; once both are,
    /// [`PresenceEvent::Subscribed`] is reported (once).
    subscribed: (bool, bool),
    /// PINGREQs the edge sent on its own to keep the router link alive; their PINGRESPs are
    /// not the device's to see.
    pingresps_to_swallow: u32,
    keep_alive: Option<Duration>,
    last_to_router: Instant,
    to_dev: BytesMut,
    to_rtr: BytesMut,
    /// Publishes dropped by the rate limits in this session (for sparse logging).
    drops: u64,
}

impl Relay<'_> {
    /// Handles every complete frame in `buf`; `Err` ends the session.
    fn drain_device(&mut self, buf: &mut BytesMut, frame_cap: usize) -> Result<(), End> {
        loop {
            match codec::next_frame(buf, frame_cap) {
                Ok(Some(frame)) => self.on_device_frame(frame)?,
                Ok(None) => return Ok(()),
                Err(error) => return Err(End::Reason(self.codec_violation(error))),
            }
        }
    }

    /// Handles every complete frame from the router; `false` if the router sent garbage.
    fn drain_router(&mut self, buf: &mut BytesMut) -> bool {
        loop {
            match codec::next_frame(buf, ROUTER_FRAME_CAP) {
                Ok(Some(frame)) => self.on_router_frame(frame),
                Ok(None) => return true,
                Err(error) => {
                    tracing::error!(device = self.device, %error, "unreadable frame from the router");
                    return false;
                }
            }
        }
    }

    fn codec_violation(&self, error: CodecError) -> DisconnectReason {
        let stats = &self.shared.stats;
        if let CodecError::FrameTooLarge {
            packet_type: packet::PUBLISH,
            len,
            ..
        } = error
        {
            bump(&stats.oversize_refused);
            tracing::warn!(device = self.device, len, "oversize PUBLISH; closing");
            return DisconnectReason::Violation("oversize payload".into());
        }
        bump(&stats.protocol_errors);
        tracing::warn!(device = self.device, %error, "malformed packet; closing");
        DisconnectReason::Violation(format!("protocol error: {error}"))
    }

    fn push_to_router(&mut self, bytes: &[u8]) {
        self.to_rtr.extend_from_slice(bytes);
        self.last_to_router = Instant::now();
    }

    fn on_device_frame(&mut self, frame: Frame) -> Result<(), End> {
        match frame.packet_type() {
            packet::PUBLISH => self.on_publish(&frame).map_err(End::Reason),
            packet::SUBSCRIBE => self.on_subscribe(&frame).map_err(End::Reason),
            packet::PUBACK
            | packet::PUBREC
            | packet::PUBREL
            | packet::PUBCOMP
            | packet::UNSUBSCRIBE
            | packet::PINGREQ => {
                self.push_to_router(&frame.bytes);
                Ok(())
            }
            packet::DISCONNECT => {
                self.push_to_router(&frame.bytes);
                Err(End::Reason(DisconnectReason::Clean))
            }
            other => {
                bump(&self.shared.stats.protocol_errors);
                let what = if other == packet::CONNECT {
                    "second CONNECT".to_owned()
                } else {
                    format!("unexpected packet type {other}")
                };
                tracing::warn!(device = self.device, %what, "protocol violation; closing");
                Err(End::Reason(DisconnectReason::Violation(what)))
            }
        }
    }

    fn on_publish(&mut self, frame: &Frame) -> Result<(), DisconnectReason> {
        let stats = &self.shared.stats;
        let publish = codec::parse_publish(frame.flags(), frame.body()).map_err(|error| {
            bump(&stats.protocol_errors);
            tracing::warn!(device = self.device, %error, "malformed PUBLISH; closing");
            DisconnectReason::Violation(format!("malformed PUBLISH: {error}"))
        })?;
        if !acl::may_publish(self.device, publish.topic) {
            bump(&stats.acl_publish_refused);
            let topic = quote(publish.topic);
            tracing::warn!(device = self.device, topic = ?topic, "forged topic; closing");
            return Err(DisconnectReason::Violation(format!("forged topic {topic}")));
        }
        if publish.payload.len() > self.shared.config.max_payload {
            bump(&stats.oversize_refused);
            tracing::warn!(
                device = self.device,
                len = publish.payload.len(),
                "oversize PUBLISH; closing"
            );
            return Err(DisconnectReason::Violation("oversize payload".into()));
        }
        if publish.qos == 2 {
            // Dropping a rate-limited QoS 2 publish would need the edge to run the
            // PUBREC/PUBREL exchange itself; devices use QoS 1, so QoS 2 is refused outright.
            bump(&stats.protocol_errors);
            tracing::warn!(device = self.device, "QoS 2 PUBLISH; closing");
            return Err(DisconnectReason::Violation(
                "QoS 2 publish not supported".into(),
            ));
        }
        let now = Instant::now();
        let bucket = if acl::is_press_topic(publish.topic) {
            &mut self.press
        } else {
            &mut self.publish
        };
        if !bucket.try_take(now) {
            bump(&stats.rate_limited);
            self.drops += 1;
            if self.drops.is_power_of_two() {
                tracing::warn!(
                    device = self.device,
                    topic = publish.topic,
                    dropped = self.drops,
                    "rate limited"
                );
            }
            // Acknowledge it so the device's inflight window does not stall; the device
            // repeats presses until `down/ack`, so nothing that matters is lost.
            if let Some(id) = publish.packet_id {
                self.to_dev.extend_from_slice(&codec::encode_puback(id));
            }
            self.keep_router_alive(now);
            return Ok(());
        }
        let start = self.to_rtr.len();
        self.push_to_router(&frame.bytes);
        // Clear RETAIN: a retained uplink would be replayed to the gateway on every
        // resubscribe (and any empty publish clears retained topics in rumqttd).
        self.to_rtr[start] &= !0x01;
        Ok(())
    }

    /// While the edge swallows a flood, nothing reaches the router; without this the router
    /// would drop the link at 1.5 × keep-alive although the device is alive.
    fn keep_router_alive(&mut self, now: Instant) {
        if let Some(ka) = self.keep_alive {
            if now.saturating_duration_since(self.last_to_router) >= ka / 2 {
                self.push_to_router(&codec::PINGREQ);
                self.pingresps_to_swallow += 1;
            }
        }
    }

    fn on_subscribe(&mut self, frame: &Frame) -> Result<(), DisconnectReason> {
        let stats = &self.shared.stats;
        let subscribe = codec::parse_subscribe(frame.flags(), frame.body()).map_err(|error| {
            bump(&stats.protocol_errors);
            tracing::warn!(device = self.device, %error, "malformed SUBSCRIBE; closing");
            DisconnectReason::Violation(format!("malformed SUBSCRIBE: {error}"))
        })?;
        let allowed: Vec<bool> = subscribe
            .filters
            .iter()
            .map(|(filter, _)| acl::may_subscribe(self.device, &self.cluster, filter))
            .collect();
        let refused: Vec<&str> = subscribe
            .filters
            .iter()
            .zip(&allowed)
            .filter(|(_, ok)| !**ok)
            .map(|((filter, _), _)| quote(filter))
            .collect();
        self.await_suback(subscribe.packet_id, &subscribe.filters, &allowed);
        if refused.is_empty() {
            self.push_to_router(&frame.bytes);
            return Ok(());
        }
        stats
            .acl_subscribe_refused
            .fetch_add(refused.len() as u64, Ordering::Relaxed);
        tracing::warn!(device = self.device, filters = ?refused, "subscription refused");
        if refused.len() == allowed.len() {
            let codes = vec![codec::SUBACK_FAILURE; allowed.len()];
            self.to_dev
                .extend_from_slice(&codec::encode_suback(subscribe.packet_id, &codes));
            return Ok(());
        }
        if self.pending_subscribes.len() >= MAX_PENDING_SUBSCRIBES
            && !self.pending_subscribes.contains_key(&subscribe.packet_id)
        {
            bump(&stats.protocol_errors);
            return Err(DisconnectReason::Violation(
                "too many SUBSCRIBEs in flight".into(),
            ));
        }
        let forwarded: Vec<(&str, u8)> = subscribe
            .filters
            .iter()
            .zip(&allowed)
            .filter(|(_, ok)| **ok)
            .map(|((filter, qos), _)| (filter.as_str(), *qos))
            .collect();
        let packet = codec::encode_subscribe(subscribe.packet_id, &forwarded).map_err(|error| {
            bump(&stats.protocol_errors);
            DisconnectReason::Violation(format!("malformed SUBSCRIBE: {error}"))
        })?;
        self.push_to_router(&packet);
        self.pending_subscribes.insert(subscribe.packet_id, allowed);
        Ok(())
    }

    /// Notes a SUBSCRIBE that puts the device's downlink or cluster filter in place.
    fn await_suback(&mut self, packet_id: u16, filters: &[(String, u8)], allowed: &[bool]) {
        if self.subscribed == (true, true) || self.awaited_subacks.len() >= MAX_PENDING_SUBSCRIBES {
            return;
        }
        let mut down = false;
        let mut cluster = false;
        for ((filter, _), ok) in filters.iter().zip(allowed) {
            if *ok {
                down |= filter.starts_with(&format!("tw/d/{}/down", self.device));
                cluster |= filter.starts_with(&format!("tw/c/{}", self.cluster));
            }
        }
        if down || cluster {
            self.awaited_subacks.push((packet_id, down, cluster));
        }
    }

    /// A SUBACK passes: reports the device fully subscribed once both filters are in place.
    fn suback_seen(&mut self, packet_id: u16) {
        let Some(i) = self
            .awaited_subacks
            .iter()
            .position(|(id, ..)| *id == packet_id)
        else {
            return;
        };
        let (_, down, cluster) = self.awaited_subacks.swap_remove(i);
        let before = self.subscribed;
        self.subscribed = (before.0 || down, before.1 || cluster);
        if before != (true, true) && self.subscribed == (true, true) {
            self.shared.authority.presence(PresenceEvent::Subscribed {
                device: self.device.to_owned(),
                session: self.session,
            });
        }
    }

    fn on_router_frame(&mut self, frame: Frame) {
        match frame.packet_type() {
            packet::SUBACK => {
                if let Ok(id) = codec::packet_id(frame.body()) {
                    self.suback_seen(id);
                }
                let spliced = codec::packet_id(frame.body())
                    .ok()
                    .and_then(|id| self.pending_subscribes.remove(&id).map(|mask| (id, mask)))
                    .and_then(|(id, mask)| {
                        let (_, codes) = codec::parse_suback(frame.body()).ok()?;
                        let mut codes = codes.into_iter();
                        let full: Vec<u8> = mask
                            .iter()
                            .map(|ok| {
                                if *ok {
                                    codes.next().unwrap_or(codec::SUBACK_FAILURE)
                                } else {
                                    codec::SUBACK_FAILURE
                                }
                            })
                            .collect();
                        Some(codec::encode_suback(id, &full))
                    });
                match spliced {
                    Some(bytes) => self.to_dev.extend_from_slice(&bytes),
                    None => self.to_dev.extend_from_slice(&frame.bytes),
                }
            }
            packet::PINGRESP if self.pingresps_to_swallow > 0 => {
                self.pingresps_to_swallow -= 1;
            }
            _ => self.to_dev.extend_from_slice(&frame.bytes),
        }
    }
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
async fn close_router_after_disconnect(
    rtr_r: &mut tokio::net::tcp::OwnedReadHalf,
    rtr_w: &mut tokio::net::tcp::OwnedWriteHalf,
    pending: &[u8],
) {
    let _ = tokio::time::timeout(HANDOVER_GRACE, async {
        rtr_w.write_all(pending).await?;
        let mut sink = [0u8; 1024];
        while rtr_r.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

enum ReadError {
    Closed,
    Io,
    Codec(CodecError),
}

/// Writes some of `buf` (`Some(bytes written)`), or flushes when it is empty (`None`). One
/// future for both because both need the device's write half; TLS buffers written records
/// until flushed, so a flush must follow the last write.
async fn write_or_flush<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &[u8],
) -> std::io::Result<Option<usize>> {
    if buf.is_empty() {
        w.flush().await.map(|()| None)
    } else {
        w.write(buf).await.map(Some)
    }
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

/// Answers a refused CONNECT (bounded: a device that does not read must not hold the task)
/// and closes.
async fn refuse<W: AsyncWrite + Unpin>(w: &mut W, code: u8, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        w.write_all(&codec::encode_connack(false, code)).await?;
        w.shutdown().await
    })
    .await;
}

fn refusal_code(refusal: AuthRefusal) -> u8 {
    match refusal {
        AuthRefusal::BadCredentials => connack::BAD_CREDENTIALS,
        AuthRefusal::NotAuthorized => connack::NOT_AUTHORIZED,
        AuthRefusal::Unavailable => connack::SERVER_UNAVAILABLE,
    }
}

/// A device-chosen string cut to a length fit for logs.
fn quote(s: &str) -> &str {
    match s.char_indices().nth(MAX_QUOTED_TOPIC) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}
