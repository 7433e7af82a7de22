//! Deliveries to one device at QoS 1. The router hands the edge every message at QoS 0 (one
//! process, one fate); the device's own hop keeps QoS 1, so the edge numbers the messages with
//! its own packet ids and keeps an in-flight window like rumqttd's (100 unacknowledged), with a
//! bounded queue behind it. A device that stops acknowledging loses what overflows the queue
//! (counted by the caller), never the session.
//!
//! Messages still unacknowledged when a session ends are not sent again: device sessions are
//! clean, and the gateway's catch-up re-sends the open alerts when the unit comes back.

use std::collections::VecDeque;

use bytes::Bytes;

/// Unacknowledged QoS 1 messages per device, as rumqttd allows its own clients.
pub(super) const WINDOW: usize = 100;

/// Messages held behind a full window before new ones are dropped.
pub(super) const QUEUE: usize = 1_000;

/// A message for the device, as the router forwarded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Message {
    pub(super) topic: String,
    pub(super) payload: Bytes,
    /// Set on a retained message sent because the device just subscribed.
    pub(super) retain: bool,
}

/// One device's QoS 1 window and the queue behind it.
#[derive(Debug)]
pub(super) struct Outbox {
    /// The next packet id to try (1..=65535).
    next_id: u16,
    /// Packet ids sent and not yet acknowledged (at most [`WINDOW`]).
    in_flight: Vec<u16>,
    /// Messages waiting for room in the window, oldest first (at most [`QUEUE`]).
    queued: VecDeque<Message>,
}

impl Outbox {
    pub(super) fn new() -> Self {
        Self {
            next_id: 1,
            in_flight: Vec::new(),
            queued: VecDeque::new(),
        }
    }

    /// Queues a message; `false` if the queue is full and it was dropped.
    pub(super) fn push(&mut self, message: Message) -> bool {
        if self.queued.len() >= QUEUE {
            return false;
        }
        self.queued.push_back(message);
        true
    }

    /// The next message the window has room for, with the packet id to send it under.
    pub(super) fn next_to_send(&mut self) -> Option<(u16, Message)> {
        if self.in_flight.len() >= WINDOW {
            return None;
        }
        let message = self.queued.pop_front()?;
        let id = self.take_id();
        self.in_flight.push(id);
        Some((id, message))
    }

    /// The device acknowledged `id`; `false` if it was not in flight (ignored: a PUBACK the
    /// device repeats, or one for a message of an earlier session).
    pub(super) fn acked(&mut self, id: u16) -> bool {
        match self.in_flight.iter().position(|&i| i == id) {
            Some(at) => {
                self.in_flight.remove(at);
                true
            }
            None => false,
        }
    }

    /// The next id in 1..=65535 that is not in flight (the window is never full here, so
    /// one is found within `WINDOW + 1` steps).
    fn take_id(&mut self) -> u16 {
        loop {
            let id = self.next_id;
            self.next_id = if id == u16::MAX { 1 } else { id + 1 };
            if !self.in_flight.contains(&id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: usize) -> Message {
        Message {
            topic: "tw/c/cl1/alert".into(),
            payload: Bytes::from(n.to_string()),
            retain: false,
        }
    }

    fn payload(m: &Message) -> usize {
        std::str::from_utf8(&m.payload).unwrap().parse().unwrap()
    }

    #[test]
    fn window_holds_at_most_100_and_frees_on_ack() {
        let mut outbox = Outbox::new();
        for n in 0..150 {
            assert!(outbox.push(message(n)));
        }
        let sent: Vec<(u16, Message)> = std::iter::from_fn(|| outbox.next_to_send()).collect();
        assert_eq!(sent.len(), WINDOW);
        assert_eq!(sent[0].0, 1);
        assert!(sent.iter().enumerate().all(|(n, (_, m))| payload(m) == n));

        // Acks in any order free their slots; the queue goes on in order.
        assert!(outbox.acked(50));
        assert!(!outbox.acked(50));
        assert!(outbox.acked(1));
        let next: Vec<(u16, Message)> = std::iter::from_fn(|| outbox.next_to_send()).collect();
        assert_eq!(next.len(), 2);
        assert_eq!(
            next.iter()
                .map(|(id, m)| (*id, payload(m)))
                .collect::<Vec<_>>(),
            vec![(101, 100), (102, 101)]
        );
        assert!(!outbox.acked(7_000));
    }

    #[test]
    fn queue_is_bounded() {
        let mut outbox = Outbox::new();
        let taken = (0..QUEUE + 10).filter(|n| outbox.push(message(*n))).count();
        assert_eq!(taken, QUEUE);
        while outbox.next_to_send().is_some() {}
        // The window took 100 out of the queue: room for 100 more.
        let taken = (0..200).filter(|n| outbox.push(message(*n))).count();
        assert_eq!(taken, WINDOW);
    }

    #[test]
    fn ids_wrap_and_skip_those_in_flight() {
        let mut outbox = Outbox::new();
        // Leave id 3 unacknowledged while everything else cycles through all 65,535 ids.
        for n in 0..3 {
            outbox.push(message(n));
        }
        let first: Vec<u16> = std::iter::from_fn(|| outbox.next_to_send())
            .map(|(id, _)| id)
            .collect();
        assert_eq!(first, vec![1, 2, 3]);
        assert!(outbox.acked(1) && outbox.acked(2));
        let mut seen = Vec::new();
        for n in 0..usize::from(u16::MAX) {
            outbox.push(message(n));
            let (id, _) = outbox.next_to_send().expect("room");
            assert!(outbox.acked(id));
            seen.push(id);
        }
        assert!(!seen.contains(&3) && !seen.contains(&0));
        assert_eq!(seen[0], 4);
        assert_eq!(seen[usize::from(u16::MAX) - 4], u16::MAX);
        assert_eq!(seen[usize::from(u16::MAX) - 3], 1);
    }
}
