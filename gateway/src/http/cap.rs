//! The public CAP 1.2 routes ([`crate::cap`]): the Atom feed of the alerts stations made
//! public and each one's CAP documents. Open to anyone without a session, on purpose: a
//! public warning is for every reader (sirens, apps, aggregators), and what is in it was
//! chosen to name no household. Only alerts an operator published are answered; any other
//! id is a 404 exactly like one that does not exist.
//!
//! - `GET /cap/feed.atom`: the latest message of each public alert, most recent first.
//! - `GET /cap/alerts/{id}.xml`: the alert's latest message (`A42.xml`).
//! - `GET /cap/alerts/{id}/{n}.xml`: its `n`-th message (`A42/1.xml`), which a later one names
//!   in `references` as `tenwatch-A42-1`.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState};
use crate::cap;
use crate::domain::AlertId;
use crate::store::AlertSummary;

/// How many public alerts the feed lists.
const FEED_LIMIT: u32 = 100;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(feed))
        .routes(routes!(latest))
        .routes(routes!(nth))
        .routes(routes!(notice))
}

/// Not found, or not public (answered alike).
const NOT_PUBLIC: &str = "no such public alert, or no such message yet";

fn tz(s: &AppState) -> chrono_tz::Tz {
    // The console checked the name's shape at start; an unknown zone counts in Beijing time.
    s.console
        .time_zone
        .parse()
        .unwrap_or(chrono_tz::Asia::Shanghai)
}

/// XML for anyone: readable from any page (CORS); asked for again each time (an alert's latest
/// message changes within minutes, and a stale `Alert` after its `Cancel` would mislead).
fn xml(content_type: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The Atom feed of the alerts stations made public (the latest CAP message of each) and of
/// the notices to residents, most recent first.
#[utoipa::path(get, path = "/cap/feed.atom", tag = "public", security(()), operation_id = "cap_feed",
    responses((status = 200, description = "the feed", content_type = "application/atom+xml")))]
async fn feed(State(s): State<AppState>) -> Result<Response, ApiError> {
    let alerts = s.store.public_alerts(FEED_LIMIT).await?;
    let notices = s.store.recent_notices(FEED_LIMIT).await?;
    let body = cap::atom_feed(
        &alerts,
        &notices,
        &s.console.cap_sender,
        tz(&s),
        s.ingest.now(),
    );
    Ok(xml("application/atom+xml; charset=utf-8", body))
}

/// `A42.xml` (or `42.xml`) → the alert id; anything else is a 400 that says the form.
fn id_of(file: &str) -> Result<AlertId, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "expected an alert id and .xml, such as A42.xml; got {:?}",
            file.chars().take(40).collect::<String>()
        ))
    };
    let id = file.strip_suffix(".xml").ok_or_else(bad)?;
    AlertId::parse(id).map_err(|_| bad())
}

async fn public_alert(s: &AppState, id: AlertId) -> Result<AlertSummary, ApiError> {
    match s.store.alert(id).await? {
        Some(a) if a.public_at_ms.is_some() => Ok(a),
        _ => Err(ApiError::NotFound(format!("no public alert {id}"))),
    }
}

/// A public alert's latest CAP 1.2 message.
#[utoipa::path(get, path = "/cap/alerts/{file}", tag = "public", security(()),
    params(("file" = String, Path, description = "the alert's id and .xml, e.g. A42.xml")),
    responses(
        (status = 200, description = "the CAP document", content_type = "application/cap+xml"),
        (status = 400, description = "not an id and .xml", body = super::error::ErrorBody),
        (status = 404, description = NOT_PUBLIC, body = super::error::ErrorBody),
    ))]
async fn latest(State(s): State<AppState>, Path(file): Path<String>) -> Result<Response, ApiError> {
    let alert = public_alert(&s, id_of(&file)?).await?;
    let all = cap::messages(&alert);
    let last = all
        .last()
        .ok_or_else(|| ApiError::NotFound(format!("no public alert {}", alert.id)))?;
    let body = cap::cap_document(&alert, last, &all, &s.console.cap_sender, tz(&s));
    Ok(xml("application/cap+xml; charset=utf-8", body))
}

/// A public alert's `n`-th CAP 1.2 message (Alert, then Update or Cancel), which a later one
/// names in `references`.
#[utoipa::path(get, path = "/cap/alerts/{id}/{file}", tag = "public", security(()),
    params(
        ("id" = String, Path, description = "the alert's id, e.g. A42"),
        ("file" = String, Path, description = "the message's number and .xml, e.g. 1.xml"),
    ),
    responses(
        (status = 200, description = "the CAP document", content_type = "application/cap+xml"),
        (status = 400, description = "not a number and .xml", body = super::error::ErrorBody),
        (status = 404, description = NOT_PUBLIC, body = super::error::ErrorBody),
    ))]
async fn nth(
    State(s): State<AppState>,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = AlertId::parse(&id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let n: u32 = file
        .strip_suffix(".xml")
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "expected a message number and .xml, such as 1.xml; got {:?}",
                file.chars().take(40).collect::<String>()
            ))
        })?;
    let alert = public_alert(&s, id).await?;
    let all = cap::messages(&alert);
    let m = all
        .iter()
        .find(|m| m.n == n)
        .ok_or_else(|| ApiError::NotFound(format!("alert {id} has no message {n} (yet)")))?;
    let body = cap::cap_document(&alert, m, &all, &s.console.cap_sender, tz(&s));
    Ok(xml("application/cap+xml; charset=utf-8", body))
}

/// A notice to residents as CAP 1.2 (every notice is public: each unit of its clusters shows
/// it). Its area is a circle that holds every household it was for, never one house.
#[utoipa::path(get, path = "/cap/notices/{file}", tag = "public", security(()),
    params(("file" = String, Path, description = "the notice's id and .xml, e.g. N7.xml")),
    responses(
        (status = 200, description = "the CAP document", content_type = "application/cap+xml"),
        (status = 400, description = "not an id and .xml", body = super::error::ErrorBody),
        (status = 404, description = "no such notice", body = super::error::ErrorBody),
    ))]
async fn notice(State(s): State<AppState>, Path(file): Path<String>) -> Result<Response, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "expected a notice id and .xml, such as N7.xml; got {:?}",
            file.chars().take(40).collect::<String>()
        ))
    };
    let id: i64 = file
        .strip_suffix(".xml")
        .map(|f| f.strip_prefix('N').unwrap_or(f))
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(bad)?;
    let view = s
        .store
        .notice(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no notice N{id}")))?;
    let n = view.notice;
    let circle = cap::notice::covering_circle(&s.store.notice_places(id).await?);
    let body = cap::notice::notice_document(&n, circle.as_deref(), &s.console.cap_sender, tz(&s));
    Ok(xml("application/cap+xml; charset=utf-8", body))
}
