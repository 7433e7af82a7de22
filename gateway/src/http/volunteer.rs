//! The volunteer app's own API: who am I, push subscriptions (with the gateway's VAPID key)
//! and patrol check-ins (巡逻签到), duty and position (the rings use them). Answering an alert
//! is `POST /api/alerts/{id}/respond` for everyone.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Authenticated, Volunteer};
use super::error::{Body, Params};
use super::openapi::{Conflict, Refusals};
use super::paging::{next_page, window, Asked};
use super::{ApiError, AppState};
use crate::store::push::NewPushSubscription;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_duty))
        .routes(routes!(set_position))
        .routes(routes!(push_key))
        .routes(routes!(subscribe, unsubscribe))
        .routes(routes!(me))
        .routes(routes!(checkin))
        .routes(routes!(checkins))
}

/// The gateway's VAPID public key, for `PushManager.subscribe({applicationServerKey})`.
#[utoipa::path(get, path = "/api/push/key", tag = "volunteer",
    responses((status = 200, description = "{public_key} (base64url)"), Refusals))]
async fn push_key(State(s): State<AppState>, Authenticated(_): Authenticated) -> Response {
    Json(json!({ "public_key": s.pusher.public_key() })).into_response()
}

/// `PushSubscription.toJSON()`.
#[derive(Debug, Deserialize, ToSchema)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct SubscriptionBody {
    /// The push service's URL for this browser (https; at most 2,048 characters).
    endpoint: String,
    /// Ignored.
    #[serde(default, rename = "expirationTime")]
    #[schema(value_type = Option<i64>)]
    _expiration_time: Option<serde_json::Value>,
    keys: SubscriptionKeys,
}

#[derive(Debug, Deserialize, ToSchema)]
#[cfg_attr(test, derive(serde::Serialize))]
struct SubscriptionKeys {
    /// The browser's P-256 public key, uncompressed, base64url.
    p256dh: String,
    /// The 16-byte authentication secret, base64url.
    auth: String,
}

/// Longest endpoint URL accepted; push services' are a few hundred characters.
const MAX_ENDPOINT: usize = 2048;

/// Checks what a browser sent as its subscription, so a bad one is refused now rather than
/// failing at the first alert.
pub(super) fn check_subscription(
    body: &SubscriptionBody,
    allow_loopback: bool,
) -> Result<(), ApiError> {
    let bad = |why: &str| Err(ApiError::BadRequest(why.to_owned()));
    if body.endpoint.len() > MAX_ENDPOINT {
        return bad("endpoint is too long");
    }
    let Ok(url) = reqwest::Url::parse(&body.endpoint) else {
        return bad("endpoint must be a URL");
    };
    if let Err(why) = crate::push_address::check_endpoint(&url, allow_loopback) {
        return bad(&why);
    }
    match URL_SAFE_NO_PAD.decode(body.keys.p256dh.trim_end_matches('=')) {
        Ok(k) if k.len() == 65 && k[0] == 4 => {}
        _ => return bad("keys.p256dh must be an uncompressed P-256 public key, base64url"),
    }
    match URL_SAFE_NO_PAD.decode(body.keys.auth.trim_end_matches('=')) {
        Ok(k) if k.len() == 16 => {}
        _ => return bad("keys.auth must be a 16-byte secret, base64url"),
    }
    Ok(())
}

/// Registers this phone for Web Push (volunteers only): alerts nearby reach it while on duty.
#[utoipa::path(post, path = "/api/push/subscriptions", tag = "volunteer",
    request_body = SubscriptionBody,
    responses(
        (status = 201, description = "{id}"),
        Refusals,
        (status = 429, description = "too many new subscriptions: Retry-After", body = super::error::ErrorBody),
    ))]
async fn subscribe(
    State(s): State<AppState>,
    Volunteer(who): Volunteer,
    headers: HeaderMap,
    Body(body): Body<SubscriptionBody>,
) -> Result<Response, ApiError> {
    check_subscription(&body, s.pusher.allows_loopback())?;
    s.pusher
        .may_register(who.account_id)
        .map_err(|wait| ApiError::TooMany("too many new push subscriptions", wait.as_secs()))?;
    let user_agent: String = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    let id = s
        .store
        .add_push_subscription(
            who.account_id,
            &NewPushSubscription {
                endpoint: &body.endpoint,
                p256dh: body.keys.p256dh.trim_end_matches('='),
                auth: body.keys.auth.trim_end_matches('='),
                user_agent: &user_agent,
            },
            s.ingest.now(),
        )
        .await?;
    tracing::info!(volunteer = %who.name, id, "push subscription registered");
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct UnsubscribeBody {
    /// The subscription's endpoint, as registered.
    endpoint: String,
}

/// Forgets one of the volunteer's push subscriptions.
#[utoipa::path(delete, path = "/api/push/subscriptions", tag = "volunteer",
    request_body = UnsubscribeBody,
    responses((status = 200, description = "{removed}: whether there was one"), Refusals))]
async fn unsubscribe(
    State(s): State<AppState>,
    Volunteer(who): Volunteer,
    Body(body): Body<UnsubscribeBody>,
) -> Result<Response, ApiError> {
    let removed = s
        .store
        .remove_push_subscription(who.account_id, &body.endpoint)
        .await?;
    Ok(Json(json!({ "removed": removed })).into_response())
}

/// The volunteer's own profile: zone, duty, last position, push subscriptions.
#[utoipa::path(get, path = "/api/volunteer/me", tag = "volunteer",
    responses((status = 200, description = "{name, display_name, zone, on_duty, position, subscriptions}"), Refusals))]
async fn me(State(s): State<AppState>, Volunteer(who): Volunteer) -> Result<Response, ApiError> {
    let p = s.store.volunteer_profile(who.account_id).await?;
    let position = match (p.lat, p.lon) {
        (Some(lat), Some(lon)) => json!({ "lat": lat, "lon": lon, "at_ms": p.position_at_ms }),
        _ => serde_json::Value::Null,
    };
    Ok(Json(json!({
        "name": who.name,
        "display_name": who.display_name,
        "zone": who.zones.first(),
        "on_duty": p.on_duty,
        "position": position,
        "subscriptions": p.subscriptions,
    }))
    .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct CheckinBody {
    /// Where the volunteer is (WGS 84).
    lat: f64,
    lon: f64,
    /// At most 500 characters (optional).
    #[serde(default)]
    note: String,
}

impl CheckinBody {
    /// The position and the trimmed note, checked.
    pub(super) fn checked(&self) -> Result<(f64, f64, &str), ApiError> {
        check_position(self.lat, self.lon)?;
        let note = self.note.trim();
        if note.chars().count() > MAX_NOTE {
            return Err(ApiError::BadRequest(format!(
                "a check-in note is at most {MAX_NOTE} characters"
            )));
        }
        Ok((self.lat, self.lon, note))
    }
}

/// Longest check-in note, in characters.
const MAX_NOTE: usize = 500;

/// A patrol check-in (巡逻签到) where the volunteer is.
#[utoipa::path(post, path = "/api/volunteer/checkin", tag = "volunteer",
    request_body = CheckinBody,
    responses((status = 201, description = "the check-in as stored"), Refusals))]
async fn checkin(
    State(s): State<AppState>,
    Volunteer(who): Volunteer,
    Body(b): Body<CheckinBody>,
) -> Result<Response, ApiError> {
    let (lat, lon, note) = b.checked()?;
    let c = s
        .store
        .add_checkin(who.account_id, lat, lon, note, s.ingest.now())
        .await?;
    Ok((StatusCode::CREATED, Json(c)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CheckinsQuery {
    /// Checked in at or after (unix ms or ISO 8601).
    from: Option<String>,
    /// Checked in before.
    to: Option<String>,
    /// At most this many a page, newest first: 1 to 200 (default 20).
    limit: Option<u32>,
    /// The `next` of the page before.
    cursor: Option<String>,
}

/// The volunteer's own check-ins, newest first.
#[utoipa::path(get, path = "/api/volunteer/checkins", tag = "volunteer", params(CheckinsQuery),
    responses((status = 200, description = "{checkins: [...], next}"), Refusals))]
async fn checkins(
    State(s): State<AppState>,
    Volunteer(who): Volunteer,
    Params(q): Params<CheckinsQuery>,
) -> Result<Response, ApiError> {
    let window = window(Asked::new(&q.from, &q.to, &q.cursor, q.limit), 20, 200)?;
    let mut list = s.store.checkins(who.account_id, &window).await?;
    let next = next_page(&mut list, &window, |c| (c.at_ms, c.id));
    Ok(Json(json!({ "checkins": list, "next": next })).into_response())
}

/// A position a phone sent: a finite latitude and longitude on the globe.
pub(super) fn check_position(lat: f64, lon: f64) -> Result<(), ApiError> {
    if lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0 {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "lat must be within ±90 and lon within ±180".into(),
        ))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct DutyBody {
    on_duty: bool,
}

/// On or off duty: only volunteers on duty are sent alerts.
#[utoipa::path(post, path = "/api/volunteer/duty", tag = "volunteer", request_body = DutyBody,
    responses((status = 200, description = "{on_duty}"), Refusals))]
async fn set_duty(
    State(s): State<AppState>,
    Volunteer(who): Volunteer,
    Body(body): Body<DutyBody>,
) -> Result<Response, ApiError> {
    s.store
        .set_on_duty(who.account_id, body.on_duty, s.ingest.now())
        .await?;
    Ok(Json(json!({ "on_duty": body.on_duty })).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct PositionBody {
    /// Where the volunteer is (WGS 84).
    lat: f64,
    lon: f64,
}

impl PositionBody {
    pub(super) fn checked(&self) -> Result<(f64, f64), ApiError> {
        check_position(self.lat, self.lon)?;
        Ok((self.lat, self.lon))
    }
}

/// Where the on-duty volunteer is now: the rings send alerts to the nearest.
#[utoipa::path(post, path = "/api/volunteer/position", tag = "volunteer",
    request_body = PositionBody,
    responses((status = 200, description = "{ok: true}"), Refusals, Conflict))]
async fn set_position(
    State(s): State<AppState>,
    Volunteer(who): Volunteer,
    Body(p): Body<PositionBody>,
) -> Result<Response, ApiError> {
    let (lat, lon) = p.checked()?;
    if !s
        .store
        .update_position(who.account_id, lat, lon, s.ingest.now())
        .await?
    {
        return Err(ApiError::Refused(
            "go on duty before sharing a position".into(),
        ));
    }
    Ok(Json(json!({ "ok": true })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(endpoint: &str, p256dh: &str, auth: &str) -> SubscriptionBody {
        SubscriptionBody {
            endpoint: endpoint.into(),
            _expiration_time: None,
            keys: SubscriptionKeys {
                p256dh: p256dh.into(),
                auth: auth.into(),
            },
        }
    }

    #[test]
    fn subscriptions_are_checked() {
        let key = URL_SAFE_NO_PAD.encode([4u8; 65]);
        let auth = URL_SAFE_NO_PAD.encode([7u8; 16]);
        let ok = body("https://push.example.org/send/abc", &key, &auth);
        assert!(check_subscription(&ok, false).is_ok());
        let local = body("http://127.0.0.1:9/push/1", &key, &auth);
        assert!(
            check_subscription(&local, false).is_err(),
            "loopback only when allowed"
        );
        assert!(check_subscription(&local, true).is_ok());
        let plain = body("http://push.example.org/x", &key, &auth);
        assert!(
            check_subscription(&plain, true).is_err(),
            "plain http only on loopback"
        );
        assert!(check_subscription(&body("not a url", &key, &auth), false).is_err());
        let short_key = URL_SAFE_NO_PAD.encode([4u8; 33]);
        assert!(
            check_subscription(&body("https://p.example/x", &short_key, &auth), false).is_err()
        );
        assert!(check_subscription(&body("https://p.example/x", &key, "AAAA"), false).is_err());
        let long = format!("https://p.example/{}", "x".repeat(MAX_ENDPOINT));
        assert!(check_subscription(&body(&long, &key, &auth), false).is_err());
    }
}
