//! The HTTP API: `/healthz`, `/metrics`, `GET /api/alerts`, `GET /api/alerts/{id}` and the
//! station feed WebSocket at `/api/feed`.
//!
//! One [`ApiError`] type turns every failure into a status and a JSON body that says what the
//! client may know; internal errors are logged and shown only as "internal error".

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{rejection::QueryRejection, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::domain::{AlertId, ZoneCode};
use crate::feed::Feed;
use crate::metrics::Metrics;
use crate::store::{AlertFilter, Store, StoreError};

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub feed: Feed,
    pub metrics: Arc<Metrics>,
    pub edge_stats: Arc<tenwatch_broker::EdgeStats>,
    /// True while the gateway's own MQTT link is subscribed to the uplink.
    pub mqtt_ready: watch::Receiver<bool>,
    pub started: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            StoreError::Invalid(why) => ApiError::BadRequest(why),
            other => ApiError::Store(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// Request bodies are small JSON documents; anything bigger is refused with 413.
const MAX_BODY: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/alerts", get(list_alerts))
        .route("/api/alerts/{id}", get(alert_detail))
        .route("/api/feed", get(feed))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn healthz(State(s): State<AppState>) -> Response {
    let db = s.store.ping().await;
    let mqtt = *s.mqtt_ready.borrow();
    let ok = db.is_ok() && mqtt;
    let counts = s.store.counts().await.ok();
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "database": if db.is_ok() { "ok" } else { "down" },
        "mqtt": if mqtt { "ok" } else { "down" },
        "uptime_s": s.started.elapsed().as_secs(),
        "registry": counts,
        "edge": s.edge_stats.snapshot(),
        "gateway": s.metrics.snapshot(),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    let mut out = String::new();
    s.metrics.render("tenwatch_gateway", &mut out);
    if let Ok(edge) = serde_json::to_value(s.edge_stats.snapshot()) {
        if let Some(map) = edge.as_object() {
            for (k, v) in map {
                out.push_str(&format!("tenwatch_edge_{k} {v}\n"));
            }
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// `open` (default) or `all`.
    state: Option<String>,
    zone: Option<String>,
    limit: Option<u32>,
}

async fn list_alerts(
    State(s): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let open_only = match q.state.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "state must be \"open\" or \"all\", not {other:?}"
            )))
        }
    };
    let zone = q
        .zone
        .as_deref()
        .map(ZoneCode::parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let filter = AlertFilter {
        open_only,
        zone,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let alerts = s.store.list_alerts(&filter).await?;
    Ok(Json(json!({ "alerts": alerts })).into_response())
}

async fn alert_detail(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = AlertId::parse(&id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    match s.store.alert_detail(id).await? {
        Some(detail) => Ok(Json(detail).into_response()),
        None => Err(ApiError::NotFound(format!("alert {id} not found"))),
    }
}

/// How often the feed pings an idle station so that dead connections are noticed.
const FEED_PING: Duration = Duration::from_secs(20);

async fn feed(State(s): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| stream_feed(socket, s))
}

async fn stream_feed(mut socket: WebSocket, s: AppState) {
    // Subscribe before reading the snapshot so nothing falls between the two.
    let mut rx = s.feed.subscribe();
    let snapshot = s
        .store
        .list_alerts(&AlertFilter {
            open_only: true,
            zone: None,
            limit: 1000,
        })
        .await;
    let hello = match snapshot {
        Ok(alerts) => json!({ "type": "snapshot", "alerts": alerts }),
        Err(e) => {
            tracing::error!(error = %e, "feed snapshot failed");
            json!({ "type": "resync" })
        }
    };
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut ping = tokio::time::interval(FEED_PING);
    ping.tick().await;
    loop {
        tokio::select! {
            event = rx.recv() => {
                let text: String = match event {
                    Ok(json) => json.to_string(),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "station feed client fell behind: resync");
                        json!({ "type": "resync", "missed": missed }).to_string()
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
        }
    }
}
