//! The relay step: frames between the device and the router, each checked on the way (topic
//! ACL, payload cap, rate limits, keep-alive), SUBACKs spliced where filters were refused.
//!
//! One loop over four bounded buffers with a biased `select!`: orders and shutdown first, then
//! writes, then reads; a side is read only while the buffer towards the other side is under
//! [`OUT_CAP`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{device_frame_cap, quote, Control, End, Sockets, READ_CHUNK, ROUTER_FRAME_CAP};
use crate::codec::{self, packet, CodecError, Frame, SubscribeReasonCode};
use crate::edge::limit::TokenBucket;
use crate::edge::stats::bump;
use crate::edge::Shared;
use crate::{acl, DisconnectReason, PresenceEvent};

/// Stop reading one side while this much is waiting to be written to the other.
const OUT_CAP: usize = 64 * 1024;

/// Subscriptions with refused filters waiting for the router's SUBACK (to splice 0x80 in).
/// Devices subscribe once or twice per connection; more in flight is abuse.
const MAX_PENDING_SUBSCRIBES: usize = 16;

/// The per-session relay state: everything the frame checks need.
pub(super) struct Relay<'a> {
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

impl<'a> Relay<'a> {
    /// The relay state of a session whose router link just opened; the router's CONNACK is the
    /// first thing the device is sent.
    pub(super) fn new(
        shared: &'a Shared,
        device: &'a str,
        cluster: String,
        session: u64,
        keep_alive: u16,
        connack: &Frame,
    ) -> Self {
        let now = Instant::now();
        let config = &shared.config;
        Relay {
            shared,
            device,
            cluster,
            press: TokenBucket::new(config.press_limit, now),
            publish: TokenBucket::new(config.publish_limit, now),
            pending_subscribes: HashMap::new(),
            session,
            awaited_subacks: Vec::new(),
            subscribed: (false, false),
            pingresps_to_swallow: 0,
            keep_alive: (keep_alive > 0).then(|| Duration::from_secs(u64::from(keep_alive))),
            last_to_router: now,
            to_dev: BytesMut::from(&connack.bytes[..]),
            to_rtr: BytesMut::new(),
            drops: 0,
        }
    }

    /// Relays until the device or the router ends the session, it is replaced, it breaks a
    /// rule, it falls silent, or the edge stops.
    pub(super) async fn run<S: AsyncRead + AsyncWrite>(
        &mut self,
        io: &mut Sockets<S>,
        control: &mut mpsc::Receiver<Control>,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        let Sockets { device, router } = io;
        let frame_cap = device_frame_cap(&self.shared.config);
        // The "read deadline": 1.5 × keep-alive since the last byte from the device.
        let idle_limit = self.keep_alive.map(|ka| ka + ka / 2);
        let far = Duration::from_secs(86_400 * 365);
        let idle = tokio::time::sleep(idle_limit.unwrap_or(far));
        tokio::pin!(idle);
        let mut dev_unflushed = false;

        // Frames the device pipelined behind its CONNECT are already buffered.
        if let Err(end) = self.drain_device(&mut device.unread, frame_cap) {
            return end;
        }
        self.drain_router(&mut router.unread);
        loop {
            if device.unread.capacity() - device.unread.len() < READ_CHUNK / 4 {
                device.unread.reserve(READ_CHUNK);
            }
            if router.unread.capacity() - router.unread.len() < READ_CHUNK / 4 {
                router.unread.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                Some(Control::Replace { done }) = control.recv() => return End::Replaced(done),
                _ = stop.changed() => return End::Reason(DisconnectReason::Shutdown),
                _ = &mut idle, if idle_limit.is_some() => return End::Reason(DisconnectReason::KeepAliveTimeout),
                r = write_or_flush(&mut device.w, &self.to_dev), if !self.to_dev.is_empty() || dev_unflushed => match r {
                    Ok(Some(n)) if n > 0 => {
                        let _ = self.to_dev.split_to(n);
                        dev_unflushed = true;
                    }
                    Ok(None) => dev_unflushed = false,
                    _ => return End::Reason(DisconnectReason::ConnectionLost),
                },
                r = router.w.write(&self.to_rtr), if !self.to_rtr.is_empty() => match r {
                    Ok(n) if n > 0 => {
                        let _ = self.to_rtr.split_to(n);
                    }
                    _ => return End::Reason(DisconnectReason::RouterClosed),
                },
                r = device.r.read_buf(&mut device.unread), if self.to_rtr.len() < OUT_CAP => match r {
                    Ok(n) if n > 0 => {
                        if let Some(limit) = idle_limit {
                            idle.as_mut().reset(Instant::now() + limit);
                        }
                        if let Err(end) = self.drain_device(&mut device.unread, frame_cap) {
                            return end;
                        }
                    }
                    _ => return End::Reason(DisconnectReason::ConnectionLost),
                },
                r = router.r.read_buf(&mut router.unread), if self.to_dev.len() < OUT_CAP => match r {
                    Ok(n) if n > 0 => {
                        if !self.drain_router(&mut router.unread) {
                            return End::Reason(DisconnectReason::RouterClosed);
                        }
                    }
                    _ => return End::Reason(DisconnectReason::RouterClosed),
                },
            }
        }
    }

    /// What was queued for the router and not yet written; teardown sends it before waiting
    /// for the router to close the link.
    pub(super) fn unsent_to_router(self) -> BytesMut {
        self.to_rtr
    }

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

    /// A PUBLISH or SUBSCRIBE the edge cannot read, or write back, closes the connection.
    fn malformed(&self, what: &str, error: CodecError) -> DisconnectReason {
        bump(&self.shared.stats.protocol_errors);
        tracing::warn!(device = self.device, %error, "malformed {what}; closing");
        DisconnectReason::Violation(format!("malformed {what}: {error}"))
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
        let publish = codec::parse_publish(frame.flags(), frame.body())
            .map_err(|error| self.malformed("PUBLISH", error))?;
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
                self.push_to_router(&codec::encode_pingreq());
                self.pingresps_to_swallow += 1;
            }
        }
    }

    fn on_subscribe(&mut self, frame: &Frame) -> Result<(), DisconnectReason> {
        let stats = &self.shared.stats;
        let subscribe = codec::parse_subscribe(frame.flags(), frame.body())
            .map_err(|error| self.malformed("SUBSCRIBE", error))?;
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
            let codes = vec![SubscribeReasonCode::Failure; allowed.len()];
            // Writing it back fails only for a SUBSCRIBE MQTT itself could not carry.
            let suback = codec::encode_suback(subscribe.packet_id, &codes)
                .map_err(|error| self.malformed("SUBSCRIBE", error))?;
            self.to_dev.extend_from_slice(&suback);
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
        let packet = codec::encode_subscribe(subscribe.packet_id, &forwarded)
            .map_err(|error| self.malformed("SUBSCRIBE", error))?;
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
                        // A code outside MQTT 3.1.1's (which rumqttd never sends) leaves the
                        // SUBACK unspliced, as an unreadable one is.
                        let full = mask
                            .iter()
                            .map(|ok| {
                                if *ok {
                                    codes.next().map_or(
                                        Ok(SubscribeReasonCode::Failure),
                                        SubscribeReasonCode::try_from,
                                    )
                                } else {
                                    Ok(SubscribeReasonCode::Failure)
                                }
                            })
                            .collect::<Result<Vec<_>, _>>()
                            .ok()?;
                        codec::encode_suback(id, &full).ok()
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
