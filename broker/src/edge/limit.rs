//! Token buckets for the per-device publish limits: a short burst is allowed (a resident
//! pressing twice, a unit catching up after reconnecting), a sustained flood is not.

use std::time::Duration;

use tokio::time::Instant;

/// A rate limit as configured: `burst` tokens, one token back every `refill_every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Publishes allowed back to back from a full bucket.
    pub burst: u32,
    /// Time to earn one publish back.
    pub refill_every: Duration,
}

/// One device's bucket. Uses tokio's clock so tests can run it under `time::pause()`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    refill_every: Duration,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        let capacity = f64::from(limit.burst);
        Self {
            capacity,
            tokens: capacity,
            refill_every: limit.refill_every,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        if self.refill_every.is_zero() {
            // No refill interval means "no limit".
            return true;
        }
        let earned = elapsed.as_secs_f64() / self.refill_every.as_secs_f64();
        self.tokens = (self.tokens + earned).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One device's buckets, kept by the edge for as long as it runs (not per session): a unit
/// that reconnects keeps what it had spent, so reconnecting does not reset its limits.
#[derive(Debug, Clone)]
pub struct DeviceBuckets {
    /// Presses.
    pub press: TokenBucket,
    /// Every other uplink publish.
    pub publish: TokenBucket,
    /// Logins that passed the password check.
    pub connect: TokenBucket,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let limit = RateLimit {
            burst: 5,
            refill_every: Duration::from_secs(2),
        };
        let mut b = TokenBucket::new(limit, t0);
        for i in 0..5 {
            assert!(b.try_take(t0), "press {i} within the burst");
        }
        assert!(!b.try_take(t0));
        assert!(!b.try_take(t0 + Duration::from_millis(1_900)));
        assert!(b.try_take(t0 + Duration::from_millis(2_000)));
        assert!(!b.try_take(t0 + Duration::from_millis(2_100)));
    }

    #[test]
    fn refill_caps_at_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            RateLimit {
                burst: 3,
                refill_every: Duration::from_millis(100),
            },
            t0,
        );
        let later = t0 + Duration::from_secs(3_600);
        let taken = (0..10).filter(|_| b.try_take(later)).count();
        assert_eq!(taken, 3);
    }

    #[test]
    fn zero_interval_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            RateLimit {
                burst: 0,
                refill_every: Duration::ZERO,
            },
            t0,
        );
        assert!((0..100).all(|_| b.try_take(t0)));
    }
}
