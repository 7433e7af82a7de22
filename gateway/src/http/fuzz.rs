//! Fuzz targets for the JSON bodies the HTTP API accepts: sign-in, the alert actions
//! (respond, dispatch, resolve, notes), the volunteer's duty, position, check-in and push
//! subscriptions, and an external broker's login and ACL questions.
//!
//! Each body goes through the extractor its handler uses ([`Body`], or sign-in's own
//! `parse_login`) and then the checks the handler makes before it touches the store. The
//! properties, for every input: nothing panics or loops; a refusal is a 4xx with a JSON error,
//! never a 5xx; a body that is taken, written back as JSON, is taken again the same.
//!
//! `cargo test` runs each on a bounded number of random inputs; `scripts/fuzz.sh` runs them
//! under a coverage-guided engine for a set time.

use axum::extract::FromRequest;
use axum::http::{header, Method, Request};
use axum::response::IntoResponse;
use bolero::{check, TypeGenerator};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::Body;
use super::{alerts, auth, broker_auth, volunteer, ApiError};
use crate::accounts::AccountName;
use crate::fuzz_json::{self, Vocabulary};

/// Random inputs per target in the smoke run (`BOLERO_RANDOM_ITERATIONS` overrides).
const SMOKE: usize = 2_000;

/// A refusal as the client sees it: a 4xx with `{"error": "..."}`.
fn assert_client_error(e: ApiError) {
    let response = e.into_response();
    let status = response.status();
    assert!(status.is_client_error(), "refused with {status}");
    let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
        .expect("an error body");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("an error is JSON");
    assert!(
        json["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{json}"
    );
}

/// Takes `bytes` as a handler's JSON body does.
fn extract<T: DeserializeOwned + Send>(bytes: Vec<u8>) -> Result<T, ApiError> {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/")
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(bytes))
        .expect("a request");
    // A body already in memory: the extractor's future is ready at once.
    futures::executor::block_on(Body::<T>::from_request(request, &())).map(|Body(t)| t)
}

/// The body is taken or refused with a 4xx; one taken is taken again the same once written
/// back; `check` (the handler's own checks) answers or refuses with a 4xx.
fn body_target<T, R>(bytes: &[u8], check: impl Fn(&T) -> Result<R, ApiError>)
where
    T: DeserializeOwned + Serialize + Send,
{
    let taken = match extract::<T>(bytes.to_vec()) {
        Ok(t) => t,
        Err(e) => return assert_client_error(e),
    };
    let written = serde_json::to_vec(&taken).expect("a body is JSON");
    let again: T = extract(written.clone()).expect("a body written back is taken");
    assert_eq!(
        serde_json::to_value(&again).expect("JSON"),
        serde_json::to_value(&taken).expect("JSON"),
        "{}",
        String::from_utf8_lossy(&written)
    );
    if let Err(e) = check(&taken) {
        assert_client_error(e);
    }
}

fn login(bytes: &[u8]) {
    match auth::parse_login(&Bytes::copy_from_slice(bytes)) {
        Err(e) => assert_client_error(e),
        Ok(body) => {
            let written = serde_json::to_vec(&body).expect("JSON");
            let again = auth::parse_login(&Bytes::from(written)).expect("taken again");
            assert_eq!(
                serde_json::to_value(&again).expect("JSON"),
                serde_json::to_value(&body).expect("JSON")
            );
            // The name is parsed before any password is checked.
            let name = serde_json::to_value(&body).expect("JSON")["name"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_default();
            let _ = AccountName::parse(&name);
        }
    }
}

/// The bodies, each with the checks its handler makes.
#[derive(Debug, Clone, Copy, TypeGenerator)]
enum Route {
    Login,
    Respond,
    Dispatch,
    Resolve,
    Note,
    Subscribe,
    Unsubscribe,
    Checkin,
    Duty,
    Position,
    BrokerAuthenticate,
    BrokerAuthorize,
}

fn route(route: Route, bytes: &[u8]) {
    use broker_auth::NamesClient;
    match route {
        Route::Login => login(bytes),
        Route::Respond => body_target(bytes, alerts::RespondBody::wanted),
        Route::Dispatch => body_target(bytes, alerts::DispatchBody::checked),
        Route::Resolve => body_target(bytes, alerts::ResolveBody::checked),
        Route::Note => body_target(bytes, alerts::NoteBody::checked),
        Route::Subscribe => body_target(bytes, |b: &volunteer::SubscriptionBody| {
            volunteer::check_subscription(b, false)?;
            volunteer::check_subscription(b, true)
        }),
        Route::Unsubscribe => body_target(bytes, |_: &volunteer::UnsubscribeBody| Ok(())),
        Route::Checkin => body_target(bytes, |b: &volunteer::CheckinBody| b.checked().map(|_| ())),
        Route::Duty => body_target(bytes, |_: &volunteer::DutyBody| Ok(())),
        Route::Position => body_target(bytes, volunteer::PositionBody::checked),
        Route::BrokerAuthenticate => body_target(bytes, |b: &broker_auth::AuthnBody| {
            let _ = b.client_and_user();
            Ok(())
        }),
        Route::BrokerAuthorize => {
            body_target(bytes, |b: &broker_auth::AuthzBody| Ok(b.publish_allowed()))
        }
    }
}

/// Any bytes as any route's body.
#[test]
fn request_body_bytes() {
    check!()
        .with_type::<(Route, Vec<u8>)>()
        .with_iterations(SMOKE)
        .for_each(|(r, bytes)| route(*r, bytes));
}

/// JSON documents of the bodies' own fields and words, with values of every type.
#[test]
fn request_body_documents() {
    check!()
        .with_type::<(Route, fuzz_json::Document)>()
        .with_iterations(SMOKE)
        .for_each(|(r, doc)| {
            let vocabulary = Vocabulary {
                keys: r.keys(),
                words: WORDS,
            };
            route(*r, doc.render(&vocabulary).as_bytes())
        });
}

impl Route {
    /// The body's own field names (a document of others is refused at once).
    fn keys(self) -> &'static [&'static str] {
        match self {
            Route::Login => &["name", "password"],
            Route::Respond => &["answer"],
            Route::Dispatch => &["volunteer", "note"],
            Route::Resolve => &["category", "note"],
            Route::Note => &["text"],
            Route::Subscribe => &["endpoint", "expirationTime", "keys", "p256dh", "auth"],
            Route::Unsubscribe => &["endpoint"],
            Route::Checkin => &["lat", "lon", "note"],
            Route::Duty => &["on_duty"],
            Route::Position => &["lat", "lon"],
            Route::BrokerAuthenticate => &["clientid", "username", "password"],
            Route::BrokerAuthorize => &["clientid", "username", "topic", "action"],
        }
    }
}

/// The words the checks give a meaning to, and near misses.
const WORDS: &[&str] = &[
    "coming",
    "on_scene",
    "seen",
    "declined",
    "delivered",
    "notified",
    "help",
    "false_alarm",
    "wang.jing",
    "王警官",
    "https://push.example.org/send/abc",
    "http://127.0.0.1:9/push",
    "https://[::ffff:127.0.0.1]/x",
    "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
    "AAAAAAAAAAAAAAAAAAAAAA",
    "d-11010501-001-03",
    "tw/d/d-11010501-001-03/up/press",
    "publish",
    "subscribe",
    "",
    " ",
];

/// Found by `request_body_documents`: a number was read one unit in the last place off the
/// float it names, so a position written back did not read the same (serde_json's fast float
/// parsing; now `float_roundtrip`).
#[test]
fn a_position_reads_as_the_float_it_names() {
    let body = br#"{"lat":9.836280909923107e18,"lon":39.9087,"note":""}"#;
    body_target(body, |b: &volunteer::CheckinBody| b.checked().map(|_| ()));
    let taken: volunteer::PositionBody =
        extract(br#"{"lat":9.836280909923107e18,"lon":39.9087}"#.to_vec()).expect("taken");
    let expected: f64 = "9.836280909923107e18".parse().expect("a float");
    assert_eq!(
        serde_json::to_value(&taken).expect("JSON")["lat"].as_f64(),
        Some(expected)
    );
}
