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
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::auth::{zones_for, Operator};
use super::error::{Body, Params};
use super::{ApiError, AppState};
use crate::domain::{ClusterId, ZoneCode};
use crate::store::notices::NewNotice;

/// A list holds this many notices unless asked otherwise, and at most [`MAX_LIST`].
const DEFAULT_LIST: u32 = 50;
const MAX_LIST: u32 = 200;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/notices", get(list).post(send))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticeRequest {
    /// One of the operator's zones; may be left out by an operator of one zone.
    zone: Option<String>,
    /// Clusters of that zone; none or empty: the whole zone.
    #[serde(default)]
    clusters: Vec<String>,
    kind: String,
    title: String,
    body: String,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    zone: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(s): State<AppState>,
    Operator(who): Operator,
    Params(q): Params<ListQuery>,
) -> Result<Response, ApiError> {
    let zones = zones_for(&who, q.zone.as_deref())?;
    let limit = q.limit.unwrap_or(DEFAULT_LIST).clamp(1, MAX_LIST);
    let notices = s.store.notices(&zones, limit).await?;
    Ok(Json(json!({ "notices": notices })).into_response())
}
