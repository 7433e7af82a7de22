//! `/healthz` and `/metrics`. `/healthz` answers anyone, for load balancers and supervisors,
//! with health only: `ok` or `degraded` with the reason, the store and the MQTT link. Its
//! counters (registry, edge, gateway) are what `/metrics` guards, so they are shown only to
//! whom `/metrics` would answer: with the `--metrics-token` as a bearer token, or on the
//! `--metrics-listen` address (there too with the token, if one is set).
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

/// Whether the gateway is healthy: `ok`, or `degraded` with the reason (the store, the MQTT
/// link). Its counters too, to the bearer of the metrics token.
#[utoipa::path(get, path = "/healthz", tag = "health", security((), ("bearer" = [])),
    responses(
        (status = 200, description = "healthy: {status: ok, database, mqtt}"),
        (status = 503, description = "degraded: {status: degraded, reason}"),
    ))]
pub(super) async fn healthz(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let counters = s
        .metrics_access
        .token
        .as_ref()
        .is_some_and(|token| super::auth::bearer_is(&headers, token));
    health(&s, counters).await
}

/// `/healthz` on the metrics listener: the counters too, with the token if one is set.
pub(super) async fn healthz_here(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let counters = match &s.metrics_access.token {
        Some(token) => super::auth::bearer_is(&headers, token),
        None => true,
    };
    health(&s, counters).await
}

async fn health(s: &AppState, counters: bool) -> Response {
    let db = s.store.ping().await;
    let mqtt = *s.mqtt_ready.borrow();
    let mut reasons = Vec::new();
    if db.is_err() {
        reasons.push("the database does not answer");
    }
    if !mqtt {
        reasons.push("the MQTT link is down");
    }
    let ok = reasons.is_empty();
    let mut body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "database": if db.is_ok() { "ok" } else { "down" },
        "mqtt": if mqtt { "ok" } else { "down" },
    });
    if !ok {
        body["reason"] = json!(reasons.join("; "));
    }
    if counters {
        body["uptime_s"] = json!(s.started.elapsed().as_secs());
        body["registry"] = json!(s.store.counts().await.ok());
        body["edge"] = json!(s.edge_stats.snapshot());
        body["gateway"] = json!(s.metrics.snapshot());
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// The gateway's metrics in the Prometheus / OpenMetrics text format, for a scraper with the
/// metrics token (`--metrics-token`). Off unless configured; with `--metrics-listen` it is
/// served on that address instead.
#[utoipa::path(get, path = "/metrics", tag = "health", security(("bearer" = [])),
    responses(
        (status = 200, description = "the metrics", content_type = "application/openmetrics-text"),
        (status = 401, description = "without the metrics token", body = super::error::ErrorBody),
        (status = 404, description = "off, or served on its own address", body = super::error::ErrorBody),
    ))]
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
