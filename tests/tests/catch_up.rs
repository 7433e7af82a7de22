//! A unit back online hears what it missed, and no more: every open alert it is a recipient of
//! (its cluster's, and a ring from nearby that reached it while it was away, also one fired as
//! the gateway starts), bounded to the newest few of the last half hour, with the embedded edge
//! and behind Mosquitto; and the station is shown an alert left open too long as stale.

use std::time::Duration;

use serde_json::json;
use tenwatch_gateway::clock::Clock;
use tenwatch_tests::mosquitto::require_mosquitto;
use tenwatch_tests::*;

const T0: i64 = 1_800_000_000_000;

fn alert_of(ack: &serde_json::Value) -> String {
    ack["alert"]
        .as_str()
        .expect("the ack names its alert")
        .to_owned()
}

/// Waits until the station sees alert `id` at `ring`: a ring is fired by the gateway's own
/// escalation task, seen from outside only in the API.
async fn wait_for_ring(app: &TestApp, id: &str, ring: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (_, alert) = app.get_json(&format!("/api/alerts/{id}")).await?;
        if alert["ring"] == ring {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "ring {ring} of {id} not fired: {alert}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_ring_fired_at_start_reaches_the_nearby_units_as_they_come_back(
) -> anyhow::Result<()> {
    let clock = Clock::manual(T0);
    let app = spawn_app_with(2, |c| c.clock = clock.clone()).await?;
    let mut presser = TestDevice::connect(app.mqtt, &app.cluster(0)[0]).await?;
    let id = alert_of(&presser.press_and_wait_ack(1, "fire").await?);
    drop(presser);
    // The gateway is down while ring 1 falls due; it fires as the gateway starts, before any
    // unit of the nearby cluster is back.
    let app = app
        .restart_after(async {
            clock.advance(Duration::from_secs(31));
            Ok(())
        })
        .await?;
    wait_for_ring(&app, &id, 1).await?;
    // Each unit of the nearby cluster comes back and hears it on its own downlink.
    for unit in &mut connect_all(app.mqtt, &app.cluster(1)[..3]).await? {
        let heard = unit.expect_message("/down/alert").await?;
        assert_eq!(heard["alert"], id.as_str(), "{}: {heard}", unit.id);
        assert_eq!(heard["kind"], "fire");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_back_online_hears_only_the_newest_few_and_the_station_sees_the_old_one_stale(
) -> anyhow::Result<()> {
    let clock = Clock::manual(T0);
    let app = spawn_app_with(1, |c| c.clock = clock.clone()).await?;
    let cluster = app.cluster(0);
    let mut pressers = connect_all(app.mqtt, &cluster[..7]).await?;
    let old = alert_of(&pressers[0].press_and_wait_ack(1, "help").await?);
    clock.advance(Duration::from_secs(31 * 60));
    let mut recent = Vec::new();
    for presser in &mut pressers[1..6] {
        clock.advance(Duration::from_secs(1));
        recent.push(alert_of(&presser.press_and_wait_ack(1, "medical").await?));
    }
    // Unit 9, away all along, comes back: the three newest, newest first; never the alert of
    // half an hour ago.
    let mut back = TestDevice::connect(app.mqtt, &cluster[9]).await?;
    let mut heard = Vec::new();
    for _ in 0..3 {
        heard.push(alert_of(&back.expect_message("/down/alert").await?));
    }
    assert_eq!(
        heard,
        [&recent[4], &recent[3], &recent[2]].map(String::clone)
    );
    // And nothing more: a new alert reaches it on the cluster topic with no other catch-up
    // before it.
    clock.advance(Duration::from_secs(1));
    let new = alert_of(&pressers[6].press_and_wait_ack(1, "help").await?);
    let cluster_topic = format!("tw/c/{}/alert", back.cluster);
    loop {
        match back.next_seen().await? {
            Seen::Message { topic, body } if topic.ends_with("/down/alert") => {
                anyhow::bail!("caught up on more than three: {body}")
            }
            Seen::Message { topic, body } if topic == cluster_topic && body["alert"] == new => {
                break
            }
            _ => {}
        }
    }
    // The station is shown the alert nobody closed for half an hour as stale.
    let (status, list) = app.get_json("/api/alerts").await?;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["stale_after_ms"], 30 * 60_000);
    let alerts = list["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 7, "{list}");
    let stale: Vec<&str> = alerts
        .iter()
        .filter(|a| a["stale"] == true)
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(stale, [old.as_str()], "{list}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_mosquitto_a_unit_that_says_it_is_subscribed_hears_what_it_missed(
) -> anyhow::Result<()> {
    if !require_mosquitto() {
        return Ok(());
    }
    let app = spawn_app_on_mosquitto(1, |_| {}).await?;
    let cluster = app.cluster(0);
    let mut presser = TestDevice::connect(app.mqtt, &cluster[0]).await?;
    let id = alert_of(&presser.press_and_wait_ack(1, "intrusion").await?);
    // No edge reports its subscriptions here: the unit says so itself, as the protocol asks.
    let mut back = TestDevice::connect(app.mqtt, &cluster[5]).await?;
    back.publish("subscribed", json!({})).await?;
    let heard = back.expect_message("/down/alert").await?;
    assert_eq!(heard["alert"], id.as_str(), "{heard}");
    assert_eq!(heard["kind"], "intrusion");
    Ok(())
}
