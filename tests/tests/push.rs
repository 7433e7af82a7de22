//! Web Push to patrol volunteers, end to end: a real gateway, real MQTT units, and the
//! independent push-service emulator (Python, `http_ece` + `py-vapid`) that verifies the
//! VAPID signature and decrypts each push. What the emulator decrypted is what the
//! volunteer's phone would show.

use std::time::Duration;

use serde_json::{json, Value};
use tenwatch_tests::push::{
    require_push_emulator, Behaviour, PushEmulator, PushFront, Subscription,
};
use tenwatch_tests::*;

const ZONE: &str = "11010501";

/// A volunteer on duty at (`lat`, `lon`) with the emulator's subscription `sub` registered.
async fn volunteer_at(
    app: &TestApp,
    name: &str,
    lat: f64,
    lon: f64,
    sub: &Subscription,
) -> anyhow::Result<String> {
    let token = app.volunteer(name, ZONE).await?;
    let (status, body) = app
        .post_as(&token, "/api/volunteer/duty", json!({ "on_duty": true }))
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_as(
            &token,
            "/api/volunteer/position",
            json!({ "lat": lat, "lon": lon }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_as(&token, "/api/push/subscriptions", sub.to_json())
        .await?;
    assert_eq!(status, 201, "{body}");
    Ok(token)
}

/// The recipient entry of volunteer `name` on alert `id`, as the station sees it.
async fn recipient(app: &TestApp, id: &str, name: &str) -> anyhow::Result<Value> {
    let (_, detail) = app.get_json(&format!("/api/alerts/{id}")).await?;
    detail["recipients"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|r| r["kind"] == "volunteer" && r["who"] == name)
        })
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("{name} is not a recipient of {id}: {detail}"))
}

/// Waits (polling the API: the outcome is written by a background task) until volunteer
/// `name`'s push outcome on alert `id` is known.
async fn push_outcome(app: &TestApp, id: &str, name: &str) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = recipient(app, id, name).await {
            if let Some(outcome) = r["push"].as_str() {
                return Ok(outcome.to_owned());
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no push outcome for {name} on {id}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn payload(message: &tenwatch_tests::push::Message) -> Value {
    serde_json::from_str(message.payload.as_deref().expect("a push with a body"))
        .expect("the payload is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_one_pushes_the_nearby_volunteer_what_they_should_see_and_never_twice(
) -> anyhow::Result<()> {
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let app = spawn_app_with(1, |c| {
        c.plan.ring1_after_ms = 300;
        c.plan.ring2_after_ms = 900;
        c.push.allow_loopback = true;
    })
    .await?;
    let presser = app.cluster(0)[0].clone();
    // Near: about 110 m north of the presser; far: outside ring 1's 800 m, reached by ring 2.
    let near_sub = emulator.subscribe().await?;
    let far_sub = emulator.subscribe().await?;
    let near = volunteer_at(
        &app,
        "vol-near",
        presser.lat + 0.001,
        presser.lon,
        &near_sub,
    )
    .await?;
    volunteer_at(&app, "vol-far", presser.lat + 0.02, presser.lon, &far_sub).await?;
    let (_, key) = app.get_as(&near, "/api/push/key").await?;
    let public_key = key["public_key"].as_str().expect("a public key").to_owned();

    let mut unit = TestDevice::connect(app.mqtt, &presser).await?;
    let ack = unit.press_and_wait_ack(1, "medical").await?;
    let id = ack["alert"].as_str().expect("alert id").to_owned();

    // Ring 1 reaches the near volunteer: the push the phone decrypts says what and where.
    let pushed = emulator
        .wait_for_messages(&near_sub.id, 1, Duration::from_secs(15))
        .await?;
    let m = &pushed[0];
    let p = payload(m);
    assert_eq!(p["alert"], id.as_str());
    assert_eq!(p["kind"], "medical");
    assert_eq!(p["label"], presser.label.as_str());
    assert_eq!(p["title"], format!("急救 · {}", presser.label));
    assert_eq!(p["title_en"], format!("Medical · {}", presser.label));
    let distance = p["distance_m"].as_f64().expect("a distance");
    assert!(
        (100.0..125.0).contains(&distance),
        "about 111 m, got {distance}"
    );
    assert!(
        p["body"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("距您 {distance} 米")),
        "{p}"
    );
    assert_eq!(p["url"], format!("/app/#/alert/{id}"));
    assert_eq!(p["ring"], 1);
    // As a push service sees it: urgent, replaceable per alert, signed with the gateway's key.
    assert_eq!(m.urgency.as_deref(), Some("high"));
    let number = id.trim_start_matches('A');
    assert_eq!(
        m.topic.as_deref(),
        Some(format!("tw-alert-{number}").as_str())
    );
    assert_eq!(m.ttl, 900);
    assert!(
        m.jwt_claims.sub.starts_with("mailto:"),
        "{:?}",
        m.jwt_claims
    );
    assert_eq!(m.vapid_public_key, public_key);
    assert_eq!(push_outcome(&app, &id, "vol-near").await?, "accepted");

    // Ring 2 reaches the far volunteer; the near one, already on the alert, is not pushed again.
    let far = emulator
        .wait_for_messages(&far_sub.id, 1, Duration::from_secs(15))
        .await?;
    assert_eq!(payload(&far[0])["ring"], 2);
    assert_eq!(emulator.messages(&near_sub.id).await?.messages.len(), 1);

    // The phone's service worker says it showed the notification: the station sees it.
    let path = format!("/api/alerts/{id}/respond");
    let (status, body) = app
        .post_as(&near, &path, json!({ "answer": "delivered" }))
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        recipient(&app, &id, "vol-near").await?["state"],
        "delivered"
    );

    // Resolved: both phones' notifications are replaced with "no need to come".
    let (status, body) = app
        .post_json(
            &format!("/api/alerts/{id}/resolve"),
            json!({ "category": "help", "note": "送医 / taken to hospital" }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let closed = emulator
        .wait_for_messages(&near_sub.id, 2, Duration::from_secs(15))
        .await?;
    let p = payload(&closed[1]);
    assert_eq!(p["state"], "resolved");
    assert_eq!(p["tag"], format!("tw-alert-{number}"));
    assert!(
        p["title"].as_str().unwrap_or("").starts_with("已解除"),
        "{p}"
    );
    Ok(())
}

/// The station dispatches `name` to a fresh alert from the first household; returns its id.
async fn dispatch_fresh_alert(app: &TestApp, name: &str, seq: u64) -> anyhow::Result<String> {
    let mut unit = TestDevice::connect(app.mqtt, &app.cluster(0)[0]).await?;
    let ack = unit.press_and_wait_ack(seq, "help").await?;
    let id = ack["alert"].as_str().expect("alert id").to_owned();
    let (status, body) = app
        .post_json(
            &format!("/api/alerts/{id}/dispatch"),
            json!({ "volunteer": name }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    Ok(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_subscription_is_removed() -> anyhow::Result<()> {
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let app = spawn_app_with(1, |c| c.push.allow_loopback = true).await?;
    let sub = emulator.subscribe().await?;
    let p = &app.cluster(0)[0];
    let token = volunteer_at(&app, "vol-gone", p.lat, p.lon, &sub).await?;
    let (_, me) = app.get_as(&token, "/api/volunteer/me").await?;
    assert_eq!(me["subscriptions"], 1);

    // The phone unsubscribed: its push service answers 410 from now on.
    emulator.behave(&sub.id, Behaviour::Gone).await?;
    let id = dispatch_fresh_alert(&app, "vol-gone", 1).await?;
    assert_eq!(push_outcome(&app, &id, "vol-gone").await?, "expired");
    let (_, me) = app.get_as(&token, "/api/volunteer/me").await?;
    assert_eq!(
        me["subscriptions"], 0,
        "the gone subscription is removed: {me}"
    );
    let seen = emulator.messages(&sub.id).await?;
    assert_eq!(
        seen.attempts.len(),
        1,
        "a 410 is not retried: {:?}",
        seen.attempts
    );
    Ok(())
}

/// A push service that answers with a redirect is not followed: the push is refused, nothing
/// reaches the address it pointed at, and what the service said is never shown to anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_a_push_service_is_not_followed_nor_its_body_shown() -> anyhow::Result<()> {
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let app = spawn_app_with(1, |c| c.push.allow_loopback = true).await?;
    let (sub, elsewhere) = (emulator.subscribe().await?, emulator.subscribe().await?);
    let p = &app.cluster(0)[0];
    volunteer_at(&app, "vol-moved", p.lat, p.lon, &sub).await?;
    emulator
        .behave(
            &sub.id,
            Behaviour::Redirect {
                to: elsewhere.id.clone(),
            },
        )
        .await?;
    let id = dispatch_fresh_alert(&app, "vol-moved", 1).await?;
    let outcome = push_outcome(&app, &id, "vol-moved").await?;
    assert_eq!(outcome, "failed: 307 from the push service");
    let (_, detail) = app.get_json(&format!("/api/alerts/{id}")).await?;
    assert!(
        !detail.to_string().contains("secret-internal-detail"),
        "the push service's body is not shown: {detail}"
    );
    assert_eq!(emulator.messages(&sub.id).await?.attempts.len(), 1);
    assert!(
        emulator.messages(&elsewhere.id).await?.attempts.is_empty(),
        "the redirect was not followed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_refused_with_429_is_sent_again_after_retry_after() -> anyhow::Result<()> {
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let app = spawn_app_with(1, |c| c.push.allow_loopback = true).await?;
    let sub = emulator.subscribe().await?;
    let p = &app.cluster(0)[0];
    volunteer_at(&app, "vol-busy", p.lat, p.lon, &sub).await?;
    emulator
        .behave(
            &sub.id,
            Behaviour::RateLimit {
                retry_after: 2,
                count: 1,
            },
        )
        .await?;
    let id = dispatch_fresh_alert(&app, "vol-busy", 1).await?;
    let pushed = emulator
        .wait_for_messages(&sub.id, 1, Duration::from_secs(20))
        .await?;
    let p = payload(&pushed[0]);
    assert_eq!(p["alert"], id.as_str());
    // Dispatched from the station, the volunteer still learns how far it is (here: next door).
    assert_eq!(p["distance_m"].as_f64(), Some(0.0), "{p}");
    let seen = emulator.messages(&sub.id).await?;
    let statuses: Vec<Option<u16>> = seen.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(429), Some(201)]);
    let waited = seen.attempts[1].at_ms - seen.attempts[0].at_ms;
    assert!(
        waited >= 2_000,
        "sent again after {waited} ms, before Retry-After: 2"
    );
    assert_eq!(push_outcome(&app, &id, "vol-busy").await?, "accepted");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_service_that_never_answers_holds_up_nobody() -> anyhow::Result<()> {
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let app = spawn_app_with(1, |c| {
        c.push.allow_loopback = true;
        // Long enough that everything below happens while the silent push still hangs.
        c.push.timeout = Duration::from_secs(30);
    })
    .await?;
    let (silent, fine) = (emulator.subscribe().await?, emulator.subscribe().await?);
    let p = app.cluster(0)[0].clone();
    volunteer_at(&app, "vol-silent", p.lat, p.lon, &silent).await?;
    volunteer_at(&app, "vol-fine", p.lat, p.lon, &fine).await?;
    emulator.behave(&silent.id, Behaviour::Hang).await?;

    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    let ack = units[0].press_and_wait_ack(1, "fire").await?;
    let id = ack["alert"].as_str().expect("alert id").to_owned();
    // The silent one first, so its push is on the wire before the other's.
    for name in ["vol-silent", "vol-fine"] {
        let (status, body) = app
            .post_json(
                &format!("/api/alerts/{id}/dispatch"),
                json!({ "volunteer": name }),
            )
            .await?;
        assert_eq!(status, 200, "{body}");
    }
    emulator
        .wait_for_messages(&fine.id, 1, Duration::from_secs(10))
        .await?;
    let hung = emulator.messages(&silent.id).await?;
    assert!(
        hung.attempts.iter().any(|a| a.status.is_none()),
        "the silent push service is still holding its push: {:?}",
        hung.attempts
    );
    // Meanwhile the units went on as usual: a new press reaches the neighbours and is acked.
    let ack = units[1].press_and_wait_ack(1, "help").await?;
    assert_eq!(ack["state"], "raised");
    let alert = units[2].expect_message("/alert").await?;
    assert!(alert["alert"].is_string(), "{alert}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subscriptions_are_refused_with_a_reason() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let volunteer = app.volunteer("vol-bad", ZONE).await?;
    let key =
        "BAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-P0A";
    let auth = "AAECAwQFBgcICQoLDA0ODw";
    let cases = [
        (
            json!({ "endpoint": "http://push.example.org/x", "keys": { "p256dh": key, "auth": auth } }),
            400,
            "https",
        ),
        (
            json!({ "endpoint": "http://127.0.0.1:9/x", "keys": { "p256dh": key, "auth": auth } }),
            400,
            "https",
        ),
        (
            json!({ "endpoint": "https://push.example.org/x", "keys": { "p256dh": "AAAA", "auth": auth } }),
            400,
            "p256dh",
        ),
        (
            json!({ "endpoint": "https://push.example.org/x", "keys": { "p256dh": key, "auth": "AA" } }),
            400,
            "auth",
        ),
        (
            json!({ "endpoint": "https://push.example.org/x" }),
            422,
            "keys",
        ),
        (json!("garbage"), 422, ""),
    ];
    for (body, want, says) in cases {
        let (status, answer) = app
            .post_as(&volunteer, "/api/push/subscriptions", body.clone())
            .await?;
        assert_eq!(status, want, "{body} -> {answer}");
        let error = answer["error"].as_str().unwrap_or("");
        assert!(
            error.contains(says),
            "{body}: {error:?} should mention {says:?}"
        );
    }
    // A station account has no phone to push; no session, no subscription.
    let (status, _) = app
        .post_json(
            "/api/push/subscriptions",
            json!({ "endpoint": "https://push.example.org/x", "keys": { "p256dh": key, "auth": auth } }),
        )
        .await?;
    assert_eq!(status, 403);
    let response = reqwest::Client::new()
        .post(app.url("/api/push/subscriptions"))
        .json(&json!({}))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 401);
    // A good one is kept, and removed on request.
    let good = json!({ "endpoint": "https://push.example.org/ok", "expirationTime": null,
        "keys": { "p256dh": key, "auth": auth } });
    let (status, body) = app
        .post_as(&volunteer, "/api/push/subscriptions", good)
        .await?;
    assert_eq!(status, 201, "{body}");
    let response = reqwest::Client::new()
        .delete(app.url("/api/push/subscriptions"))
        .bearer_auth(&volunteer)
        .json(&json!({ "endpoint": "https://push.example.org/ok" }))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.json::<Value>().await?["removed"], true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patrol_check_ins_are_kept_and_listed_newest_first() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let volunteer = app.volunteer("vol-patrol", ZONE).await?;
    let p = &app.cluster(0)[0];
    for (i, note) in ["北门 north gate", "菜市场 market"].iter().enumerate() {
        let (status, body) = app
            .post_as(
                &volunteer,
                "/api/volunteer/checkin",
                json!({ "lat": p.lat + i as f64 * 0.001, "lon": p.lon, "note": note }),
            )
            .await?;
        assert_eq!(status, 201, "{body}");
        assert!(body["at_ms"].as_i64().is_some(), "{body}");
    }
    let (status, body) = app
        .post_as(
            &volunteer,
            "/api/volunteer/checkin",
            json!({ "lat": 91.0, "lon": 0.0 }),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    let (_, list) = app.get_as(&volunteer, "/api/volunteer/checkins").await?;
    let notes: Vec<&str> = list["checkins"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| c["note"].as_str())
        .collect();
    assert_eq!(notes, ["菜市场 market", "北门 north gate"]);
    // Only volunteers patrol.
    let (status, _) = app
        .post_json(
            "/api/volunteer/checkin",
            json!({ "lat": p.lat, "lon": p.lon }),
        )
        .await?;
    assert_eq!(status, 403);
    Ok(())
}

/// A push endpoint that points inside the station's network is refused when a volunteer
/// registers it, with the reason; and one that got into the store all the same (registered
/// before this check existed) is never called: the push fails before any connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inward_endpoint_is_refused_at_registration_and_never_called() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let token = app.volunteer("vol-inward", ZONE).await?;
    let key =
        "BAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-P0A";
    let auth = "AAECAwQFBgcICQoLDA0ODw";
    for (endpoint, says) in [
        ("https://0.0.0.0:8443/x", "unspecified"),
        ("https://[::]/x", "unspecified"),
        ("https://[::ffff:127.0.0.1]/x", "loopback"),
        ("https://localhost./x", "this machine"),
        ("https://10.20.30.40/x", "private"),
        ("https://169.254.169.254/latest", "link-local"),
        ("https://[fd12::1]/x", "unique local"),
        ("https://intranet/x", "local network"),
    ] {
        let body = json!({ "endpoint": endpoint, "keys": { "p256dh": key, "auth": auth } });
        let (status, answer) = app.post_as(&token, "/api/push/subscriptions", body).await?;
        assert_eq!(status, 400, "{endpoint}: {answer}");
        let error = answer["error"].as_str().unwrap_or("");
        assert!(
            error.contains(says),
            "{endpoint}: {error:?} should say {says:?}"
        );
    }
    let (_, me) = app.get_as(&token, "/api/volunteer/me").await?;
    assert_eq!(me["subscriptions"], 0, "{me}");

    // Stored directly, as an old registration would be: a listener on this machine that
    // must never see the gateway.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let endpoint = format!("https://127.0.0.1:{}/push/x", listener.local_addr()?.port());
    let store = tenwatch_gateway::store::open(&app.config.database_url).await?;
    let account = store
        .account_by_name(&tenwatch_gateway::accounts::AccountName::parse(
            "vol-inward",
        )?)
        .await?
        .expect("the volunteer");
    store
        .add_push_subscription(
            account.principal.account_id,
            &tenwatch_gateway::store::push::NewPushSubscription {
                endpoint: &endpoint,
                p256dh: key,
                auth,
                user_agent: "old",
            },
            0,
        )
        .await?;
    let id = dispatch_fresh_alert(&app, "vol-inward", 1).await?;
    let outcome = push_outcome(&app, &id, "vol-inward").await?;
    assert!(
        outcome.starts_with("failed: not sent:") && outcome.contains("loopback"),
        "{outcome}"
    );
    // The outcome is written after the attempt: a connection would be waiting by now.
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the gateway connected to the inward endpoint: {other:?}"),
    }
    Ok(())
}

/// Registering subscriptions is limited per volunteer (a burst of 20, then one every 3 min:
/// 429 with Retry-After), and a volunteer keeps the newest 10: one dispatch never opens
/// hundreds of connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volunteer_cannot_pile_up_push_subscriptions() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let token = app.volunteer("vol-many", ZONE).await?;
    let key =
        "BAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-P0A";
    let auth = "AAECAwQFBgcICQoLDA0ODw";
    let subscribe = |i: u32| {
        let body = json!({ "endpoint": format!("https://push.example.org/{i}"),
            "keys": { "p256dh": key, "auth": auth } });
        app.post_as(&token, "/api/push/subscriptions", body)
    };
    for i in 0..20 {
        let (status, body) = subscribe(i).await?;
        assert_eq!(status, 201, "{i}: {body}");
    }
    let (_, me) = app.get_as(&token, "/api/volunteer/me").await?;
    assert_eq!(me["subscriptions"], 10, "the newest ten are kept: {me}");
    let response = reqwest::Client::new()
        .post(app.url("/api/push/subscriptions"))
        .bearer_auth(&token)
        .json(&json!({ "endpoint": "https://push.example.org/20",
            "keys": { "p256dh": key, "auth": auth } }))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "180");
    let error = response.json::<Value>().await?["error"].to_string();
    assert!(error.contains("too many new push subscriptions"), "{error}");
    Ok(())
}

/// Waits until subscription `id`'s endpoint has seen `n` requests, answered or not.
async fn wait_for_attempts(emulator: &PushEmulator, id: &str, n: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = emulator.messages(id).await?;
        if seen.attempts.len() >= n {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} pushes tried: {:?}",
            seen.attempts.len(),
            seen.attempts
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A volunteer whose alert push the push service still holds when the station resolves is
/// told it is over all the same: the phone does not go on showing a closed alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volunteer_whose_push_is_still_in_flight_is_told_the_alert_is_over() -> anyhow::Result<()>
{
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let app = spawn_app_with(1, |c| {
        c.push.allow_loopback = true;
        // Held pushes wait for the test, not for a timeout; let go, they are tried again soon.
        c.push.timeout = Duration::from_secs(30);
        c.push.backoff = Duration::from_millis(50);
    })
    .await?;
    let sub = emulator.subscribe().await?;
    let p = app.cluster(0)[0].clone();
    volunteer_at(&app, "vol-held", p.lat, p.lon, &sub).await?;
    emulator.behave(&sub.id, Behaviour::Hang).await?;
    let id = dispatch_fresh_alert(&app, "vol-held", 1).await?;
    // The alert's push is on the wire and held: what became of it is not known yet.
    wait_for_attempts(&emulator, &sub.id, 1).await?;
    assert!(
        recipient(&app, &id, "vol-held").await?["push"].is_null(),
        "the held push has no outcome yet"
    );

    let (status, body) = app
        .post_json(
            &format!("/api/alerts/{id}/resolve"),
            json!({ "category": "help", "note": "" }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    // The "over" push is sent too, though the first has not settled (it is held as well).
    wait_for_attempts(&emulator, &sub.id, 2).await?;
    // The service answers again: both are tried anew and accepted, and the phone shows that
    // the alert is over.
    emulator.behave(&sub.id, Behaviour::Ok).await?;
    let got = emulator
        .wait_for_messages(&sub.id, 2, Duration::from_secs(15))
        .await?;
    let titles: Vec<String> = got
        .iter()
        .map(|m| payload(m)["title"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        titles.iter().any(|t| t.starts_with("已解除")),
        "an 'over' push among {titles:?}"
    );
    Ok(())
}

/// A push service that speaks HTTP/2 behind TLS, as the browsers' services do, gets an alert's
/// pushes to a dozen volunteers as streams of one connection, not a connection each; each push
/// is still verified and decrypted behind the front. The gateway trusts the front's own
/// certificate through `--push-ca-file`'s setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_push_service_gets_an_alerts_pushes_over_one_connection() -> anyhow::Result<()> {
    if !require_push_emulator() || !require_tool("nginx") || !require_tool("openssl") {
        return Ok(());
    }
    const VOLUNTEERS: usize = 12;
    let front = PushFront::start().await?;
    let roots = front.certificate_pem()?;
    let app = spawn_app_with(1, move |c| {
        c.plan.ring1_after_ms = 1;
        c.push.allow_loopback = true;
        c.push.extra_roots = roots;
        // A dozen volunteers sign in from one address here: not a password spray.
        c.accounts.limits.peer_burst = 100;
    })
    .await?;
    let presser = app.cluster(0)[0].clone();
    let mut subs = Vec::new();
    for i in 0..VOLUNTEERS {
        let sub = front.emulator.subscribe().await?;
        assert!(sub.endpoint.starts_with(front.origin()), "{}", sub.endpoint);
        let lat = presser.lat + 0.0002 * (i as f64 + 1.0);
        volunteer_at(&app, &format!("vol-h2-{i:02}"), lat, presser.lon, &sub).await?;
        subs.push(sub);
    }

    let mut unit = TestDevice::connect(app.mqtt, &presser).await?;
    unit.press_and_wait_ack(1, "help").await?;
    let seen = front
        .emulator
        .wait_total(VOLUNTEERS as u64, DEADLINE)
        .await?;
    assert_eq!(seen.messages, VOLUNTEERS as u64, "every volunteer pushed");
    for sub in &subs {
        let got = front.emulator.messages(&sub.id).await?;
        assert!(got.rejections.is_empty(), "{:?}", got.rejections);
        assert_eq!(got.messages.len(), 1);
        assert_eq!(payload(&got.messages[0])["kind"], "help");
    }
    let pushes: Vec<_> = front
        .requests()?
        .into_iter()
        .filter(|r| r.path.starts_with("/push/"))
        .collect();
    assert_eq!(pushes.len(), VOLUNTEERS, "{pushes:?}");
    assert!(
        pushes
            .iter()
            .all(|r| r.protocol == "HTTP/2.0" && r.status == 201),
        "HTTP/2 and accepted: {pushes:?}"
    );
    let connections: std::collections::HashSet<u64> = pushes.iter().map(|r| r.connection).collect();
    assert_eq!(connections.len(), 1, "one connection: {pushes:?}");
    Ok(())
}
