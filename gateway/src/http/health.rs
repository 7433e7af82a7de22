//! `/healthz` and `/metrics`: open to anyone, for load balancers, supervisors and scrapers.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;

pub(super) async fn healthz(State(s): State<AppState>) -> Response {
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

pub(super) async fn metrics(State(s): State<AppState>) -> Response {
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
