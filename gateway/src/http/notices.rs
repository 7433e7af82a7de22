//! Notices to residents (operators only, scoped to their zones):
//!
//! - `POST /api/notices`: write a notice (`kind`, `title`, `body`) for a zone of the operator's
//!   or for chosen clusters of it; it goes to the units (MQTT) and the zone's on-duty
//!   volunteers (Web Push) at once; answered 201 with the notice and its counts;
//! - `GET /api/notices`: the notices of the operator's zones (or of `zone`), newest first,
//!   each with how many households' units and volunteers got it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{zones_for, Operator};
use super::error::{Body, Params};
use super::openapi::Refusals;
use super::paging::{next_page, window, Asked};
use super::{ApiError, AppState};
use crate::domain::{ClusterId, ZoneCode};
use crate::store::notices::NewNotice;

/// A list holds this many notices unless asked otherwise, and at most [`MAX_LIST`].
const DEFAULT_LIST: u32 = 50;
const MAX_LIST: u32 = 200;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, send))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NoticeRequest {
    /// One of the operator's zones; may be left out by an operator of one zone.
    zone: Option<String>,
    /// Clusters of that zone; none or empty: the whole zone.
    #[serde(default)]
    clusters: Vec<String>,
    /// `prevention`, `wanted`, `weather`, `fire` or `other`.
    kind: String,
    /// At most 60 characters.
    title: String,
    /// At most 400 characters.
    body: String,
}

/// A notice to residents: to every unit of the zone (or of the chosen clusters) over MQTT, and
/// to the zone's on-duty volunteers as a Web Push of lower urgency than an alert's.
#[utoipa::path(post, path = "/api/notices", tag = "notices", request_body = NoticeRequest,
    responses((status = 201, description = "the notice with its counts"), Refusals))]
async fn send(
    State(s): State<AppState>,
    Operator(who): Operator,
    Body(req): Body<NoticeRequest>,
) -> Result<Response, ApiError> {
    let zone = match req.zone.as_deref() {
        Some(z) => ZoneCode::parse(z).map_err(|e| ApiError::BadRequest(e.to_string()))?,
        None => match who.zones.as_slice() {
            [only] => only.clone(),
            _ => {
                return Err(ApiError::BadRequest(
                    "zone: name the zone the notice is for (you have several)".into(),
                ))
            }
        },
    };
    if !who.may_see(&zone) {
        return Err(ApiError::Forbidden(format!(
            "zone {zone} is not one of yours"
        )));
    }
    let clusters = req
        .clusters
        .iter()
        .map(|c| ClusterId::parse(c).map_err(|e| ApiError::BadRequest(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let notice = NewNotice::parse(zone, clusters, &req.kind, &req.title, &req.body, &who.name)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let view = s.ingest.send_notice(&notice).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// One of the account's zones (default: all of them).
    zone: Option<String>,
    /// Sent at or after (unix ms or ISO 8601).
    from: Option<String>,
    /// Sent before.
    to: Option<String>,
    /// At most this many a page, newest first: 1 to 200 (default 50).
    limit: Option<u32>,
    /// The `next` of the page before.
    cursor: Option<String>,
}

/// The notices of the operator's zones, newest first, each with how many households' units
/// and volunteers got it.
#[utoipa::path(get, path = "/api/notices", tag = "notices", params(ListQuery),
    responses((status = 200, description = "{notices: [...], next}"), Refusals))]
async fn list(
    State(s): State<AppState>,
    Operator(who): Operator,
    Params(q): Params<ListQuery>,
) -> Result<Response, ApiError> {
    let zones = zones_for(&who, q.zone.as_deref())?;
    let window = window(
        Asked::new(&q.from, &q.to, &q.cursor, q.limit),
        DEFAULT_LIST,
        MAX_LIST,
    )?;
    let mut notices = s.store.notices(&zones, &window).await?;
    let next = next_page(&mut notices, &window, |n| {
        (n.notice.created_at_ms, n.notice.id)
    });
    Ok(Json(json!({ "notices": notices, "next": next })).into_response())
}
