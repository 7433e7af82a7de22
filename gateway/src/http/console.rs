//! The station console's own API, beside the alert API of [`super::alerts`]:
//! `GET /api/console/config` (open: tile URL and time zone, needed before signing in),
//! `GET /api/map` (operators: the zones, clusters, households and device health they may see)
//! and `GET /api/volunteers` (operators: who is on duty, for dispatch and the map).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Operator;
use super::openapi::Refusals;
use super::{ApiError, AppState};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(config))
        .routes(routes!(map))
        .routes(routes!(list_volunteers))
}

/// Nothing secret: what the page needs to draw the map and show times.
#[utoipa::path(get, path = "/api/console/config", tag = "console", security(()),
    responses((status = 200, description = "{tile_url, tile_attribution, time_zone, version, enough_help}")))]
async fn config(State(s): State<AppState>) -> Response {
    Json(json!({
        "tile_url": s.console.tile_url,
        "tile_attribution": s.console.tile_attribution,
        "time_zone": s.console.time_zone,
        "version": env!("CARGO_PKG_VERSION"),
        "enough_help": s.ingest.enough_help(),
    }))
    .into_response()
}

/// The map of the operator's own zones, with each device's last known health.
#[utoipa::path(get, path = "/api/map", tag = "console",
    responses((status = 200, description = "{zones, clusters, households with their devices' health}"), Refusals))]
async fn map(State(s): State<AppState>, Operator(who): Operator) -> Result<Response, ApiError> {
    let map = s.store.zone_map(&who.zones).await?;
    Ok(Json(map).into_response())
}

/// On-duty volunteers of the operator's zones, for dispatch and the map.
#[utoipa::path(get, path = "/api/volunteers", tag = "console",
    responses((status = 200, description = "{volunteers: [{zone, volunteer}]}"), Refusals))]
async fn list_volunteers(
    State(s): State<AppState>,
    Operator(who): Operator,
) -> Result<Response, ApiError> {
    let mut all = Vec::new();
    for zone in &who.zones {
        for v in s.store.on_duty_volunteers(zone).await? {
            all.push(json!({ "zone": zone, "volunteer": v }));
        }
    }
    Ok(Json(json!({ "volunteers": all })).into_response())
}
