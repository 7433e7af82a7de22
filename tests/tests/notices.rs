//! Notices to residents and what residents think, end to end through the real edge, on SQLite
//! and on PostgreSQL: an operator's notice reaches the units of the clusters it is for (and a
//! unit that was away when it comes back), each unit's `delivered` shows in the counts the
//! console reads; a forged topic, a receipt for a notice not sent to the unit, a malformed or
//! oversize payload and bad HTTP input are each refused and change nothing. A volunteer on
//! duty gets the notice as a Web Push of lower urgency than an alert's (the push-service
//! emulator, which we did not write, says what arrived). After an alert is resolved, the
//! presser's household answers 满意 / 不满意 once; the answer shows on the alert and in the
//! statistics, and an answer for an open alert, for another household's alert or a second
//! one is refused. The simulator's unit (tenwatch-sim) does its part on its own.

mod backends;

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use backends::app_on;
use serde_json::{json, Value};
use tenwatch_sim::device::{self, DeviceConfig, DeviceCtx, DeviceEvent, EventSink};
use tenwatch_tests::push::{require_push_emulator, PushEmulator};
use tenwatch_tests::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// GETs `path` as the operator until `check` holds on a 200 answer (receipts are written off
/// the uplink worker and show a moment later).
async fn once(app: &TestApp, path: &str, check: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, body) = app.get_json(path).await?;
        if status == 200 && check(&body) {
            return Ok(body);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{path} never showed what was expected: {status} {body}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The notice `id` as `GET /api/notices` lists it.
fn listed(list: &Value, id: &str) -> Value {
    list["notices"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|n| n["id"].as_i64().map(|i| format!("N{i}")).as_deref() == Some(id))
        })
        .cloned()
        .unwrap_or(Value::Null)
}

/// Posts a notice as the operator; its id as units see it (`N7`) and the answer.
async fn send(app: &TestApp, body: Value) -> anyhow::Result<(String, Value)> {
    let (status, answer) = app.post_json("/api/notices", body).await?;
    assert_eq!(status, 201, "{answer}");
    let id = answer["id"].as_i64().expect("an id");
    Ok((format!("N{id}"), answer))
}

async fn notices_reach_units_and_count_who_got_them(backend: &str) -> anyhow::Result<()> {
    let Some((_db, app)) = app_on(backend, "notices_reach_units", 2).await? else {
        return Ok(());
    };
    let (c0, c1) = (app.cluster(0).to_vec(), app.cluster(1).to_vec());
    let mut units = Vec::new();
    for cred in &c0[..3] {
        units.push(TestDevice::connect(app.mqtt, cred).await?);
    }
    let mut other_cluster = TestDevice::connect(app.mqtt, &c1[0]).await?;

    let (id, answer) = send(
        &app,
        json!({
            "clusters": [c0[0].cluster],
            "kind": "wanted",
            "title": "协查通报:寻找走失老人",
            "body": "王大爷,78岁,身穿蓝色外套。\n见到请联系派出所。",
        }),
    )
    .await?;
    // Every household of the cluster, nobody yet; no volunteer is on duty.
    assert_eq!(answer["households"], 10, "{answer}");
    assert_eq!(answer["households_delivered"], 0, "{answer}");
    assert_eq!(answer["volunteers"], 0, "{answer}");
    assert_eq!(answer["clusters"], json!([c0[0].cluster]), "{answer}");

    // Each unit online hears it on its cluster topic, as sent, and says it showed it.
    for unit in &mut units {
        let heard = unit.expect_message("/notice").await?;
        assert_eq!(heard["notice"], id.as_str());
        assert_eq!(heard["kind"], "wanted");
        assert_eq!(heard["title"], "协查通报:寻找走失老人");
        assert_eq!(
            heard["body"],
            "王大爷,78岁,身穿蓝色外套。\n见到请联系派出所。"
        );
        unit.publish("notice", json!({ "notice": id })).await?;
    }
    let list = once(&app, "/api/notices", |l| {
        listed(l, &id)["households_delivered"] == 3
    })
    .await?;
    let shown = listed(&list, &id);
    assert_eq!(
        (shown["units"].as_i64(), shown["units_delivered"].as_i64()),
        (Some(10), Some(3))
    );
    assert_eq!(shown["author"], OPERATOR);

    // A second receipt from the same unit, a receipt from a unit it was not sent to, and a
    // malformed one: refused or ignored, counted, and nothing changes.
    let before = app.metrics.snapshot();
    units[0].publish("notice", json!({ "notice": id })).await?;
    other_cluster
        .publish("notice", json!({ "notice": id }))
        .await?;
    other_cluster
        .publish_raw(
            &format!("tw/d/{}/up/notice", c1[0].device),
            b"{\"notice\": N".to_vec(),
        )
        .await?;
    other_cluster
        .publish("notice", json!({ "notice": "X1" }))
        .await?;
    app.wait_for_metrics("receipts handled", |m| {
        m.notice_receipts >= before.notice_receipts + 2
            && m.uplink_refused > before.uplink_refused
            && m.uplink_malformed >= before.uplink_malformed + 2
    })
    .await?;
    let (_, list) = app.get_json("/api/notices").await?;
    assert_eq!(listed(&list, &id)["households_delivered"], 3, "{list}");

    // A unit posing as the station on its cluster's notice topic is a forged topic: closed
    // by the edge, and its neighbour hears nothing of it.
    let mut neighbour = TestDevice::connect(app.mqtt, &c1[1]).await?;
    let mut forger = TestDevice::connect(app.mqtt, &c1[2]).await?;
    forger
        .publish_raw(
            &format!("tw/c/{}/notice", c1[0].cluster),
            json!({ "notice": "N999", "kind": "wanted", "title": "假通知", "body": "x" })
                .to_string()
                .into_bytes(),
        )
        .await?;
    forger.expect_disconnected().await?;

    // The other cluster's units were not sent the first notice (nor the forged one): the
    // first they hear is their own.
    let (second, _) = send(
        &app,
        json!({ "clusters": [c1[0].cluster], "kind": "weather", "title": "暴雨预警", "body": "今晚有暴雨,请关好门窗。" }),
    )
    .await?;
    let heard = other_cluster.expect_message("/notice").await?;
    assert_eq!(heard["notice"], second.as_str(), "{heard}");
    let heard = neighbour.expect_message("/notice").await?;
    assert_eq!(heard["notice"], second.as_str(), "{heard}");

    // A unit that was away gets it on its own down/notice when it is back, and reports it.
    let mut late = TestDevice::connect(app.mqtt, &c0[5]).await?;
    let heard = late.expect_message("/down/notice").await?;
    assert_eq!(heard["notice"], id.as_str());
    late.publish("notice", json!({ "notice": id })).await?;
    once(&app, "/api/notices", |l| {
        listed(l, &id)["households_delivered"] == 4
    })
    .await?;

    // A unit publishing a receipt as another unit is a forged topic: its connection is
    // closed by the edge, and the count does not move.
    let forged = &mut units[1];
    forged
        .publish_raw(
            &format!("tw/d/{}/up/notice", c0[7].device),
            json!({ "notice": id }).to_string().into_bytes(),
        )
        .await?;
    forged.expect_disconnected().await?;
    // An oversize receipt closes the unit's connection too ("oversize payload").
    let mut big = TestDevice::connect(app.mqtt, &c0[8]).await?;
    big.expect_message("/down/notice").await?;
    let padding = "x".repeat(4096);
    big.publish("notice", json!({ "notice": id, "pad": padding }))
        .await?;
    big.expect_disconnected().await?;
    let (_, list) = app.get_json("/api/notices").await?;
    assert_eq!(listed(&list, &id)["households_delivered"], 4, "{list}");
    assert_eq!(listed(&list, &second)["households"], 10, "{list}");

    // Bad HTTP input: each a clear refusal, and no notice is stored for it.
    for (body, status, says) in [
        (
            json!({ "kind": "party", "title": "t", "body": "b" }),
            400,
            "notice kind",
        ),
        (
            json!({ "kind": "fire", "title": " ", "body": "b" }),
            400,
            "title",
        ),
        (
            json!({ "kind": "fire", "title": "t", "body": "火".repeat(401) }),
            400,
            "at most 400",
        ),
        (
            json!({ "kind": "fire", "title": "t", "body": "b", "clusters": ["nowhere"] }),
            400,
            "not a cluster of zone",
        ),
        (
            json!({ "kind": "fire", "title": "t", "body": "b", "clusters": ["a/b"] }),
            400,
            "cluster id",
        ),
        (
            json!({ "kind": "fire", "title": "t", "body": "b", "zone": "11010502" }),
            403,
            "not one of yours",
        ),
        (json!({ "kind": "fire", "title": "t" }), 422, "body"),
    ] {
        let (got, answer) = app.post_json("/api/notices", body.clone()).await?;
        assert_eq!(got, status, "{body} → {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| e.contains(says)),
            "{body} → {answer}"
        );
    }
    let response = reqwest::Client::new()
        .post(app.url("/api/notices"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"kind":"fire","title":"t","body":"{}"}}"#,
            "x".repeat(70_000)
        ))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 413);
    let (_, list) = app.get_json("/api/notices").await?;
    assert_eq!(list["notices"].as_array().map(Vec::len), Some(2), "{list}");

    // An operator of another zone sees none of them and may not send to this one.
    {
        let store = tenwatch_gateway::store::open(&app.config.database_url).await?;
        let zone = tenwatch_gateway::domain::ZoneCode::parse("11010502")?;
        store.add_zone(&zone, "第二责任区").await?;
    }
    let other = app.operator("station-b", "11010502").await?;
    let (status, theirs) = app.get_as(&other, "/api/notices").await?;
    assert_eq!(
        (status, theirs["notices"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (status, _) = app
        .post_as(
            &other,
            "/api/notices",
            json!({ "zone": "11010501", "kind": "fire", "title": "t", "body": "b" }),
        )
        .await?;
    assert_eq!(status, 403);
    // A volunteer is not an operator.
    let volunteer = app.volunteer("vol-1", "11010501").await?;
    let (status, _) = app.get_as(&volunteer, "/api/notices").await?;
    assert_eq!(status, 403);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_notices_reach_units_and_count_who_got_them() -> anyhow::Result<()> {
    notices_reach_units_and_count_who_got_them("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_notices_reach_units_and_count_who_got_them() -> anyhow::Result<()> {
    notices_reach_units_and_count_who_got_them("postgres").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volunteer_on_duty_is_pushed_a_notice_at_a_lower_urgency_than_an_alert(
) -> anyhow::Result<()> {
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let app = spawn_app_with(1, |c| c.push.allow_loopback = true).await?;
    let sub = emulator.subscribe().await?;
    let token = app.volunteer("vol-notice", "11010501").await?;
    let (status, body) = app
        .post_as(&token, "/api/volunteer/duty", json!({ "on_duty": true }))
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_as(&token, "/api/push/subscriptions", sub.to_json())
        .await?;
    assert_eq!(status, 201, "{body}");

    let (id, answer) = send(
        &app,
        json!({ "kind": "fire", "title": "防火提示", "body": "天干物燥,小心火烛。" }),
    )
    .await?;
    assert_eq!(answer["volunteers"], 1, "{answer}");
    let pushed = emulator
        .wait_for_messages(&sub.id, 1, Duration::from_secs(15))
        .await?;
    let m = &pushed[0];
    assert_eq!(m.urgency.as_deref(), Some("normal"), "an alert's is high");
    assert_eq!(
        m.topic.as_deref(),
        Some(format!("tw-notice-{}", &id[1..]).as_str())
    );
    let p: Value = serde_json::from_str(m.payload.as_deref().expect("a body"))?;
    assert_eq!(p["notice"], id.as_str());
    assert_eq!(p["title"], "火灾预警 · 防火提示");
    assert_eq!(p["title_en"], "Fire warning · 防火提示");
    assert_eq!(p["body"], "天干物燥,小心火烛。");
    assert!(p.get("alert").is_none(), "not an alert: {p}");
    once(&app, "/api/notices", |l| {
        listed(l, &id)["volunteers_reached"] == 1
    })
    .await?;

    // A prevention tip is low: it may wait for the phone's next wake-up.
    send(
        &app,
        json!({ "kind": "prevention", "title": "防诈骗", "body": "不要向陌生人转账。" }),
    )
    .await?;
    let pushed = emulator
        .wait_for_messages(&sub.id, 2, Duration::from_secs(15))
        .await?;
    assert_eq!(pushed[1].urgency.as_deref(), Some("low"));
    Ok(())
}

async fn resolve(app: &TestApp, id: &str) -> anyhow::Result<()> {
    let (status, body) = app
        .post_json(
            &format!("/api/alerts/{id}/resolve"),
            json!({ "category": "help", "note": "" }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

async fn households_answer_once_on_their_resolved_alert(backend: &str) -> anyhow::Result<()> {
    let Some((_db, app)) = app_on(backend, "satisfaction", 1).await? else {
        return Ok(());
    };
    let creds = app.cluster(0).to_vec();
    let mut presser = TestDevice::connect(app.mqtt, &creds[0]).await?;
    let neighbour = TestDevice::connect(app.mqtt, &creds[1]).await?;
    let ack = presser.press_and_wait_ack(1, "help").await?;
    assert!(
        ack.get("survey").is_none(),
        "no question while it is open: {ack}"
    );
    let alert = ack["alert"].as_str().expect("alert id").to_owned();

    // Open: refused. Resolved, then the household is asked on its down/ack.
    let before = app.metrics.snapshot();
    presser
        .publish(
            "satisfaction",
            json!({ "alert": alert, "answer": "unsatisfied" }),
        )
        .await?;
    app.wait_for_metrics("the early answer refused", |m| {
        m.uplink_refused > before.uplink_refused
    })
    .await?;
    resolve(&app, &alert).await?;
    let asked = loop {
        let ack = presser.expect_message("/down/ack").await?;
        if ack["state"] == "resolved" {
            break ack;
        }
    };
    assert_eq!(asked["survey"], true, "{asked}");

    // A neighbour answering for this household's alert, a malformed answer: refused.
    let before = app.metrics.snapshot();
    neighbour
        .publish(
            "satisfaction",
            json!({ "alert": alert, "answer": "unsatisfied" }),
        )
        .await?;
    neighbour
        .publish("satisfaction", json!({ "alert": alert, "answer": "meh" }))
        .await?;
    app.wait_for_metrics("the neighbour's answer refused", |m| {
        m.uplink_refused > before.uplink_refused && m.uplink_malformed > before.uplink_malformed
    })
    .await?;
    // The household's answer is kept; a second one is refused and changes nothing.
    presser
        .publish(
            "satisfaction",
            json!({ "alert": alert, "answer": "satisfied" }),
        )
        .await?;
    let detail = once(&app, &format!("/api/alerts/{alert}"), |d| {
        !d["satisfaction"].is_null()
    })
    .await?;
    assert_eq!(detail["satisfaction"]["satisfied"], true, "{detail}");
    let before = app.metrics.snapshot();
    presser
        .publish(
            "satisfaction",
            json!({ "alert": alert, "answer": "unsatisfied" }),
        )
        .await?;
    app.wait_for_metrics("the second answer refused", |m| {
        m.uplink_refused > before.uplink_refused
    })
    .await?;
    let (_, detail) = app.get_json(&format!("/api/alerts/{alert}")).await?;
    assert_eq!(detail["satisfaction"]["satisfied"], true, "{detail}");
    let answers: Vec<&Value> = detail["timeline"]
        .as_array()
        .map(|t| t.iter().filter(|e| e["action"] == "satisfaction").collect())
        .unwrap_or_default();
    assert_eq!(answers.len(), 1, "{detail}");
    assert_eq!(answers[0]["detail"], "satisfied");

    // The statistics count it.
    let (status, stats) = app.get_json("/api/stats").await?;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stats["satisfaction"],
        json!({ "resolved": 1, "answered": 1, "satisfied": 1, "rate": 1.0 }),
        "{stats}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_households_answer_once_on_their_resolved_alert() -> anyhow::Result<()> {
    households_answer_once_on_their_resolved_alert("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_households_answer_once_on_their_resolved_alert() -> anyhow::Result<()> {
    households_answer_once_on_their_resolved_alert("postgres").await
}

/// Hands every event of the simulator's unit to the test.
struct Events(mpsc::UnboundedSender<DeviceEvent>);

impl EventSink for Events {
    fn event(&self, _: &DeviceCtx, _: tokio::time::Instant, event: DeviceEvent) {
        let _ = self.0.send(event);
    }
}

/// The simulated unit's next event.
async fn next(events: &mut mpsc::UnboundedReceiver<DeviceEvent>) -> anyhow::Result<DeviceEvent> {
    tokio::time::timeout(DEADLINE, events.recv())
        .await
        .ok()
        .flatten()
        .ok_or_else(|| anyhow::anyhow!("the simulated unit said nothing"))
}

/// The simulator's unit: shows a notice and reports it, and answers (here 不满意) once its
/// household's alert is resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_unit_reports_notices_and_answers_on_its_resolved_alert() -> anyhow::Result<()>
{
    let app = spawn_app(1).await?;
    let text = serde_json::to_string(&app.credentials)?;
    let creds = tenwatch_sim::creds::parse(&text, "spawn_app").expect("the simulator reads them");
    let mut cfg = DeviceConfig::new("127.0.0.1", app.mqtt.port());
    cfg.heartbeat = None;
    cfg.satisfaction = Some(false);
    let (tx, mut events) = mpsc::unbounded_channel();
    let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
    let ctx = Arc::new(DeviceCtx {
        index: 0,
        topics: tenwatch_sim::proto::Topics::new(&creds[0].device, &creds[0].cluster),
        cred: creds[0].clone(),
    });
    let unit = device::spawn(
        ctx,
        Arc::new(cfg),
        Arc::new(Events(tx)),
        stop.clone(),
        &tracker,
    );
    while !matches!(next(&mut events).await?, DeviceEvent::Online) {}

    let (id, _) = send(
        &app,
        json!({ "kind": "prevention", "title": "防盗提示", "body": "出门请锁好门窗。" }),
    )
    .await?;
    loop {
        if let DeviceEvent::Notice { notice, first } = next(&mut events).await? {
            assert_eq!((notice.notice.0.as_str(), first), (id.as_str(), true));
            assert_eq!(notice.title, "防盗提示");
            break;
        }
    }
    once(&app, "/api/notices", |l| {
        listed(l, &id)["units_delivered"] == 1
    })
    .await?;

    unit.press(tenwatch_sim::proto::PressKind::Help)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let alert = loop {
        if let DeviceEvent::Acked {
            ack, first: true, ..
        } = next(&mut events).await?
        {
            break ack.alert.0;
        }
    };
    resolve(&app, &alert).await?;
    loop {
        if let DeviceEvent::Surveyed {
            alert: a,
            satisfied,
        } = next(&mut events).await?
        {
            assert_eq!((a.0.as_str(), satisfied), (alert.as_str(), false));
            break;
        }
    }
    let detail = once(&app, &format!("/api/alerts/{alert}"), |d| {
        !d["satisfaction"].is_null()
    })
    .await?;
    assert_eq!(detail["satisfaction"]["satisfied"], false, "{detail}");
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Behind an external broker (Mosquitto, the ACL its exporter writes): the gateway reads the
/// new uplinks through its own subscriptions, and a unit back online asks for what it missed
/// with `up/subscribed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_mosquitto_notices_and_answers_arrive_and_a_returning_unit_catches_up(
) -> anyhow::Result<()> {
    if !tenwatch_tests::mosquitto::require_mosquitto() {
        return Ok(());
    }
    let app = spawn_app_on_mosquitto(1, |_| {}).await?;
    let creds = app.cluster(0).to_vec();
    let mut online = TestDevice::connect(app.mqtt, &creds[0]).await?;
    let (id, _) = send(
        &app,
        json!({ "kind": "weather", "title": "大风预警", "body": "今夜大风,请收好阳台杂物。" }),
    )
    .await?;
    let heard = online.expect_message("/notice").await?;
    assert_eq!(heard["notice"], id.as_str());
    online.publish("notice", json!({ "notice": id })).await?;
    once(&app, "/api/notices", |l| {
        listed(l, &id)["units_delivered"] == 1
    })
    .await?;

    let mut back = TestDevice::connect(app.mqtt, &creds[1]).await?;
    back.publish("subscribed", json!({})).await?;
    let heard = back.expect_message("/down/notice").await?;
    assert_eq!(heard["notice"], id.as_str());
    back.publish("notice", json!({ "notice": id })).await?;
    once(&app, "/api/notices", |l| {
        listed(l, &id)["households_delivered"] == 2
    })
    .await?;

    let ack = online.press_and_wait_ack(1, "help").await?;
    let alert = ack["alert"].as_str().expect("alert id").to_owned();
    resolve(&app, &alert).await?;
    online
        .publish(
            "satisfaction",
            json!({ "alert": alert, "answer": "unsatisfied" }),
        )
        .await?;
    let detail = once(&app, &format!("/api/alerts/{alert}"), |d| {
        !d["satisfaction"].is_null()
    })
    .await?;
    assert_eq!(detail["satisfaction"]["satisfied"], false, "{detail}");
    Ok(())
}

/// The lists page as every list does: newest first, `limit` a page, `next` the cursor of the
/// page after (null on the last), `from`/`to` a time range in either form; a cursor the
/// server did not give and a limit out of range are refused in words. Notices and a
/// volunteer's patrol check-ins.
async fn lists_page_by_cursor_and_time(backend: &str) -> anyhow::Result<()> {
    let Some((_db, app)) = app_on(backend, "paging", 1).await? else {
        return Ok(());
    };
    let mut sent = Vec::new();
    for i in 0..5 {
        let (_, n) = send(
            &app,
            json!({ "kind": "prevention", "title": format!("提示 {i}"), "body": "关好门窗。" }),
        )
        .await?;
        sent.push(n);
    }
    // Page by page, two at a time: every notice once, newest first.
    let mut seen = Vec::new();
    let mut path = "/api/notices?limit=2".to_owned();
    loop {
        let (status, page) = app.get_json(&path).await?;
        assert_eq!(status, 200, "{page}");
        let items = page["notices"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 2, "{page}");
        seen.extend(items.iter().filter_map(|n| n["id"].as_i64()));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/notices?limit=2&cursor={next}"),
            None => break,
        }
    }
    let mut want: Vec<i64> = sent.iter().filter_map(|n| n["id"].as_i64()).collect();
    want.reverse();
    assert_eq!(seen, want, "every notice once, newest first");
    // A range: from the third notice's moment (ISO 8601, as the answer says it) on.
    let third = sent[2]["created_at"]
        .as_str()
        .expect("created_at")
        .to_owned();
    let (_, page) = app
        .get_json(&format!("/api/notices?from={}", third.replace('+', "%2B")))
        .await?;
    let ids: Vec<i64> = page["notices"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n["id"].as_i64()).collect())
        .unwrap_or_default();
    assert!(
        ids.len() >= 3 && ids.iter().all(|id| *id >= want[2]),
        "{ids:?} from {third}"
    );
    for (query, words) in [
        (
            "cursor=bm90IGEgY3Vyc29y",
            "cursor is not one this server gave",
        ),
        ("limit=0", "limit must be from 1 to 200"),
        ("from=yesterday", "from must be a time"),
    ] {
        let (status, body) = app.get_json(&format!("/api/notices?{query}")).await?;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains(words)),
            "{query}: {body}"
        );
    }

    // A volunteer's check-ins page the same way.
    let volunteer = app.volunteer("vol-paging", "11010501").await?;
    let p = &app.cluster(0)[0];
    for i in 0..3 {
        let (status, body) = app
            .post_as(
                &volunteer,
                "/api/volunteer/checkin",
                json!({ "lat": p.lat, "lon": p.lon, "note": format!("第 {i} 圈") }),
            )
            .await?;
        assert_eq!(status, 201, "{body}");
    }
    let (_, first) = app
        .get_as(&volunteer, "/api/volunteer/checkins?limit=2")
        .await?;
    let next = first["next"].as_str().expect("a second page").to_owned();
    let (_, second) = app
        .get_as(
            &volunteer,
            &format!("/api/volunteer/checkins?limit=2&cursor={next}"),
        )
        .await?;
    let notes: Vec<&str> = first["checkins"]
        .as_array()
        .into_iter()
        .chain(second["checkins"].as_array())
        .flatten()
        .filter_map(|c| c["note"].as_str())
        .collect();
    assert_eq!(notes, ["第 2 圈", "第 1 圈", "第 0 圈"], "{first} {second}");
    assert!(second["next"].is_null(), "{second}");

    // And the alerts: three households press; two pages of two, newest first.
    let mut units = connect_all(app.mqtt, &app.cluster(0)[..3]).await?;
    let mut raised = Vec::new();
    for unit in units.iter_mut() {
        let ack = unit.press_and_wait_ack(1, "help").await?;
        raised.push(ack["alert"].as_str().unwrap_or_default().to_owned());
    }
    raised.reverse();
    let (_, first) = app.get_json("/api/alerts?state=all&limit=2").await?;
    let next = first["next"].as_str().expect("a second page").to_owned();
    let (_, second) = app
        .get_json(&format!("/api/alerts?state=all&limit=2&cursor={next}"))
        .await?;
    let ids: Vec<&str> = first["alerts"]
        .as_array()
        .into_iter()
        .chain(second["alerts"].as_array())
        .flatten()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, raised, "{first} {second}");
    assert!(second["next"].is_null(), "{second}");
    let (status, body) = app.get_json("/api/alerts?limit=1001").await?;
    assert_eq!(status, 400, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_lists_page_by_cursor_and_time() -> anyhow::Result<()> {
    lists_page_by_cursor_and_time("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_lists_page_by_cursor_and_time() -> anyhow::Result<()> {
    lists_page_by_cursor_and_time("postgres").await
}
