//! The HTTP wing: every route the gateway answers, and the only part of the gateway that
//! knows axum. `/healthz` and `/metrics` are open; behind a session are the alerts of the
//! account's zones and the actions on them, the station feed WebSocket at `/api/feed`, the
//! console's map and supervision views, and the volunteer app's duty, position, push
//! subscriptions and check-ins. An external broker asks `/api/broker/*` with its own secret.
//!
//! # Layout
//! - [`state`]: [`AppState`], the handles every handler shares.
//! - [`error`]: [`ApiError`], the one error type that answers HTTP.
//! - [`auth`]: sign-in (`/api/session`) and the [`auth::Authenticated`], [`auth::Operator`]
//!   and [`auth::Volunteer`] extractors.
//! - [`alerts`], [`feed`]: the alert API and the station feed.
//! - [`console`], [`supervision`]: the station console's map, settings and device health.
//! - [`volunteer`]: the volunteer app's own routes.
//! - [`broker_auth`]: logins and the ACL for an external broker.
//! - [`health`]: `/healthz` and `/metrics`.
//! - [`web`]: the built pages of the console and the app, and their settings.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

pub mod alerts;
pub mod auth;
pub mod broker_auth;
pub mod console;
pub mod error;
pub mod feed;
pub mod health;
pub mod state;
pub mod supervision;
pub mod volunteer;
pub mod web;

pub use error::ApiError;
pub use state::AppState;
pub use web::{ConsoleArgs, ConsoleConfig};

/// Request bodies are small JSON documents; anything bigger is refused with 413.
const MAX_BODY: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/api/feed", get(feed::feed))
        .merge(alerts::routes())
        .merge(auth::session_routes())
        .merge(console::routes())
        .merge(supervision::routes())
        .merge(volunteer::routes())
        .merge(broker_auth::routes())
        // Unknown `/api/…` routes stay JSON 404s; other paths are the console's files.
        .fallback(web::fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serves the API on an already-bound listener until `shutdown` completes, then lets open
/// requests finish. Peers' addresses reach the handlers (the login limiter uses them).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
