//! Device supervision against a real store, on SQLite and on PostgreSQL, on a clock that moves
//! only when the test moves it: late and offline at the configured moments, one report for a
//! flapping device, one event per tamper and low battery, coverage that drops and recovers,
//! stale disconnects and restarts that do not cry wolf.

// A test binary: an unwrap that fails is a failed test (clippy.toml only covers #[test] fns).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tenwatch_broker::{AuthRefusal, DisconnectReason, PresenceEvent};
use tenwatch_gateway::clock::Clock;
use tenwatch_gateway::domain::{DeviceId, Heartbeat, ZoneCode};
use tenwatch_gateway::feed::Feed;
use tenwatch_gateway::heartbeats::HeartbeatLedger;
use tenwatch_gateway::seed::{seed_demo, Credential, DEMO_ZONE};
use tenwatch_gateway::store::supervision::{
    DeviceFilter, DeviceReportKind, DeviceState, Problem, ProblemFilter, Report,
};
use tenwatch_gateway::store::Store;
use tenwatch_gateway::supervision::{apply_heartbeat, Supervision, SupervisionPolicy};
use tokio::sync::broadcast;

use common::TestDb;

store_tests!(
    a_silent_device_goes_late_then_offline_at_the_configured_moments,
    a_flapping_device_is_reported_once,
    tamper_and_low_battery_each_produce_one_event,
    ten_units_beating_at_once_are_each_recorded_and_a_change_among_them_reported,
    coverage_drops_below_seven_of_ten_and_recovers,
    a_stale_disconnect_and_a_stranger_s_wrong_password_do_not_take_a_device_offline,
    a_gateway_restart_gives_online_devices_a_fresh_grace,
    a_beat_that_reports_nothing_new_is_kept_and_written_before_the_supervisor_judges,
    a_beat_with_news_is_applied_at_once,
    a_kept_beat_whose_device_moved_meanwhile_is_applied_in_full_at_the_flush,
    one_flush_writes_the_kept_beats_of_many_units_and_refuses_the_one_that_moved,
);

const T0: i64 = 1_800_000_000_000;

struct Rig {
    sup: Supervision,
    creds: Vec<Credential>,
    feed_rx: broadcast::Receiver<tenwatch_gateway::feed::FeedItem>,
    /// Last, so that it (and its database) is dropped after the store.
    _db: TestDb,
}

fn policy() -> SupervisionPolicy {
    SupervisionPolicy {
        heartbeat_interval_ms: 60_000,
        grace_ms: 30_000,
        settle_ms: 120_000,
        battery_low: 20,
        coverage_min_percent: 70,
    }
}

async fn rig(db: TestDb, clusters: usize) -> Rig {
    let store: Arc<dyn Store> = db.open().await;
    let creds = seed_demo(store.as_ref(), clusters).await.expect("seed");
    let feed = Feed::new();
    let feed_rx = feed.subscribe();
    Rig {
        sup: Supervision {
            store,
            feed,
            clock: Clock::manual(T0),
            policy: policy(),
            refusals: Arc::default(),
            heartbeats: None,
        },
        creds,
        feed_rx,
        _db: db,
    }
}

fn peer() -> SocketAddr {
    "127.0.0.1:40000".parse().expect("address")
}

impl Rig {
    fn device(&self, i: usize) -> String {
        self.creds[i].device.clone()
    }

    /// What `devices::run_presence` does with an edge report: the session stored and
    /// supervised in one write.
    async fn presence(&self, event: PresenceEvent) {
        self.sup.presence(&event).await;
    }

    async fn connect(&self, device: &str, session: u64) {
        self.presence(PresenceEvent::Connected {
            device: device.into(),
            session,
            peer: peer(),
        })
        .await;
    }

    /// A login naming `device` with a wrong password, from [`peer`].
    async fn refused(&self, device: &str) {
        self.presence(PresenceEvent::Refused {
            device: device.into(),
            peer: peer(),
            refusal: AuthRefusal::BadCredentials,
        })
        .await;
    }

    async fn disconnect(&self, device: &str, session: u64, reason: DisconnectReason) {
        self.presence(PresenceEvent::Disconnected {
            device: device.into(),
            session,
            reason,
        })
        .await;
    }

    async fn heartbeat(&self, device: &str, battery: u8, tamper: bool) {
        let hb = Heartbeat {
            seq: 1,
            battery: Some(battery),
            tamper,
            rssi: Some(-60),
            firmware: Some("1.2.0".into()),
        };
        apply_heartbeat(
            self.sup.store.as_ref(),
            &self.sup.feed,
            &self.sup.policy,
            &DeviceId::parse(device).expect("device id"),
            &hb,
            self.sup.clock.now_ms(),
        )
        .await
        .expect("heartbeat applied");
    }

    async fn state(&self, device: &str) -> (DeviceState, Option<String>) {
        let detail = self
            .sup
            .store
            .device_health(
                &DeviceId::parse(device).expect("device id"),
                &self.sup.policy,
                self.sup.clock.now_ms(),
            )
            .await
            .expect("device health")
            .expect("device exists");
        (detail.health.state, detail.health.reason)
    }

    /// Station feed events of supervision published since the last call.
    fn reports(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(item) = self.feed_rx.try_recv() {
            let v: Value = serde_json::from_str(&item.json).expect("feed JSON");
            if v["type"] == "device_health" || v["type"] == "coverage" {
                assert!(item.zone.is_some(), "supervision events carry their zone");
                out.push(v);
            }
        }
        out
    }

    fn device_reports(&mut self, device: &str) -> Vec<Value> {
        self.reports()
            .into_iter()
            .filter(|r| r["type"] == "device_health" && r["device"] == device)
            .collect()
    }

    fn coverage_reports(&mut self) -> Vec<Value> {
        self.reports()
            .into_iter()
            .filter(|r| r["type"] == "coverage")
            .collect()
    }

    /// The demo zone's "needs attention" list, open problems only.
    async fn open_problems(&self) -> Vec<Problem> {
        let filter = ProblemFilter {
            zones: vec![ZoneCode::parse(DEMO_ZONE).unwrap()],
            include_closed: false,
            limit: 100,
        };
        self.sup
            .store
            .problems(&filter, &self.sup.policy)
            .await
            .unwrap()
    }
}

fn kinds(reports: &[Report]) -> Vec<DeviceReportKind> {
    reports
        .iter()
        .filter_map(|r| match r {
            Report::Device(d) => Some(d.event),
            Report::Coverage(_) => None,
        })
        .collect()
}

async fn a_silent_device_goes_late_then_offline_at_the_configured_moments(db: TestDb) {
    let mut rig = rig(db, 1).await;
    let d = rig.device(3);
    assert_eq!(rig.state(&d).await.0, DeviceState::NeverSeen);
    rig.connect(&d, 1).await;
    rig.sup.clock.advance_ms(1_000);
    rig.heartbeat(&d, 90, false).await;
    assert_eq!(rig.state(&d).await, (DeviceState::Online, None));
    rig.reports();

    // Due at +61 s: late from that moment, offline at +91 s, though its TCP session is open.
    rig.sup.clock.advance_ms(59_999);
    assert_eq!(rig.state(&d).await.0, DeviceState::Online);
    rig.sup.clock.advance_ms(1);
    assert_eq!(rig.state(&d).await.0, DeviceState::Late);
    let late = rig
        .sup
        .store
        .device_health_list(
            &DeviceFilter {
                zones: vec![ZoneCode::parse(DEMO_ZONE).unwrap()],
                state: Some(DeviceState::Late),
                cluster: None,
                limit: 100,
            },
            &rig.sup.policy,
            rig.sup.clock.now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].device.as_str(), d);
    assert!(late[0].connected, "the edge still holds its session");
    assert!(rig.sup.tick().await.unwrap().is_empty(), "late is not news");

    rig.sup.clock.advance_ms(29_999);
    assert!(
        rig.sup.tick().await.unwrap().is_empty(),
        "offline too early"
    );
    assert_eq!(
        rig.sup
            .store
            .supervise_next_deadline(&rig.sup.policy)
            .await
            .unwrap(),
        Some(T0 + 91_000)
    );
    rig.sup.clock.advance_ms(1);
    let reports = rig.sup.tick().await.unwrap();
    assert_eq!(kinds(&reports), [DeviceReportKind::Offline]);
    assert_eq!(
        rig.state(&d).await,
        (DeviceState::Offline, Some("heartbeat_missed".into()))
    );
    let feed = rig.device_reports(&d);
    assert_eq!(feed.len(), 1, "{feed:?}");
    assert_eq!(feed[0]["event"], "offline");
    assert_eq!(feed[0]["reason"], "heartbeat_missed");
    assert_eq!(feed[0]["zone"], DEMO_ZONE);
    assert!(rig.sup.tick().await.unwrap().is_empty(), "reported once");

    // A heartbeat brings it back; the episode closes once it has stayed for the settle time.
    rig.heartbeat(&d, 90, false).await;
    assert_eq!(rig.state(&d).await.0, DeviceState::Online);
    rig.sup.clock.advance_ms(119_999);
    rig.heartbeat(&d, 90, false).await;
    assert!(kinds(&rig.sup.tick().await.unwrap()).is_empty());
    rig.sup.clock.advance_ms(1);
    assert_eq!(
        kinds(&rig.sup.tick().await.unwrap()),
        [DeviceReportKind::Recovered]
    );
}

async fn a_flapping_device_is_reported_once(db: TestDb) {
    let mut rig = rig(db, 1).await;
    let d = rig.device(0);
    rig.connect(&d, 1).await;
    rig.reports();
    for session in 1..=5u64 {
        rig.disconnect(&d, session, DisconnectReason::ConnectionLost)
            .await;
        rig.sup.clock.advance_ms(2_000);
        rig.connect(&d, session + 1).await;
        rig.sup.clock.advance_ms(2_000);
        assert!(rig.sup.tick().await.unwrap().is_empty());
    }
    let feed = rig.device_reports(&d);
    assert_eq!(feed.len(), 1, "one report for the whole episode: {feed:?}");
    assert_eq!(feed[0]["event"], "offline");
    assert_eq!(feed[0]["reason"], "connection_lost");

    let problems = rig.open_problems().await;
    let p = problems
        .iter()
        .find(|p| p.device.as_ref().map(|d| d.as_str()) == Some(d.as_str()))
        .expect("the device needs attention");
    assert_eq!(p.kind, "offline");
    assert_eq!(p.flaps, 5);
    assert!(p.flapping);
    // The history tells every flap; who to tell includes the household and the station.
    assert_eq!(p.history.iter().filter(|h| h.kind == "offline").count(), 5);
    assert!(p.notify.iter().any(|n| n.role == "household"));
    assert!(p.notify.iter().any(|n| n.role == "station"));

    // Settled: two minutes online, heartbeating, since it last came back.
    for _ in 0..2 {
        rig.sup.clock.advance_ms(60_000);
        rig.heartbeat(&d, 80, false).await;
    }
    assert_eq!(
        kinds(&rig.sup.tick().await.unwrap()),
        [DeviceReportKind::Recovered]
    );
    assert_eq!(rig.state(&d).await.0, DeviceState::Online);
}

async fn tamper_and_low_battery_each_produce_one_event(db: TestDb) {
    let mut rig = rig(db, 1).await;
    let d = rig.device(1);
    rig.connect(&d, 1).await;
    rig.heartbeat(&d, 50, false).await;
    rig.reports();

    for _ in 0..3 {
        rig.sup.clock.advance_ms(60_000);
        rig.heartbeat(&d, 50, true).await;
    }
    let feed = rig.device_reports(&d);
    assert_eq!(feed.len(), 1, "{feed:?}");
    assert_eq!(feed[0]["event"], "tamper");

    for level in [19, 19, 18, 21, 19] {
        rig.sup.clock.advance_ms(60_000);
        rig.heartbeat(&d, level, true).await;
    }
    let feed = rig.device_reports(&d);
    assert_eq!(feed.len(), 1, "a wobbling level is one problem: {feed:?}");
    assert_eq!(feed[0]["event"], "low_battery");
    assert_eq!(feed[0]["battery"], 19);

    rig.sup.clock.advance_ms(60_000);
    rig.heartbeat(&d, 100, false).await;
    let events: Vec<Value> = rig.device_reports(&d);
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names, ["battery_ok", "tamper_cleared"]);

    let detail = rig
        .sup
        .store
        .device_health(
            &DeviceId::parse(&d).unwrap(),
            &rig.sup.policy,
            rig.sup.clock.now_ms(),
        )
        .await
        .unwrap()
        .unwrap();
    let tamper: Vec<&str> = detail
        .history
        .iter()
        .filter(|h| h.kind == "tamper")
        .map(|h| h.value.as_str())
        .collect();
    assert_eq!(tamper, ["off", "on"], "newest first, each change once");
    assert!(detail
        .history
        .iter()
        .any(|h| h.kind == "firmware" && h.value == "1.2.0"));
    assert_eq!(detail.problems_history.len(), 2);
    assert!(detail
        .problems_history
        .iter()
        .all(|p| p.closed_at_ms.is_some()));
}

/// Busy-path heartbeats arriving together are written together (SQLite: one statement for the
/// group): every unit's time moves, and the one whose health changed still gets its report.
async fn ten_units_beating_at_once_are_each_recorded_and_a_change_among_them_reported(db: TestDb) {
    let mut rig = rig(db, 1).await;
    let units: Vec<String> = (0..10).map(|i| rig.device(i)).collect();
    for (i, d) in units.iter().enumerate() {
        rig.connect(d, i as u64 + 1).await;
        rig.heartbeat(d, 80, false).await;
    }
    rig.reports();
    rig.sup.clock.advance_ms(60_000);
    let beat_at = rig.sup.clock.now_ms();
    futures::future::join_all(
        units
            .iter()
            .enumerate()
            .map(|(i, d)| rig.heartbeat(d, 80, i == 4)),
    )
    .await;
    let tampered = rig.device_reports(&units[4]);
    assert_eq!(tampered.len(), 1, "{tampered:?}");
    assert_eq!(tampered[0]["event"], "tamper");
    for (i, d) in units.iter().enumerate() {
        if i != 4 {
            assert!(rig.device_reports(d).is_empty(), "{d}: nothing changed");
        }
        let health = rig
            .sup
            .store
            .device_health(&DeviceId::parse(d).unwrap(), &rig.sup.policy, beat_at)
            .await
            .unwrap()
            .unwrap()
            .health;
        assert_eq!(health.last_heartbeat_ms, Some(beat_at), "{d}");
        assert_eq!(health.state, DeviceState::Online, "{d}");
    }
}

async fn coverage_drops_below_seven_of_ten_and_recovers(db: TestDb) {
    let mut rig = rig(db, 2).await;
    let cluster = rig.creds[0].cluster.clone();
    let ours: Vec<String> = (0..10).map(|i| rig.device(i)).collect();
    for (i, d) in ours.iter().enumerate() {
        rig.connect(d, i as u64 + 1).await;
    }
    let coverage = rig.coverage_reports();
    // First counted at 1 of 10 (below, told nobody: a start), then up past 7 of 10.
    assert_eq!(coverage.len(), 1, "{coverage:?}");
    assert_eq!(coverage[0]["below"], false);
    assert_eq!(coverage[0]["reachable"], 7);

    for (i, d) in ours.iter().enumerate().take(4) {
        rig.disconnect(d, i as u64 + 1, DisconnectReason::KeepAliveTimeout)
            .await;
    }
    let coverage = rig.coverage_reports();
    assert_eq!(coverage.len(), 1, "{coverage:?}");
    assert_eq!(coverage[0]["cluster"], cluster.as_str());
    assert_eq!(coverage[0]["below"], true);
    assert_eq!(coverage[0]["reachable"], 6);
    let zones = [ZoneCode::parse(DEMO_ZONE).unwrap()];
    let health = rig
        .sup
        .store
        .cluster_health(&zones, &rig.sup.policy)
        .await
        .unwrap();
    let ours_health = health
        .iter()
        .find(|c| c.cluster.as_str() == cluster)
        .unwrap();
    assert_eq!((ours_health.reachable, ours_health.below), (6, true));
    assert!(rig
        .open_problems()
        .await
        .iter()
        .any(|p| p.kind == "coverage" && p.cluster.as_str() == cluster));

    // Back, and counted again once each has stayed for the settle time.
    for (i, d) in ours.iter().enumerate().take(4) {
        rig.connect(d, 100 + i as u64).await;
    }
    assert!(rig.reports().iter().all(|r| r["type"] != "coverage"));
    rig.sup.clock.advance_ms(120_000);
    for d in &ours {
        rig.heartbeat(d, 80, false).await;
    }
    let reports = rig.sup.tick().await.unwrap();
    assert_eq!(kinds(&reports).len(), 4);
    let coverage = rig.coverage_reports();
    assert_eq!(coverage.len(), 1, "{coverage:?}");
    assert_eq!(coverage[0]["below"], false);
    assert_eq!(coverage[0]["reachable"], 10);
}

async fn a_stale_disconnect_and_a_stranger_s_wrong_password_do_not_take_a_device_offline(
    db: TestDb,
) {
    let mut rig = rig(db, 1).await;
    let d = rig.device(2);
    rig.connect(&d, 1).await;
    // The device reconnects with the same client id: the old session ends after the new one
    // began (the case where rumqttd's own last will goes wrong).
    rig.connect(&d, 2).await;
    rig.disconnect(&d, 1, DisconnectReason::Replaced).await;
    rig.disconnect(&d, 1, DisconnectReason::ConnectionLost)
        .await;
    rig.refused(&d).await;
    assert_eq!(rig.state(&d).await, (DeviceState::Online, None));
    assert!(rig.device_reports(&d).is_empty());

    // A device never seen, whose id a stranger tries: still never seen, no problem at the
    // station, nothing on the feed; the attempts are counted under the id tried.
    let other = rig.device(5);
    for _ in 0..2 {
        rig.refused(&other).await;
    }
    assert_eq!(rig.state(&other).await, (DeviceState::NeverSeen, None));
    assert!(rig.device_reports(&other).is_empty());
    let problems = rig.open_problems().await;
    assert!(
        problems
            .iter()
            .all(|p| p.device.as_ref().map(DeviceId::as_str) != Some(other.as_str())),
        "{problems:?}"
    );
    assert_eq!(rig.sup.refusals.total(), 3);
    let counted = rig.sup.refusals.list(|d| d == other, 10);
    assert_eq!(counted.len(), 1);
    assert_eq!(counted[0].count, 2);
    assert_eq!(counted[0].last_peer, Some(peer().ip()));
}

async fn a_gateway_restart_gives_online_devices_a_fresh_grace(db: TestDb) {
    let mut rig = rig(db, 1).await;
    let d = rig.device(4);
    rig.connect(&d, 1).await;
    rig.reports();
    rig.sup.clock.advance_ms(80_000);
    // The gateway restarts: no session survives, but the device is not declared dead.
    rig.sup
        .store
        .reset_presence("gateway restarted", rig.sup.clock.now_ms())
        .await
        .unwrap();
    assert_eq!(
        rig.sup
            .store
            .supervise_restart(rig.sup.clock.now_ms())
            .await
            .unwrap(),
        1
    );
    rig.sup.clock.advance_ms(89_999);
    assert!(rig.sup.tick().await.unwrap().is_empty());
    rig.sup.clock.advance_ms(1);
    assert_eq!(
        kinds(&rig.sup.tick().await.unwrap()),
        [DeviceReportKind::Offline]
    );
}

/// The rig's supervisor with a heartbeat ledger, as `tenwatch serve` runs it.
fn with_ledger(rig: &mut Rig) -> Arc<HeartbeatLedger> {
    let ledger = HeartbeatLedger::new(
        rig.sup.store.clone(),
        rig.sup.feed.clone(),
        rig.sup.policy,
        Arc::default(),
        rig.sup.clock.clone(),
    );
    rig.sup.heartbeats = Some(ledger.clone());
    ledger
}

fn beat(battery: u8) -> Heartbeat {
    Heartbeat {
        seq: 1,
        battery: Some(battery),
        tamper: false,
        rssi: Some(-60),
        firmware: Some("1.2.0".into()),
    }
}

impl Rig {
    /// The store moves `device` offline (its `session` lost) without the supervisor, so the
    /// heartbeat ledger is not told.
    async fn offline_behind_the_ledger(&self, device: &str, session: u64) {
        let id = DeviceId::parse(device).unwrap();
        let now = self.sup.clock.now_ms();
        let store = &self.sup.store;
        let lost = tenwatch_gateway::store::supervision::PresenceReport {
            device: id,
            session,
            online: false,
            disconnect_reason: Some("test".into()),
            seen_ms: now,
            offline: Some("connection_lost"),
        };
        store
            .apply_presence(vec![lost], &self.sup.policy, now)
            .await
            .unwrap();
    }

    async fn last_heartbeat(&self, device: &str) -> Option<i64> {
        self.sup
            .store
            .device_health(
                &DeviceId::parse(device).unwrap(),
                &self.sup.policy,
                self.sup.clock.now_ms(),
            )
            .await
            .unwrap()
            .unwrap()
            .health
            .last_heartbeat_ms
    }
}

/// Beats through the ledger; waits for the full path when the beat takes it. Returns whether
/// the beat was kept in memory.
async fn ledger_beat(ledger: &Arc<HeartbeatLedger>, device: &str, hb: Heartbeat) -> bool {
    match ledger.beat(DeviceId::parse(device).unwrap(), hb) {
        Some(applying) => {
            applying.await.unwrap();
            false
        }
        None => true,
    }
}

async fn a_beat_that_reports_nothing_new_is_kept_and_written_before_the_supervisor_judges(
    db: TestDb,
) {
    let mut rig = rig(db, 1).await;
    let ledger = with_ledger(&mut rig);
    let d = rig.device(2);
    rig.connect(&d, 1).await;
    rig.sup.clock.advance_ms(1_000);
    // The first beat is news (its readings are not known yet): stored at once.
    assert!(!ledger_beat(&ledger, &d, beat(90)).await);
    assert_eq!(rig.last_heartbeat(&d).await, Some(T0 + 1_000));

    // The next one says the same: kept in memory, not yet in the store.
    rig.sup.clock.advance_ms(60_000);
    assert!(ledger_beat(&ledger, &d, beat(90)).await);
    assert_eq!(ledger.kept(), 1);
    assert_eq!(rig.last_heartbeat(&d).await, Some(T0 + 1_000));
    rig.reports();

    // Past the first beat's interval and grace, the supervisor writes the kept beat before it
    // judges: the unit that beat is not reported offline.
    rig.sup.clock.advance_ms(31_000);
    rig.sup.tick().await.unwrap();
    assert_eq!(ledger.kept(), 0);
    assert_eq!(rig.last_heartbeat(&d).await, Some(T0 + 61_000));
    assert_eq!(rig.state(&d).await, (DeviceState::Online, None));
    assert!(
        rig.device_reports(&d).is_empty(),
        "no report for a unit that beat"
    );

    // Silent for real: offline at its own deadline, and its next beat is news again.
    rig.sup.clock.advance_ms(60_000);
    rig.sup.tick().await.unwrap();
    assert_eq!(
        rig.state(&d).await,
        (DeviceState::Offline, Some("heartbeat_missed".into()))
    );
    rig.sup.clock.advance_ms(1_000);
    assert!(!ledger_beat(&ledger, &d, beat(90)).await);
    assert_eq!(rig.state(&d).await, (DeviceState::Online, None));
}

async fn a_beat_with_news_is_applied_at_once(db: TestDb) {
    let mut rig = rig(db, 1).await;
    let ledger = with_ledger(&mut rig);
    let d = rig.device(4);
    rig.connect(&d, 1).await;
    assert!(!ledger_beat(&ledger, &d, beat(90)).await);
    assert!(ledger_beat(&ledger, &d, beat(90)).await);
    rig.reports();
    // The battery fell below the threshold: not kept, the station hears it now.
    rig.sup.clock.advance_ms(60_000);
    assert!(!ledger_beat(&ledger, &d, beat(10)).await);
    let reports = rig.device_reports(&d);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["event"], "low_battery");
    // And the new level is what the next beats are compared with.
    assert!(ledger_beat(&ledger, &d, beat(10)).await);
}

async fn a_kept_beat_whose_device_moved_meanwhile_is_applied_in_full_at_the_flush(db: TestDb) {
    let mut rig = rig(db, 1).await;
    let ledger = with_ledger(&mut rig);
    let d = rig.device(6);
    rig.connect(&d, 1).await;
    assert!(!ledger_beat(&ledger, &d, beat(90)).await);
    // The store moves the device offline by a path the ledger is not told of.
    rig.offline_behind_the_ledger(&d, 1).await;
    assert_eq!(rig.state(&d).await.0, DeviceState::Offline);
    rig.reports();
    // Its next beat looks like the last one and is kept; the flush finds the device offline,
    // refuses the short write, and applies the beat in full: the unit is back online.
    rig.sup.clock.advance_ms(5_000);
    assert!(ledger_beat(&ledger, &d, beat(90)).await);
    ledger.flush().await.unwrap();
    assert_eq!(rig.state(&d).await, (DeviceState::Online, None));
    assert_eq!(rig.last_heartbeat(&d).await, Some(T0 + 5_000));
    assert_eq!(ledger.kept(), 0);
}

async fn one_flush_writes_the_kept_beats_of_many_units_and_refuses_the_one_that_moved(db: TestDb) {
    let mut rig = rig(db, 1).await;
    let ledger = with_ledger(&mut rig);
    // Readings with and without the optional fields: the flush's statement takes both.
    let bare = Heartbeat {
        seq: 1,
        battery: None,
        tamper: false,
        rssi: None,
        firmware: None,
    };
    let units: Vec<(String, Heartbeat)> = (0..5)
        .map(|i| {
            (
                rig.device(i),
                if i % 2 == 0 { beat(80) } else { bare.clone() },
            )
        })
        .collect();
    for (session, (d, hb)) in units.iter().enumerate() {
        rig.connect(d, session as u64 + 1).await;
        assert!(
            !ledger_beat(&ledger, d, hb.clone()).await,
            "the first beat is news"
        );
    }
    // Unit 3 is moved offline by a path the ledger is not told of.
    rig.offline_behind_the_ledger(&units[3].0, 4).await;
    rig.sup.clock.advance_ms(10_000);
    for (d, hb) in &units {
        assert!(
            ledger_beat(&ledger, d, hb.clone()).await,
            "{d}: nothing new, kept"
        );
    }
    assert_eq!(ledger.kept(), 5);
    ledger.flush().await.unwrap();
    assert_eq!(ledger.kept(), 0);
    assert_eq!(
        ledger.reapplied(),
        1,
        "only the unit that moved needed the full path"
    );
    for (d, _) in &units {
        assert_eq!(rig.last_heartbeat(d).await, Some(T0 + 10_000), "{d}");
        assert_eq!(rig.state(d).await, (DeviceState::Online, None), "{d}");
    }
}
