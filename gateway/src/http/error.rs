//! The one error type of the HTTP API: every failure becomes a status and a JSON body
//! `{"error": ...}` that says what the client may know. Handlers take their JSON body as
//! [`Body`] and their query string as [`Params`], whose refusals are [`ApiError`]s. Internal errors are logged and shown
//! only as "internal error". An alert or device of a zone the account may not see is answered
//! [`ApiError::NotFound`], exactly like one that does not exist.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;

/// Every failure's body, as the API description says it: what the caller may know of what
/// went wrong.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct ErrorBody {
    /// In words, e.g. `limit must be from 1 to 200, not 0`; `internal error` when the fault is
    /// the server's (it is logged there).
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No session, or an expired or unknown one (401 with `WWW-Authenticate: Bearer`).
    #[error("sign in required")]
    SignInRequired,
    /// A wrong name and a wrong password get this same answer (401).
    #[error("wrong name or password")]
    WrongCredentials,
    /// A route for a machine that presents a bearer token (401 with `WWW-Authenticate:
    /// Bearer`); the text says which token.
    #[error("{0}")]
    TokenRequired(String),
    /// Too many login attempts (429 with `Retry-After` in whole seconds).
    #[error("too many login attempts: try again in {0} s")]
    Limited(u64),
    /// Too many of something else: what, and the seconds until the next (429 with
    /// `Retry-After`).
    #[error("{0}: try again in {1} s")]
    TooMany(&'static str, u64),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// The lifecycle does not allow the action now (409 with the reason).
    #[error("{0}")]
    Refused(String),
    /// Signed in, but this account may not do this (e.g. a volunteer on a station route).
    #[error("{0}")]
    Forbidden(String),
    /// A body the JSON extractor refused: its own status (400, 413, 415, 422) and text.
    #[error("{1}")]
    Body(StatusCode, String),
    /// Something this route needs is missing on the server (503); the text says what and how
    /// to put it right (the bulletin's CJK font, say).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(StoreError),
    /// Anything else that went wrong inside; logged, shown as "internal error".
    #[error("internal error")]
    Internal(String),
}

/// A handler's JSON body: a body the JSON extractor refuses is answered as [`ApiError::Body`].
#[derive(FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// A handler's query string: one that does not parse is a 400 ([`ApiError::BadRequest`]).
#[derive(FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct Params<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::Body(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
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
        let status = match &self {
            ApiError::SignInRequired | ApiError::WrongCredentials | ApiError::TokenRequired(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Limited(_) | ApiError::TooMany(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) | ApiError::Refused(_) => StatusCode::CONFLICT,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Body(status, _) => *status,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &self {
            ApiError::Store(e) => {
                tracing::error!(error = %e, "request failed");
                "internal error".to_owned()
            }
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let body = Json(json!({ "error": message }));
        match self {
            ApiError::SignInRequired | ApiError::WrongCredentials | ApiError::TokenRequired(_) => (
                status,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                body,
            )
                .into_response(),
            ApiError::Limited(secs) | ApiError::TooMany(_, secs) => (
                status,
                [(header::RETRY_AFTER, HeaderValue::from(secs))],
                body,
            )
                .into_response(),
            _ => (status, body).into_response(),
        }
    }
}
