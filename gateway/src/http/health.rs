//! `/healthz` and `/metrics`. `/healthz` is open, for load balancers and supervisors.
//! `/metrics` is for a scraper that proves itself: with `--metrics-token` it asks for that
//! bearer token (401 without it); with `--metrics-listen` it is served only on that address
//! (404 on the main one); with neither it is off (404 saying how to turn it on).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde_json::json;

use super::{ApiError, AppState};

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

/// `/metrics` on the main listener.
pub(super) async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if s.metrics_access.elsewhere {
        return ApiError::NotFound(
            "/metrics is served on its own address (--metrics-listen)".into(),
        )
        .into_response();
    }
    if s.metrics_access.token.is_none() {
        return ApiError::NotFound(
            "/metrics is off: start the gateway with --metrics-token or --metrics-listen".into(),
        )
        .into_response();
    }
    metrics_here(State(s), headers).await
}

/// `/metrics` where it is served: the token is asked for if one is set.
pub(super) async fn metrics_here(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &s.metrics_access.token {
        if !super::auth::bearer_is(&headers, token) {
            return ApiError::TokenRequired(
                "/metrics needs Authorization: Bearer <the --metrics-token>".into(),
            )
            .into_response();
        }
    }
    let mut registry = Registry::default();
    s.metrics
        .register(registry.sub_registry_with_prefix("tenwatch_gateway"));
    register_edge(
        registry.sub_registry_with_prefix("tenwatch_edge"),
        &s.edge_stats.snapshot(),
    );
    let gateway = registry.sub_registry_with_prefix("tenwatch_gateway");
    gateway.register(
        "logins_refused",
        "Device logins refused (the edge's or an external broker's), any device id",
        ConstCounter::new(s.login_refusals.total()),
    );
    gateway.register(
        "logins_refused_ids",
        "Distinct device ids with refused logins kept for the station",
        ConstGauge::new(s.login_refusals.ids() as i64),
    );
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        return ApiError::Internal(format!("metrics not encoded: {e}")).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// The edge's figures: `connected` is a gauge (devices connected now), the rest count events.
fn register_edge(registry: &mut Registry, edge: &tenwatch_broker::EdgeStatsSnapshot) {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(edge) else {
        return;
    };
    for (name, value) in fields {
        let Some(value) = value.as_u64() else {
            continue;
        };
        if name == "connected" {
            registry.register(name, "devices connected now", ConstGauge::new(value as i64));
        } else {
            let help = format!("edge: {}", name.replace('_', " "));
            registry.register(name, help, ConstCounter::new(value));
        }
    }
}
