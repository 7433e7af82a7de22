//! The state every handler shares: narrow handles to the store, the feed, the accounts and
//! the press path, built once by [`crate::app`].

use std::sync::Arc;
use std::time::Instant;

use axum::extract::FromRef;
use tokio::sync::watch;

use crate::accounts::Accounts;
use crate::feed::Feed;
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::push::Pusher;
use crate::store::Store;
use crate::supervision::SupervisionPolicy;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub feed: Feed,
    pub metrics: Arc<Metrics>,
    pub edge_stats: Arc<tenwatch_broker::EdgeStats>,
    /// Refused device logins, per device id tried (counted, never a device's state).
    pub login_refusals: Arc<crate::supervision::LoginRefusals>,
    /// True while the gateway's own MQTT link is subscribed to the uplink.
    pub mqtt_ready: watch::Receiver<bool>,
    pub started: Instant,
    /// Applies actions and tells units, the presser and the feed.
    pub ingest: Ingest,
    /// The VAPID key and the push endpoint rules the volunteer app's subscriptions meet.
    pub pusher: Pusher,
    /// Heartbeat interval, grace and thresholds, for the station's device views.
    pub supervision: SupervisionPolicy,
    pub accounts: Accounts,
    /// The station console's settings and built pages.
    pub console: Arc<super::web::ConsoleConfig>,
    /// The offline base map served at `/tiles/…` (`--tiles`), open and checked at start.
    pub tiles: Option<Arc<crate::tiles::TileSet>>,
    /// The bearer secret an external broker presents to `/api/broker/*`.
    pub broker_auth_secret: Option<Arc<str>>,
    /// Trusted proxies and the public origin: where a client is, which pages are ours.
    pub trust: Arc<super::Trust>,
    /// Who may read `/metrics`, and where.
    pub metrics_access: super::MetricsAccess,
}

impl FromRef<AppState> for Accounts {
    fn from_ref(state: &AppState) -> Accounts {
        state.accounts.clone()
    }
}
