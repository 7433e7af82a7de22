//! The station console's own API, beside the alert API of [`super::alerts`]:
//! `GET /api/console/config` (open: the base map and time zone, needed before signing in),
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

/// Nothing secret: what the page needs to draw the map and show times. With `--tiles` the
/// base map is the gateway's own `/tiles/…`, credited, zoomed and framed as its file says;
/// with `--tile-url`, the tile server's; with neither, `tile_url` is empty.
#[utoipa::path(get, path = "/api/console/config", tag = "console", security(()),
    responses((status = 200, description = "{tile_url, tile_attribution, tile_source (local, remote or none), tile_min_zoom, tile_max_zoom, tile_bounds ([[south, west], [north, east]] or null), time_zone, version, enough_help}")))]
async fn config(State(s): State<AppState>) -> Response {
    let console = &s.console;
    let (tile_url, attribution, source, min_zoom, max_zoom, bounds) = match &s.tiles {
        Some(tiles) => {
            let meta = tiles.meta();
            // The station's own words win over the file's.
            let attribution = if console.tile_attribution.is_empty() {
                meta.attribution.clone()
            } else {
                console.tile_attribution.clone()
            };
            let bounds = meta.bounds.map(|[w, s, e, n]| [[s, w], [n, e]]);
            let (min, max) = (Some(meta.min_zoom), Some(meta.max_zoom));
            (
                "/tiles/{z}/{x}/{y}".to_owned(),
                attribution,
                "local",
                min,
                max,
                bounds,
            )
        }
        None if !console.tile_url.is_empty() => {
            let attribution = console.tile_attribution.clone();
            (
                console.tile_url.clone(),
                attribution,
                "remote",
                None,
                None,
                None,
            )
        }
        None => (String::new(), String::new(), "none", None, None, None),
    };
    Json(json!({
        "tile_url": tile_url,
        "tile_attribution": attribution,
        "tile_source": source,
        "tile_min_zoom": min_zoom,
        "tile_max_zoom": max_zoom,
        "tile_bounds": bounds,
        "time_zone": console.time_zone,
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
