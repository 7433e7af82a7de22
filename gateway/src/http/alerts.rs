//! The alerts of the account's zones and the actions on them: list, detail, acknowledge,
//! respond, dispatch, resolve, notes, and publish (the CAP feed, [`super::cap`]). An alert of a zone the account may not see is
//! answered 404, exactly like one that does not exist.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::auth::{zones_for, Authenticated, Operator};
use super::error::{Body, Params};
use super::{ApiError, AppState};
use crate::accounts::{AccountKind, AccountName, Principal};
use crate::domain::AlertId;
use crate::lifecycle::{Action, Category, RecipientState};
use crate::store::{AlertFilter, AlertSummary, RecipientKind, StoreError};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/alerts", get(list_alerts))
        .route("/api/alerts/{id}", get(alert_detail))
        .route("/api/alerts/{id}/acknowledge", post(acknowledge))
        .route("/api/alerts/{id}/respond", post(respond))
        .route("/api/alerts/{id}/dispatch", post(dispatch))
        .route("/api/alerts/{id}/resolve", post(resolve))
        .route("/api/alerts/{id}/notes", post(add_note))
        .route("/api/alerts/{id}/publish", post(publish))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// `open` (default) or `all`.
    state: Option<String>,
    zone: Option<String>,
    limit: Option<u32>,
}

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
    let filter = AlertFilter {
        open_only,
        zones: zones_for(&who, q.zone.as_deref())?,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let alerts = s.store.list_alerts(&filter).await?;
    let (now, stale_after_ms) = (s.ingest.now(), s.ingest.stale_after_ms());
    let alerts: Vec<Listed> = alerts
        .into_iter()
        .map(|alert| Listed {
            stale: alert.is_stale(now, stale_after_ms),
            alert,
        })
        .collect();
    Ok(Json(json!({ "alerts": alerts, "stale_after_ms": stale_after_ms })).into_response())
}

/// An alert as listed for the station: open past `--stale-after` is `stale` (no unit will
/// sound it again; the station should close it or act).
#[derive(serde::Serialize)]
struct Listed {
    #[serde(flatten)]
    alert: AlertSummary,
    stale: bool,
}

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
async fn acknowledge(
    State(s): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(&s, &who, &id, Action::Acknowledge, None, "").await
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct DispatchBody {
    volunteer: String,
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

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct ResolveBody {
    category: String,
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

async fn resolve(
    State(s): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<String>,
    Body(body): Body<ResolveBody>,
) -> Result<Response, ApiError> {
    let (category, note) = body.checked()?;
    act(&s, &who, &id, Action::Resolve(category), None, &note).await
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct NoteBody {
    text: String,
}

impl NoteBody {
    /// The note, trimmed and bounded.
    pub(super) fn checked(&self) -> Result<String, ApiError> {
        text("text", &self.text, true)
    }
}

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
async fn publish(
    State(s): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(&s, &who, &id, Action::Publish, None, "").await
}
