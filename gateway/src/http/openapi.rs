//! The HTTP API described for machines: an OpenAPI 3.1 document served at
//! `GET /api/openapi.json`, made at start from the handlers' own `#[utoipa::path]`
//! annotations. Each documented route is registered from its annotation (utoipa-axum's
//! `routes!`), so the path a client reads is the path the server answers; what a route takes
//! (its query parameters, its JSON body) is the very type the handler parses.
//!
//! What is said here once for all: how a caller signs in (the session cookie or a bearer
//! token), the one error body, and the refusals every signed-in route may answer.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{InfoBuilder, OpenApi, SecurityRequirement};
use utoipa::{IntoParams, IntoResponses};

use super::auth::SESSION_COOKIE;
pub(super) use super::error::ErrorBody;

/// The security schemes' names, as the operations' `security` lists name them.
pub(super) const SESSION: &str = "session";
pub(super) const BEARER: &str = "bearer";

/// What a route for signed-in accounts may answer besides its own results.
#[derive(IntoResponses)]
#[allow(dead_code)] // Described, never built: ApiError builds these answers.
pub(super) enum Refusals {
    /// A parameter or body that does not parse, or a value out of range: the error says which.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No session, or an expired one (`WWW-Authenticate: Bearer`).
    #[response(status = 401)]
    SignInRequired(ErrorBody),
    /// Signed in, but this kind of account may not do this (a volunteer on a station route).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Not found, or of a zone the account may not see (answered alike).
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// An action the alert's life does not allow now, or a thing that exists already.
#[derive(IntoResponses)]
#[allow(dead_code)] // Described, never built: ApiError builds these answers.
pub(super) enum Conflict {
    /// The reason in words (e.g. the alert is already resolved).
    #[response(status = 409)]
    Refused(ErrorBody),
}

/// The alert a route is about.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Described only: the handlers parse the id themselves, to say what is wrong.
pub(super) struct AlertPath {
    /// The alert's number.
    id: i64,
}

/// The device a route is about.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Described only: the handlers parse the id themselves, to say what is wrong.
pub(super) struct DevicePath {
    /// The device's id, e.g. `h-0001-1`.
    id: String,
}

/// The tags, in the order a reader meets them, with what each covers.
const TAGS: &[(&str, &str)] = &[
    ("session", "Signing in and out (operators and volunteers)."),
    (
        "alerts",
        "The open alerts of the account's zones and the actions on them.",
    ),
    (
        "history",
        "Closed alerts, a device's record, the statistics of a period and its bulletin (警情公示).",
    ),
    (
        "notices",
        "Notices to residents (crime prevention, wanted, weather, fire) and who got them.",
    ),
    (
        "console",
        "What the station console draws: its settings, the map, the volunteers.",
    ),
    (
        "devices",
        "The units' health: presence, battery, refused logins, problems.",
    ),
    (
        "volunteer",
        "The patrol volunteer's app: duty, position, check-ins, Web Push.",
    ),
    (
        "broker",
        "An external MQTT broker asks whether a device may connect, publish or subscribe.",
    ),
    (
        "public",
        "CAP 1.2 documents of the alerts a station made public, and their Atom feed.",
    ),
    (
        "map",
        "The station's offline base map: tiles of its own MBTiles file (--tiles), no session.",
    ),
    (
        "health",
        "Liveness, the Prometheus metrics, and this description.",
    ),
];

/// `api` (the paths the routers collected) with the document's title, version, security
/// schemes and tags.
pub(super) fn describe(mut api: OpenApi) -> OpenApi {
    api.info = InfoBuilder::new()
        .title("tenwatch")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The gateway's HTTP API (十户联防). Sign in with POST /api/session; the answer sets \
             the session cookie and gives the same token for an Authorization: Bearer header. \
             Every moment is answered twice: unix milliseconds (`raised_at_ms`) and ISO 8601 \
             in UTC (`raised_at`); `from` and `to` take either.",
        ))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
    );
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    // Signed in by either; the few public routes say `security(())`.
    api.security = Some(vec![
        SecurityRequirement::new(SESSION, Vec::<String>::new()),
        SecurityRequirement::new(BEARER, Vec::<String>::new()),
    ]);
    api.tags = Some(
        TAGS.iter()
            .map(|(name, about)| {
                TagBuilder::new()
                    .name(*name)
                    .description(Some(*about))
                    .build()
            })
            .collect(),
    );
    api
}

/// The document as served: made once, at start, and handed to [`document`] as a request
/// extension.
#[derive(Clone)]
pub(super) struct Document(std::sync::Arc<str>);

impl Document {
    pub(super) fn new(api: &OpenApi) -> Self {
        // A document of plain data always serialises; an empty one would say so plainly.
        Self(api.to_json().unwrap_or_default().into())
    }
}

/// This API described for machines (OpenAPI 3.1): every route, its parameters, JSON body,
/// answers and sign-in.
#[utoipa::path(get, path = "/api/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "this document", content_type = "application/json")))]
pub(super) async fn document(Extension(doc): Extension<Document>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.to_string(),
    )
        .into_response()
}
