//! The HTTP wing: every route the gateway answers, and the only part of the gateway that
//! knows axum. `/healthz` is open (its counters are not); `/metrics` asks for its bearer token
//! or is served on its own address ([`HttpConfig`]); behind a session are the alerts of the
//! account's zones and the actions on them, the station feed WebSocket at `/api/feed`, the
//! console's map, supervision and history views, and the volunteer app's duty, position, push
//! subscriptions and check-ins. An external broker asks `/api/broker/*` with its own secret.
//!
//! # Layout
//! - [`state`]: [`AppState`], the handles every handler shares.
//! - [`error`]: [`ApiError`], the one error type that answers HTTP.
//! - [`auth`]: sign-in (`/api/session`) and the [`auth::Authenticated`], [`auth::Operator`]
//!   and [`auth::Volunteer`] extractors.
//! - [`alerts`], [`feed`]: the alert API and the station feed.
//! - [`history`]: closed alerts searched and paged, a device's presence and battery history,
//!   the statistics of a period; [`bulletin`]: a zone's 警情公示 from them, page and PDF.
//! - [`notices`]: notices to residents, written and listed with who got them.
//! - [`console`], [`supervision`]: the station console's map, settings and device health.
//! - [`volunteer`]: the volunteer app's own routes.
//! - [`broker_auth`]: logins and the ACL for an external broker.
//! - [`cap`]: the public CAP 1.2 feed and documents of the alerts a station published
//!   (`/cap/…`, no session: public by design).
//! - [`tiles`]: the offline base map's tiles (`/tiles/{z}/{x}/{y}`, no session: public map
//!   data) from the station's MBTiles file.
//! - [`health`]: `/healthz` (its counters behind the metrics token) and `/metrics`.
//! - [`times`]: every `…at_ms` of a JSON answer with its ISO 8601 twin.
//! - [`openapi`]: the API described for machines, `/api/openapi.json`, from the handlers'
//!   annotations.
//! - [`web`]: the built pages of the console and the app, and their settings.
//! - [`guard`]: the client's address (trusted proxies) and the same-origin checks on writes.
//! - [`server`]: the accept loop: header and idle timeouts, the connection cap.

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Extension;
use axum::Router;
use tokio::net::TcpListener;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod alerts;
pub mod auth;
pub mod broker_auth;
pub mod bulletin;
pub mod cap;
pub mod console;
pub mod error;
pub mod feed;
#[cfg(test)]
mod fuzz;
pub mod guard;
pub mod health;
pub mod history;
pub mod notices;
pub mod openapi;
pub mod paging;
pub mod server;
pub mod state;
pub mod supervision;
pub mod tiles;
pub mod times;
pub mod volunteer;
pub mod web;

pub use error::ApiError;
pub use guard::Trust;
pub use server::HttpLimits;
pub use state::AppState;
pub use web::{ConsoleArgs, ConsoleConfig};

/// Request bodies are small JSON documents; anything bigger is refused with 413.
const MAX_BODY: usize = 64 * 1024;

/// How the HTTP server meets the network: connection limits, who is trusted to say where a
/// client is, the origin browsers use, and who may read `/metrics`.
#[derive(Clone, Default)]
pub struct HttpConfig {
    pub limits: HttpLimits,
    pub trust: Trust,
    /// `/metrics` asks for this as a bearer token (`--metrics-token`).
    pub metrics_token: Option<String>,
}

/// Written out by hand so that the metrics token never shows in a log line.
impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("limits", &self.limits)
            .field("trust", &self.trust)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

pub fn router(state: AppState) -> Router {
    let trust = state.trust.clone();
    let (api, described) = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::metrics))
        .routes(routes!(feed::feed))
        .routes(routes!(openapi::document))
        .merge(alerts::routes())
        .merge(history::routes())
        .merge(bulletin::routes())
        .merge(notices::routes())
        .merge(auth::session_api())
        .merge(console::routes())
        .merge(supervision::routes())
        .merge(volunteer::routes())
        .merge(broker_auth::routes())
        .merge(cap::routes())
        .merge(tiles::routes())
        .split_for_parts();
    let document = openapi::Document::new(&openapi::describe(described));
    api.layer(Extension(document))
        .layer(axum::middleware::from_fn(times::iso_times))
        // Unknown `/api/…` routes stay JSON 404s; other paths are the console's files.
        .fallback(web::fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
        // Outermost last: the client's address is known before the origin check logs it.
        .layer(axum::middleware::from_fn_with_state(
            trust.clone(),
            guard::cross_site_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            trust,
            guard::client_addr,
        ))
}

/// Only `/metrics` and `/healthz` with its counters, for `--metrics-listen`: an address of
/// its own (a private network, the scraper's side), where the token is still asked for if one
/// is set.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics_here))
        .route("/healthz", get(health::healthz_here))
        .with_state(state)
}

/// Serves `app` on an already-bound listener until `shutdown` completes, then lets open
/// requests finish; the connections are limited by `limits` and at most `cap` at once
/// ([`server::connection_cap`]). Peers' addresses reach the handlers (the login limiter
/// uses them).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    cap: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, app, limits, cap, shutdown).await
}

/// Shared with the handlers: where `/metrics` is and what it asks for.
#[derive(Debug, Clone, Default)]
pub struct MetricsAccess {
    /// The bearer token `/metrics` asks for.
    pub token: Option<Arc<str>>,
    /// `/metrics` has its own listener, so the main one answers 404.
    pub elsewhere: bool,
}

/// A header map from pairs, for the unit tests of this wing.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&'static str, &str)]) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, axum::http::HeaderValue::from_str(v).unwrap());
    }
    h
}
