//! Device logins and the topic ACL for an external MQTT broker, from the registry.
//!
//! - HTTP, in the shape of EMQX's HTTP authentication and authorization (and usable from
//!   VerneMQ's webhooks or Mosquitto's auth plugins): `POST /api/broker/authenticate`
//!   `{"clientid","username","password"}` and `POST /api/broker/authorize`
//!   `{"clientid","username","topic","action"}` answer `{"result": "allow" | "deny"}`.
//!   The broker proves itself with `Authorization: Bearer <--broker-auth-secret>`; without a
//!   secret configured the routes do not exist (404).
//! - Files, for a small deployment on Mosquitto: a password file (PBKDF2-SHA512, Mosquitto's
//!   `$7$` format) and an ACL file, made by `tenwatch admin export-mosquitto` from the
//!   registry and the credentials file written when the devices were created (the registry
//!   keeps only a hash of each secret).
//!
//! The rules are the edge's (DESIGN.md): client id = username = device id; a device publishes
//! only under `tw/d/{itself}/up/` and subscribes only to `tw/d/{itself}/down/#` and
//! `tw/c/{its cluster}/#`.

use std::fmt::Write as _;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tenwatch_broker::acl;

use crate::devices::check_login;
use crate::domain::DeviceId;
use crate::http::{ApiError, AppState};
use crate::seed::Credential;
use crate::store::Store;

/// Merged into [`crate::http::router`].
pub fn routes() -> Router<AppState> {
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

/// Mosquitto's password and ACL files, ready to write.
#[derive(Debug)]
pub struct MosquittoFiles {
    pub passwords: String,
    pub acl: String,
    pub devices: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("device {0} of the credentials file is not in the registry")]
    Unknown(String),
    #[error("the password of device {0} in the credentials file does not match the registry")]
    WrongPassword(String),
    #[error("device {0} is disabled in the registry")]
    Disabled(String),
    #[error("the gateway's broker user name must be a plain name, not {0:?}")]
    GatewayUser(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Mosquitto 2's `$7$` entry: PBKDF2-SHA512 over the password with a random 12-byte salt.
/// 101 iterations is Mosquitto's own default: device secrets are 128-bit random tokens, so
/// more would only slow a reconnect storm.
pub fn mosquitto_hash(password: &str) -> String {
    const ITERATIONS: u32 = 101;
    let mut salt = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut salt);
    let mut hash = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), &salt, ITERATIONS, &mut hash);
    format!(
        "$7${ITERATIONS}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    )
}

/// The files for Mosquitto: every device of `credentials` (checked against the registry)
/// with its ACL, and the gateway's own user, which reads the uplink and writes the downlink.
pub async fn mosquitto_files(
    store: &dyn Store,
    credentials: &[Credential],
    gateway_user: &str,
    gateway_password: &str,
) -> Result<MosquittoFiles, ExportError> {
    if gateway_user.is_empty() || gateway_user.contains([':', ' ', '\n', '#', '+', '/']) {
        return Err(ExportError::GatewayUser(gateway_user.to_owned()));
    }
    let mut passwords = String::new();
    let mut acl = String::from(
        "# tenwatch: made by `tenwatch admin export-mosquitto`; do not edit by hand.\n\
         # Devices publish only their own uplink and read their own downlink and cluster.\n\n",
    );
    let _ = writeln!(
        passwords,
        "{gateway_user}:{}",
        mosquitto_hash(gateway_password)
    );
    let _ = write!(
        acl,
        "user {gateway_user}\ntopic read tw/d/+/up/#\ntopic write tw/d/+/down/#\n\
         topic write tw/c/#\ntopic readwrite tw/s/#\n\n"
    );
    for c in credentials {
        let id = DeviceId::parse(&c.device).map_err(|_| ExportError::Unknown(c.device.clone()))?;
        let cluster = match check_login(store, id.as_str(), c.password.as_bytes()).await {
            Ok(cluster) => cluster,
            Err(tenwatch_broker::AuthRefusal::NotAuthorized) => {
                return Err(ExportError::Disabled(c.device.clone()))
            }
            Err(_) => {
                return Err(match store.device_credential(&id).await? {
                    None => ExportError::Unknown(c.device.clone()),
                    Some(_) => ExportError::WrongPassword(c.device.clone()),
                })
            }
        };
        let d = id.as_str();
        let _ = writeln!(passwords, "{d}:{}", mosquitto_hash(&c.password));
        let _ = write!(
            acl,
            "user {d}\ntopic write tw/d/{d}/up/#\ntopic read tw/d/{d}/down/#\n\
             topic read tw/c/{}/#\n\n",
            cluster.as_str()
        );
    }
    Ok(MosquittoFiles {
        passwords,
        acl,
        devices: credentials.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_mosquittos_pbkdf2_format() {
        let entry = mosquitto_hash("secret");
        let parts: Vec<&str> = entry.split('$').collect();
        assert_eq!(parts[..3], ["", "7", "101"]);
        let salt = STANDARD.decode(parts[3]).unwrap();
        assert_eq!(salt.len(), 12);
        let mut want = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(b"secret", &salt, 101, &mut want);
        assert_eq!(STANDARD.decode(parts[4]).unwrap(), want);
        assert_ne!(mosquitto_hash("secret"), entry, "a fresh salt each time");
    }
}
