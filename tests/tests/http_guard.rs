//! The HTTP port under attack, against a real gateway on 127.0.0.1: idle and half-sent
//! connections are closed and capped, a wrong-password flood keeps no one else out, browsers'
//! writes from other sites are refused, and `/metrics` asks who is reading. (The station
//! feed's own guards: feed_guard.rs.)

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::{json, Value};
use tenwatch_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; returns what it sent before. A reset
/// counts as closed.
async fn read_until_closed(socket: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(DEADLINE, socket.read(&mut buf)).await {
            Err(_) => anyhow::bail!(
                "the connection stayed open; got {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `GET /healthz` on a kept-alive connection and reads one response's head; returns
/// its status line.
async fn healthz_on(socket: &mut TcpStream) -> anyhow::Result<String> {
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tenwatch\r\n\r\n")
        .await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // The body is JSON with a length: read until it is all there.
    loop {
        let n = tokio::time::timeout(DEADLINE, socket.read(&mut buf)).await??;
        anyhow::ensure!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= length {
                return Ok(head.lines().next().unwrap_or("").to_owned());
            }
        }
    }
}

/// A new connection shown to be admitted by a `/healthz` answer. A place just given up (a
/// client that closed) is free once the server has seen the close: a connection refused
/// before that is tried again, until the deadline.
async fn admitted_connection(http: SocketAddr) -> anyhow::Result<TcpStream> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no connection was admitted"
        );
        let mut socket = TcpStream::connect(http).await?;
        if healthz_on(&mut socket)
            .await
            .is_ok_and(|s| s == "HTTP/1.1 200 OK")
        {
            return Ok(socket);
        }
    }
}

// --- 1. idle, half-sent and too many connections ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_closed_after_the_header_timeout() -> anyhow::Result<()> {
    let app = spawn_app_with(1, |c| {
        c.http.limits.header_timeout = Duration::from_millis(300);
    })
    .await?;
    let mut socket = TcpStream::connect(app.http).await?;
    let started = tokio::time::Instant::now();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tenwatch\r\n")
        .await?;
    let got = read_until_closed(&mut socket).await?;
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "{got:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    // A kept-alive connection whose next request does not come is closed the same way.
    let mut idle = TcpStream::connect(app.http).await?;
    assert_eq!(healthz_on(&mut idle).await?, "HTTP/1.1 200 OK");
    read_until_closed(&mut idle).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_is_closed_after_the_idle_timeout() -> anyhow::Result<()> {
    let app = spawn_app_with(1, |c| {
        c.http.limits.idle_timeout = Duration::from_millis(300);
    })
    .await?;
    let mut socket = TcpStream::connect(app.http).await?;
    socket
        .write_all(
            b"POST /api/session HTTP/1.1\r\nHost: tenwatch\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"name\":",
        )
        .await?;
    let got = read_until_closed(&mut socket).await?;
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "{got:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_while_admitted_ones_are_served(
) -> anyhow::Result<()> {
    let app = spawn_app_with(1, |c| {
        c.http.limits.max_connections = 4;
    })
    .await?;
    // Four connections, each shown to be admitted by an answer. The harness's sign-in
    // connection may still hold a place for a moment: a connection refused then is retried.
    let mut admitted = Vec::new();
    for _ in 0..4 {
        admitted.push(admitted_connection(app.http).await?);
    }
    // The fifth is told and closed at once.
    let mut fifth = TcpStream::connect(app.http).await?;
    let got = String::from_utf8_lossy(&read_until_closed(&mut fifth).await?).into_owned();
    assert!(got.starts_with("HTTP/1.1 503"), "{got:?}");
    assert!(got.contains("too many connections"), "{got:?}");
    // The admitted ones are still served.
    for socket in &mut admitted {
        assert_eq!(healthz_on(socket).await?, "HTTP/1.1 200 OK");
    }
    // A place freed is a place for the next.
    drop(admitted.pop());
    admitted_connection(app.http).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_feeds_count_against_the_cap() -> anyhow::Result<()> {
    let app = spawn_app_with(1, |c| {
        c.http.limits.max_connections = 4;
    })
    .await?;
    // Upgraded to WebSockets, these outlive their HTTP requests; they keep their places.
    let mut feeds = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while feeds.len() < 4 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "never opened 4 feeds"
        );
        if let Ok(feed) = open_feed(&app).await {
            feeds.push(feed);
        }
    }
    let mut fifth = TcpStream::connect(app.http).await?;
    let got = String::from_utf8_lossy(&read_until_closed(&mut fifth).await?).into_owned();
    assert!(got.starts_with("HTTP/1.1 503"), "{got:?}");
    Ok(())
}

// --- 4. login throttling ---

/// A client whose connections come from `source` (any 127.0.0.0/8 address is this machine).
fn client_from(source: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source)
        .build()
        .expect("a reqwest client")
}

async fn login_status(
    client: &reqwest::Client,
    http: SocketAddr,
    password: &str,
    forwarded_for: Option<&str>,
) -> anyhow::Result<u16> {
    let mut request = client
        .post(format!("http://{http}/api/session"))
        .json(&json!({ "name": OPERATOR, "password": password }));
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    Ok(request.send().await?.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_from_one_address_do_not_keep_the_operator_out() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let attacker = client_from([127, 0, 0, 1].into());
    let mut statuses = Vec::new();
    for _ in 0..50 {
        statuses.push(login_status(&attacker, app.http, "guess guess", None).await?);
    }
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429), "the attacker is slowed down");
    // The operator, at the station's own address, signs in at once.
    let station = client_from([127, 0, 0, 2].into());
    assert_eq!(login_status(&station, app.http, PASSWORD, None).await?, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_forwarded_for_is_ignored_without_a_trusted_proxy() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let client = client_from([127, 0, 0, 1].into());
    for i in 0..10 {
        let forged = format!("203.0.113.{i}");
        login_status(&client, app.http, "guess guess", Some(&forged)).await?;
    }
    // Every try came from 127.0.0.1 whatever the header said: this one waits too.
    assert_eq!(
        login_status(&client, app.http, PASSWORD, Some("198.51.100.7")).await?,
        429
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_client_counts() -> anyhow::Result<()> {
    let app = spawn_app_with(1, |c| {
        c.http.trust.proxies = vec![[127, 0, 0, 1].into()];
    })
    .await?;
    let proxy = client_from([127, 0, 0, 1].into());
    for _ in 0..10 {
        login_status(&proxy, app.http, "guess guess", Some("203.0.113.9")).await?;
    }
    assert_eq!(
        login_status(&proxy, app.http, PASSWORD, Some("203.0.113.9")).await?,
        429
    );
    // Another client behind the same proxy is not kept out.
    assert_eq!(
        login_status(&proxy, app.http, PASSWORD, Some("198.51.100.7")).await?,
        200
    );
    Ok(())
}

// --- 8. cross-site writes ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_writes_with_the_cookie_are_refused() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let mut presser = TestDevice::connect(app.mqtt, &app.credentials[0]).await?;
    let ack = presser.press_and_wait_ack(1, "help").await?;
    let alert = ack["alert"].as_str().unwrap_or_default().to_owned();
    let acknowledge = app.url(&format!("/api/alerts/{alert}/acknowledge"));
    let cookie = format!("tenwatch_session={}", app.token);
    let client = reqwest::Client::new();
    // A form on another site, posted with the station's cookie.
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let response = client
            .post(&acknowledge)
            .header("cookie", &cookie)
            .header(header, value)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("x=1")
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 403, "{header}: {value}");
        let body: Value = response.json().await?;
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("cross-site request refused")),
            "{body}"
        );
    }
    let (_, detail) = app.get_json(&format!("/api/alerts/{alert}")).await?;
    assert_ne!(detail["state"], "acknowledged", "nothing was done");
    // The console's own page does the same and is served.
    let response = client
        .post(&acknowledge)
        .header("cookie", &cookie)
        .header("origin", format!("http://{}", app.http))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_takes_json_only() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let body = json!({ "name": OPERATOR, "password": PASSWORD }).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = reqwest::Client::new()
            .post(app.url("/api/session"))
            .body(body.clone());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await?;
        assert_eq!(response.status().as_u16(), 415, "{content_type:?}");
        let reply: Value = response.json().await?;
        assert_eq!(
            reply["error"],
            "expected a request with Content-Type: application/json"
        );
    }
    // Other JSON bodies were already held to their type: a note sent as text/plain.
    let response = reqwest::Client::new()
        .post(app.url("/api/alerts/A1/notes"))
        .bearer_auth(&app.token)
        .header("content-type", "text/plain")
        .body(r#"{"text":"hi"}"#)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 415);
    Ok(())
}

// --- 9. /metrics ---

const METRICS_TOKEN: &str = "scrape-me-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_unless_asked_for() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let response = reqwest::get(app.url("/metrics")).await?;
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().await?;
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("--metrics-token")),
        "{body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_ask_for_their_token() -> anyhow::Result<()> {
    let app = spawn_app_with(1, |c| c.http.metrics_token = Some(METRICS_TOKEN.into())).await?;
    let client = reqwest::Client::new();
    for token in [
        None,
        Some("wrong-token-0123456789"),
        Some(app.token.as_str()),
    ] {
        let mut request = client.get(app.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    let response = client
        .get(app.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.text().await?.contains("tenwatch_gateway_"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_address_only() -> anyhow::Result<()> {
    let app = spawn_app_with_metrics_listener(1, |_| {}).await?;
    let own = app.metrics_http.expect("a metrics listener");
    let response = reqwest::get(format!("http://{own}/metrics")).await?;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.text().await?.contains("tenwatch_edge_"));
    // Not on the public port, and nothing else on the metrics port.
    assert_eq!(
        reqwest::get(app.url("/metrics")).await?.status().as_u16(),
        404
    );
    assert_eq!(
        reqwest::get(format!("http://{own}/api/alerts"))
            .await?
            .status()
            .as_u16(),
        404
    );
    Ok(())
}

// --- /healthz: health for anyone, its counters only for whom /metrics answers ---

/// `/healthz` as a client with `token` (or none) sees it at `url`.
async fn health_at(url: String, token: Option<&str>) -> anyhow::Result<(u16, Value)> {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    Ok((response.status().as_u16(), response.json().await?))
}

const COUNTERS: [&str; 4] = ["uptime_s", "registry", "edge", "gateway"];

fn assert_health_only(health: &Value) {
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"], "ok", "{health}");
    assert_eq!(health["mqtt"], "ok", "{health}");
    for field in COUNTERS {
        assert!(health.get(field).is_none(), "{field} shown: {health}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_its_counters_only_with_the_metrics_token() -> anyhow::Result<()> {
    let app = spawn_app_with(1, |c| c.http.metrics_token = Some(METRICS_TOKEN.into())).await?;
    let _units = connect_all(app.mqtt, app.cluster(0)).await?;
    // Anyone, a wrong token, a session's token: health, no counters.
    for token in [
        None,
        Some("wrong-token-0123456789"),
        Some(app.token.as_str()),
    ] {
        let (status, health) = health_at(app.url("/healthz"), token).await?;
        assert_eq!(status, 200);
        assert_health_only(&health);
    }
    // The scraper: the counters /metrics shows.
    let (status, health) = health_at(app.url("/healthz"), Some(METRICS_TOKEN)).await?;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["registry"]["devices"], 10, "{health}");
    assert_eq!(health["edge"]["connected"], 10, "{health}");
    assert!(health["gateway"].is_object(), "{health}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_without_a_metrics_token_shows_no_counters() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let (status, health) = health_at(app.url("/healthz"), None).await?;
    assert_eq!(status, 200);
    assert_health_only(&health);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_its_counters_on_the_metrics_address() -> anyhow::Result<()> {
    let app = spawn_app_with_metrics_listener(1, |_| {}).await?;
    let own = app.metrics_http.expect("a metrics listener");
    let (status, health) = health_at(format!("http://{own}/healthz"), None).await?;
    assert_eq!(status, 200);
    assert_eq!(health["registry"]["devices"], 10, "{health}");
    // The public port: health only.
    let (status, health) = health_at(app.url("/healthz"), None).await?;
    assert_eq!(status, 200);
    assert_health_only(&health);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_on_the_metrics_address_asks_for_the_token_when_set() -> anyhow::Result<()> {
    let app =
        spawn_app_with_metrics_listener(1, |c| c.http.metrics_token = Some(METRICS_TOKEN.into()))
            .await?;
    let own = app.metrics_http.expect("a metrics listener");
    let (status, health) = health_at(format!("http://{own}/healthz"), None).await?;
    assert_eq!(status, 200);
    assert_health_only(&health);
    let (_, health) = health_at(format!("http://{own}/healthz"), Some(METRICS_TOKEN)).await?;
    assert_eq!(health["registry"]["devices"], 10, "{health}");
    Ok(())
}
