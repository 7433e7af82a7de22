//! Alarm panels in: a SIA DC-09 receiver for Contact ID events (`tenwatch serve
//! --sia-listen`, off by default).
//!
//! A panel registered for a household (`tenwatch admin add-sia-account`) reports over TCP or
//! UDP; its panic, medical and fire alarms become presses of that household on the units'
//! own press path, its restores and cancels the household's cancel, and its link tests and
//! troubles the supervision of its own device row (`sia-{ACCOUNT}`).
//!
//! # Layout
//! - [`frame`]: the DC-09 frame as pure functions: CRC, length, header, data, timestamp,
//!   and the answers (ACK, NAK, DUH);
//! - [`crypt`]: AES-128-CBC as DC-09 uses it;
//! - [`cid`]: Contact ID events and what each means to tenwatch;
//! - [`answer`]: one message in, one answer out: the checks in the standard's order, then the
//!   press path or supervision;
//! - [`listen`]: the TCP and UDP sockets, with their limits.

pub mod answer;
pub mod cid;
pub mod crypt;
pub mod frame;
pub mod listen;

#[cfg(test)]
mod fuzz;

use std::time::Duration;

pub use answer::Receiver;
pub use listen::SiaListeners;

/// The receiver's limits and its timestamp window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiaSettings {
    /// A message's timestamp may be this far behind the receiver's clock…
    pub max_behind: Duration,
    /// …and this far ahead; outside, the message is refused (NAK with the receiver's time)
    /// as a replay or a panel whose clock must be set.
    pub max_ahead: Duration,
    /// Panels connected over TCP at once; one more is closed at once.
    pub max_connections: usize,
    /// A TCP connection silent this long is closed (a panel connects, reports, and goes).
    pub idle_timeout: Duration,
    /// A TCP connection that sends this many refused messages in a row is closed: a panel
    /// repeats a refused message a few times, a flood does not stop.
    pub max_refused_in_a_row: u32,
    /// UDP messages being handled at once; more are dropped unanswered (the panel repeats).
    pub max_udp_in_flight: usize,
}

impl Default for SiaSettings {
    /// The window is the one common receivers use (40 s behind, 20 s ahead), wider than a
    /// network's delay and narrower than a replay takes to matter; the rest are generous for
    /// a neighbourhood's few hundred panels.
    fn default() -> Self {
        Self {
            max_behind: Duration::from_secs(40),
            max_ahead: Duration::from_secs(20),
            max_connections: 512,
            idle_timeout: Duration::from_secs(60),
            max_refused_in_a_row: 8,
            max_udp_in_flight: 64,
        }
    }
}
