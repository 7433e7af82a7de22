//! Signing in over HTTP: `POST/GET/DELETE /api/session` and the [`Authenticated`] extractor
//! that every other API handler takes (or [`Operator`] / [`Volunteer`], for one kind of account).
//!
//! A session token is accepted as `Authorization: Bearer <token>` (scripts, the volunteer app)
//! or as the `tenwatch_session` cookie (the station console, and WebSockets, which browsers
//! open without custom headers). The cookie is `HttpOnly` and `SameSite=Strict`, so pages of
//! other sites can neither read it nor make the browser send it.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiError;
use crate::accounts::{AccountKind, Accounts, LoginError, Principal};
use crate::domain::ZoneCode;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tenwatch_session";

/// The token a request carries: the bearer token if there is an `Authorization` header,
/// else the session cookie.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let auth = auth.to_str().ok()?;
        let (scheme, token) = auth.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
}

/// Whether the request's `Authorization: Bearer` token is `secret` (compared in constant
/// time): how machines (an external broker, a metrics scraper) prove themselves.
pub(super) fn bearer_is(headers: &HeaderMap, secret: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(given.as_bytes().ct_eq(secret.as_bytes()))
}

/// A signed-in account. Take it as a handler argument to require a session:
/// a request without a valid one is answered 401 `{"error":"sign in required"}`.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl<S> FromRequestParts<S> for Authenticated
where
    Accounts: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = session_token(&parts.headers).ok_or(ApiError::SignInRequired)?;
        let accounts = Accounts::from_ref(state);
        match accounts.authenticate(token).await? {
            Some(principal) => Ok(Authenticated(principal)),
            None => Err(ApiError::SignInRequired),
        }
    }
}

/// An extractor for a signed-in account of one kind: [`Authenticated`], and then 403 with
/// `$refusal` for the other kind.
macro_rules! account_of_kind {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $refusal:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Principal);

        impl<S> FromRequestParts<S> for $name
        where
            Accounts: FromRef<S>,
            S: Send + Sync,
        {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
                let Authenticated(principal) =
                    Authenticated::from_request_parts(parts, state).await?;
                if principal.kind == $kind {
                    Ok($name(principal))
                } else {
                    Err(ApiError::Forbidden($refusal.into()))
                }
            }
        }
    };
}

account_of_kind!(
    /// A signed-in operator (station monitor or admin); a volunteer gets 403.
    Operator,
    AccountKind::Operator,
    "for station operators only"
);
account_of_kind!(
    /// A signed-in patrol volunteer; an operator gets 403.
    Volunteer,
    AccountKind::Volunteer,
    "for volunteers only"
);

/// The zones a request asks about: the one named if the account may see it (else none), or
/// all of the account's when none is named.
pub(super) fn zones_for(who: &Principal, zone: Option<&str>) -> Result<Vec<ZoneCode>, ApiError> {
    match zone {
        None => Ok(who.zones.clone()),
        Some(z) => {
            let z = ZoneCode::parse(z).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            Ok(if who.may_see(&z) { vec![z] } else { Vec::new() })
        }
    }
}

/// `POST`, `GET` and `DELETE /api/session`. Merge into the API router; the state must provide
/// [`Accounts`] through `FromRef`.
pub fn session_routes<S>() -> Router<S>
where
    Accounts: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    session_api().into()
}

/// [`session_routes`] with their description.
pub fn session_api<S>() -> OpenApiRouter<S>
where
    Accounts: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new().routes(routes!(login, whoami, logout))
}

#[derive(Deserialize, ToSchema)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct LoginBody {
    /// The account's name.
    name: String,
    password: String,
}

/// The address a request came from: the client address the gateway's guard found (behind a
/// trusted proxy, the forwarded one), else the peer's, when the server gives connect info.
fn peer_ip(parts_ext: &axum::http::Extensions) -> Option<IpAddr> {
    if let Some(super::guard::ClientAddr(ip)) = parts_ext.get() {
        return Some(*ip);
    }
    parts_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Sign-in takes JSON only: a body of another type (a form, `text/plain`) is what a page of
/// another site could send without asking, so it is refused with 415.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().eq_ignore_ascii_case("application/json"))
        .unwrap_or(false);
    if is_json {
        Ok(())
    } else {
        Err(ApiError::Body(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected a request with Content-Type: application/json".into(),
        ))
    }
}

fn cookie(value: &str, max_age_zero: bool, secure: bool) -> HeaderValue {
    let mut c = format!("{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/");
    if max_age_zero {
        c.push_str("; Max-Age=0");
    }
    if secure {
        c.push_str("; Secure");
    }
    // Tokens are hex, so the value is always a valid header value.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Signs in: the answer sets the session cookie (`HttpOnly`, `SameSite=Strict`) and gives the
/// same token for an `Authorization: Bearer` header. A wrong name and a wrong password get the
/// same 401; too many tries from one address or for one name a 429 with `Retry-After`.
#[utoipa::path(post, path = "/api/session", tag = "session", security(()),
    request_body = LoginBody,
    responses(
        (status = 200, description = "{token, account, expires_at_ms}"),
        (status = 400, description = "a body that is not the JSON object asked for", body = super::error::ErrorBody),
        (status = 401, description = "wrong name or password", body = super::error::ErrorBody),
        (status = 415, description = "not application/json", body = super::error::ErrorBody),
        (status = 429, description = "too many attempts: Retry-After", body = super::error::ErrorBody),
    ))]
async fn login(
    State(accounts): State<Accounts>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let peer = peer_ip(req.extensions());
    require_json(req.headers())?;
    // Read as bytes and parse here: broken JSON is one clear 400 that shows the shape.
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| ApiError::BadRequest("the request body is too large or unreadable".into()))?;
    let body = parse_login(&body)?;
    let session = match accounts.login(&body.name, &body.password, peer).await {
        Ok(session) => session,
        Err(LoginError::WrongCredentials) => {
            tracing::info!(name = %body.name.chars().take(64).collect::<String>(), peer = ?peer, "login refused");
            return Err(ApiError::WrongCredentials);
        }
        Err(LoginError::Limited { retry_after }) => {
            tracing::warn!(name = %body.name.chars().take(64).collect::<String>(), peer = ?peer, "login rate limited");
            // Whole seconds, rounded up: Retry-After has no fractions.
            let secs = retry_after.as_millis().div_ceil(1000).max(1) as u64;
            return Err(ApiError::Limited(secs));
        }
        Err(LoginError::Internal(e)) => return Err(ApiError::Internal(e.to_string())),
    };
    tracing::info!(name = %session.principal.name, peer = ?peer, "signed in");
    let secure = accounts.config().secure_cookie;
    Ok((
        [(
            header::SET_COOKIE,
            cookie(session.token.as_str(), false, secure),
        )],
        Json(json!({
            "token": session.token.as_str(),
            "account": session.principal,
            "expires_at_ms": session.expires_at_ms,
        })),
    )
        .into_response())
}

pub(super) fn parse_login(body: &Bytes) -> Result<LoginBody, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected a JSON object {{\"name\": \"...\", \"password\": \"...\"}}: {e}"
        ))
    })
}

/// The signed-in account: its name, kind and zones.
#[utoipa::path(get, path = "/api/session", tag = "session",
    responses(
        (status = 200, description = "{account}"),
        (status = 401, description = "no session", body = super::error::ErrorBody),
    ))]
async fn whoami(Authenticated(principal): Authenticated) -> Response {
    Json(json!({ "account": principal })).into_response()
}

/// Signs out: the session ends and its cookie is cleared (also without a session).
#[utoipa::path(delete, path = "/api/session", tag = "session", security(()),
    responses((status = 204, description = "signed out")))]
async fn logout(
    State(accounts): State<Accounts>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = session_token(&headers) {
        accounts.logout(token).await?;
    }
    let secure = accounts.config().secure_cookie;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cookie("", true, secure))],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::test_headers as headers;

    #[test]
    fn token_from_bearer_or_cookie() {
        assert_eq!(
            session_token(&headers(&[("authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            session_token(&headers(&[("authorization", "bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(
            session_token(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(
            session_token(&headers(&[
                ("cookie", "theme=dark"),
                ("cookie", "a=1; tenwatch_session=xyz; b=2")
            ])),
            Some("xyz")
        );
        assert_eq!(
            session_token(&headers(&[("cookie", "tenwatch_sessionx=1")])),
            None
        );
        assert_eq!(session_token(&HeaderMap::new()), None);
    }

    #[test]
    fn login_body_errors_are_clear() {
        let e = parse_login(&Bytes::from_static(b"{nope")).err().unwrap();
        assert!(e.to_string().contains("expected a JSON object"));
        assert!(parse_login(&Bytes::from_static(br#"{"name":"a"}"#)).is_err());
        assert!(parse_login(&Bytes::from_static(br#"{"name":"a","password":"b"}"#)).is_ok());
    }
}
