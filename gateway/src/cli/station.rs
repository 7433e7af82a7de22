//! `tenwatch demo`'s station: prints the life of every alert from the station feed, and plays
//! a station monitor who sends someone on scene and closes alerts, so a newcomer sees the
//! whole lifecycle in the terminal without touching anything. At start the monitor takes up
//! the alerts a stopped demo left open, and carries them through as it does new ones.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{AlertId, AlertState, ZoneCode};
use crate::feed::FeedItem;
use crate::ingest::Ingest;
use crate::lifecycle::{Action, Category, RecipientState};
use crate::store::{AlertFilter, AlertSummary, ListWindow, RecipientKind, Store};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The simulated monitor's pace: a person takes a while to get there and to close the case.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pace {
    /// From the first "coming" to the station marking someone on scene.
    on_scene: Duration,
    /// From on scene to resolved.
    resolve: Duration,
    /// Nobody came even after ring 2: the station checks by phone and closes it.
    check_by_phone: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            on_scene: Duration::from_secs(15),
            resolve: Duration::from_secs(20),
            check_by_phone: Duration::from_secs(20),
        }
    }
}

impl Pace {
    /// Every step of the monitor takes `step` (`tenwatch demo --monitor-pace`).
    pub(super) fn every(step: Duration) -> Self {
        Self {
            on_scene: step,
            resolve: step,
            check_by_phone: step,
        }
    }
}

/// Open alerts the monitor reads at start: more than a demo ever leaves open.
const LEFT_OPEN_READ: u32 = 1000;

/// Narrates the feed and plays the monitor until `stop`. `feed` is subscribed before the
/// gateway starts, so that nothing it says at start-up (an overdue ring) is missed.
pub(super) async fn station(
    ingest: Ingest,
    mut feed: broadcast::Receiver<FeedItem>,
    store: Arc<dyn Store>,
    zone: ZoneCode,
    pace: Pace,
    stop: CancellationToken,
) {
    let mut monitor = Monitor {
        ingest,
        pace,
        stop: stop.clone(),
        taken: HashSet::new(),
    };
    monitor.pick_up_left_open(store.as_ref(), zone).await;
    loop {
        let item = tokio::select! {
            _ = stop.cancelled() => return,
            item = feed.recv() => item,
        };
        let Ok(item) = item else { continue };
        let Ok(event) = serde_json::from_str::<Value>(&item.json) else {
            continue;
        };
        if event["type"] == "alert" {
            monitor.on_event(&event);
        }
    }
}

/// The simulated station monitor.
struct Monitor {
    ingest: Ingest,
    pace: Pace,
    stop: CancellationToken,
    /// Alerts the monitor is handling, so that one seen both in the alerts left open and on
    /// the feed is handled once; an alert leaves it when it closes.
    taken: HashSet<AlertId>,
}

impl Monitor {
    /// The alerts left open when the demo stopped: an acknowledged one is followed to the end,
    /// one that reached ring 2 is checked by phone, as if the monitor had seen it happen; one
    /// still climbing waits for its next ring or someone coming, like a new one.
    async fn pick_up_left_open(&mut self, store: &dyn Store, zone: ZoneCode) {
        let filter = AlertFilter {
            open_only: true,
            zones: vec![zone],
            window: ListWindow {
                limit: LEFT_OPEN_READ,
                ..ListWindow::default()
            },
        };
        let left = match store.list_alerts(&filter).await {
            Ok(left) => left,
            Err(e) => {
                println!("   the monitor could not read the alerts left open: {e}");
                return;
            }
        };
        // Oldest first, as a person reads down a list.
        for alert in left.iter().rev() {
            self.pick_up(alert);
        }
    }

    fn pick_up(&mut self, alert: &AlertSummary) {
        let (id, label) = (alert.id, &alert.label);
        let state = alert.state.as_str();
        match alert.state {
            AlertState::Acknowledged | AlertState::OnScene => {
                println!(
                    "🗂  {id} {label}: left open when the demo stopped ({state}) — the monitor follows it up"
                );
                self.follow_up(id, alert.zone.to_string());
            }
            AlertState::Raised | AlertState::Notified if alert.ring >= 2 => {
                println!(
                    "🗂  {id} {label}: left open when the demo stopped (ring 2, nobody coming) — the monitor calls the household"
                );
                self.check_by_phone(id);
            }
            AlertState::Raised | AlertState::Notified => println!(
                "🗂  {id} {label}: left open when the demo stopped (ring {}, nobody coming yet) — waiting for its next ring",
                alert.ring
            ),
            AlertState::Resolved | AlertState::Cancelled => {}
        }
    }

    /// Tells one feed event in the terminal, and acts on it as the monitor would.
    fn on_event(&mut self, event: &Value) {
        let a = &event["alert"];
        let (id, label, kind) = (
            a["id"].as_str().unwrap_or("?"),
            a["label"].as_str().unwrap_or("?"),
            a["kind"].as_str().unwrap_or("?"),
        );
        let coming = a["responders"].as_u64().unwrap_or(0);
        let what = event["event"].as_str().unwrap_or("");
        match what {
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
            return;
        };
        match (what, a["state"].as_str()) {
            ("resolved" | "cancelled", _) => {
                self.taken.remove(&alert);
            }
            // The first "coming" acknowledged it: the monitor follows it to the end.
            ("coming", Some("acknowledged")) => {
                let zone = a["zone"].as_str().unwrap_or("").to_owned();
                self.follow_up(alert, zone);
            }
            ("ring2", _) => self.check_by_phone(alert),
            _ => {}
        }
    }

    fn follow_up(&mut self, alert: AlertId, zone: String) {
        if self.taken.insert(alert) {
            let (ingest, pace, stop) = (self.ingest.clone(), self.pace, self.stop.clone());
            tokio::spawn(follow_up(ingest, alert, zone, pace, stop));
        }
    }

    fn check_by_phone(&mut self, alert: AlertId) {
        if self.taken.insert(alert) {
            let (ingest, pace, stop) = (self.ingest.clone(), self.pace, self.stop.clone());
            tokio::spawn(check_by_phone(ingest, alert, pace, stop));
        }
    }
}

const MONITOR: &str = "operator:demo";

async fn follow_up(
    ingest: Ingest,
    alert: AlertId,
    zone: String,
    pace: Pace,
    stop: CancellationToken,
) {
    if pause(pace.on_scene, &stop).await {
        let target = Some((RecipientKind::Station, zone.as_str()));
        let on_scene = Action::Recipient(RecipientState::OnScene);
        // Refused when the station is on scene already (an alert taken up after a restart).
        let _ = ingest
            .apply_action(alert, MONITOR, on_scene, target, "")
            .await;
    }
    if pause(pace.resolve, &stop).await {
        let note = "neighbours helped; resident is fine (demo)";
        let _ = ingest
            .apply_action(alert, MONITOR, Action::Resolve(Category::Help), None, note)
            .await;
    }
}

async fn check_by_phone(ingest: Ingest, alert: AlertId, pace: Pace, stop: CancellationToken) {
    if pause(pace.check_by_phone, &stop).await {
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
