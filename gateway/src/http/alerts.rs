//! The alerts of the account's zones and the actions on them: list, detail, acknowledge,
//! respond, dispatch, resolve, notes, and publish (the CAP feed, [`super::cap`]). An alert of a zone the account may not see is
//! answered 404, exactly like one that does not exist.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{zones_for, Authenticated, Operator};
use super::error::{Body, Params};
use super::openapi::{AlertPath, Conflict, Refusals};
use super::paging::{next_page, window, Asked};
use super::{ApiError, AppState};
use crate::accounts::{AccountKind, AccountName, Principal};
use crate::domain::AlertId;
use crate::lifecycle::{Action, Category, RecipientState};
use crate::store::{AlertFilter, AlertSummary, RecipientKind, StoreError};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_alerts))
        .routes(routes!(alert_detail))
        .routes(routes!(acknowledge))
        .routes(routes!(respond))
        .routes(routes!(dispatch))
        .routes(routes!(resolve))
        .routes(routes!(add_note))
        .routes(routes!(publish))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `open` (default) or `all`.
    state: Option<String>,
    /// One of the account's zones (default: all of them).
    zone: Option<String>,
    /// Raised at or after (unix ms or ISO 8601).
    from: Option<String>,
    /// Raised before.
    to: Option<String>,
    /// At most this many a page, newest first: 1 to 1,000 (default 100).
    limit: Option<u32>,
    /// The `next` of the page before.
    cursor: Option<String>,
}

/// The alerts of the account's zones, newest first: the open ones, or all. An alert open past
/// `--stale-after` is marked `stale`.
#[utoipa::path(get, path = "/api/alerts", tag = "alerts", params(ListQuery),
    responses((status = 200, description = "{alerts: [...], stale_after_ms, next}"), Refusals))]
async fn list_alerts(
    State(s): State<AppState>,
    Authenticated(who): Authenticated,
    Params(q): Params<ListQuery>,
) -> Result<Response, ApiError> {
    let open_only = match q.state.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "state must be \"open\" or \"all\", not {other:?}"
            )))
        }
    };
    let window = window(Asked::new(&q.from, &q.to, &q.cursor, q.limit), 100, 1000)?;
    let filter = AlertFilter {
        open_only,
        zones: zones_for(&who, q.zone.as_deref())?,
        window,
    };
    let mut alerts = s.store.list_alerts(&filter).await?;
    let next = next_page(&mut alerts, &window, |a| (a.raised_at_ms, a.id.0));
    let (now, stale_after_ms) = (s.ingest.now(), s.ingest.stale_after_ms());
    let alerts: Vec<Listed> = alerts
        .into_iter()
        .map(|alert| Listed {
            stale: alert.is_stale(now, stale_after_ms),
            alert,
        })
        .collect();
    Ok(
        Json(json!({ "alerts": alerts, "stale_after_ms": stale_after_ms, "next": next }))
            .into_response(),
    )
}

/// An alert as listed for the station: open past `--stale-after` is `stale` (no unit will
/// sound it again; the station should close it or act).
#[derive(serde::Serialize)]
struct Listed {
    #[serde(flatten)]
    alert: AlertSummary,
    stale: bool,
}

/// One alert with its recipients (units, the station, volunteers, each with its state) and its
/// timeline.
#[utoipa::path(get, path = "/api/alerts/{id}", tag = "alerts", params(AlertPath),
    responses((status = 200, description = "{alert, recipients, events}"), Refusals))]
async fn alert_detail(
    State(s): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_alert_id(&id)?;
    match s.store.alert_detail(id).await? {
        Some(detail) if who.may_see(&detail.alert.zone) => Ok(Json(detail).into_response()),
        _ => Err(not_found(id)),
    }
}

fn parse_alert_id(id: &str) -> Result<AlertId, ApiError> {
    AlertId::parse(id).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn not_found(id: AlertId) -> ApiError {
    ApiError::NotFound(format!("alert {id} not found"))
}

/// The alert, if it exists and `who` may see its zone.
async fn visible_alert(s: &AppState, who: &Principal, id: &str) -> Result<AlertSummary, ApiError> {
    let id = parse_alert_id(id)?;
    match s.store.alert(id).await? {
        Some(a) if who.may_see(&a.zone) => Ok(a),
        _ => Err(not_found(id)),
    }
}

async fn act(
    s: &AppState,
    who: &Principal,
    id: &str,
    action: Action,
    target: Option<(RecipientKind, &str)>,
    detail: &str,
) -> Result<Response, ApiError> {
    let alert = visible_alert(s, who, id).await?;
    let applied = s
        .ingest
        .apply_action(alert.id, &who.actor(), action, target, detail)
        .await
        .map_err(|e| match e {
            // Not this account's to do, whatever the alert's state: 403 with the reason.
            StoreError::NotAllowed(why) => ApiError::Forbidden(why),
            other => ApiError::from(other),
        })?;
    Ok(Json(applied.alert).into_response())
}

/// Free text from people: trimmed, bounded, never empty where it matters.
fn text(field: &str, value: &str, required: bool) -> Result<String, ApiError> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(ApiError::BadRequest(format!("{field} must not be empty")));
    }
    if value.chars().count() > 2000 {
        return Err(ApiError::BadRequest(format!(
            "{field} is longer than 2000 characters"
        )));
    }
    Ok(value.to_owned())
}

/// The station takes the alert.
#[utoipa::path(post, path = "/api/alerts/{id}/acknowledge", tag = "alerts", params(AlertPath),
    responses((status = 200, description = "the alert after the action"), Refusals, Conflict))]
async fn acknowledge(
    State(s): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(&s, &who, &id, Action::Acknowledge, None, "").await
}

#[derive(Debug, Deserialize, ToSchema)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct RespondBody {
    /// `seen`, `coming`, `declined` or `on_scene`.
    answer: String,
}

impl RespondBody {
    /// The recipient state asked for, if a person may ask for it.
    pub(super) fn wanted(&self) -> Result<RecipientState, ApiError> {
        match RecipientState::parse(&self.answer) {
            Ok(
                s @ (RecipientState::Delivered
                | RecipientState::Seen
                | RecipientState::Coming
                | RecipientState::Declined
                | RecipientState::OnScene),
            ) => Ok(s),
            _ => Err(ApiError::BadRequest(format!(
                "answer must be delivered, seen, coming, declined or on_scene, not {:?}",
                self.answer
            ))),
        }
    }
}

/// A volunteer (or the station itself) answers: seen, coming, can't go, on scene.
#[utoipa::path(post, path = "/api/alerts/{id}/respond", tag = "alerts", params(AlertPath),
    request_body = RespondBody,
    responses((status = 200, description = "the alert after the answer"), Refusals, Conflict))]
async fn respond(
    State(s): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    Body(body): Body<RespondBody>,
) -> Result<Response, ApiError> {
    let wanted = body.wanted()?;
    let alert = visible_alert(&s, &who, &id).await?;
    let target = match who.kind {
        AccountKind::Volunteer => (RecipientKind::Volunteer, who.name.clone()),
        AccountKind::Operator => (RecipientKind::Station, alert.zone.to_string()),
    };
    act(
        &s,
        &who,
        &id,
        Action::Recipient(wanted),
        Some((target.0, &target.1)),
        "",
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct DispatchBody {
    /// The volunteer's account name (of the alert's zone).
    volunteer: String,
    /// For the volunteer and the timeline (optional).
    #[serde(default)]
    note: String,
}

impl DispatchBody {
    /// The volunteer's name and the note, checked.
    pub(super) fn checked(&self) -> Result<(AccountName, String), ApiError> {
        let name =
            AccountName::parse(&self.volunteer).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok((name, text("note", &self.note, false)?))
    }
}

/// The station sends a volunteer of the alert's zone.
#[utoipa::path(post, path = "/api/alerts/{id}/dispatch", tag = "alerts", params(AlertPath),
    request_body = DispatchBody,
    responses((status = 200, description = "the alert after the dispatch"), Refusals, Conflict))]
async fn dispatch(
    State(s): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<String>,
    Body(body): Body<DispatchBody>,
) -> Result<Response, ApiError> {
    let alert = visible_alert(&s, &who, &id).await?;
    let (name, note) = body.checked()?;
    let volunteer = s
        .store
        .account_by_name(&name)
        .await?
        .filter(|v| v.principal.kind == AccountKind::Volunteer && v.principal.may_see(&alert.zone))
        .ok_or_else(|| {
            ApiError::NotFound(format!("volunteer {name} not found in zone {}", alert.zone))
        })?;
    let who_name = volunteer.principal.name;
    act(
        &s,
        &who,
        &id,
        Action::Dispatch,
        Some((RecipientKind::Volunteer, &who_name)),
        &note,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct ResolveBody {
    /// `consult`, `help`, `dispute`, `crime`, `complaint` or `false_alarm` (or its Chinese name,
    /// e.g. 求助).
    category: String,
    /// For the timeline (optional).
    #[serde(default)]
    note: String,
}

impl ResolveBody {
    /// The category and the note, checked.
    pub(super) fn checked(&self) -> Result<(Category, String), ApiError> {
        let category =
            Category::parse(&self.category).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok((category, text("note", &self.note, false)?))
    }
}

/// The station closes the alert with its category (`consult`, `help`, `dispute`, `crime`,
/// `complaint`, `false_alarm`).
#[utoipa::path(post, path = "/api/alerts/{id}/resolve", tag = "alerts", params(AlertPath),
    request_body = ResolveBody,
    responses((status = 200, description = "the alert, resolved"), Refusals, Conflict))]
async fn resolve(
    State(s): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<String>,
    Body(body): Body<ResolveBody>,
) -> Result<Response, ApiError> {
    let (category, note) = body.checked()?;
    act(&s, &who, &id, Action::Resolve(category), None, &note).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct NoteBody {
    /// The note: not empty.
    text: String,
}

impl NoteBody {
    /// The note, trimmed and bounded.
    pub(super) fn checked(&self) -> Result<String, ApiError> {
        text("text", &self.text, true)
    }
}

/// A note on the alert's timeline.
#[utoipa::path(post, path = "/api/alerts/{id}/notes", tag = "alerts", params(AlertPath),
    request_body = NoteBody,
    responses((status = 200, description = "the alert with the note"), Refusals, Conflict))]
async fn add_note(
    State(s): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    Body(body): Body<NoteBody>,
) -> Result<Response, ApiError> {
    let note = body.checked()?;
    act(&s, &who, &id, Action::Note, None, &note).await
}

/// The station makes an open alert public: from now on its CAP messages are in the public
/// feed, an `Alert` first, then an `Update` or `Cancel` as its life goes on. Once only: a
/// second time is a 409 (the store refuses it under the alert's lock), as is a closed alert
/// (nothing left to warn of).
#[utoipa::path(post, path = "/api/alerts/{id}/publish", tag = "alerts", params(AlertPath),
    responses((status = 200, description = "the alert, public"), Refusals, Conflict))]
async fn publish(
    State(s): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(&s, &who, &id, Action::Publish, None, "").await
}
