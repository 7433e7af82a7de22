//! Every moment the JSON API answers is said twice: as unix milliseconds (`raised_at_ms`, what
//! programs compare) and as ISO 8601 in UTC (`raised_at`, what people and spreadsheets read).
//! One layer over the API's JSON answers adds the twin of every `…at_ms` field that is a
//! number (or null) and has none yet, at any depth; durations (`duration_ms`, `p50_ms`) are
//! not moments and are left alone.

use axum::body::{Body, HttpBody as _};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value};

/// The answers this layer reads at most; a bigger one, or one of unknown size, goes out as
/// it is.
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// The API description names fields; it holds no moments.
const SKIPPED: &str = "/api/openapi.json";

/// `2026-12-05T08:00:00.000Z`; empty for a moment no calendar holds.
pub fn iso(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The twin's name of a moment's field: `raised_at_ms` → `raised_at`, `at_ms` → `at`.
fn twin(key: &str) -> Option<&str> {
    let stem = key.strip_suffix("_ms")?;
    (stem == "at" || stem.ends_with("_at")).then_some(stem)
}

/// Adds the ISO 8601 twins throughout `value`.
pub fn add_iso_twins(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let mut twins = Map::new();
            for (key, v) in map.iter_mut() {
                add_iso_twins(v);
                let Some(name) = twin(key) else { continue };
                let said = match v {
                    Value::Number(n) => match n.as_i64() {
                        Some(ms) => Value::String(iso(ms)),
                        None => continue,
                    },
                    Value::Null => Value::Null,
                    _ => continue,
                };
                twins.insert(name.to_owned(), said);
            }
            for (name, said) in twins {
                map.entry(name).or_insert(said);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(add_iso_twins),
        _ => {}
    }
}

/// The layer: a JSON answer of the API gets its twins; anything else passes untouched.
pub async fn iso_times(request: Request, next: Next) -> Response {
    let skipped = request.uri().path() == SKIPPED;
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    let fits = response
        .body()
        .size_hint()
        .upper()
        .is_some_and(|n| n <= MAX_ANSWER as u64);
    if skipped || !is_json || !fits {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ANSWER).await else {
        // A body of known size that could not be read: nothing of it can be sent now.
        return super::ApiError::Internal("an answer could not be read".into()).into_response();
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    add_iso_twins(&mut value);
    match serde_json::to_vec(&value) {
        Ok(out) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Response::from_parts(parts, Body::from(out))
        }
        Err(_) => Response::from_parts(parts, Body::from(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn moments_get_their_twin_and_durations_do_not() {
        let mut v = json!({
            "alerts": [{
                "raised_at_ms": 1_764_892_800_000_i64,
                "closed_at_ms": null,
                "duration_ms": 5000,
                "events": [{ "at_ms": 1_764_892_801_500_i64 }],
            }],
            "stale_after_ms": 600000,
            "from_ms": 1,
            // A twin already there is the handler's own: kept.
            "expires_at_ms": 1_764_892_800_000_i64,
            "expires_at": "kept",
        });
        add_iso_twins(&mut v);
        let a = &v["alerts"][0];
        assert_eq!(a["raised_at"], "2025-12-05T00:00:00.000Z");
        assert!(a["closed_at"].is_null() && a.get("closed_at").is_some());
        assert!(a.get("duration").is_none());
        assert_eq!(a["events"][0]["at"], "2025-12-05T00:00:01.500Z");
        assert!(v.get("stale_after").is_none() && v.get("from").is_none());
        assert_eq!(v["expires_at"], "kept");
    }

    #[test]
    fn twins_are_named_from_moments_only() {
        assert_eq!(twin("raised_at_ms"), Some("raised_at"));
        assert_eq!(twin("at_ms"), Some("at"));
        assert_eq!(twin("duration_ms"), None);
        assert_eq!(twin("heartbeat_interval_ms"), None);
        assert_eq!(twin("chat_ms"), None);
        assert_eq!(twin("raised_at"), None);
    }
}
