//! Bad input gets a clear refusal and loses nothing: forged topics, wildcard subscriptions,
//! wrong passwords, malformed and oversize payloads and floods, each while another device's
//! alert still flows.

use rumqttc::{ConnectReturnCode, SubscribeReasonCode};
use serde_json::json;
use tenwatch_tests::*;

/// A neighbour in the same cluster presses and every other unit hears it: the system still works.
async fn still_flows(units: &mut [TestDevice], presser: usize, seq: u64) -> anyhow::Result<()> {
    let ack = units[presser].press_and_wait_ack(seq, "help").await?;
    let listener = if presser == 0 { 1 } else { 0 };
    loop {
        let body = units[listener].expect_message("/alert").await?;
        if body["alert"] == ack["alert"] {
            return Ok(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_topic_is_refused_counted_and_closes_the_forger() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    let victim = app.cluster(0)[1].device.clone();
    units[9]
        .publish_raw(
            &format!("tw/d/{victim}/up/press"),
            json!({"seq": 1, "kind": "help"}).to_string().into_bytes(),
        )
        .await?;
    let why = units[9].expect_disconnected().await?;
    assert!(!why.is_empty());
    app.wait_for_edge("the forged publish counted", |s| s.acl_publish_refused == 1)
        .await?;
    still_flows(&mut units[..9], 0, 1).await?;
    // Nothing was raised in the victim's name.
    let (_, list) = app.get_json("/api/alerts").await?;
    let alerts = list["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(alerts.len(), 1);
    assert_ne!(alerts[0]["device"], victim.as_str());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_to_everything_or_another_cluster_fails() -> anyhow::Result<()> {
    let app = spawn_app(2).await?;
    let cred = &app.cluster(0)[0];
    let mut spy = TestDevice::start(
        app.mqtt,
        cred,
        &cred.password,
        DeviceOptions {
            subscribe: false,
            ..Default::default()
        },
    );
    spy.expect_connected().await?;
    let other_cluster = &app.cluster(1)[0].cluster;
    spy.client
        .subscribe_many([
            rumqttc::SubscribeFilter::new("#".into(), rumqttc::QoS::AtLeastOnce),
            rumqttc::SubscribeFilter::new(
                format!("tw/c/{other_cluster}/#"),
                rumqttc::QoS::AtLeastOnce,
            ),
            rumqttc::SubscribeFilter::new(
                format!("tw/c/{}/#", cred.cluster),
                rumqttc::QoS::AtLeastOnce,
            ),
            rumqttc::SubscribeFilter::new("tw/d/+/down/#".into(), rumqttc::QoS::AtLeastOnce),
        ])
        .await?;
    let codes = loop {
        if let Seen::SubAck(codes) = spy.next_seen().await? {
            break codes;
        }
    };
    assert_eq!(codes.len(), 4);
    assert_eq!(codes[0], SubscribeReasonCode::Failure);
    assert_eq!(codes[1], SubscribeReasonCode::Failure);
    assert!(matches!(codes[2], SubscribeReasonCode::Success(_)));
    assert_eq!(codes[3], SubscribeReasonCode::Failure);
    app.wait_for_edge("refused filters counted", |s| s.acl_subscribe_refused == 3)
        .await?;

    // The granted filter works; the other cluster's alert does not reach the spy.
    let mut others = connect_all(app.mqtt, &app.cluster(1)[..2]).await?;
    others[0].press_and_wait_ack(1, "help").await?;
    others[1].expect_message("/alert").await?;
    let mut neighbours = connect_all(app.mqtt, &app.cluster(0)[1..3]).await?;
    let ack = neighbours[0].press_and_wait_ack(1, "help").await?;
    let heard = spy.expect_message("/alert").await?;
    assert_eq!(
        heard["alert"], ack["alert"],
        "the spy heard the other cluster first"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_gets_a_refusing_connack() -> anyhow::Result<()> {
    const METRICS_TOKEN: &str = "scraper-token-0123456789";
    let app = spawn_app_with(1, |c| c.http.metrics_token = Some(METRICS_TOKEN.into())).await?;
    let cred = &app.cluster(0)[0];
    let mut wrong = TestDevice::start(app.mqtt, cred, "not-the-password", DeviceOptions::default());
    let why = wrong.expect_disconnected().await?;
    assert!(
        why.contains(&format!("{:?}", ConnectReturnCode::BadUserNamePassword)),
        "expected a CONNACK refusal, got {why}"
    );
    let mut unknown_cred = cred.clone();
    unknown_cred.device = "d-nobody".into();
    let mut unknown = TestDevice::start(app.mqtt, &unknown_cred, "x", DeviceOptions::default());
    let why = unknown.expect_disconnected().await?;
    assert!(why.contains("BadUserNamePassword"), "{why}");
    app.wait_for_edge("refusals counted", |s| s.logins_refused == 2)
        .await?;
    // The gateway counts both, and shows the station the one naming a device of its zone.
    wait_until("the gateway counted both", || {
        app.login_refusals.total() == 2
    })
    .await?;
    let (status, refused) = app.get_json("/api/refused-logins").await?;
    assert_eq!((status, &refused["total"]), (200, &json!(2)), "{refused}");
    let devices = refused["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 1, "{refused}");
    assert_eq!(devices[0]["device"], cred.device.as_str());
    assert_eq!(devices[0]["count"], 1);
    assert_eq!(devices[0]["last_peer"], "127.0.0.1");
    // Not the device's doing: a unit never seen stays never seen, and no problem opens.
    let (_, health) = app
        .get_json(&format!("/api/devices/{}", cred.device))
        .await?;
    assert_eq!(health["state"], "never_seen", "{health}");
    let (_, problems) = app.get_json("/api/problems").await?;
    assert!(
        problems["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .all(|p| p["device"] != cred.device.as_str()),
        "{problems}"
    );
    let metrics = reqwest::Client::new()
        .get(app.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics
            .lines()
            .any(|l| l == "tenwatch_gateway_logins_refused_total 2"),
        "{metrics}"
    );
    // The right password still gets in.
    TestDevice::connect(app.mqtt, cred).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_payload_is_refused_and_the_device_keeps_working() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    for garbage in [
        &b"not json"[..],
        br#"{"kind":"help"}"#,
        br#"{"seq":1,"kind":"party"}"#,
    ] {
        units[4]
            .publish_raw(&format!("tw/d/{}/up/press", units[4].id), garbage.to_vec())
            .await?;
    }
    app.wait_for_metrics("three malformed uplinks counted", |m| {
        m.uplink_malformed == 3
    })
    .await?;
    assert_eq!(app.metrics.snapshot().alerts_raised, 0);
    still_flows(&mut units, 4, 2).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_payload_closes_the_sender_only() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    let huge = json!({"seq": 1, "kind": "help", "pad": "x".repeat(8 * 1024)});
    units[2].publish("press", huge).await?;
    units[2].expect_disconnected().await?;
    app.wait_for_edge("the oversize publish counted", |s| s.oversize_refused == 1)
        .await?;
    still_flows(&mut units, 3, 1).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_rate_limited_while_a_neighbour_gets_through() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    for seq in 0..60 {
        units[7].press(1000 + seq, "help").await?;
    }
    app.wait_for_edge("the flood limited", |s| s.rate_limited >= 50)
        .await?;
    still_flows(&mut units, 1, 1).await?;
    // The flooder's first presses within the burst were taken, the rest dropped at the edge.
    // The neighbour's alert may be raised before the flooder's (they are different devices'
    // presses, stored side by side): wait for both.
    app.wait_for_metrics("the flooder's alert and the neighbour's raised", |m| {
        m.alerts_raised >= 2
    })
    .await?;
    let raised = app.metrics.snapshot().alerts_raised;
    assert!((2..=7).contains(&raised), "alerts raised: {raised}");
    Ok(())
}
