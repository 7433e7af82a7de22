//! A device's subscriptions as the edge keeps them: which filters it holds at which QoS (the
//! edge delivers at that QoS itself), and the SUBSCRIBEs the router has not confirmed yet. The
//! device's SUBACK goes out only once the router has its filters in place, because the
//! gateway sends what the device missed as soon as it hears `Subscribed`: a message sent
//! before the router's subscription exists would be lost.
//!
//! Pure bookkeeping: the ACL decision is made before, the packets are sent by the relay.

use std::collections::VecDeque;

use rumqttc::mqttbytes::{self, QoS};

use crate::codec::SubscribeReasonCode;

/// SUBSCRIBEs waiting for the router. Devices subscribe once or twice per connection; more
/// in flight is abuse.
const MAX_PENDING: usize = 16;

/// Distinct filters a device may hold. Devices hold two (their downlink and their cluster).
const MAX_HELD: usize = 32;

/// The highest QoS the edge delivers at: it does not run QoS 2's exchange with devices.
const MAX_QOS: u8 = 1;

/// What to do with a SUBSCRIBE whose filters passed the ACL.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Plan {
    /// Nothing to ask the router (every filter refused): answer the device now.
    AnswerNow(Vec<SubscribeReasonCode>),
    /// Subscribe the router to these filters, under the device's packet id; answer the
    /// device when the router confirms ([`Subscriptions::confirmed`]).
    AskRouter(Vec<String>),
}

/// A SUBACK the router's confirmation released.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Confirmed {
    pub(super) codes: Vec<SubscribeReasonCode>,
    /// The device's downlink and cluster filters are now both in place, for the first time
    /// this session: report `PresenceEvent::Subscribed`.
    pub(super) now_subscribed: bool,
}

/// A SUBSCRIBE sent to the router, waiting for its SubAck.
#[derive(Debug)]
struct Pending {
    packet_id: u16,
    /// The device's SUBACK, ready to go.
    codes: Vec<SubscribeReasonCode>,
    /// It puts a filter in place on the device's downlink / on its cluster.
    down: bool,
    cluster: bool,
}

#[derive(Debug)]
pub(super) struct Subscriptions {
    /// `tw/d/{device}/down` and `tw/c/{cluster}`: a filter starting with one of these counts
    /// towards `Subscribed`.
    down_prefix: String,
    cluster_prefix: String,
    /// (filter, QoS delivered at), one entry per filter.
    held: Vec<(String, u8)>,
    /// Oldest first; the router confirms in order.
    pending: VecDeque<Pending>,
    /// Downlink and cluster confirmed so far.
    down: bool,
    cluster: bool,
}

impl Subscriptions {
    pub(super) fn new(device: &str, cluster: &str) -> Self {
        Self {
            down_prefix: format!("tw/d/{device}/down"),
            cluster_prefix: format!("tw/c/{cluster}"),
            held: Vec::new(),
            pending: VecDeque::new(),
            down: false,
            cluster: false,
        }
    }

    /// Takes a SUBSCRIBE: `filters` as the device sent them (with the QoS it asked for) and
    /// which of them the ACL `allowed`. Allowed filters are held from now on, so messages the
    /// router sends for them once subscribed find their QoS. `Err` names the abuse that closes
    /// the connection.
    pub(super) fn subscribe(
        &mut self,
        packet_id: u16,
        filters: &[(String, u8)],
        allowed: &[bool],
    ) -> Result<Plan, &'static str> {
        let codes: Vec<SubscribeReasonCode> = filters
            .iter()
            .zip(allowed)
            .map(|((_, qos), ok)| match (ok, *qos) {
                (false, _) => SubscribeReasonCode::Failure,
                (true, 0) => SubscribeReasonCode::Success(QoS::AtMostOnce),
                (true, _) => SubscribeReasonCode::Success(QoS::AtLeastOnce),
            })
            .collect();
        let asked: Vec<(&String, u8)> = filters
            .iter()
            .zip(allowed)
            .filter(|(_, ok)| **ok)
            .map(|((filter, qos), _)| (filter, (*qos).min(MAX_QOS)))
            .collect();
        if asked.is_empty() {
            return Ok(Plan::AnswerNow(codes));
        }
        if self.pending.len() >= MAX_PENDING {
            return Err("too many SUBSCRIBEs in flight");
        }
        let new = asked
            .iter()
            .filter(|(f, _)| !self.held.iter().any(|(h, _)| h == *f))
            .count();
        if self.held.len() + new > MAX_HELD {
            return Err("too many subscriptions");
        }
        let mut down = false;
        let mut cluster = false;
        for (filter, qos) in &asked {
            down |= filter.starts_with(&self.down_prefix);
            cluster |= filter.starts_with(&self.cluster_prefix);
            match self.held.iter_mut().find(|(h, _)| h == *filter) {
                Some(entry) => entry.1 = *qos,
                None => self.held.push(((*filter).clone(), *qos)),
            }
        }
        self.pending.push_back(Pending {
            packet_id,
            codes,
            down,
            cluster,
        });
        Ok(Plan::AskRouter(
            asked.into_iter().map(|(f, _)| f.clone()).collect(),
        ))
    }

    /// The router confirmed the SUBSCRIBE sent under `packet_id`: the device's SUBACK, or
    /// `None` for an id the edge is not waiting for.
    pub(super) fn confirmed(&mut self, packet_id: u16) -> Option<Confirmed> {
        let at = self.pending.iter().position(|p| p.packet_id == packet_id)?;
        let pending = self.pending.remove(at)?;
        let before = self.down && self.cluster;
        self.down |= pending.down;
        self.cluster |= pending.cluster;
        Some(Confirmed {
            codes: pending.codes,
            now_subscribed: !before && self.down && self.cluster,
        })
    }

    /// The device dropped these filters.
    pub(super) fn unsubscribe(&mut self, filters: &[String]) {
        self.held.retain(|(held, _)| !filters.contains(held));
    }

    /// The QoS to deliver a message on `topic` at: the highest of the device's filters that
    /// match it, 0 if none does (a message the router had already sent before an UNSUBSCRIBE).
    pub(super) fn qos_for(&self, topic: &str) -> u8 {
        self.held_qos(topic).unwrap_or(0)
    }

    /// The QoS the device gets `topic` at, or `None` when it holds no filter `topic` matches.
    pub(super) fn held_qos(&self, topic: &str) -> Option<u8> {
        self.held
            .iter()
            .filter(|(filter, _)| mqttbytes::matches(topic, filter))
            .map(|(_, qos)| *qos)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SubscribeReasonCode::{Failure, Success};

    fn filters(list: &[(&str, u8)]) -> Vec<(String, u8)> {
        list.iter().map(|(f, q)| ((*f).to_owned(), *q)).collect()
    }

    #[test]
    fn suback_waits_for_the_router_and_caps_qos_at_1() {
        let mut subs = Subscriptions::new("dev1", "cl1");
        let plan = subs
            .subscribe(
                7,
                &filters(&[("#", 1), ("tw/c/cl1/#", 2), ("tw/d/dev1/down/#", 0)]),
                &[false, true, true],
            )
            .expect("accepted");
        assert_eq!(
            plan,
            Plan::AskRouter(vec!["tw/c/cl1/#".into(), "tw/d/dev1/down/#".into()])
        );
        assert_eq!(subs.confirmed(8), None);
        let confirmed = subs.confirmed(7).expect("pending");
        assert_eq!(
            confirmed.codes,
            vec![Failure, Success(QoS::AtLeastOnce), Success(QoS::AtMostOnce)]
        );
        assert!(confirmed.now_subscribed);
        assert_eq!(subs.confirmed(7), None);
        assert_eq!(subs.qos_for("tw/c/cl1/alert"), 1);
        assert_eq!(subs.qos_for("tw/d/dev1/down/ack"), 0);
        assert_eq!(subs.qos_for("tw/c/cl2/alert"), 0);
    }

    #[test]
    fn subscribed_is_reported_once_both_filters_are_confirmed() {
        let mut subs = Subscriptions::new("dev1", "cl1");
        subs.subscribe(1, &filters(&[("tw/d/dev1/down/#", 1)]), &[true])
            .expect("accepted");
        subs.subscribe(2, &filters(&[("tw/c/cl1/#", 1)]), &[true])
            .expect("accepted");
        assert!(!subs.confirmed(1).expect("pending").now_subscribed);
        assert!(subs.confirmed(2).expect("pending").now_subscribed);
        subs.subscribe(3, &filters(&[("tw/c/cl1/#", 1)]), &[true])
            .expect("accepted");
        assert!(!subs.confirmed(3).expect("pending").now_subscribed);
    }

    #[test]
    fn all_refused_is_answered_at_once() {
        let mut subs = Subscriptions::new("dev1", "cl1");
        let plan = subs
            .subscribe(1, &filters(&[("tw/d/dev2/down/#", 1)]), &[false])
            .expect("answered");
        assert_eq!(plan, Plan::AnswerNow(vec![Failure]));
        assert_eq!(subs.confirmed(1), None);
    }

    #[test]
    fn unsubscribe_and_overlaps() {
        let mut subs = Subscriptions::new("dev1", "cl1");
        subs.subscribe(
            1,
            &filters(&[("tw/c/cl1/#", 0), ("tw/c/cl1/alert", 1)]),
            &[true, true],
        )
        .expect("accepted");
        assert_eq!(subs.qos_for("tw/c/cl1/alert"), 1);
        subs.unsubscribe(&["tw/c/cl1/alert".to_owned()]);
        assert_eq!(subs.qos_for("tw/c/cl1/alert"), 0);
        // Subscribing again to a held filter changes its QoS.
        subs.subscribe(2, &filters(&[("tw/c/cl1/#", 1)]), &[true])
            .expect("accepted");
        assert_eq!(subs.qos_for("tw/c/cl1/x"), 1);
    }

    #[test]
    fn abuse_is_refused() {
        let mut subs = Subscriptions::new("dev1", "cl1");
        for id in 0..16 {
            subs.subscribe(id, &filters(&[("tw/c/cl1/a", 1)]), &[true])
                .expect("accepted");
        }
        assert!(subs
            .subscribe(16, &filters(&[("tw/c/cl1/a", 1)]), &[true])
            .is_err());

        let mut subs = Subscriptions::new("dev1", "cl1");
        for id in 0..32 {
            let filter = format!("tw/c/cl1/{id}");
            subs.subscribe(id, &filters(&[(&filter, 1)]), &[true])
                .expect("accepted");
            subs.confirmed(id);
        }
        assert!(subs
            .subscribe(32, &filters(&[("tw/c/cl1/new", 1)]), &[true])
            .is_err());
        assert!(subs
            .subscribe(33, &filters(&[("tw/c/cl1/0", 0)]), &[true])
            .is_ok());
    }
}
