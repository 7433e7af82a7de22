//! One press reaches nine neighbours, durably: the press path end to end, through the real
//! device edge, the embedded rumqttd and a SQLite file.

use serde_json::json;
use tenwatch_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_press_reaches_exactly_the_nine_neighbours_the_presser_and_the_station(
) -> anyhow::Result<()> {
    let app = spawn_app(2).await?;
    let mut ours = connect_all(app.mqtt, app.cluster(0)).await?;
    let mut others = connect_all(app.mqtt, app.cluster(1)).await?;
    let mut feed = open_feed(&app).await?;

    let ack = ours[0].press_and_wait_ack(41, "medical").await?;
    let alert = ack["alert"]
        .as_str()
        .expect("ack names the alert")
        .to_owned();
    assert_eq!(ack["seq"], 41);

    for neighbour in &mut ours[1..] {
        let body = neighbour.expect_message("/alert").await?;
        assert_eq!(body["alert"], alert.as_str(), "{}", neighbour.id);
        assert_eq!(body["kind"], "medical");
        assert_eq!(body["from_label"], app.cluster(0)[0].label.as_str());
        assert_eq!(body["state"], "raised");
        // No personal data goes to the neighbours.
        assert!(body.get("contacts").is_none() && body.get("address").is_none());
    }

    let raised = next_alert_event(&mut feed).await?;
    assert_eq!(raised["type"], "alert");
    assert_eq!(raised["event"], "raised");
    assert_eq!(raised["alert"]["id"], alert.as_str());
    assert_eq!(
        raised["alert"]["household"],
        app.cluster(0)[0].household.as_str()
    );
    // Two neighbours report they sounded: the station sees the fan-out recorded, then the
    // alert's first delivery (both are told from where their commit is answered).
    for neighbour in &ours[1..3] {
        neighbour
            .publish("delivered", json!({ "alert": alert }))
            .await?;
    }
    let mut seen = Vec::new();
    loop {
        let event = next_alert_event(&mut feed).await?;
        assert_eq!(event["alert"]["id"], alert.as_str(), "{event}");
        let delivered = event["event"] == "delivered";
        seen.push(event);
        if delivered {
            break;
        }
    }
    let events: Vec<&str> = seen.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(events, ["notified", "delivered"]);
    assert_eq!(seen[0]["alert"]["state"], "notified");
    assert!(
        seen[1]["alert"]["first_delivered_at_ms"].is_i64(),
        "{}",
        seen[1]
    );

    // The other cluster heard nothing: its own press is the first alert its units see.
    let ack2 = others[0].press_and_wait_ack(1, "help").await?;
    for unit in &mut others[1..] {
        let first = unit.expect_message("/alert").await?;
        assert_eq!(
            first["alert"], ack2["alert"],
            "{} heard another cluster",
            unit.id
        );
    }

    let (status, detail) = app.get_json(&format!("/api/alerts/{alert}")).await?;
    assert_eq!(status, 200);
    assert_eq!(detail["device"], app.cluster(0)[0].device.as_str());
    let actions: Vec<&str> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions[0], "raised");
    assert!(actions.contains(&"notified"), "{actions:?}");

    let (_, list) = app.get_json("/api/alerts").await?;
    assert_eq!(list["alerts"].as_array().map(Vec::len), Some(2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_seq_yields_one_alert() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    let first = units[3].press_and_wait_ack(7, "help").await?;
    let again = units[3].press_and_wait_ack(7, "help").await?;
    assert_eq!(first["alert"], again["alert"]);
    app.wait_for_metrics("the duplicate counted", |m| m.presses_duplicate == 1)
        .await?;
    let (_, list) = app.get_json("/api/alerts").await?;
    assert_eq!(list["alerts"].as_array().map(Vec::len), Some(1));
    // The neighbours sounded once.
    let body = units[0].expect_message("/alert").await?;
    assert_eq!(body["alert"], first["alert"]);
    assert!(units[0]
        .drain()
        .iter()
        .all(|s| !matches!(s, Seen::Message { topic, .. } if topic.ends_with("/alert"))));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_made_while_the_gateway_is_down_is_delivered_after_it_restarts(
) -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    let app = app
        .restart_after(async {
            // Every unit notices the gateway going away...
            for unit in units.iter_mut() {
                unit.expect_disconnected().await?;
            }
            Ok(())
        })
        .await?;
    // ...and presses while it is away; the unit repeats until acknowledged, like real units.
    let presser = &mut units[0];
    presser.press(100, "fire").await?;
    let ack = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(2), presser.expect_ack(100)).await
        {
            Ok(ack) => break ack?,
            Err(_) => presser.press(100, "fire").await?,
        }
    };
    assert_eq!(ack["seq"], 100);
    for unit in &mut units[1..] {
        let body = unit.expect_message("/alert").await?;
        assert_eq!(body["alert"], ack["alert"]);
        assert_eq!(body["kind"], "fire");
    }
    let (_, list) = app.get_json("/api/alerts").await?;
    assert_eq!(list["alerts"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_owed_from_before_a_stop_is_sent_at_start() -> anyhow::Result<()> {
    let mut app = spawn_app(1).await?;
    app.stop().await?;
    // The gateway stopped after storing a press and before fanning it out.
    let store = tenwatch_gateway::store::open(&app.config.database_url).await?;
    let device = tenwatch_gateway::domain::DeviceId::parse(&app.cluster(0)[2].device)?;
    let press = tenwatch_gateway::domain::Press {
        seq: 9,
        boot: None,
        kind: tenwatch_gateway::domain::PressKind::Intrusion,
        device_ts_ms: None,
    };
    // Stored just now: a unit without a boot id repeats a press only within the repeat window.
    let now = tenwatch_gateway::domain::now_ms();
    store
        .record_press(
            &device,
            &press,
            &Default::default(),
            &Default::default(),
            now,
        )
        .await?;
    drop(store);
    let app = app.restart().await?;
    // The owed alert goes out at start; units connecting afterwards get it by asking the
    // station API, and the presser's repeat gets the same alert back.
    let (_, list) = app.get_json("/api/alerts").await?;
    let alerts = list["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["state"], "notified");
    let mut presser = TestDevice::connect(app.mqtt, &app.cluster(0)[2]).await?;
    let ack = presser.press_and_wait_ack(9, "intrusion").await?;
    assert_eq!(ack["alert"], alerts[0]["id"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_inside_the_window_tells_the_neighbours() -> anyhow::Result<()> {
    const METRICS_TOKEN: &str = "scraper-token-0123456789";
    let app = spawn_app_with(1, |c| c.http.metrics_token = Some(METRICS_TOKEN.into())).await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    let ack = units[5].press_and_wait_ack(1, "help").await?;
    let raised = units[6].expect_message("/alert").await?;
    assert_eq!(raised["state"], "raised");
    let cancel = units[5].press_and_wait_ack(2, "cancel").await?;
    assert_eq!(cancel["alert"], ack["alert"]);
    assert_eq!(cancel["state"], "cancelled");
    let cancelled = units[6].expect_message("/alert").await?;
    assert_eq!(cancelled["alert"], ack["alert"]);
    assert_eq!(cancelled["state"], "cancelled");
    let detail = app.alert_named_in(&ack).await?;
    assert_eq!(detail["state"], "cancelled");
    // A second cancel, nothing open any more: the unit hears its alert is closed already
    // (and so stops repeating the cancel).
    let again = units[5].press_and_wait_ack(3, "cancel").await?;
    assert_eq!(
        (&again["alert"], &again["state"]),
        (&ack["alert"], &json!("cancelled"))
    );
    // A scraper reads the same story from /metrics, each counter typed and explained.
    let metrics = reqwest::Client::new()
        .get(format!("http://{}/metrics", app.http))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await?;
    let content_type = metrics.headers()[reqwest::header::CONTENT_TYPE].to_str()?;
    assert!(content_type.starts_with("application/openmetrics-text"));
    let text = metrics.text().await?;
    for line in [
        "# TYPE tenwatch_gateway_alerts_raised counter",
        "# HELP tenwatch_gateway_alerts_raised Presses that raised a new alert.",
        "tenwatch_gateway_alerts_raised_total 1",
        "tenwatch_gateway_alerts_cancelled_total 1",
        "# TYPE tenwatch_edge_connected gauge",
        "tenwatch_edge_connected 10",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
    Ok(())
}

/// A unit that sends its cancel right behind its press, without waiting for the ack. The
/// gateway's worker leaves a press in flight while it takes other messages, but a device's
/// next message waits for its own press: the cancel finds the press stored and withdraws its
/// alert. Another household's press sent in the same moment raises an alert of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_sent_right_behind_its_press_withdraws_it() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    units[5].press(1, "help").await?;
    units[5].press(2, "cancel").await?;
    units[7].press(1, "fire").await?;
    let pressed = units[5].expect_ack(1).await?;
    let cancelled = units[5].expect_ack(2).await?;
    assert_eq!(cancelled["alert"], pressed["alert"]);
    assert_eq!(cancelled["state"], "cancelled");
    let other = units[7].expect_ack(1).await?;
    assert_ne!(other["alert"], pressed["alert"]);
    let detail = app.alert_named_in(&pressed).await?;
    assert_eq!(detail["state"], "cancelled");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_bad_requests_clearly() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let (status, body) = app.get_json("/api/alerts/A999").await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("alert A999 not found"))
    );
    let (status, body) = app.get_json("/api/alerts/not-an-id").await?;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap_or("").contains("alert id"));
    let (status, _) = app.get_json("/api/alerts?state=sideways").await?;
    assert_eq!(status, 400);
    let (status, health) = app.get_json("/healthz").await?;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    let _ = json!({});
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_away_when_its_neighbour_pressed_hears_the_alert_when_it_is_back(
) -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let cluster = app.cluster(0);
    let mut presser = TestDevice::connect(app.mqtt, &cluster[0]).await?;
    // Unit 5 is online, then drops off (a power cut, a reconnect storm) while its neighbour
    // presses.
    let away = TestDevice::connect(app.mqtt, &cluster[5]).await?;
    drop(away);
    let ack = presser.press_and_wait_ack(1, "intrusion").await?;
    let id = ack["alert"].as_str().expect("alert id").to_owned();
    // Back: as soon as its subscriptions are in place it is told, on its own downlink.
    let mut back = TestDevice::connect(app.mqtt, &cluster[5]).await?;
    let body = back.expect_message("/down/alert").await?;
    assert_eq!(body["alert"], id.as_str());
    assert_eq!(body["kind"], "intrusion");
    // The alert's state as stored now ("notified" is written just after the fan-out).
    assert!(
        matches!(body["state"].as_str(), Some("raised" | "notified")),
        "{body}"
    );
    // Its own open alert is not sent back to the presser when it reconnects.
    drop(presser);
    let mut again = TestDevice::connect(app.mqtt, &cluster[0]).await?;
    let mut neighbour = TestDevice::connect(app.mqtt, &cluster[6]).await?;
    let told = neighbour.expect_message("/down/alert").await?;
    assert_eq!(told["alert"], id.as_str());
    // By now the presser's catch-up (if any) was sent too: it came before the neighbour's.
    for seen in again.drain() {
        if let Seen::Message { topic, .. } = seen {
            assert!(
                !topic.ends_with("/down/alert"),
                "the presser got its own alert back"
            );
        }
    }
    Ok(())
}
