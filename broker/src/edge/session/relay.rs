//! The relay step: the device's packets, each checked (topic ACL, payload cap, rate limits,
//! keep-alive) and handed to the router over the in-process link; the router's notifications
//! turned into packets for the device. The edge answers the device itself: PUBACK once a
//! publish is handed over (in arrival order), SUBACK once the router confirmed the filters,
//! UNSUBACK, PINGRESP.
//!
//! One loop with a biased `select!`: orders and shutdown first, then writes, then reads. The
//! bytes waiting for the device are bounded: past [`OUT_CAP`] neither the device nor the
//! router is read, so a device that does not read slows only itself (the router then pauses
//! its link, holding the messages in its log).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttd::protocol::{Packet, Publish};
use rumqttd::Notification;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::link::{RouterGone, RouterLink};
use super::outbox::{Message, Outbox};
use super::subscriptions::{Plan, Subscriptions};
use super::{device_frame_cap, quote, Control, DeviceIo, Direct, End, READ_CHUNK};
use crate::codec::{self, packet, CodecError, Frame, SubscribeReasonCode};
use crate::edge::limit::DeviceBuckets;
use crate::edge::stats::bump;
use crate::edge::Shared;
use crate::{acl, DisconnectReason, PresenceEvent, UplinkClosed};

/// Stop reading the device and the router while this much is waiting to be written to the
/// device.
const OUT_CAP: usize = 64 * 1024;

/// What handling one packet or notification leads to: `Err` ends the session.
type Ended = Result<(), End>;

/// The router's side of the link is gone: the session ends with `RouterClosed`.
fn router_closed(_: RouterGone) -> End {
    End::Reason(DisconnectReason::RouterClosed)
}

/// The per-session relay state: everything the packet checks and the deliveries need.
pub(super) struct Relay<'a> {
    shared: &'a Shared,
    device: &'a str,
    cluster: String,
    /// The device's rate limits, shared with its other sessions (see `Shared::limits`).
    limits: Arc<Mutex<DeviceBuckets>>,
    /// The device's filters and the SUBSCRIBEs the router has not confirmed yet.
    subscriptions: Subscriptions,
    /// QoS 1 deliveries: the device's in-flight window and the queue behind it.
    outbox: Outbox,
    /// This connection's session id, for the presence events.
    session: u64,
    keep_alive: Option<Duration>,
    to_dev: BytesMut,
    /// Publishes dropped by the rate limits in this session (for sparse logging).
    drops: u64,
    /// Messages dropped because the outbox was full (for sparse logging).
    undelivered: u64,
}

impl<'a> Relay<'a> {
    /// The relay state of a session whose router link just opened; `connack` is the first
    /// thing the device is sent.
    pub(super) fn new(
        shared: &'a Shared,
        device: &'a str,
        limits: Arc<Mutex<DeviceBuckets>>,
        cluster: String,
        session: u64,
        keep_alive: u16,
        connack: &[u8],
    ) -> Self {
        Relay {
            shared,
            device,
            subscriptions: Subscriptions::new(device, &cluster),
            cluster,
            limits,
            outbox: Outbox::new(),
            session,
            keep_alive: (keep_alive > 0).then(|| Duration::from_secs(u64::from(keep_alive))),
            to_dev: BytesMut::from(connack),
            drops: 0,
            undelivered: 0,
        }
    }

    /// Relays until the device or the router ends the session, it is replaced, it breaks a
    /// rule, it falls silent, or the edge stops.
    pub(super) async fn run<S: AsyncRead + AsyncWrite>(
        &mut self,
        device: &mut DeviceIo<S>,
        link: &mut RouterLink,
        (control, direct): (&mut mpsc::Receiver<Control>, &mut mpsc::Receiver<Direct>),
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        let frame_cap = device_frame_cap(&self.shared.config);
        // The "read deadline": 1.5 × keep-alive since the last byte from the device.
        let idle_limit = self.keep_alive.map(|ka| ka + ka / 2);
        let far = Duration::from_secs(86_400 * 365);
        let idle = tokio::time::sleep(idle_limit.unwrap_or(far));
        tokio::pin!(idle);
        let mut dev_unflushed = false;

        // Frames the device pipelined behind its CONNECT are already buffered.
        if let Err(end) = self.drain_device(&mut device.unread, frame_cap, link).await {
            return end;
        }
        loop {
            if device.unread.capacity() - device.unread.len() < READ_CHUNK / 4 {
                device.unread.reserve(READ_CHUNK);
            }
            let room = self.to_dev.len() < OUT_CAP;
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
                r = device.r.read_buf(&mut device.unread), if room => match r {
                    Ok(n) if n > 0 => {
                        if let Some(limit) = idle_limit {
                            idle.as_mut().reset(Instant::now() + limit);
                        }
                        if let Err(end) = self.drain_device(&mut device.unread, frame_cap, link).await {
                            return end;
                        }
                    }
                    _ => return End::Reason(DisconnectReason::ConnectionLost),
                },
                Some(message) = direct.recv(), if room => self.deliver_direct(message),
                n = link.next(), if room => match n {
                    Ok(Some(notification)) => {
                        if let Err(end) = self.on_notification(notification, link).await {
                            return end;
                        }
                    }
                    // A signal for notifications an earlier read already took.
                    Ok(None) => {}
                    Err(gone) => return router_closed(gone),
                },
            }
        }
    }

    /// Handles every complete frame in `buf`.
    async fn drain_device(
        &mut self,
        buf: &mut BytesMut,
        frame_cap: usize,
        link: &mut RouterLink,
    ) -> Ended {
        loop {
            match codec::next_frame(buf, frame_cap) {
                Ok(Some(frame)) => self.on_device_frame(frame, link).await?,
                Ok(None) => return Ok(()),
                Err(error) => return Err(End::Reason(self.codec_violation(error))),
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

    /// A packet the edge cannot read, or write back, closes the connection.
    fn malformed(&self, what: &str, error: CodecError) -> End {
        bump(&self.shared.stats.protocol_errors);
        tracing::warn!(device = self.device, %error, "malformed {what}; closing");
        End::Reason(DisconnectReason::Violation(format!(
            "malformed {what}: {error}"
        )))
    }

    async fn on_device_frame(&mut self, frame: Frame, link: &mut RouterLink) -> Ended {
        match frame.packet_type() {
            packet::PUBLISH => self.on_publish(&frame, link).await,
            packet::PUBACK => {
                let id = codec::packet_id(frame.body())
                    .map_err(|error| self.malformed("PUBACK", error))?;
                if !self.outbox.acked(id) {
                    tracing::debug!(device = self.device, id, "PUBACK for nothing in flight");
                }
                self.send_ready();
                Ok(())
            }
            packet::SUBSCRIBE => self.on_subscribe(&frame, link).await,
            packet::UNSUBSCRIBE => self.on_unsubscribe(&frame, link).await,
            packet::PINGREQ => {
                self.to_dev.extend_from_slice(&codec::encode_pingresp());
                Ok(())
            }
            // Teardown tells the router.
            packet::DISCONNECT => Err(End::Reason(DisconnectReason::Clean)),
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

    async fn on_publish(&mut self, frame: &Frame, link: &mut RouterLink) -> Ended {
        let stats = &self.shared.stats;
        let publish = codec::parse_publish(frame.flags(), frame.body())
            .map_err(|error| self.malformed("PUBLISH", error))?;
        let violation = |why: String| Err(End::Reason(DisconnectReason::Violation(why)));
        if !acl::may_publish(self.device, publish.topic) {
            bump(&stats.acl_publish_refused);
            let topic = quote(publish.topic);
            tracing::warn!(device = self.device, topic = ?topic, "forged topic; closing");
            return violation(format!("forged topic {topic}"));
        }
        if publish.payload.len() > self.shared.config.max_payload {
            bump(&stats.oversize_refused);
            tracing::warn!(
                device = self.device,
                len = publish.payload.len(),
                "oversize PUBLISH; closing"
            );
            return violation("oversize payload".into());
        }
        if publish.qos == 2 {
            // Dropping a rate-limited QoS 2 publish would need the edge to run the
            // PUBREC/PUBREL exchange itself; devices use QoS 1, so QoS 2 is refused outright.
            bump(&stats.protocol_errors);
            tracing::warn!(device = self.device, "QoS 2 PUBLISH; closing");
            return violation("QoS 2 publish not supported".into());
        }
        let allowed = {
            let mut buckets = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
            let bucket = if acl::is_press_topic(publish.topic) {
                &mut buckets.press
            } else {
                &mut buckets.publish
            };
            bucket.try_take(Instant::now())
        };
        if allowed {
            // RETAIN is not passed on (the link publishes unretained): a retained uplink would
            // be replayed to the gateway on every resubscribe.
            match self.shared.uplink.get() {
                Some(sink) => sink
                    .uplink(publish.topic, Bytes::copy_from_slice(publish.payload))
                    .await
                    .map_err(|UplinkClosed| End::Reason(DisconnectReason::RouterClosed))?,
                None => link
                    .publish(publish.topic, publish.payload)
                    .map_err(router_closed)?,
            }
        } else {
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
            // Acknowledged all the same so the device's inflight window does not stall; the
            // device repeats presses until `down/ack`, so nothing that matters is lost.
        }
        // After the hand-over, in the order the publishes came: MQTT's ordered PUBACKs.
        if let Some(id) = publish.packet_id {
            self.to_dev.extend_from_slice(&codec::encode_puback(id));
        }
        Ok(())
    }

    async fn on_subscribe(&mut self, frame: &Frame, link: &mut RouterLink) -> Ended {
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
        if !refused.is_empty() {
            self.shared
                .stats
                .acl_subscribe_refused
                .fetch_add(refused.len() as u64, Ordering::Relaxed);
            tracing::warn!(device = self.device, filters = ?refused, "subscription refused");
        }
        let plan = self
            .subscriptions
            .subscribe(subscribe.packet_id, &subscribe.filters, &allowed)
            .map_err(|why| {
                bump(&self.shared.stats.protocol_errors);
                tracing::warn!(device = self.device, why, "SUBSCRIBE refused; closing");
                End::Reason(DisconnectReason::Violation(why.into()))
            })?;
        match plan {
            Plan::AnswerNow(codes) => self.suback(subscribe.packet_id, &codes),
            Plan::AskRouter(filters) => link
                .subscribe(subscribe.packet_id, filters)
                .await
                .map_err(router_closed),
        }
    }

    /// Writes the device's SUBACK.
    fn suback(&mut self, packet_id: u16, codes: &[SubscribeReasonCode]) -> Ended {
        // It fails only for a SUBSCRIBE MQTT itself could not carry.
        let suback = codec::encode_suback(packet_id, codes)
            .map_err(|error| self.malformed("SUBSCRIBE", error))?;
        self.to_dev.extend_from_slice(&suback);
        Ok(())
    }

    async fn on_unsubscribe(&mut self, frame: &Frame, link: &mut RouterLink) -> Ended {
        let unsubscribe = codec::parse_unsubscribe(frame.flags(), frame.body())
            .map_err(|error| self.malformed("UNSUBSCRIBE", error))?;
        self.subscriptions.unsubscribe(&unsubscribe.filters);
        // The router answers only for filters it held; the device gets its UNSUBACK either way.
        link.unsubscribe(unsubscribe.packet_id, unsubscribe.filters)
            .await
            .map_err(router_closed)?;
        self.to_dev
            .extend_from_slice(&codec::encode_unsuback(unsubscribe.packet_id));
        Ok(())
    }

    async fn on_notification(
        &mut self,
        notification: Notification,
        link: &mut RouterLink,
    ) -> Ended {
        match notification {
            Notification::Forward(forward) => {
                self.deliver(forward.publish);
                Ok(())
            }
            Notification::DeviceAck(ack) => {
                // PUBACK, UNSUBACK and PINGRESP the edge gave the device itself.
                if let Packet::SubAck(suback, _) = Packet::from(ack) {
                    self.subscribe_confirmed(suback.pkid)?;
                }
                Ok(())
            }
            Notification::Unschedule => link.wake().await.map_err(router_closed),
            // The router dropped this link.
            Notification::Disconnect(..) => Err(router_closed(RouterGone)),
            _ => Ok(()),
        }
    }

    /// The router has the filters of the SUBSCRIBE `packet_id` in place: the device gets its
    /// SUBACK, then (once both its downlink and its cluster are in place) the gateway hears
    /// `Subscribed` and may send what the device missed.
    fn subscribe_confirmed(&mut self, packet_id: u16) -> Ended {
        let Some(confirmed) = self.subscriptions.confirmed(packet_id) else {
            return Ok(());
        };
        self.suback(packet_id, &confirmed.codes)?;
        if confirmed.now_subscribed {
            self.shared.authority.presence(PresenceEvent::Subscribed {
                device: self.device.to_owned(),
                session: self.session,
            });
        }
        Ok(())
    }

    /// A message from the router for the device, at the QoS of the device's subscription.
    fn deliver(&mut self, publish: Publish) {
        let Ok(topic) = String::from_utf8(publish.topic.to_vec()) else {
            // The router checks topics are UTF-8 when it takes a publish.
            tracing::error!(
                device = self.device,
                "router forwarded a topic that is not UTF-8"
            );
            return;
        };
        let qos = self.subscriptions.qos_for(&topic);
        self.deliver_at(qos, topic, publish.payload, publish.retain);
    }

    /// A message from the gateway past the router: delivered as the router would, only when
    /// the device holds a filter it matches (the router checked that by routing).
    fn deliver_direct(&mut self, direct: Direct) {
        if let Some(qos) = self.subscriptions.held_qos(&direct.topic) {
            self.deliver_at(qos, direct.topic.to_string(), direct.payload, false);
        }
    }

    /// Writes the message now at QoS 0, or queues it in the device's QoS 1 window.
    fn deliver_at(&mut self, qos: u8, topic: String, payload: Bytes, retain: bool) {
        let message = Message {
            topic,
            payload,
            retain,
        };
        if qos == 0 {
            self.write_publish(&message, None);
            return;
        }
        if !self.outbox.push(message) {
            bump(&self.shared.stats.downlink_dropped);
            self.undelivered += 1;
            if self.undelivered.is_power_of_two() {
                tracing::warn!(
                    device = self.device,
                    dropped = self.undelivered,
                    "device is not acknowledging; messages dropped"
                );
            }
        }
        self.send_ready();
    }

    /// Sends the queued QoS 1 messages the device's window has room for.
    fn send_ready(&mut self) {
        while let Some((id, message)) = self.outbox.next_to_send() {
            self.write_publish(&message, Some(id));
        }
    }

    /// Writes a PUBLISH: QoS 1 under `packet_id`, else QoS 0.
    fn write_publish(&mut self, message: &Message, packet_id: Option<u16>) {
        let qos = u8::from(packet_id.is_some());
        let m = message;
        match codec::encode_publish(&m.topic, qos, m.retain, packet_id, &m.payload) {
            Ok(bytes) => self.to_dev.extend_from_slice(&bytes),
            // Only a topic over 65,535 bytes, which the router would not have taken.
            Err(error) => tracing::error!(device = self.device, %error, "undeliverable message"),
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
