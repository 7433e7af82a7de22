//! The gateway's clock: wall time (unix ms) anchored once at start and advanced by tokio's
//! monotonic clock.
//!
//! Anchoring makes every stored time and every deadline follow `tokio::time`, so escalation can
//! be tested with paused time, and a wall-clock step (NTP) never fires a ring early or twice.
//! [`Clock::manual`] is a clock that moves only when told, for tests of deadlines against a
//! real database.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub enum Clock {
    System { base_ms: i64, base: Instant },
    Manual(Arc<Manual>),
}

/// A clock that moves only when told, and says when it moved.
#[derive(Debug, Default)]
pub struct Manual {
    ms: AtomicI64,
    moved: tokio::sync::Notify,
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    pub fn system() -> Self {
        Clock::System {
            base_ms: chrono::Utc::now().timestamp_millis(),
            base: Instant::now(),
        }
    }

    pub fn manual(start_ms: i64) -> Self {
        Clock::Manual(Arc::new(Manual {
            ms: AtomicI64::new(start_ms),
            moved: tokio::sync::Notify::new(),
        }))
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System { base_ms, base } => *base_ms + base.elapsed().as_millis() as i64,
            Clock::Manual(m) => m.ms.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward; a system clock ignores it.
    pub fn advance_ms(&self, ms: i64) {
        if let Clock::Manual(m) = self {
            m.ms.fetch_add(ms, Ordering::SeqCst);
            m.moved.notify_waiters();
        }
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.advance_ms(by.as_millis() as i64);
    }

    /// Completes when a manual clock is moved; never for the system clock, whose deadlines
    /// are met by sleeping.
    pub async fn moved(&self) {
        match self {
            Clock::System { .. } => std::future::pending().await,
            Clock::Manual(m) => m.moved.notified().await,
        }
    }

    /// The tokio instant at which this clock will read `at_ms` (now, if that is past).
    pub fn instant_at(&self, at_ms: i64) -> Instant {
        let wait = (at_ms - self.now_ms()).max(0) as u64;
        Instant::now() + std::time::Duration::from_millis(wait)
    }
}
