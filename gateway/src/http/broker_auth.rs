//! Device logins and the topic ACL for an external MQTT broker, over HTTP, in the shape of
//! EMQX's HTTP authentication and authorization (and usable from VerneMQ's webhooks or
//! Mosquitto's auth plugins): `POST /api/broker/authenticate`
//! `{"clientid","username","password"}` and `POST /api/broker/authorize`
//! `{"clientid","username","topic","action"}` answer `{"result": "allow" | "deny"}`.
//! The broker proves itself with `Authorization: Bearer <--broker-auth-secret>`; without a
//! secret configured the routes do not exist (404).
//!
//! The rules are the edge's (docs/protocol.md): client id = username = device id; a device
//! publishes only under `tw/d/{itself}/up/` and subscribes only to `tw/d/{itself}/down/#` and
//! `tw/c/{its cluster}/#`.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tenwatch_broker::acl;

use super::{ApiError, AppState};
use crate::devices::check_login;
use crate::domain::DeviceId;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/broker/authenticate", post(authenticate))
        .route("/api/broker/authorize", post(authorize))
}

/// The broker's own proof: the configured secret as a bearer token. `Some` is the refusal.
fn refuse_unless_broker(s: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(secret) = s.broker_auth_secret.as_deref() else {
        return Some(
            ApiError::NotFound("no broker authentication configured".into()).into_response(),
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(secret.as_bytes())) {
        None
    } else {
        Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "the broker's bearer secret is missing or wrong" })),
            )
                .into_response(),
        )
    }
}

fn verdict(allow: bool) -> Response {
    Json(json!({ "result": if allow { "allow" } else { "deny" }, "is_superuser": false }))
        .into_response()
}

#[derive(Debug, Deserialize)]
struct AuthnBody {
    clientid: String,
    username: String,
    password: String,
}

async fn authenticate(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<AuthnBody>, JsonRejection>,
) -> Response {
    if let Some(refused) = refuse_unless_broker(&s, &headers) {
        return refused;
    }
    let Json(b) = match body {
        Ok(b) => b,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if b.clientid != b.username {
        return verdict(false);
    }
    match check_login(s.store.as_ref(), &b.username, b.password.as_bytes()).await {
        Ok(_) => verdict(true),
        Err(tenwatch_broker::AuthRefusal::Unavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "the registry is unavailable" })),
        )
            .into_response(),
        Err(refusal) => {
            tracing::info!(device = %b.username.chars().take(64).collect::<String>(), ?refusal, "broker login refused");
            verdict(false)
        }
    }
}

#[derive(Debug, Deserialize)]
struct AuthzBody {
    clientid: String,
    username: String,
    topic: String,
    /// `publish` or `subscribe` (EMQX also says `all`, which is refused).
    action: String,
}

async fn authorize(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<AuthzBody>, JsonRejection>,
) -> Response {
    if let Some(refused) = refuse_unless_broker(&s, &headers) {
        return refused;
    }
    let Json(b) = match body {
        Ok(b) => b,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if b.clientid != b.username {
        return verdict(false);
    }
    let Ok(device) = DeviceId::parse(&b.username) else {
        return verdict(false);
    };
    let allow = match b.action.as_str() {
        "publish" => acl::may_publish(device.as_str(), &b.topic),
        "subscribe" => match s.store.device_credential(&device).await {
            Ok(Some(c)) if c.enabled => {
                acl::may_subscribe(device.as_str(), c.cluster.as_str(), &b.topic)
            }
            Ok(_) => false,
            Err(e) => {
                tracing::error!(error = %e, "registry unavailable for an ACL check");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({ "error": "the registry is unavailable" })),
                )
                    .into_response();
            }
        },
        _ => false,
    };
    verdict(allow)
}
