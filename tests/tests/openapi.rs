//! The HTTP API described for machines, as a client's author meets it: `GET /api/openapi.json`
//! (no session) is an OpenAPI document that a validator we did not write accepts; every
//! operation it names is one the gateway answers; every route the README's API table lists is
//! in it; and what a route takes (its parameters, its JSON body) is described as the handler
//! parses it.

use std::collections::BTreeMap;

use serde_json::Value;
use tenwatch_tests::openapi::{require_openapi_validator, validate};
use tenwatch_tests::{spawn_app, TestDevice};

/// Whether `concrete` (a path of the README, its `{…}` filled) is an instance of `template`
/// (a path of the document, whose `{…}` stand for one segment each).
fn instance_of(concrete: &str, template: &str) -> bool {
    let (c, t): (Vec<&str>, Vec<&str>) =
        (concrete.split('/').collect(), template.split('/').collect());
    c.len() == t.len()
        && c.iter()
            .zip(&t)
            .all(|(c, t)| c == t || (t.starts_with('{') && t.ends_with('}')))
}

/// Fills every `{…}` of a path with a sample value: `1`, or `1.xml` for a file's name.
fn filled(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{file}" => "1.xml".to_owned(),
            s if s.starts_with('{') => {
                // `{id}.xml` in the README: the brace part only.
                let end = s.find('}').map_or(s.len(), |i| i + 1);
                format!("1{}", &s[end..])
            }
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The routes of the README's HTTP API table: method and path, each one named.
fn readme_routes() -> anyhow::Result<Vec<(String, String)>> {
    let readme = std::fs::read_to_string(tenwatch_tests::venv::repo_root().join("README.md"))?;
    let section = readme
        .split("\n## HTTP API")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .ok_or_else(|| anyhow::anyhow!("the README has no HTTP API section"))?;
    let mut routes = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        // The first cell: "`POST`/`GET`/`DELETE /api/session`", "`GET /api/a`, `GET /api/b`".
        let cell = row.split(" | ").next().unwrap_or_default();
        let mut methods = Vec::new();
        for token in cell.split(['`', ' ', ',']).filter(|t| !t.is_empty()) {
            match token {
                "GET" | "POST" | "DELETE" | "PUT" | "PATCH" => methods.push(token.to_lowercase()),
                // A lone "/" joins two methods (`POST`/`DELETE /api/…`).
                t if t.len() > 1 && t.starts_with('/') && !methods.is_empty() => {
                    let path = t.split('?').next().unwrap_or(t);
                    for m in methods.drain(..) {
                        routes.push((m, path.to_owned()));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(routes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_description_is_valid_and_every_route_in_it_is_answered() -> anyhow::Result<()> {
    if !require_openapi_validator() {
        return Ok(());
    }
    let app = spawn_app(1).await?;
    let http = reqwest::Client::new();

    // Anyone may read it, as a client generator would, without signing in.
    let response = http.get(app.url("/api/openapi.json")).send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "served as JSON"
    );
    let bytes = response.bytes().await?;
    let verdict = validate(&bytes).await?;
    assert_eq!(
        verdict["valid"], true,
        "the validator's findings: {verdict}"
    );
    assert!(
        verdict["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{verdict}"
    );
    let operations: BTreeMap<String, Vec<String>> =
        serde_json::from_value(verdict["operations"].clone())?;
    assert!(operations.len() >= 30, "{} paths", operations.len());

    // Every operation described is one the gateway answers: never the "no such route" of an
    // unknown /api path, never 405 (the path is known but not the method), never what other
    // unknown paths fall back to (the console's pages).
    let fallback = http.get(app.url("/no-such-page/at-all")).send().await?;
    let fallback = (fallback.status().as_u16(), fallback.text().await?);
    for (path, methods) in &operations {
        for method in methods {
            let url = app.url(&filled(path));
            let request = match method.as_str() {
                "get" => http.get(&url),
                "post" => http.post(&url).json(&serde_json::json!({})),
                "delete" => http.delete(&url).json(&serde_json::json!({})),
                other => panic!("{path}: an unexpected method {other}"),
            };
            let response = request.bearer_auth(&app.token).send().await?;
            let status = response.status().as_u16();
            let body = response.text().await?;
            let what = format!("{} {path}: {status} {body:.200}", method.to_uppercase());
            assert_ne!(status, 405, "{what}");
            assert!(!body.contains("no such route"), "{what}");
            assert_ne!(
                (status, body.clone()),
                fallback,
                "{what}: the fallback's answer, not a route"
            );
        }
    }
    // The session may have been signed out above (DELETE /api/session): nothing below needs it.

    // Every route the README's table lists is described, with its method.
    let listed = readme_routes()?;
    assert!(listed.len() >= 30, "{listed:?}");
    for (method, path) in &listed {
        let concrete = filled(path);
        assert!(
            operations
                .iter()
                .any(|(t, ms)| instance_of(&concrete, t) && ms.contains(method)),
            "the README lists {} {path}, the description has no such operation",
            method.to_uppercase()
        );
    }

    // What a route takes is the handler's own type: resolve's body and its required field,
    // the history's query parameters, one path parameter for the alert.
    let doc: Value = serde_json::from_slice(&bytes)?;
    let resolve = &doc["paths"]["/api/alerts/{id}/resolve"]["post"];
    assert_eq!(
        resolve["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ResolveBody",
        "{resolve}"
    );
    let body = &doc["components"]["schemas"]["ResolveBody"];
    assert!(
        body["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|f| f == "category")),
        "{body}"
    );
    let named = |op: &Value, place: &str| -> Vec<String> {
        op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == place)
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(named(resolve, "path"), ["id"], "{resolve}");
    let history = &doc["paths"]["/api/alerts/history"]["get"];
    for p in [
        "from", "to", "kind", "category", "cluster", "q", "limit", "cursor",
    ] {
        assert!(
            named(history, "query").iter().any(|n| n == p),
            "{p}: {history}"
        );
    }
    // Sign-in is open; the alerts are not.
    assert_eq!(
        doc["paths"]["/api/session"]["post"]["security"],
        serde_json::json!([{}])
    );
    assert!(doc["paths"]["/api/alerts"]["get"].get("security").is_none());
    assert!(
        doc["security"].as_array().is_some_and(|s| s.len() == 2),
        "{}",
        doc["security"]
    );
    Ok(())
}

#[test]
fn readme_paths_match_the_documents_templates() {
    assert!(instance_of(
        &filled("/cap/alerts/{id}.xml"),
        "/cap/alerts/{file}"
    ));
    assert!(instance_of(
        &filled("/cap/alerts/{id}/{n}.xml"),
        "/cap/alerts/{id}/{file}"
    ));
    assert!(!instance_of("/api/alerts/1/resolve", "/api/alerts/{id}"));
    assert!(!instance_of("/api/alert", "/api/alerts"));
}

/// Every moment the JSON API answers is there twice, as a program and as a person reads it:
/// `raised_at_ms` and `raised_at` (ISO 8601, UTC) name the same instant, in a list, in a
/// detail's timeline, in the session; a duration has no such twin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_moment_is_answered_in_milliseconds_and_in_iso_8601() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let mut unit = TestDevice::connect(app.mqtt, &app.cluster(0)[0]).await?;
    let id = unit.press_and_wait_ack(1, "help").await?["alert"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // The same instant: the ISO form read back by chrono, not by the gateway.
    let same = |v: &Value, field: &str| {
        let ms = v[format!("{field}_ms")].as_i64();
        let iso = v[field].as_str();
        let (Some(ms), Some(iso)) = (ms, iso) else {
            panic!("{field}: {v}");
        };
        let read = chrono::DateTime::parse_from_rfc3339(iso)
            .unwrap_or_else(|e| panic!("{field} {iso:?}: {e}"));
        assert_eq!(read.timestamp_millis(), ms, "{field}");
        assert!(iso.ends_with('Z'), "{field} in UTC: {iso}");
    };
    let (status, list) = app.get_json("/api/alerts").await?;
    assert_eq!(status, 200, "{list}");
    let listed = &list["alerts"][0];
    same(listed, "raised_at");
    same(listed, "updated_at");
    assert!(listed.get("stale_after").is_none() && list.get("stale_after").is_none());

    let (_, detail) = app.get_json(&format!("/api/alerts/{id}")).await?;
    same(&detail, "raised_at");
    let timeline = detail["timeline"].as_array().cloned().unwrap_or_default();
    let recipients = detail["recipients"].as_array().cloned().unwrap_or_default();
    assert!(!timeline.is_empty() && recipients.len() == 10, "{detail}");
    for e in &timeline {
        same(e, "at");
    }
    for r in &recipients {
        same(r, "notified_at");
    }
    // Not there yet: null both ways.
    assert!(detail["closed_at_ms"].is_null(), "{detail}");
    assert!(
        detail.get("closed_at").is_some_and(Value::is_null),
        "{detail}"
    );

    // Signing in says until when, both ways.
    let signed: Value = reqwest::Client::new()
        .post(app.url("/api/session"))
        .json(&serde_json::json!({
            "name": tenwatch_tests::OPERATOR,
            "password": tenwatch_tests::PASSWORD,
        }))
        .send()
        .await?
        .json()
        .await?;
    same(&signed, "expires_at");
    Ok(())
}
