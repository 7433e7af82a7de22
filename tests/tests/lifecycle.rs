//! Who is coming: the whole life of an alert driven through MQTT (units) and the API
//! (a volunteer and the station), the presser's unit state at each step, the timeline event by
//! event, zone scoping and bad requests.

use serde_json::{json, Value};
use tenwatch_tests::*;

/// The presser's next ack and the first neighbour's next cluster alert must both say `state`.
async fn everyone_sees(
    units: &mut [TestDevice],
    seq: u64,
    state: &str,
    responders: u64,
) -> anyhow::Result<()> {
    let ack = units[0].expect_ack(seq).await?;
    assert_eq!(
        (ack["state"].as_str(), ack["responders"].as_u64()),
        (Some(state), Some(responders)),
        "presser's unit: {ack}"
    );
    loop {
        let body = units[1].expect_message("/alert").await?;
        if body["state"] == state && body["responders"] == responders {
            return Ok(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_life_of_an_alert() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let volunteer = app.volunteer("vol-wang", "11010501").await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;

    // A resident presses: the unit shows "received".
    let ack = units[0].press_and_wait_ack(1, "medical").await?;
    assert_eq!(ack["state"], "raised");
    let id = ack["alert"].as_str().expect("alert id").to_owned();
    let raised = units[1].expect_message("/alert").await?;
    assert_eq!(raised["state"], "raised");

    // A neighbour's unit sounded, then its resident answers "I'm coming".
    let neighbour = units[3].id.clone();
    units[3]
        .publish("delivered", json!({ "alert": id }))
        .await?;
    units[3]
        .publish("respond", json!({ "alert": id, "answer": "coming" }))
        .await?;
    everyone_sees(&mut units, 1, "acknowledged", 1).await?;

    // A patrol volunteer is coming too, then on scene.
    let path = format!("/api/alerts/{id}/respond");
    let (status, body) = app
        .post_as(&volunteer, &path, json!({ "answer": "coming" }))
        .await?;
    assert_eq!(status, 200, "{body}");
    everyone_sees(&mut units, 1, "acknowledged", 2).await?;
    let (status, _) = app
        .post_as(&volunteer, &path, json!({ "answer": "on_scene" }))
        .await?;
    assert_eq!(status, 200);
    everyone_sees(&mut units, 1, "on_scene", 2).await?;

    // The station resolves it with a category.
    let (status, body) = app
        .post_json(
            &format!("/api/alerts/{id}/resolve"),
            json!({ "category": "help", "note": "扶起摔倒的老人 / helped a fallen resident" }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "resolved");
    assert_eq!(body["category"], "help");
    everyone_sees(&mut units, 1, "resolved", 2).await?;

    // The timeline, event by event: who, what.
    let (_, detail) = app.get_json(&format!("/api/alerts/{id}")).await?;
    let events: Vec<(String, String)> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_owned(),
                e["action"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let presser = format!("device:{}", units[0].id);
    let unit = format!("device:{neighbour}");
    let expected = [
        (presser.as_str(), "raised"),
        ("gateway", "notified"),
        (unit.as_str(), "delivered"),
        (unit.as_str(), "coming"),
        ("volunteer:vol-wang", "coming"),
        ("volunteer:vol-wang", "on_scene"),
        ("operator:station", "resolved"),
    ];
    let got: Vec<(&str, &str)> = events
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(got, expected);
    let times: Vec<i64> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["at_ms"].as_i64())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "times in order");

    // Derived first-response figures are there and in order.
    let raised_at = detail["raised_at_ms"].as_i64().expect("raised_at");
    let first = |k: &str| detail[k].as_i64().map(|t| t - raised_at);
    let (delivered, coming, on_scene) = (
        first("first_delivered_at_ms"),
        first("first_coming_at_ms"),
        first("first_on_scene_at_ms"),
    );
    assert!(
        matches!((delivered, coming, on_scene), (Some(d), Some(c), Some(o)) if 0 <= d && d <= c && c <= o)
    );

    // Recipients: the neighbour coming, the volunteer on scene, the others notified.
    let recipients = detail["recipients"].as_array().expect("recipients");
    let state_of = |who: &str| {
        recipients
            .iter()
            .find(|r| r["who"] == who)
            .map(|r| r["state"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(state_of(&neighbour).as_deref(), Some("coming"));
    assert_eq!(state_of("vol-wang").as_deref(), Some("on_scene"));
    assert_eq!(state_of(&units[5].id).as_deref(), Some("notified"));

    // A closed alert refuses further moves with the reason.
    let (status, body) = app
        .post_json(
            &format!("/api/alerts/{id}/resolve"),
            json!({ "category": "help" }),
        )
        .await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("the alert is already resolved"))
    );
    let (status, _) = app
        .post_as(&volunteer, &path, json!({ "answer": "coming" }))
        .await?;
    assert_eq!(status, 409);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_dispatch_and_notes_from_the_station() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let volunteer = app.volunteer("vol-li", "11010501").await?;
    let (status, _) = app
        .post_as(
            &volunteer,
            "/api/volunteer/duty",
            json!({ "on_duty": true }),
        )
        .await?;
    assert_eq!(status, 200);
    let mut units = connect_all(app.mqtt, &app.cluster(0)[..3]).await?;
    let ack = units[0].press_and_wait_ack(1, "intrusion").await?;
    let id = ack["alert"].as_str().expect("id").to_owned();

    let (status, body) = app
        .post_json(&format!("/api/alerts/{id}/acknowledge"), json!({}))
        .await?;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("acknowledged")),
        "{body}"
    );
    let (status, body) = app
        .post_json(&format!("/api/alerts/{id}/acknowledge"), json!({}))
        .await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("the alert is already acknowledged"))
    );

    let (status, body) = app
        .post_json(
            &format!("/api/alerts/{id}/dispatch"),
            json!({ "volunteer": "vol-li", "note": "从北门进 / use the north gate" }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            &format!("/api/alerts/{id}/dispatch"),
            json!({ "volunteer": "nobody" }),
        )
        .await?;
    assert_eq!(status, 404, "{body}");
    let (status, _) = app
        .post_json(
            &format!("/api/alerts/{id}/notes"),
            json!({ "text": "已电话联系住户" }),
        )
        .await?;
    assert_eq!(status, 200);

    let (_, detail) = app.get_json(&format!("/api/alerts/{id}")).await?;
    let actions: Vec<&str> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["raised", "notified", "acknowledged", "dispatched", "note"]
    );
    let dispatched = &detail["timeline"][3]["detail"];
    assert!(
        dispatched.as_str().unwrap_or("").starts_with("vol-li"),
        "{dispatched}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_of_another_zone_sees_nothing() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    {
        let store = tenwatch_gateway::store::open(&app.config.database_url).await?;
        let zone = tenwatch_gateway::domain::ZoneCode::parse("11010502")?;
        store.add_zone(&zone, "第二责任区").await?;
    }
    let other = app.operator("station-b", "11010502").await?;
    let mut units = connect_all(app.mqtt, &app.cluster(0)[..2]).await?;
    let ack = units[0].press_and_wait_ack(1, "help").await?;
    let id = ack["alert"].as_str().expect("id");

    let (status, body) = app.get_as(&other, &format!("/api/alerts/{id}")).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some(format!("alert {id} not found").as_str()))
    );
    let (status, _) = app
        .post_as(&other, &format!("/api/alerts/{id}/acknowledge"), json!({}))
        .await?;
    assert_eq!(
        status, 404,
        "not 403: another zone's alerts do not exist for them"
    );
    let (_, list) = app.get_as(&other, "/api/alerts").await?;
    assert_eq!(list["alerts"], json!([]));
    let (_, list) = app.get_json("/api/alerts").await?;
    assert_eq!(list["alerts"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_clear_4xx() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let volunteer = app.volunteer("vol-zhao", "11010501").await?;
    let mut units = connect_all(app.mqtt, &app.cluster(0)[..2]).await?;
    let ack = units[0].press_and_wait_ack(1, "help").await?;
    let id = ack["alert"].as_str().expect("id");
    let client = reqwest::Client::new();

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "unknown alert",
            client
                .post(app.url("/api/alerts/A999/acknowledge"))
                .bearer_auth(&app.token),
            404,
            "alert A999 not found",
        ),
        (
            "bad category",
            client
                .post(app.url(&format!("/api/alerts/{id}/resolve")))
                .bearer_auth(&app.token)
                .json(&json!({ "category": "party" })),
            400,
            "category",
        ),
        (
            "garbage JSON",
            client
                .post(app.url(&format!("/api/alerts/{id}/resolve")))
                .bearer_auth(&app.token)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "",
        ),
        (
            "missing session",
            client.get(app.url("/api/alerts")),
            401,
            "sign in required",
        ),
        (
            "volunteer acknowledging",
            client
                .post(app.url(&format!("/api/alerts/{id}/acknowledge")))
                .bearer_auth(&volunteer),
            403,
            "operators",
        ),
        (
            "empty note",
            client
                .post(app.url(&format!("/api/alerts/{id}/notes")))
                .bearer_auth(&app.token)
                .json(&json!({ "text": "   " })),
            400,
            "must not be empty",
        ),
        (
            "oversize body",
            client
                .post(app.url(&format!("/api/alerts/{id}/notes")))
                .bearer_auth(&app.token)
                .header("content-type", "application/json")
                .body(format!("{{\"text\":\"{}\"}}", "x".repeat(100 * 1024))),
            413,
            "",
        ),
        (
            "unknown answer",
            client
                .post(app.url(&format!("/api/alerts/{id}/respond")))
                .bearer_auth(&volunteer)
                .json(&json!({ "answer": "maybe" })),
            400,
            "answer must be",
        ),
    ];
    for (what, request, status, needle) in cases {
        let response = request.send().await?;
        let got = response.status().as_u16();
        let text = response.text().await?;
        assert_eq!(got, status, "{what}: {text}");
        assert!(
            text.contains(needle),
            "{what}: {text:?} should mention {needle:?}"
        );
        if !text.is_empty() {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert!(
                body["error"].is_string(),
                "{what}: errors are JSON with a message: {text}"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volunteer_nobody_asked_cannot_mark_an_alert_on_scene() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let stranger = app.volunteer("vol-zhang", "11010501").await?;
    let sent = app.volunteer("vol-li", "11010501").await?;
    let mut units = connect_all(app.mqtt, &app.cluster(0)[..2]).await?;
    let ack = units[0].press_and_wait_ack(1, "help").await?;
    let id = ack["alert"].as_str().expect("id").to_owned();
    let path = format!("/api/alerts/{id}/respond");

    // Of the zone, but neither notified, coming nor dispatched: 403 with the reason, in both
    // languages, and the alert stays as it was, still climbing.
    for answer in ["on_scene", "seen"] {
        let (status, body) = app
            .post_as(&stranger, &path, json!({ "answer": answer }))
            .await?;
        let error = body["error"].as_str().unwrap_or("");
        assert_eq!(status, 403, "{answer}: {body}");
        assert!(
            error.contains("only a responder who was notified, said coming or was dispatched")
                && error.contains("只有收到通知"),
            "{answer}: {body}"
        );
    }
    let (_, detail) = app.get_json(&format!("/api/alerts/{id}")).await?;
    assert!(
        matches!(detail["state"].as_str(), Some("raised" | "notified")),
        "{detail}"
    );
    assert!(detail["next_ring_at_ms"].is_i64(), "the climb goes on");
    assert!(
        !detail["recipients"]
            .as_array()
            .expect("recipients")
            .iter()
            .any(|r| r["who"] == "vol-zhang"),
        "{detail}"
    );

    // Dispatched by the station, a volunteer may, and the presser's unit hears it.
    let (status, body) = app
        .post_json(
            &format!("/api/alerts/{id}/dispatch"),
            json!({ "volunteer": "vol-li" }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_as(&sent, &path, json!({ "answer": "on_scene" }))
        .await?;
    assert_eq!((status, body["state"].as_str()), (200, Some("on_scene")));
    loop {
        let ack = units[0].expect_ack(1).await?;
        if ack["state"] == "on_scene" {
            break;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_station_marks_an_alert_on_scene_itself() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    {
        let store = tenwatch_gateway::store::open(&app.config.database_url).await?;
        let zone = tenwatch_gateway::domain::ZoneCode::parse("11010502")?;
        store.add_zone(&zone, "第二责任区").await?;
    }
    let other = app.operator("station-b", "11010502").await?;
    let mut units = connect_all(app.mqtt, &app.cluster(0)[..2]).await?;
    let ack = units[0].press_and_wait_ack(1, "help").await?;
    let id = ack["alert"].as_str().expect("id").to_owned();
    let path = format!("/api/alerts/{id}/respond");
    let on_scene = json!({ "answer": "on_scene" });

    // Another zone's operator: the alert does not exist for them, and nothing changes.
    let (status, _) = app.post_as(&other, &path, on_scene.clone()).await?;
    assert_eq!(status, 404);
    let (_, detail) = app.get_json(&format!("/api/alerts/{id}")).await?;
    assert!(detail["first_on_scene_at_ms"].is_null(), "{detail}");

    // The zone's own station: on scene, and the presser's unit hears it.
    let (status, body) = app.post_json(&path, on_scene.clone()).await?;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("on_scene")),
        "{body}"
    );
    loop {
        let ack = units[0].expect_ack(1).await?;
        if ack["state"] == "on_scene" {
            break;
        }
    }
    // Said twice, it is news once.
    let (status, _) = app.post_json(&path, on_scene).await?;
    assert_eq!(status, 200);

    // The station's own row is on scene, and the timeline says the station did it.
    let (_, detail) = app.get_json(&format!("/api/alerts/{id}")).await?;
    let stations: Vec<&Value> = detail["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .filter(|r| r["kind"] == "station")
        .collect();
    assert_eq!(stations.len(), 1, "{detail}");
    assert_eq!(
        (stations[0]["who"].as_str(), stations[0]["state"].as_str()),
        (Some("11010501"), Some("on_scene"))
    );
    let on_scene_events: Vec<&str> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["action"] == "on_scene")
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert_eq!(on_scene_events, ["operator:station"]);
    assert!(detail["first_on_scene_at_ms"].is_i64(), "{detail}");
    Ok(())
}
