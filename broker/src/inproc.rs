//! An in-process client of the embedded router, for the gateway: it subscribes to the uplink
//! and publishes the downlink through a rumqttd local link, with no socket and no loopback hop.
//!
//! rumqttd's link types stay inside this crate: the gateway sees a [`Publisher`] it can clone
//! into every task that tells devices something, and a [`Subscriber`] that yields each message
//! as topic and payload. Both are QoS 0 on this hop (rumqttd's local links carry no QoS 1
//! state); the router and the gateway share one process and one fate, and a unit repeats its
//! press until `down/ack` anyway.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::Notification;

use crate::{BrokerError, RouterHandle};

/// One message from the router.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: Bytes,
    pub payload: Bytes,
}

/// Publishes into the router. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    /// rumqttd's sender is not `Clone`; a publish holds the lock only while it queues.
    tx: Arc<Mutex<LinkTx>>,
}

impl Publisher {
    /// Queues `payload` on `topic` for the router. It returns at once unless the router's
    /// 1,000-event channel is full; then it waits for the router thread (which never waits on
    /// tokio) to take the next event: backpressure measured in microseconds, not a deadlock.
    pub fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), BrokerError> {
        let mut tx = self
            .tx
            .lock()
            .map_err(|_| BrokerError::RouterLink("the link's lock was poisoned".into()))?;
        tx.publish(topic, payload)
            .map(|_| ())
            .map_err(|e| BrokerError::RouterLink(e.to_string()))
    }
}

/// Receives what the router forwards to this client's subscriptions.
pub struct Subscriber {
    rx: LinkRx,
    /// Messages that arrived while [`Subscriber::subscribe`] waited for its acknowledgements.
    early: VecDeque<Message>,
}

/// Connects `client_id` to the router in-process (clean session).
pub async fn connect(
    router: &RouterHandle,
    client_id: &str,
) -> Result<(Publisher, Subscriber), BrokerError> {
    let (router, client_id) = (router.clone(), client_id.to_owned());
    // Opening a link waits for the router's answer on this thread: not on a tokio worker.
    let link = tokio::task::spawn_blocking(move || router.link(&client_id, true))
        .await
        .map_err(|e| BrokerError::RouterLink(e.to_string()))??;
    let publisher = Publisher {
        tx: Arc::new(Mutex::new(link.tx)),
    };
    let subscriber = Subscriber {
        rx: link.rx,
        early: VecDeque::new(),
    };
    Ok((publisher, subscriber))
}

impl Subscriber {
    /// Subscribes to every filter through `publisher`'s link and returns once the router has
    /// acknowledged them all: a message published after this returns reaches this subscriber.
    pub async fn subscribe(
        &mut self,
        publisher: &Publisher,
        filters: &[&str],
    ) -> Result<(), BrokerError> {
        {
            let mut tx = publisher
                .tx
                .lock()
                .map_err(|_| BrokerError::RouterLink("the link's lock was poisoned".into()))?;
            for filter in filters {
                tx.subscribe(*filter)
                    .map_err(|e| BrokerError::RouterLink(e.to_string()))?;
            }
        }
        let mut acked = 0;
        while acked < filters.len() {
            match self.notification().await? {
                Notification::DeviceAck(_) => acked += 1,
                Notification::Forward(f) => self.early.push_back(Message {
                    topic: f.publish.topic,
                    payload: f.publish.payload,
                }),
                _ => {}
            }
        }
        Ok(())
    }

    /// The next message forwarded to this client. Errors only when the router is gone.
    pub async fn next(&mut self) -> Result<Message, BrokerError> {
        if let Some(early) = self.early.pop_front() {
            return Ok(early);
        }
        loop {
            if let Notification::Forward(f) = self.notification().await? {
                return Ok(Message {
                    topic: f.publish.topic,
                    payload: f.publish.payload,
                });
            }
        }
    }

    /// The next notification but Unschedule, which is answered here: after it the router sends
    /// this link nothing more until told it is ready again.
    async fn notification(&mut self) -> Result<Notification, BrokerError> {
        loop {
            match self.rx.next().await {
                Ok(Some(Notification::Unschedule)) => self
                    .rx
                    .wake()
                    .await
                    .map_err(|e| BrokerError::RouterLink(e.to_string()))?,
                Ok(Some(Notification::Disconnect(..))) => {
                    return Err(BrokerError::RouterLink(
                        "the router closed the gateway's link".into(),
                    ))
                }
                Ok(Some(n)) => return Ok(n),
                Ok(None) => {}
                Err(e) => return Err(BrokerError::RouterLink(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{start_router, RouterSettings};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_one_client_publishes_the_other_receives_in_order() {
        let router = start_router(RouterSettings::default()).expect("router starts");
        let (gateway_pub, mut gateway_sub) = connect(&router, "gw").await.expect("gateway");
        let (unit_pub, mut unit_sub) = connect(&router, "unit").await.expect("unit");
        gateway_sub
            .subscribe(&gateway_pub, &["tw/d/+/up/press", "tw/d/+/up/heartbeat"])
            .await
            .expect("subscribed");
        unit_sub
            .subscribe(&unit_pub, &["tw/c/cl1/#"])
            .await
            .expect("subscribed");
        for seq in 0..3_000 {
            unit_pub
                .publish("tw/d/u1/up/press".into(), format!("{seq}").into_bytes())
                .expect("published");
        }
        for seq in 0..3_000 {
            let m = gateway_sub.next().await.expect("message");
            assert_eq!(&m.topic[..], b"tw/d/u1/up/press");
            assert_eq!(m.payload, format!("{seq}").into_bytes());
        }
        gateway_pub
            .publish("tw/c/cl1/alert".into(), b"{}".to_vec())
            .expect("published");
        let m = unit_sub.next().await.expect("alert");
        assert_eq!(&m.topic[..], b"tw/c/cl1/alert");
    }

    /// Which subscriber gets a topic's publishes is the MQTT rule for every filter shape,
    /// also for a topic published for the first time after the filters are in place, and
    /// also once the router has remembered the topic's filters (the second round). The
    /// vendored router looks filters up by name instead of trying each one
    /// (vendor/rumqttd/TENWATCH.md); this is what that must not change.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_filter_shape_gets_what_mqtt_says_once() {
        let router = start_router(RouterSettings::default()).expect("router starts");
        let (publisher, _) = connect(&router, "publisher").await.expect("publisher");
        let filters = [
            "#",
            "tw/#",
            "tw/c/c1/alert",
            "tw/c/c1/#",
            "tw/c/c1/alert/#",
            "tw/c/+/alert",
            "tw/+/+/alert",
            "+/c/c1/+",
            "tw/d/+/down/#",
            "tw/c/c2/#",
            "other/x",
        ];
        let topics = [
            "tw/c/c1/alert",
            "tw/d/d1/down/ack",
            "tw/c/c1",
            "other/x",
            "tw",
        ];
        let mut subscribers = Vec::new();
        for (i, filter) in filters.iter().enumerate() {
            let (p, mut s) = connect(&router, &format!("s{i}"))
                .await
                .expect("subscriber");
            // Each also hears the last word of a round ("#" hears it anyway).
            let with_end: &[&str] = if *filter == "#" {
                &["#"]
            } else {
                &[filter, "zz/end"]
            };
            s.subscribe(&p, with_end).await.expect("subscribed");
            subscribers.push(s);
        }
        for round in 0..2 {
            for topic in topics {
                publisher
                    .publish(topic.into(), format!("{round}").into_bytes())
                    .expect("published");
            }
            // A last word to everyone, so each subscriber's list is complete when it arrives.
            publisher
                .publish("zz/end".into(), Vec::new())
                .expect("published");
            for (filter, subscriber) in filters.iter().zip(subscribers.iter_mut()) {
                let mut got = Vec::new();
                loop {
                    let m = tokio::time::timeout(Duration::from_secs(10), subscriber.next())
                        .await
                        .expect("the router forwards")
                        .expect("message");
                    let topic = String::from_utf8(m.topic.to_vec()).expect("utf-8");
                    if topic == "zz/end" {
                        break;
                    }
                    got.push(topic);
                }
                let mut want: Vec<String> = topics
                    .iter()
                    .filter(|t| rumqttd::protocol::matches(t, filter))
                    .map(|t| (*t).to_owned())
                    .collect();
                want.sort();
                got.sort();
                assert_eq!(got, want, "round {round}, filter {filter}");
            }
        }
    }
}
