//! `tenwatch demo`'s station: prints the life of every alert from the station feed, and plays
//! a station monitor who sends someone on scene and closes alerts, so a newcomer sees the
//! whole lifecycle in the terminal without touching anything.

use std::time::Duration;

use crate::domain::AlertId;
use crate::feed::Feed;
use crate::ingest::Ingest;
use crate::lifecycle::{Action, Category, RecipientState};
use crate::store::RecipientKind;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The simulated monitor's pace: a person takes a while to get there and to close the case.
const ON_SCENE_AFTER: Duration = Duration::from_secs(15);
const RESOLVE_AFTER: Duration = Duration::from_secs(20);
/// Nobody came even after ring 2: the station checks by phone and closes it.
const CHECK_BY_PHONE_AFTER: Duration = Duration::from_secs(20);

pub(super) async fn station(ingest: Ingest, feed: Feed, stop: CancellationToken) {
    let mut feed = feed.subscribe();
    loop {
        let item = tokio::select! {
            _ = stop.cancelled() => return,
            item = feed.recv() => item,
        };
        let Ok(item) = item else { continue };
        let Ok(event) = serde_json::from_str::<Value>(&item.json) else {
            continue;
        };
        if event["type"] != "alert" {
            continue;
        }
        let a = &event["alert"];
        let (id, label, kind) = (
            a["id"].as_str().unwrap_or("?"),
            a["label"].as_str().unwrap_or("?"),
            a["kind"].as_str().unwrap_or("?"),
        );
        let coming = a["responders"].as_u64().unwrap_or(0);
        match event["event"].as_str().unwrap_or("") {
            "raised" => println!(
                "🚨 {id} {label}: {kind} — the cluster's units sound, the station sees it"
            ),
            "notified" => println!("   {id} neighbours notified (ring 0)"),
            "delivered" => {}
            "coming" => println!("🏃 {id} {coming} coming"),
            "declined" => println!("   {id} a neighbour can't go"),
            "ring1" => println!("📣 {id} nobody coming after 30 s: ring 1 — nearby clusters and volunteers"),
            "ring2" => println!("‼️  {id} nobody coming after 90 s: ring 2 — all volunteers, CRITICAL at the station"),
            "on_scene" => println!("📍 {id} someone is on scene"),
            "resolved" => println!(
                "✅ {id} resolved: {}",
                a["category"].as_str().unwrap_or("?")
            ),
            "cancelled" => println!("↩️  {id} cancelled by the presser"),
            "pressed_again" => println!(
                "🚨 {id} {label} pressed again (press {}): its units sound again",
                a["presses"].as_u64().unwrap_or(0)
            ),
            other => println!("   {id} {other}"),
        }
        let Ok(alert) = AlertId::parse(id) else {
            continue;
        };
        let zone = a["zone"].as_str().unwrap_or("").to_owned();
        match (event["event"].as_str(), a["state"].as_str()) {
            // The first "coming" acknowledged it: the monitor follows it to the end.
            (Some("coming"), Some("acknowledged")) => {
                tokio::spawn(follow_up(ingest.clone(), alert, zone, stop.clone()));
            }
            (Some("ring2"), _) => {
                tokio::spawn(check_by_phone(ingest.clone(), alert, stop.clone()));
            }
            _ => {}
        }
    }
}

const MONITOR: &str = "operator:demo";

async fn follow_up(ingest: Ingest, alert: AlertId, zone: String, stop: CancellationToken) {
    if pause(ON_SCENE_AFTER, &stop).await {
        let target = Some((RecipientKind::Station, zone.as_str()));
        let on_scene = Action::Recipient(RecipientState::OnScene);
        let _ = ingest
            .apply_action(alert, MONITOR, on_scene, target, "")
            .await;
    }
    if pause(RESOLVE_AFTER, &stop).await {
        let note = "neighbours helped; resident is fine (demo)";
        let _ = ingest
            .apply_action(alert, MONITOR, Action::Resolve(Category::Help), None, note)
            .await;
    }
}

async fn check_by_phone(ingest: Ingest, alert: AlertId, stop: CancellationToken) {
    if pause(CHECK_BY_PHONE_AFTER, &stop).await {
        let _ = ingest
            .apply_action(alert, MONITOR, Action::Acknowledge, None, "")
            .await;
        let note = "called the household: pressed by mistake (demo)";
        let _ = ingest
            .apply_action(
                alert,
                MONITOR,
                Action::Resolve(Category::FalseAlarm),
                None,
                note,
            )
            .await;
    }
}

/// Waits like a person would; false if the demo is stopping.
async fn pause(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}
