//! The offline base map's tiles, `GET /tiles/{z}/{x}/{y}`, from the station's MBTiles file
//! ([`crate::tiles`]). No session: tiles are public map data, and the console's map asks for
//! them as plain images. A gateway started without `--tiles` answers 404 and says why.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::tiles::TileAddress;

/// A day: a base map changes when the station replaces its file (and restarts), seldom;
/// meanwhile the console pans over tiles it already has without asking again.
const CACHE_CONTROL: &str = "public, max-age=86400";

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(tile))
}

/// One tile of the base map, in the web's (XYZ) row order.
#[utoipa::path(get, path = "/tiles/{z}/{x}/{y}", tag = "map", security(()), operation_id = "map_tile",
    params(
        ("z" = String, Path, description = "zoom level, 0 to 30"),
        ("x" = String, Path, description = "column, 0 to 2^z - 1 (west to east)"),
        ("y" = String, Path, description = "row, 0 to 2^z - 1 (north to south)"),
    ),
    responses(
        (status = 200, description = "the tile's image, its type as the file's format says",
            content(("image/png"), ("image/jpeg"), ("image/webp"))),
        (status = 400, description = "not a tile's address: a coordinate that is not a whole number, or off the map", body = ErrorBody),
        (status = 404, description = "no tile there, or this gateway serves no base map", body = ErrorBody),
    ))]
async fn tile(
    State(s): State<AppState>,
    Path((z, x, y)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let at = TileAddress::parse(&z, &x, &y).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let Some(tiles) = &s.tiles else {
        return Err(ApiError::NotFound(
            "this gateway serves no base map: start it with --tiles FILE (an MBTiles file)".into(),
        ));
    };
    let data = tiles
        .tile(at)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "the base map has no tile at zoom {}, column {}, row {}",
                at.z, at.x, at.y
            ))
        })?;
    let content_type = tiles.meta().format.content_type();
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(CACHE_CONTROL),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        data,
    )
        .into_response())
}
