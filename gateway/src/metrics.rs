//! Counters of what the gateway did and refused, shown on `/metrics` (the Prometheus /
//! OpenMetrics text format, written by the `prometheus-client` crate, with each counter's
//! `# HELP` and `# TYPE`) and, to the same readers (the metrics token or address), on
//! `/healthz` as JSON.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::registry::Registry;
use serde::Serialize;

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
        }

        #[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
        pub struct MetricsSnapshot {
            $(pub $name: u64,)*
        }

        impl Metrics {
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }

            /// Adds every counter, as it is now, to `registry`.
            pub fn register(&self, registry: &mut Registry) {
                use prometheus_client::metrics::counter::ConstCounter;
                $(registry.register(
                    stringify!($name),
                    // The encoder ends each HELP with a full stop of its own.
                    concat!($($doc),*).trim().trim_end_matches('.'),
                    ConstCounter::new(self.$name.load(Ordering::Relaxed)),
                );)*
            }
        }
    };
}

counters! {
    /// Uplink messages received from the broker.
    uplink_received,
    /// Uplinks refused: bad topic or malformed payload.
    uplink_malformed,
    /// Uplinks that parsed but were refused: a receipt for a notice not sent to the unit, a
    /// satisfaction answer for another household's alert, a second one, or an open alert's.
    uplink_refused,
    /// Units' receipts of notices to residents.
    notice_receipts,
    /// Presses that raised a new alert.
    alerts_raised,
    /// Presses repeated with a seq already stored (answered with the same alert).
    presses_duplicate,
    /// New presses added to their household's open alert instead of raising another.
    presses_merged,
    /// Presses from devices not in the registry.
    presses_unknown_device,
    /// Alerts cancelled inside the window.
    alerts_cancelled,
    /// Cancel presses that came too late or found nothing open.
    cancels_refused,
    /// Neighbour units that reported the alert sounded.
    deliveries,
    /// "Coming" / "declined" answers from units.
    responses,
    /// Heartbeats received.
    heartbeats,
    /// Heartbeats that reported nothing new, kept in memory and written with the next flush.
    heartbeats_kept,
    /// Kept heartbeats the flush found their device changed for (state or readings), applied
    /// in full instead.
    heartbeats_reapplied,
    /// Store operations that failed (the device will repeat its press).
    store_errors,
    /// Publishes to the broker that could not be queued.
    publish_errors,
    /// Presence events dropped because the presence queue was full.
    presence_dropped,
    /// Web Push requests made to push services (each try counts).
    pushes_sent,
    /// Pushes a push service accepted.
    pushes_accepted,
    /// Subscriptions the push service said are gone (404/410), removed.
    pushes_expired,
    /// Pushes given up on (refused, or still failing after every retry).
    pushes_failed,
    /// Retries after a 5xx, a 429 or a network failure.
    push_retries,
    /// Volunteers to push who had no subscription.
    pushes_no_subscription,
    /// Pushes dropped because the push queue was full.
    pushes_dropped,
}

pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
