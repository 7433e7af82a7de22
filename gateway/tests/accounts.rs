//! Accounts and sessions through HTTP, against a real store in a fresh database, on SQLite and
//! on PostgreSQL: signing in, the cookie and the bearer token, what a wrong login shows, the login limiter,
//! expiry and logout.

// A test binary: an unwrap that fails is a failed test (clippy.toml only covers #[test] fns).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::extract::Path;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tenwatch_gateway::accounts::{
    self, AccountError, Accounts, AccountsConfig, Clock, LimiterConfig, Role,
};
use tenwatch_gateway::domain::ZoneCode;
use tenwatch_gateway::http::auth::{session_routes, Authenticated, Operator};
use tenwatch_gateway::store::{Store, StoreError};
use tower::ServiceExt;

use common::TestDb;

store_tests!(
    login_gives_a_session_usable_as_cookie_and_as_bearer,
    wrong_password_and_unknown_name_cannot_be_told_apart,
    repeated_wrong_logins_are_rate_limited,
    garbage_is_a_clear_400,
    sessions_slide_and_then_expire,
    logout_ends_the_session,
    volunteers_sign_in_to_their_zone_only,
    creating_accounts_says_what_is_wrong,
    one_address_trying_many_names_is_limited_over_real_http,
);

const PASSWORD: &str = "correct horse battery";

struct TestApp {
    store: Arc<dyn Store>,
    accounts: Accounts,
    clock: Clock,
    zone: ZoneCode,
    other_zone: ZoneCode,
    /// Last, so that it (and its database) is dropped after the store.
    _db: TestDb,
}

/// A zone the test operator "wang" may see, one it may not, and a router like the API's:
/// the session routes plus protected routes standing in for the real ones.
async fn spawn_app(db: TestDb, limits: LimiterConfig) -> TestApp {
    let store = db.open().await;
    let zone = ZoneCode::parse("11010501").unwrap();
    let other_zone = ZoneCode::parse("11010502").unwrap();
    store.add_zone(&zone, "和平社区一区").await.unwrap();
    store.add_zone(&other_zone, "和平社区二区").await.unwrap();
    accounts::create_operator(
        store.as_ref(),
        "wang",
        PASSWORD,
        Role::Monitor,
        std::slice::from_ref(&zone),
        "王警官",
    )
    .await
    .unwrap();
    let clock = Clock::manual(1_700_000_000_000);
    let accounts = Accounts::new(
        store.clone(),
        AccountsConfig {
            limits,
            clock: clock.clone(),
            ..AccountsConfig::default()
        },
    );
    TestApp {
        store,
        accounts,
        clock,
        zone,
        other_zone,
        _db: db,
    }
}

async fn zone_page(Authenticated(who): Authenticated, Path(zone): Path<String>) -> Response {
    match ZoneCode::parse(&zone) {
        Ok(zone) if who.may_see(&zone) => Json(json!({ "zone": zone })).into_response(),
        // Zones one may not see look like zones that do not exist.
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such zone" })),
        )
            .into_response(),
    }
}

async fn station_only(Operator(who): Operator) -> Response {
    Json(json!({ "operator": who.name })).into_response()
}

fn router(accounts: Accounts) -> Router {
    session_routes()
        .route("/api/zones/{zone}", get(zone_page))
        .route("/api/station", get(station_only))
        .with_state(accounts)
}

impl TestApp {
    async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let peer: SocketAddr = "192.0.2.10:40000".parse().unwrap();
        let app = router(self.accounts.clone()).layer(MockConnectInfo(peer));
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, headers, body)
    }

    async fn login(
        &self,
        name: &str,
        password: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.send(
            Request::post("/api/session")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    json!({ "name": name, "password": password }).to_string(),
                ))
                .unwrap(),
        )
        .await
    }

    async fn get_with(&self, path: &str, auth: Option<(&str, String)>) -> (StatusCode, Value) {
        let mut req = Request::get(path);
        if let Some((name, value)) = auth {
            req = req.header(name, value);
        }
        let (status, _, body) = self.send(req.body(Body::empty()).unwrap()).await;
        (status, body)
    }

    async fn token(&self) -> String {
        let (status, _, body) = self.login("wang", PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

fn bearer(token: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {token}")))
}

fn cookie(token: &str) -> Option<(&'static str, String)> {
    Some(("cookie", format!("theme=dark; tenwatch_session={token}")))
}

fn strict_limits() -> LimiterConfig {
    LimiterConfig::default()
}

async fn login_gives_a_session_usable_as_cookie_and_as_bearer(db: TestDb) {
    let app = spawn_app(db, strict_limits()).await;
    let (status, headers, body) = app.login("wang", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        body["account"],
        json!({
            "name": "wang",
            "display_name": "王警官",
            "kind": "operator",
            "role": "monitor",
            "zones": ["11010501"],
        })
    );
    let twelve_hours = 12 * 3600 * 1000;
    assert_eq!(
        body["expires_at_ms"].as_i64().unwrap(),
        app.clock.now_ms() + twelve_hours
    );
    let set_cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.starts_with(&format!("tenwatch_session={token};")));
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }

    let page = format!("/api/zones/{}", app.zone);
    assert_eq!(app.get_with(&page, bearer(&token)).await.0, StatusCode::OK);
    assert_eq!(app.get_with(&page, cookie(&token)).await.0, StatusCode::OK);
    let (status, me) = app.get_with("/api/session", cookie(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["account"]["name"], "wang");
    assert_eq!(
        app.get_with("/api/station", bearer(&token)).await.0,
        StatusCode::OK
    );

    // Only its own zones.
    let elsewhere = format!("/api/zones/{}", app.other_zone);
    assert_eq!(
        app.get_with(&elsewhere, bearer(&token)).await.0,
        StatusCode::NOT_FOUND
    );

    // Without a session, or with a forged one: 401 and the same message.
    for auth in [
        None,
        bearer("not-a-token"),
        bearer(&"0".repeat(64)),
        cookie(&"f".repeat(64)),
    ] {
        let (status, body) = app.get_with(&page, auth).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!({ "error": "sign in required" }));
    }
}

async fn wrong_password_and_unknown_name_cannot_be_told_apart(db: TestDb) {
    let app = spawn_app(db, strict_limits()).await;
    let wrong_password = app.login("wang", "wrong password").await;
    let unknown_name = app.login("nobody-by-this-name", "wrong password").await;

    assert_eq!(wrong_password.0, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_name.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong_password.2,
        json!({ "error": "wrong name or password" })
    );
    assert_eq!(wrong_password.2, unknown_name.2);
    assert_eq!(wrong_password.1, unknown_name.1, "same headers");
    // That an unknown name costs a password verification too (a dummy hash) is checked without
    // a clock in accounts.rs's unit test `the_dummy_hash_costs_what_a_real_one_costs`.
    // A name that could never exist is refused the same way, not with a validation message.
    let (status, _, body) = app.login(" ", "wrong password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, unknown_name.2);
}

async fn repeated_wrong_logins_are_rate_limited(db: TestDb) {
    let app = spawn_app(db, strict_limits()).await;
    for _ in 0..5 {
        assert_eq!(
            app.login("wang", "guess guess").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // From the same address even the right password waits now: the limiter answers before
    // any password is checked. (Another address is not slowed down: tests/tests/http_guard.rs.)
    let (status, headers, body) = app.login("WANG", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry_after: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=10).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("too many login attempts"));
}

async fn garbage_is_a_clear_400(db: TestDb) {
    let app = spawn_app(db, strict_limits()).await;
    for body in ["{not json", "[]", r#"{"name":"wang"}"#, ""] {
        let (status, _, reply) = app
            .send(
                Request::post("/api/session")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        let message = reply["error"].as_str().unwrap();
        assert!(
            message.contains(r#"{"name": "...", "password": "..."}"#),
            "{message}"
        );
    }
    // Without the JSON content type a good body is refused: a page of another site can post
    // a form or text/plain without asking the browser's leave.
    let (status, _, reply) = app
        .send(
            Request::post("/api/session")
                .body(Body::from(
                    json!({ "name": "wang", "password": PASSWORD }).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        reply["error"],
        "expected a request with Content-Type: application/json"
    );
}

async fn sessions_slide_and_then_expire(db: TestDb) {
    let app = spawn_app(db, strict_limits()).await;
    let token = app.token().await;
    let page = format!("/api/zones/{}", app.zone);
    let hour = Duration::from_secs(3600);

    // Used every 11 hours, a 12-hour session stays open.
    for _ in 0..3 {
        app.clock.advance(11 * hour);
        assert_eq!(app.get_with(&page, bearer(&token)).await.0, StatusCode::OK);
    }
    // Left alone for 12 hours, it is closed.
    app.clock.advance(12 * hour + Duration::from_millis(1));
    let (status, body) = app.get_with(&page, bearer(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({ "error": "sign in required" }));
}

async fn logout_ends_the_session(db: TestDb) {
    let app = spawn_app(db, strict_limits()).await;
    let token = app.token().await;
    let other = app.token().await;
    let (status, headers, _) = app
        .send(
            Request::delete("/api/session")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let cleared = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.starts_with("tenwatch_session=;") && cleared.contains("Max-Age=0"));
    assert_eq!(
        app.get_with("/api/session", cookie(&token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Other sessions of the same account stay open.
    assert_eq!(
        app.get_with("/api/session", bearer(&other)).await.0,
        StatusCode::OK
    );
    // Logging out twice, or without a session, is harmless.
    let (status, _, _) = app
        .send(Request::delete("/api/session").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn volunteers_sign_in_to_their_zone_only(db: TestDb) {
    let app = spawn_app(db, strict_limits()).await;
    accounts::create_volunteer(
        app.store.as_ref(),
        "li.volunteer",
        "patrol-2024",
        &app.other_zone,
        "李师傅",
        "13800000000",
    )
    .await
    .unwrap();
    let (status, _, body) = app.login("li.volunteer", "patrol-2024").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["kind"], "volunteer");
    assert_eq!(body["account"]["role"], Value::Null);
    assert_eq!(body["account"]["zones"], json!(["11010502"]));
    let token = body["token"].as_str().unwrap().to_owned();
    let (status, body) = app.get_with("/api/station", bearer(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, json!({ "error": "for station operators only" }));
    assert_eq!(
        app.get_with(&format!("/api/zones/{}", app.zone), bearer(&token))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

async fn creating_accounts_says_what_is_wrong(db: TestDb) {
    let app = spawn_app(db, strict_limits()).await;
    let store = app.store.as_ref();
    let zones = std::slice::from_ref(&app.zone);
    let e = accounts::create_operator(store, "zhao", "short", Role::Admin, zones, "")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("at least 8"), "{e}");
    let e = accounts::create_operator(store, "Wang", PASSWORD, Role::Admin, zones, "")
        .await
        .unwrap_err();
    assert!(
        matches!(e, AccountError::Store(StoreError::Conflict(_))),
        "{e:?}"
    );
    let nowhere = ZoneCode::parse("99999999").unwrap();
    let e = accounts::create_volunteer(store, "zhou", PASSWORD, &nowhere, "", "")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("zone 99999999 not found"), "{e}");
    let e = accounts::create_operator(store, "zhao", PASSWORD, Role::Admin, &[], "")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("at least one zone"), "{e}");
}

/// Served for real with connect info, as the gateway serves: the per-address limit sees the
/// client's address and stops one address from trying many names.
async fn one_address_trying_many_names_is_limited_over_real_http(db: TestDb) {
    let app = spawn_app(
        db,
        LimiterConfig {
            peer_burst: 2,
            peer_every: Duration::from_secs(60),
            ..LimiterConfig::default()
        },
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = router(app.accounts.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, service).await });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/api/session");
    let mut statuses = Vec::new();
    for name in ["a1", "a2", "a3"] {
        let resp = client
            .post(&url)
            .json(&json!({ "name": name, "password": "whatever1" }))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
        }
    }
    assert_eq!(statuses, [401, 401, 429]);
    server.abort();
}
