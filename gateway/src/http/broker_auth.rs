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

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use tenwatch_broker::acl;
use utoipa::{IntoResponses, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::Body;
use super::{ApiError, AppState};
use crate::devices::check_login;
use crate::domain::DeviceId;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(authenticate))
        .routes(routes!(authorize))
}

/// What the broker is answered.
#[derive(IntoResponses)]
#[allow(dead_code)] // Described, never built: `verdict` and the refusals build these answers.
enum BrokerAnswers {
    /// `{"result": "allow" | "deny", "is_superuser": false}`.
    #[response(status = 200)]
    Verdict,
    /// The broker's bearer secret is missing or wrong.
    #[response(status = 401)]
    NotTheBroker(super::error::ErrorBody),
    /// No `--broker-auth-secret` configured: the route is off.
    #[response(status = 404)]
    Off(super::error::ErrorBody),
    /// The registry does not answer: the broker should refuse for now.
    #[response(status = 503)]
    Unavailable(super::error::ErrorBody),
}

/// The broker's own proof: the configured secret as a bearer token. `Some` is the refusal.
fn refuse_unless_broker(s: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(secret) = s.broker_auth_secret.as_deref() else {
        return Some(
            ApiError::NotFound("no broker authentication configured".into()).into_response(),
        );
    };
    if super::auth::bearer_is(headers, secret) {
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

/// 503: the answer can't be known without the registry.
fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": "the registry is unavailable" })),
    )
        .into_response()
}

/// A body that names a client twice, as the client id and as the username.
pub(super) trait NamesClient {
    fn client_and_user(&self) -> (&str, &str);
}

impl NamesClient for AuthnBody {
    fn client_and_user(&self) -> (&str, &str) {
        (&self.clientid, &self.username)
    }
}

impl NamesClient for AuthzBody {
    fn client_and_user(&self) -> (&str, &str) {
        (&self.clientid, &self.username)
    }
}

/// A question from the broker about one client: proven by the broker's secret, with a JSON body
/// `T` whose client id is its username (the edge's rule). Anything else is answered before
/// the handler runs: the broker's refusal, the body's error, or `deny`.
struct BrokerAsks<T>(T);

impl<T> FromRequest<AppState> for BrokerAsks<T>
where
    T: DeserializeOwned + NamesClient + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Response> {
        if let Some(refused) = refuse_unless_broker(s, req.headers()) {
            return Err(refused);
        }
        let Body(b) = Body::<T>::from_request(req, s)
            .await
            .map_err(IntoResponse::into_response)?;
        let (client, user) = b.client_and_user();
        if client != user {
            return Err(verdict(false));
        }
        Ok(BrokerAsks(b))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct AuthnBody {
    /// The MQTT client id: the device's id, as `username` is.
    clientid: String,
    username: String,
    /// The device's secret.
    password: String,
}

/// May this device connect? Its id and secret against the registry.
#[utoipa::path(post, path = "/api/broker/authenticate", tag = "broker", security(("bearer" = [])),
    request_body = AuthnBody, responses(BrokerAnswers))]
async fn authenticate(State(s): State<AppState>, BrokerAsks(b): BrokerAsks<AuthnBody>) -> Response {
    match check_login(s.store.as_ref(), &b.username, b.password.as_bytes()).await {
        Ok(_) => verdict(true),
        Err(tenwatch_broker::AuthRefusal::Unavailable) => unavailable(),
        Err(refusal) => {
            tracing::info!(device = %b.username.chars().take(64).collect::<String>(), ?refusal, "broker login refused");
            // Counted per id only when it is one; never a device's state.
            if crate::domain::DeviceId::parse(&b.username).is_ok() {
                let now = s.ingest.now();
                s.login_refusals.record(&b.username, None, refusal, now);
            }
            verdict(false)
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct AuthzBody {
    /// The MQTT client id: the device's id, as `username` is.
    clientid: String,
    username: String,
    topic: String,
    /// `publish` or `subscribe` (EMQX also says `all`, which is refused).
    action: String,
}

impl AuthzBody {
    /// The answer to a publish question, which needs nothing from the registry; `None` for
    /// any other question.
    pub(super) fn publish_allowed(&self) -> Option<bool> {
        (self.action == "publish").then(|| match DeviceId::parse(&self.username) {
            Ok(device) => acl::may_publish(device.as_str(), &self.topic),
            Err(_) => false,
        })
    }
}

/// May this device publish to, or subscribe to, this topic? The edge's own ACL
/// (docs/protocol.md).
#[utoipa::path(post, path = "/api/broker/authorize", tag = "broker", security(("bearer" = [])),
    request_body = AuthzBody, responses(BrokerAnswers))]
async fn authorize(State(s): State<AppState>, BrokerAsks(b): BrokerAsks<AuthzBody>) -> Response {
    if let Some(allow) = b.publish_allowed() {
        return verdict(allow);
    }
    let Ok(device) = DeviceId::parse(&b.username) else {
        return verdict(false);
    };
    let allow = match b.action.as_str() {
        "subscribe" => match s.store.device_credential(&device).await {
            Ok(Some(c)) if c.enabled => {
                acl::may_subscribe(device.as_str(), c.cluster.as_str(), &b.topic)
            }
            Ok(_) => false,
            Err(e) => {
                tracing::error!(error = %e, "registry unavailable for an ACL check");
                return unavailable();
            }
        },
        _ => false,
    };
    verdict(allow)
}
