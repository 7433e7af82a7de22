//! What a press is, seen from the units, through the real device edge, on SQLite and on
//! PostgreSQL: a unit whose counter starts again (a battery change, a replacement) sends a new
//! boot id, and its seq 1 is a new alert, while a true repeat (same boot, same seq) is the
//! same alert; a household that presses again while its alert is open adds to that alert, and
//! its neighbours hear it again.

mod backends;

use backends::app_on;
use serde_json::Value;
use tenwatch_tests::*;

async fn a_rebooted_unit_counting_from_one_again_raises_a_new_alert(
    backend: &str,
) -> anyhow::Result<()> {
    let Some((_db, app)) = app_on(backend, "press_identity_reboot", 1).await? else {
        return Ok(());
    };
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    let first = units[2].press_after_boot("9f3a01", 1, "help").await?;
    assert_eq!(first["presses"], 1);
    let heard = units[3].expect_message("/alert").await?;
    assert_eq!(heard["alert"], first["alert"]);
    // A true repeat: same boot, same seq, the same alert, and nobody hears it again.
    let repeat = units[2].press_after_boot("9f3a01", 1, "help").await?;
    assert_eq!(repeat["alert"], first["alert"]);

    // The battery is changed: a new boot id, and the counter starts from 1 again. The press
    // is another kind of trouble (so that it is not one more press on the open help alert).
    let rebooted = units[2].press_after_boot("77c0e2", 1, "medical").await?;
    assert_ne!(rebooted["alert"], first["alert"], "{rebooted}");
    assert_eq!(rebooted["boot"], "77c0e2");
    let heard = units[3].expect_message("/alert").await?;
    assert_eq!(
        (&heard["alert"], &heard["kind"]),
        (&rebooted["alert"], &Value::from("medical"))
    );
    let (_, list) = app.get_json("/api/alerts").await?;
    assert_eq!(list["alerts"].as_array().map(Vec::len), Some(2));
    app.wait_for_metrics("the repeat counted", |m| m.presses_duplicate == 1)
        .await?;
    Ok(())
}

async fn a_household_pressing_again_adds_to_its_open_alert(backend: &str) -> anyhow::Result<()> {
    let Some((_db, app)) = app_on(backend, "press_identity_merge", 1).await? else {
        return Ok(());
    };
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    let mut feed = open_feed(&app).await?;
    let first = units[4].press_and_wait_ack(10, "help").await?;
    let heard = units[5].expect_message("/alert").await?;
    assert_eq!(
        (&heard["alert"], &heard["presses"]),
        (&first["alert"], &Value::from(1))
    );

    // Pressed again, a new seq: acked with the same alert, which counts two presses now, and
    // every neighbour is told the alert again, so that its unit sounds again.
    let again = units[4].press_and_wait_ack(11, "help").await?;
    assert_eq!(again["alert"], first["alert"]);
    assert_eq!(again["presses"], 2);
    for unit in units
        .iter_mut()
        .filter(|u| u.id != app.cluster(0)[4].device)
    {
        loop {
            let heard = unit.expect_message("/alert").await?;
            if heard["presses"] == 2 {
                assert_eq!(heard["alert"], first["alert"], "{}", unit.id);
                break;
            }
        }
    }
    loop {
        let event = next_alert_event(&mut feed).await?;
        if event["event"] == "pressed_again" {
            assert_eq!(event["alert"]["id"], first["alert"]);
            assert_eq!(event["alert"]["presses"], 2);
            break;
        }
    }
    let id = first["alert"].as_str().unwrap_or_default();
    let (_, detail) = app.get_json(&format!("/api/alerts/{id}")).await?;
    let actions: Vec<&str> = detail["timeline"]
        .as_array()
        .map(|t| t.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert!(actions.contains(&"pressed_again"), "{actions:?}");
    let (_, list) = app.get_json("/api/alerts").await?;
    assert_eq!(list["alerts"].as_array().map(Vec::len), Some(1));
    app.wait_for_metrics("the merged press counted", |m| {
        m.presses_merged == 1 && m.alerts_raised == 1
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_rebooted_unit_counting_from_one_again_raises_a_new_alert() -> anyhow::Result<()>
{
    a_rebooted_unit_counting_from_one_again_raises_a_new_alert("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_rebooted_unit_counting_from_one_again_raises_a_new_alert(
) -> anyhow::Result<()> {
    a_rebooted_unit_counting_from_one_again_raises_a_new_alert("postgres").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_household_pressing_again_adds_to_its_open_alert() -> anyhow::Result<()> {
    a_household_pressing_again_adds_to_its_open_alert("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_household_pressing_again_adds_to_its_open_alert() -> anyhow::Result<()> {
    a_household_pressing_again_adds_to_its_open_alert("postgres").await
}

/// The simulator's units do the same (`Device::power_cycle`): a new boot id, presses counted
/// from 1 again, and the gateway raises a new alert for seq 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_unit_power_cycled_raises_a_new_alert_for_seq_one() -> anyhow::Result<()> {
    use std::sync::Arc;
    use tenwatch_sim::device::{self, DeviceConfig, DeviceCtx, DeviceEvent, EventSink};
    use tenwatch_sim::proto::{Ack, PressKind, Topics};
    use tokio::sync::mpsc;

    struct Sink(mpsc::UnboundedSender<DeviceEvent>);
    impl EventSink for Sink {
        fn event(&self, _: &DeviceCtx, _: tokio::time::Instant, event: DeviceEvent) {
            let _ = self.0.send(event);
        }
    }
    // Merging off: this is about what a press is, not what it joins.
    let app = spawn_app_with(1, |c| c.presses.merge_window_ms = 0).await?;
    let text = serde_json::to_string(&app.credentials)?;
    let cred = tenwatch_sim::creds::parse(&text, "spawn_app")?.remove(0);
    let ctx = Arc::new(DeviceCtx {
        index: 0,
        topics: Topics::new(&cred.device, &cred.cluster),
        cred,
    });
    let mut cfg = DeviceConfig::new(app.mqtt.ip().to_string(), app.mqtt.port());
    cfg.heartbeat = None;
    let (tx, mut events) = mpsc::unbounded_channel();
    let (stop, tracker) = (
        tokio_util::sync::CancellationToken::new(),
        tokio_util::task::TaskTracker::new(),
    );
    let unit = device::spawn(
        ctx,
        Arc::new(cfg),
        Arc::new(Sink(tx)),
        stop.clone(),
        &tracker,
    );
    let mut next_first_ack = async || -> anyhow::Result<Ack> {
        loop {
            let event = tokio::time::timeout(DEADLINE, events.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("the unit stopped"))?;
            if let DeviceEvent::Acked {
                ack, first: true, ..
            } = event
            {
                return Ok(ack);
            }
        }
    };
    // Pressed before it is online: sent as soon as it is.
    unit.press(PressKind::Help)?;
    let first = next_first_ack().await?;
    unit.power_cycle()?;
    unit.press(PressKind::Help)?;
    let second = next_first_ack().await?;
    assert_eq!((first.seq, second.seq), (1, 1));
    assert!(first.boot.is_some() && second.boot.is_some());
    assert_ne!(first.boot, second.boot);
    assert_ne!(first.alert, second.alert);
    assert_eq!(second.boot, unit.boot_id());
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}
