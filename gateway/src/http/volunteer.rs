//! The volunteer app's own API: who am I, push subscriptions (with the gateway's VAPID key)
//! and patrol check-ins (巡逻签到), duty and position (the rings use them). Answering an alert
//! is `POST /api/alerts/{id}/respond` for everyone.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Authenticated, Volunteer};
use super::error::{Body, Params};
use super::{ApiError, AppState};
use crate::store::push::NewPushSubscription;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/volunteer/duty", post(set_duty))
        .route("/api/volunteer/position", post(set_position))
        .route("/api/push/key", get(push_key))
        .route(
            "/api/push/subscriptions",
            post(subscribe).delete(unsubscribe),
        )
        .route("/api/volunteer/me", get(me))
        .route("/api/volunteer/checkin", post(checkin))
        .route("/api/volunteer/checkins", get(checkins))
}

async fn push_key(State(s): State<AppState>, Authenticated(_): Authenticated) -> Response {
    Json(json!({ "public_key": s.pusher.public_key() })).into_response()
}

/// `PushSubscription.toJSON()`.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct SubscriptionBody {
    endpoint: String,
    #[serde(default, rename = "expirationTime")]
    _expiration_time: Option<serde_json::Value>,
    keys: SubscriptionKeys,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct SubscriptionKeys {
    p256dh: String,
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

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct UnsubscribeBody {
    endpoint: String,
}

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

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct CheckinBody {
    lat: f64,
    lon: f64,
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

#[derive(Debug, Deserialize)]
struct CheckinsQuery {
    limit: Option<u32>,
}

async fn checkins(
    State(s): State<AppState>,
    Volunteer(who): Volunteer,
    Params(q): Params<CheckinsQuery>,
) -> Result<Response, ApiError> {
    let list = s
        .store
        .checkins(who.account_id, q.limit.unwrap_or(20).clamp(1, 200))
        .await?;
    Ok(Json(json!({ "checkins": list })).into_response())
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

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct DutyBody {
    on_duty: bool,
}

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

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct PositionBody {
    lat: f64,
    lon: f64,
}

impl PositionBody {
    pub(super) fn checked(&self) -> Result<(f64, f64), ApiError> {
        check_position(self.lat, self.lon)?;
        Ok((self.lat, self.lon))
    }
}

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
