//! The gateway on an external broker (`--mqtt-url`): a real Mosquitto 2 whose password and
//! ACL files come from `tenwatch admin export-mosquitto`'s code, the uplink through a shared
//! subscription with a persistent session, acknowledged only once stored; and the EMQX-style
//! HTTP authentication and authorization endpoints.

use serde_json::json;
use tenwatch_tests::mosquitto::require_mosquitto;
use tenwatch_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_through_mosquitto_reaches_the_nine_neighbours_and_is_acknowledged(
) -> anyhow::Result<()> {
    if !require_mosquitto() {
        return Ok(());
    }
    let app = spawn_app_on_mosquitto(2, |_| {}).await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    let mut others = connect_all(app.mqtt, app.cluster(1)).await?;

    let ack = units[0].press_and_wait_ack(1, "fire").await?;
    assert_eq!(ack["state"], "raised");
    let id = ack["alert"].as_str().expect("alert id").to_owned();
    for unit in &mut units[1..] {
        let alert = unit.expect_message("/alert").await?;
        assert_eq!(alert["alert"], id.as_str(), "{}", unit.id);
        assert_eq!(alert["kind"], "fire");
    }
    // The other cluster's units hear their own cluster's alert, never the first one.
    let ack = others[0].press_and_wait_ack(1, "help").await?;
    let own = ack["alert"].as_str().expect("alert id").to_owned();
    for unit in &mut others[1..] {
        let heard = unit.expect_message("/alert").await?;
        assert_eq!(heard["alert"], own.as_str(), "{}: {heard}", unit.id);
    }
    // The station sees both, stored once each.
    let (_, list) = app.get_json("/api/alerts").await?;
    assert_eq!(list["alerts"].as_array().map(Vec::len), Some(2), "{list}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_keeps_out_what_the_exported_acl_forbids() -> anyhow::Result<()> {
    if !require_mosquitto() || !require_tool("mosquitto_pub") {
        return Ok(());
    }
    let app = spawn_app_on_mosquitto(2, |_| {}).await?;
    let me = app.cluster(0)[0].clone();
    let victim = app.cluster(1)[0].clone();

    // A wrong password is refused at CONNECT.
    let mut wrong = TestDevice::start(app.mqtt, &me, "not-the-password", DeviceOptions::default());
    match wrong.next_seen().await? {
        Seen::Disconnected(why) => assert!(why.contains("Refused"), "{why}"),
        other => panic!("expected a refusal, saw {other:?}"),
    }

    // A press forged on another device's topic goes nowhere; the real press still works.
    let forged = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &app.mqtt.port().to_string()])
        .args([
            "-i",
            &me.device,
            "-u",
            &me.device,
            "-P",
            &me.password,
            "-q",
            "1",
        ])
        .args(["-t", &format!("tw/d/{}/up/press", victim.device)])
        .args(["-m", r#"{"seq":1,"kind":"help"}"#])
        .output()?;
    assert!(forged.status.success(), "{forged:?}");
    let mut unit = TestDevice::connect(app.mqtt, &me).await?;
    let ack = unit.press_and_wait_ack(7, "help").await?;
    assert_eq!(ack["state"], "raised");
    let (_, list) = app.get_json("/api/alerts").await?;
    let alerts = list["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        alerts.len(),
        1,
        "only the real press raised an alert: {list}"
    );
    assert_eq!(alerts[0]["device"], me.device.as_str());

    // Mosquitto grants a subscription to another cluster but delivers nothing on it: the
    // eavesdropper stays subscribed while that cluster's alert goes out, and hears nothing.
    let mut eavesdropper = tokio::process::Command::new("stdbuf")
        .args([
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &app.mqtt.port().to_string(),
        ])
        .args([
            "-i",
            &me.device,
            "-u",
            &me.device,
            "-P",
            &me.password,
            "-V",
            "mqttv311",
        ])
        .args(["-t", &format!("tw/c/{}/#", victim.cluster), "-d", "-W", "3"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = eavesdropper.stdout.take().expect("piped stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut said = Vec::new();
    // Subscribed (mosquitto_sub -d prints the SUBACK) before the other cluster's press.
    while let Some(line) = tokio::time::timeout(DEADLINE, lines.next_line()).await?? {
        said.push(line.clone());
        if line.contains("received SUBACK") {
            break;
        }
    }
    let mut watching = TestDevice::connect(app.mqtt, &app.cluster(1)[1]).await?;
    let mut presser = TestDevice::connect(app.mqtt, &victim).await?;
    let pressed = presser.press_and_wait_ack(1, "intrusion").await?;
    let heard = watching.expect_message("/alert").await?;
    assert_eq!(heard["alert"], pressed["alert"]);
    // Whatever it got, it printed before its 3 s wait ran out.
    while let Some(line) = lines.next_line().await? {
        said.push(line);
    }
    assert!(
        said.iter().any(|l| l.contains("received SUBACK")),
        "mosquitto_sub said: {said:?}"
    );
    assert!(
        !said.iter().any(|l| l.contains("intrusion")),
        "another cluster's alert reached the eavesdropper: {said:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_made_while_the_gateway_is_down_is_delivered_by_the_broker_at_restart(
) -> anyhow::Result<()> {
    if !require_mosquitto() {
        return Ok(());
    }
    // A gateway without replicas, keeping its session on the broker.
    let mut app = spawn_app_on_mosquitto(1, |c| {
        if let Some(ext) = c.external_mqtt.as_mut() {
            ext.keep_session = true;
        }
    })
    .await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    // One press while the gateway runs, so its session and subscription exist.
    units[0].press_and_wait_ack(1, "help").await?;
    app.stop().await?;

    // The broker takes the press (PUBACK) and keeps it in the gateway's session.
    units[1].press(1, "medical").await?;
    let app = app.restart().await?;
    // Not repeated by the device: the ack comes from the uplink the broker kept.
    let ack = units[1].expect_ack(1).await?;
    assert_eq!(ack["state"], "raised");
    let second = ack["alert"].clone();
    let heard = loop {
        let alert = units[2].expect_message("/alert").await?;
        if alert["alert"] == second {
            break alert;
        }
    };
    assert_eq!(heard["kind"], "medical");
    let (_, list) = app.get_json("/api/alerts").await?;
    assert_eq!(list["alerts"].as_array().map(Vec::len), Some(2), "{list}");
    Ok(())
}

async fn broker_call(
    app: &TestApp,
    path: &str,
    bearer: Option<&str>,
    body: serde_json::Value,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut request = reqwest::Client::new().post(app.url(path)).json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or_default()))
}

const SECRET: &str = "broker-shared-secret-for-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emqx_style_endpoints_answer_from_the_registry() -> anyhow::Result<()> {
    let app = spawn_app_with(2, |c| {
        c.broker_auth_secret = Some(tenwatch_gateway::app::Secret(SECRET.into()));
    })
    .await?;
    let me = app.cluster(0)[0].clone();
    let other = app.cluster(1)[0].clone();
    let login =
        |user: &str, pass: &str| json!({ "clientid": user, "username": user, "password": pass });

    let cases = [
        (login(&me.device, &me.password), "allow"),
        (login(&me.device, "wrong"), "deny"),
        (login("d-nobody", &me.password), "deny"),
        (
            json!({ "clientid": other.device, "username": me.device, "password": me.password }),
            "deny",
        ),
    ];
    for (body, want) in cases {
        let (status, answer) =
            broker_call(&app, "/api/broker/authenticate", Some(SECRET), body.clone()).await?;
        assert_eq!(
            (status, answer["result"].as_str()),
            (200, Some(want)),
            "{body}"
        );
    }

    let acl = |topic: String, action: &str| json!({ "clientid": me.device, "username": me.device, "topic": topic, "action": action });
    let cases = [
        (
            acl(format!("tw/d/{}/up/press", me.device), "publish"),
            "allow",
        ),
        (
            acl(format!("tw/d/{}/up/press", other.device), "publish"),
            "deny",
        ),
        (acl(format!("tw/c/{}/alert", me.cluster), "publish"), "deny"),
        (
            acl(format!("tw/d/{}/down/#", me.device), "subscribe"),
            "allow",
        ),
        (acl(format!("tw/c/{}/#", me.cluster), "subscribe"), "allow"),
        (
            acl(format!("tw/c/{}/#", other.cluster), "subscribe"),
            "deny",
        ),
        (acl("#".into(), "subscribe"), "deny"),
        (acl(format!("tw/d/{}/up/press", me.device), "all"), "deny"),
    ];
    for (body, want) in cases {
        let (status, answer) =
            broker_call(&app, "/api/broker/authorize", Some(SECRET), body.clone()).await?;
        assert_eq!(
            (status, answer["result"].as_str()),
            (200, Some(want)),
            "{body}"
        );
    }

    // Only the broker may ask, and only with a well-formed question.
    let body = login(&me.device, &me.password);
    let (status, _) = broker_call(&app, "/api/broker/authenticate", None, body.clone()).await?;
    assert_eq!(status, 401);
    let (status, _) = broker_call(&app, "/api/broker/authenticate", Some("guess"), body).await?;
    assert_eq!(status, 401);
    let (status, answer) = broker_call(
        &app,
        "/api/broker/authorize",
        Some(SECRET),
        json!({ "topic": 1 }),
    )
    .await?;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].is_string(), "{answer}");

    // A gateway without the secret has no such routes.
    let plain = spawn_app(1).await?;
    let (status, _) = broker_call(
        &plain,
        "/api/broker/authenticate",
        Some(SECRET),
        login(&me.device, &me.password),
    )
    .await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_refuses_a_credentials_file_that_does_not_match_the_registry(
) -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let store = tenwatch_gateway::store::open(&app.config.database_url).await?;
    let mut creds = app.credentials.clone();
    let good =
        tenwatch_gateway::external_broker::mosquitto_files(store.as_ref(), &creds, "gw", "pw")
            .await?;
    assert_eq!(good.devices, 10);
    assert!(good
        .acl
        .contains(&format!("topic read tw/c/{}/#", creds[0].cluster)));
    creds[3].password = "not-the-one-in-the-registry".into();
    let err =
        tenwatch_gateway::external_broker::mosquitto_files(store.as_ref(), &creds, "gw", "pw")
            .await
            .expect_err("a wrong password must not be exported");
    assert!(err.to_string().contains(&creds[3].device), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_uplink_and_each_station_sees_every_alert() -> anyhow::Result<()> {
    if !require_mosquitto() {
        return Ok(());
    }
    let a = spawn_app_on_mosquitto(2, |_| {}).await?;
    let b = a.another_replica("tenwatch-gateway-test-2").await?;
    let mut feed_a = open_feed(&a).await?;
    let mut feed_b = open_feed(&b).await?;
    let mut units = connect_all(a.mqtt, a.cluster(0)).await?;
    let mut others = connect_all(a.mqtt, a.cluster(1)).await?;

    // Presses from many devices: the broker spreads them over both replicas.
    let mut raised = Vec::new();
    for (unit, seq) in units.iter_mut().chain(others.iter_mut()).zip(1u64..) {
        let ack = unit.press_and_wait_ack(seq, "help").await?;
        raised.push(ack["alert"].as_str().expect("alert id").to_owned());
    }
    // Both replicas handled some: each counted uplinks.
    let (taken_a, taken_b) = (
        a.metrics.snapshot().alerts_raised,
        b.metrics.snapshot().alerts_raised,
    );
    assert_eq!(taken_a + taken_b, 20, "each press raised once");
    assert!(
        taken_a > 0 && taken_b > 0,
        "shared: a took {taken_a}, b took {taken_b}"
    );
    // A station on either replica sees every one raised.
    for feed in [&mut feed_a, &mut feed_b] {
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < raised.len() {
            let event = next_alert_event(feed).await?;
            if event["event"] == "raised" {
                seen.insert(event["alert"]["id"].as_str().unwrap_or_default().to_owned());
            }
        }
        assert_eq!(seen, raised.iter().cloned().collect());
    }
    Ok(())
}
