//! The station's device supervision API (operators only, scoped to their zones):
//!
//! - `GET /api/devices?state=&cluster=&limit=`: device health of the operator's zones;
//! - `GET /api/devices/{id}`: one device with its history and problems;
//! - `GET /api/clusters/health`: coverage per cluster (households reachable now);
//! - `GET /api/problems?all=`: the "needs attention" list, with history and who to tell;
//! - `GET /api/refused-logins`: refused logins, in total and per device id of the
//!   operator's zones (counted, never a device's state).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{zones_for, Operator};
use super::error::Params;
use super::openapi::{DevicePath, Refusals};
use super::{ApiError, AppState};
use crate::domain::{ClusterId, DeviceId};
use crate::store::supervision::{DeviceFilter, DeviceState, ProblemFilter};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_devices))
        .routes(routes!(refused_logins))
        .routes(routes!(device_detail))
        .routes(routes!(cluster_health))
        .routes(routes!(problems))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DevicesQuery {
    /// `online`, `late`, `offline` or `never_seen`.
    state: Option<String>,
    cluster: Option<String>,
    /// One of the account's zones (default: all of them).
    zone: Option<String>,
    /// At most this many: 1 to 10,000 (default 1,000).
    limit: Option<u32>,
}

/// The devices of the operator's zones with their health (presence, battery, signal, last
/// heartbeat), and the supervision's interval and grace.
#[utoipa::path(get, path = "/api/devices", tag = "devices", params(DevicesQuery),
    responses((status = 200, description = "{devices: [...], heartbeat_interval_ms, grace_ms}"), Refusals))]
async fn list_devices(
    State(s): State<AppState>,
    Operator(who): Operator,
    Params(q): Params<DevicesQuery>,
) -> Result<Response, ApiError> {
    let state = q
        .state
        .as_deref()
        .map(|st| {
            DeviceState::parse(st).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "state must be online, late, offline or never_seen, not {st:?}"
                ))
            })
        })
        .transpose()?;
    let cluster = q
        .cluster
        .as_deref()
        .map(ClusterId::parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let filter = DeviceFilter {
        zones: zones_for(&who, q.zone.as_deref())?,
        state,
        cluster,
        limit: q.limit.unwrap_or(1000).clamp(1, 10_000),
    };
    let policy = s.supervision;
    let devices = s
        .store
        .device_health_list(&filter, &policy, s.ingest.now())
        .await?;
    Ok(Json(json!({
        "devices": devices,
        "heartbeat_interval_ms": policy.heartbeat_interval_ms,
        "grace_ms": policy.grace_ms,
    }))
    .into_response())
}

/// One device with its health, its recent history and its problems.
#[utoipa::path(get, path = "/api/devices/{id}", tag = "devices", params(DevicePath),
    responses((status = 200, description = "{health, history, problems}"), Refusals))]
async fn device_detail(
    State(s): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = DeviceId::parse(&id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let policy = s.supervision;
    match s.store.device_health(&id, &policy, s.ingest.now()).await? {
        // A device of another zone is answered exactly like one that does not exist.
        Some(detail) if who.may_see(&detail.health.zone) => Ok(Json(detail).into_response()),
        _ => Err(ApiError::NotFound(format!("device {id} not found"))),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ZoneQuery {
    /// One of the account's zones (default: all of them).
    zone: Option<String>,
}

/// Coverage per cluster: how many of its households a unit can reach now.
#[utoipa::path(get, path = "/api/clusters/health", tag = "devices", params(ZoneQuery),
    responses((status = 200, description = "{clusters: [...], coverage_min_percent}"), Refusals))]
async fn cluster_health(
    State(s): State<AppState>,
    Operator(who): Operator,
    Params(q): Params<ZoneQuery>,
) -> Result<Response, ApiError> {
    let policy = s.supervision;
    let clusters = s
        .store
        .cluster_health(&zones_for(&who, q.zone.as_deref())?, &policy)
        .await?;
    Ok(Json(json!({
        "clusters": clusters,
        "coverage_min_percent": policy.coverage_min_percent,
    }))
    .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ProblemsQuery {
    /// Closed problems too.
    all: Option<bool>,
    /// One of the account's zones (default: all of them).
    zone: Option<String>,
    /// At most this many: 1 to 1,000 (default 200).
    limit: Option<u32>,
}

/// The "needs attention" list: devices offline, late, low on battery or tampered with, with
/// their history and whom to tell.
#[utoipa::path(get, path = "/api/problems", tag = "devices", params(ProblemsQuery),
    responses((status = 200, description = "{problems: [...]}"), Refusals))]
async fn problems(
    State(s): State<AppState>,
    Operator(who): Operator,
    Params(q): Params<ProblemsQuery>,
) -> Result<Response, ApiError> {
    let filter = ProblemFilter {
        zones: zones_for(&who, q.zone.as_deref())?,
        include_closed: q.all.unwrap_or(false),
        limit: q.limit.unwrap_or(200).clamp(1, 1000),
    };
    let problems = s.store.problems(&filter, &s.supervision).await?;
    Ok(Json(json!({ "problems": problems })).into_response())
}

/// Refused logins since the gateway started: the total (every id tried, registered or not)
/// and, one by one, those naming a device of the operator's zones, most refused first.
#[utoipa::path(get, path = "/api/refused-logins", tag = "devices",
    responses((status = 200, description = "{total, devices: [{device, refused, last_at_ms}]}"), Refusals))]
async fn refused_logins(
    State(s): State<AppState>,
    Operator(who): Operator,
) -> Result<Response, ApiError> {
    let map = s.store.zone_map(&who.zones).await?;
    let mine: std::collections::HashSet<&str> = map.devices.iter().map(|d| d.id.as_str()).collect();
    let devices = s.login_refusals.list(|d| mine.contains(d), 200);
    Ok(Json(json!({
        "total": s.login_refusals.total(),
        "devices": devices,
    }))
    .into_response())
}
