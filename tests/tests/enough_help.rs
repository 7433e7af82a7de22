//! Enough help, not a crowd: once as many people are coming as the alert's kind needs
//! (`--enough-help`), the units of the cluster hear `enough: true` and show "enough help is on
//! the way", and the volunteers the alert reached who are not coming get a push saying so.
//! A real gateway, real MQTT units, and the independent push-service emulator.

use std::time::Duration;

use serde_json::{json, Value};
use tenwatch_tests::push::{require_push_emulator, PushEmulator};
use tenwatch_tests::*;

/// Waits until `unit` hears its cluster's alert with `responders` coming, and returns it.
async fn heard_with(unit: &mut TestDevice, responders: u64) -> anyhow::Result<Value> {
    loop {
        let body = unit.expect_message("/alert").await?;
        if body["responders"] == responders {
            return Ok(body);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_hear_enough_help_once_enough_are_coming() -> anyhow::Result<()> {
    let app = spawn_app_with(1, |c| {
        c.enough = tenwatch_gateway::lifecycle::EnoughHelp::parse("help=2").expect("a list");
    })
    .await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    let ack = units[0].press_and_wait_ack(1, "help").await?;
    assert_eq!(ack["enough"], false);
    let id = ack["alert"].as_str().expect("alert id").to_owned();
    let raised = units[5].expect_message("/alert").await?;
    assert_eq!(raised["enough"], false, "nobody is coming yet: {raised}");

    // One neighbour coming: not enough for help (2).
    units[1]
        .publish("respond", json!({ "alert": id, "answer": "coming" }))
        .await?;
    let one = heard_with(&mut units[5], 1).await?;
    assert_eq!(one["enough"], false, "{one}");

    // A second: the other units, and the presser's, hear that enough help is on the way.
    units[2]
        .publish("respond", json!({ "alert": id, "answer": "coming" }))
        .await?;
    let two = heard_with(&mut units[5], 2).await?;
    assert_eq!(two["enough"], true, "{two}");
    loop {
        let ack = units[0].expect_message("/down/ack").await?;
        if ack["responders"] == 2 {
            assert_eq!(ack["enough"], true, "{ack}");
            break;
        }
    }

    // A fire needs more hands (6 by default): two coming are not enough there.
    let fire = units[3].press_and_wait_ack(1, "fire").await?;
    let fire_id = fire["alert"].as_str().expect("alert id").to_owned();
    for unit in &units[6..8] {
        unit.publish("respond", json!({ "alert": fire_id, "answer": "coming" }))
            .await?;
    }
    loop {
        let body = units[5].expect_message("/alert").await?;
        if body["alert"] == fire_id.as_str() && body["responders"] == 2 {
            assert_eq!(body["enough"], false, "{body}");
            break;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volunteers_not_coming_are_told_enough_help_is_on_the_way() -> anyhow::Result<()> {
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let app = spawn_app_with(1, |c| {
        c.push.allow_loopback = true;
        c.enough = tenwatch_gateway::lifecycle::EnoughHelp::parse("help=1").expect("a list");
    })
    .await?;
    let presser = app.cluster(0)[0].clone();
    let mut unit = TestDevice::connect(app.mqtt, &presser).await?;
    let ack = unit.press_and_wait_ack(1, "help").await?;
    let id = ack["alert"].as_str().expect("alert id").to_owned();

    // The station sends two volunteers; each phone shows the alert.
    let mut tokens = Vec::new();
    let mut subs = Vec::new();
    for name in ["vol-li", "vol-zhao"] {
        let sub = emulator.subscribe().await?;
        let token = app.volunteer(name, "11010501").await?;
        let (status, body) = app
            .post_as(&token, "/api/push/subscriptions", sub.to_json())
            .await?;
        assert_eq!(status, 201, "{body}");
        let (status, body) = app
            .post_json(
                &format!("/api/alerts/{id}/dispatch"),
                json!({ "volunteer": name }),
            )
            .await?;
        assert_eq!(status, 200, "{body}");
        emulator
            .wait_for_messages(&sub.id, 1, Duration::from_secs(15))
            .await?;
        tokens.push(token);
        subs.push(sub);
    }

    // vol-zhao is coming, and one is enough here: vol-li's phone is told so.
    let (status, body) = app
        .post_as(
            &tokens[1],
            &format!("/api/alerts/{id}/respond"),
            json!({ "answer": "coming" }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let told = emulator
        .wait_for_messages(&subs[0].id, 2, Duration::from_secs(15))
        .await?;
    let p: Value = serde_json::from_str(told[1].payload.as_deref().expect("a body"))?;
    assert_eq!(p["alert"], id.as_str());
    assert_eq!(p["title"], format!("人手已够 · {}", presser.label));
    assert_eq!(p["title_en"], format!("Enough help · {}", presser.label));
    assert!(
        p["body_en"]
            .as_str()
            .unwrap_or("")
            .starts_with("1 coming, enough help"),
        "{p}"
    );
    // The same notification on the phone is replaced (one topic per alert).
    assert_eq!(told[1].topic, told[0].topic);
    // vol-zhao, who is coming, is not told to stay home.
    assert_eq!(emulator.messages(&subs[1].id).await?.messages.len(), 1);

    // vol-zhao arrives: still one person, so vol-li is not told again; the next thing on
    // vol-li's phone is the alert's end.
    let (status, body) = app
        .post_as(
            &tokens[1],
            &format!("/api/alerts/{id}/respond"),
            json!({ "answer": "on_scene" }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            &format!("/api/alerts/{id}/resolve"),
            json!({ "category": "help", "note": "" }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let told = emulator
        .wait_for_messages(&subs[0].id, 3, Duration::from_secs(15))
        .await?;
    let last: Value = serde_json::from_str(told[2].payload.as_deref().expect("a body"))?;
    assert!(
        last["title"].as_str().unwrap_or("").starts_with("已解除"),
        "the third push is the end, not enough help again: {last}"
    );
    Ok(())
}
