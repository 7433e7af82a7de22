//! The HTTP API: `/healthz` and `/metrics` (open), and behind a session: the alerts of the
//! account's zones, the actions on them, the volunteer's duty and position, and the station
//! feed WebSocket at `/api/feed`.
//!
//! One [`ApiError`] type turns every failure into a status and a JSON body that says what the
//! client may know; internal errors are logged and shown only as "internal error". An alert
//! of a zone the account may not see is answered 404, exactly like one that does not exist.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, FromRef, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::accounts::{AccountKind, AccountName, Accounts, Principal};
use crate::auth::{session_routes, Authenticated, Operator};
use crate::domain::{AlertId, ZoneCode};
use crate::feed::{Feed, FeedItem};
use crate::ingest::Ingest;
use crate::lifecycle::{Action, Category, RecipientState};
use crate::metrics::Metrics;
use crate::store::{AlertFilter, AlertSummary, RecipientKind, Store, StoreError};

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub feed: Feed,
    pub metrics: Arc<Metrics>,
    pub edge_stats: Arc<tenwatch_broker::EdgeStats>,
    /// True while the gateway's own MQTT link is subscribed to the uplink.
    pub mqtt_ready: watch::Receiver<bool>,
    pub started: Instant,
    /// Applies actions and tells units, the presser and the feed.
    pub ingest: Ingest,
    pub accounts: Accounts,
    /// The station console's settings and built pages.
    pub console: Arc<crate::web::ConsoleConfig>,
    /// The bearer secret an external broker presents to `/api/broker/*`.
    pub broker_auth_secret: Option<Arc<str>>,
}

impl FromRef<AppState> for Accounts {
    fn from_ref(state: &AppState) -> Accounts {
        state.accounts.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// The lifecycle does not allow the action now (409 with the reason).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Forbidden(String),
    /// A body the JSON extractor refused: its own status (400, 413, 415, 422) and text.
    #[error("{1}")]
    Body(StatusCode, String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::Body(r.status(), r.body_text())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            StoreError::Invalid(why) => ApiError::BadRequest(why),
            StoreError::Refused(why) => ApiError::Refused(why),
            other => ApiError::Store(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            ApiError::Conflict(m) | ApiError::Refused(m) => (StatusCode::CONFLICT, m.clone()),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
            ApiError::Body(status, m) => (*status, m.clone()),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// Request bodies are small JSON documents; anything bigger is refused with 413.
const MAX_BODY: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/alerts", get(list_alerts))
        .route("/api/alerts/{id}", get(alert_detail))
        .route("/api/alerts/{id}/acknowledge", post(acknowledge))
        .route("/api/alerts/{id}/respond", post(respond))
        .route("/api/alerts/{id}/dispatch", post(dispatch))
        .route("/api/alerts/{id}/resolve", post(resolve))
        .route("/api/alerts/{id}/notes", post(add_note))
        .route("/api/volunteers", get(list_volunteers))
        .route("/api/volunteer/duty", post(set_duty))
        .route("/api/volunteer/position", post(set_position))
        .route("/api/feed", get(feed))
        .merge(session_routes())
        .merge(crate::console::routes())
        .merge(crate::supervision::routes())
        .merge(crate::volunteer::routes())
        .merge(crate::broker_auth::routes())
        // Unknown `/api/…` routes stay JSON 404s; other paths are the console's files.
        .fallback(crate::web::fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn healthz(State(s): State<AppState>) -> Response {
    let db = s.store.ping().await;
    let mqtt = *s.mqtt_ready.borrow();
    let ok = db.is_ok() && mqtt;
    let counts = s.store.counts().await.ok();
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "database": if db.is_ok() { "ok" } else { "down" },
        "mqtt": if mqtt { "ok" } else { "down" },
        "uptime_s": s.started.elapsed().as_secs(),
        "registry": counts,
        "edge": s.edge_stats.snapshot(),
        "gateway": s.metrics.snapshot(),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    let mut out = String::new();
    s.metrics.render("tenwatch_gateway", &mut out);
    if let Ok(edge) = serde_json::to_value(s.edge_stats.snapshot()) {
        if let Some(map) = edge.as_object() {
            for (k, v) in map {
                out.push_str(&format!("tenwatch_edge_{k} {v}\n"));
            }
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
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
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let open_only = match q.state.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "state must be \"open\" or \"all\", not {other:?}"
            )))
        }
    };
    let zone = q
        .zone
        .as_deref()
        .map(ZoneCode::parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let zones = match zone {
        Some(z) if who.may_see(&z) => vec![z],
        Some(_) => Vec::new(),
        None => who.zones.clone(),
    };
    let filter = AlertFilter {
        open_only,
        zones,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let alerts = s.store.list_alerts(&filter).await?;
    Ok(Json(json!({ "alerts": alerts })).into_response())
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
        .await?;
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
#[serde(deny_unknown_fields)]
struct RespondBody {
    /// `seen`, `coming`, `declined` or `on_scene`.
    answer: String,
}

/// A volunteer (or the station itself) answers: seen, coming, can't go, on scene.
async fn respond(
    State(s): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    body: Result<Json<RespondBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let wanted = match RecipientState::parse(&body.answer) {
        Ok(
            s @ (RecipientState::Delivered
            | RecipientState::Seen
            | RecipientState::Coming
            | RecipientState::Declined
            | RecipientState::OnScene),
        ) => s,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "answer must be delivered, seen, coming, declined or on_scene, not {:?}",
                body.answer
            )))
        }
    };
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
#[serde(deny_unknown_fields)]
struct DispatchBody {
    volunteer: String,
    #[serde(default)]
    note: String,
}

/// The station sends a volunteer of the alert's zone.
async fn dispatch(
    State(s): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<String>,
    body: Result<Json<DispatchBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let alert = visible_alert(&s, &who, &id).await?;
    let name =
        AccountName::parse(&body.volunteer).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let volunteer = s
        .store
        .account_by_name(&name)
        .await?
        .filter(|v| v.principal.kind == AccountKind::Volunteer && v.principal.may_see(&alert.zone))
        .ok_or_else(|| {
            ApiError::NotFound(format!("volunteer {name} not found in zone {}", alert.zone))
        })?;
    let note = text("note", &body.note, false)?;
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
#[serde(deny_unknown_fields)]
struct ResolveBody {
    category: String,
    #[serde(default)]
    note: String,
}

async fn resolve(
    State(s): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<String>,
    body: Result<Json<ResolveBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let category =
        Category::parse(&body.category).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let note = text("note", &body.note, false)?;
    act(&s, &who, &id, Action::Resolve(category), None, &note).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

async fn add_note(
    State(s): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    body: Result<Json<NoteBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let note = text("text", &body.text, true)?;
    act(&s, &who, &id, Action::Note, None, &note).await
}

/// On-duty volunteers of the operator's zones, for dispatch and the map.
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

/// A position a phone sent: a finite latitude and longitude on the globe.
pub(crate) fn check_position(lat: f64, lon: f64) -> Result<(), ApiError> {
    if lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0 {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "lat must be within ±90 and lon within ±180".into(),
        ))
    }
}

pub(crate) fn volunteer_only(who: &Principal) -> Result<(), ApiError> {
    if who.kind == AccountKind::Volunteer {
        Ok(())
    } else {
        Err(ApiError::Forbidden("for volunteers only".into()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DutyBody {
    on_duty: bool,
}

async fn set_duty(
    State(s): State<AppState>,
    Authenticated(who): Authenticated,
    body: Result<Json<DutyBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    volunteer_only(&who)?;
    let Json(body) = body?;
    s.store
        .set_on_duty(who.account_id, body.on_duty, s.ingest.now())
        .await?;
    Ok(Json(json!({ "on_duty": body.on_duty })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PositionBody {
    lat: f64,
    lon: f64,
}

async fn set_position(
    State(s): State<AppState>,
    Authenticated(who): Authenticated,
    body: Result<Json<PositionBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    volunteer_only(&who)?;
    let Json(p) = body?;
    check_position(p.lat, p.lon)?;
    if !s
        .store
        .update_position(who.account_id, p.lat, p.lon, s.ingest.now())
        .await?
    {
        return Err(ApiError::Refused(
            "go on duty before sharing a position".into(),
        ));
    }
    Ok(Json(json!({ "ok": true })).into_response())
}

/// How often the feed pings an idle station so that dead connections are noticed.
const FEED_PING: Duration = Duration::from_secs(20);

async fn feed(
    State(s): State<AppState>,
    Authenticated(who): Authenticated,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| stream_feed(socket, s, who))
}

/// Whether a feed item is for this account: alerts of its zones; device events for operators.
fn for_whom(item: &FeedItem, who: &Principal) -> bool {
    match &item.zone {
        Some(_) if item.operators_only && !who.is_operator() => false,
        Some(zone) => who.zones.iter().any(|z| z.as_str() == zone.as_ref()),
        None => who.is_operator(),
    }
}

async fn stream_feed(mut socket: WebSocket, s: AppState, who: Principal) {
    // Subscribe before reading the snapshot so nothing falls between the two.
    let mut rx = s.feed.subscribe();
    let snapshot = s
        .store
        .list_alerts(&AlertFilter {
            open_only: true,
            zones: who.zones.clone(),
            limit: 1000,
        })
        .await;
    let hello = match snapshot {
        Ok(alerts) => json!({ "type": "snapshot", "alerts": alerts }),
        Err(e) => {
            tracing::error!(error = %e, "feed snapshot failed");
            json!({ "type": "resync" })
        }
    };
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut ping = tokio::time::interval(FEED_PING);
    ping.tick().await;
    loop {
        tokio::select! {
            event = rx.recv() => {
                let text: String = match event {
                    Ok(item) if for_whom(&item, &who) => item.json.to_string(),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "station feed client fell behind: resync");
                        json!({ "type": "resync", "missed": missed }).to_string()
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
        }
    }
}
