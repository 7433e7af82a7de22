//! Escalation timing against a real store, on SQLite and on PostgreSQL, on a clock that moves
//! only when the test moves it: rings fire at their configured moments, a "coming" stops the
//! climb, and after a restart (or with two gateways on one database) every overdue ring fires
//! exactly once.

// A test binary: an unwrap that fails is a failed test (clippy.toml only covers #[test] fns).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, EventLoop, MqttOptions};
use tenwatch_gateway::clock::Clock;
use tenwatch_gateway::domain::{AlertId, AlertState, DeviceId, Press, PressKind};
use tenwatch_gateway::downlink::{Downlink, Link};
use tenwatch_gateway::escalation::{tick, Escalation};
use tenwatch_gateway::feed::Feed;
use tenwatch_gateway::ingest::{Ingest, IngestSettings};
use tenwatch_gateway::lifecycle::{Action, RecipientState};
use tenwatch_gateway::metrics::Metrics;
use tenwatch_gateway::push::{PushConfig, Pusher};
use tenwatch_gateway::seed::{seed_demo, Credential};
use tenwatch_gateway::store::{
    self, PressOutcome, PressRules, RecipientKind, RingFired, RingPlan, Store,
};

use common::TestDb;

store_tests!(
    rings_fire_at_their_moments_and_reach_further,
    anyone_coming_stops_the_climb,
    after_a_restart_overdue_rings_fire_exactly_once_even_with_two_gateways,
);

const T0: i64 = 1_800_000_000_000;

struct Gateway {
    store: Arc<dyn Store>,
    ingest: Ingest,
    escalation: Escalation,
    /// Held so that publishes queue instead of failing; nothing is listening in these tests.
    _eventloop: EventLoop,
}

async fn gateway(url: &str, clock: &Clock) -> Gateway {
    let store = store::open(url).await.expect("store");
    let (client, eventloop) =
        AsyncClient::new(MqttOptions::new("escalation-test", "127.0.0.1", 9), 10_000);
    let metrics: Arc<Metrics> = Arc::default();
    // Pushes queue and are never sent here: the worker is not run.
    let (pusher, _worker) = Pusher::new(
        store.clone(),
        PushConfig::default(),
        metrics.clone(),
        clock.clone(),
        Feed::new(),
    )
    .await
    .expect("pusher");
    let feed = Feed::new();
    let downlink = Downlink::new(
        Link::Mqtt(client),
        metrics.clone(),
        clock.clone(),
        Default::default(),
    );
    let plan = RingPlan::default();
    let ingest = Ingest::new(
        store.clone(),
        downlink.clone(),
        feed.clone(),
        metrics,
        IngestSettings {
            cancel_window: Duration::from_secs(30),
            presses: Default::default(),
            enough: Default::default(),
            plan,
            supervision: Default::default(),
            ages: Default::default(),
            catch_up_on_request: false,
        },
        clock.clone(),
        Arc::default(),
        pusher.clone(),
    );
    let escalation = Escalation {
        store: store.clone(),
        plan,
        clock: clock.clone(),
        downlink,
        pusher,
        feed,
    };
    Gateway {
        store,
        ingest,
        escalation,
        _eventloop: eventloop,
    }
}

/// The demo neighbourhood in the test's database; returns its URL and credentials.
async fn neighbourhood(db: &TestDb) -> (String, Vec<Credential>) {
    let store = db.open().await;
    let creds = seed_demo(store.as_ref(), 6).await.expect("seed");
    (db.url.clone(), creds)
}

async fn press(store: &dyn Store, device: &str, now: i64) -> AlertId {
    let press = Press {
        seq: 1,
        boot: None,
        kind: PressKind::Help,
        device_ts_ms: None,
    };
    let device = DeviceId::parse(device).expect("device id");
    match store
        .record_press(
            &device,
            &press,
            &RingPlan::default(),
            &PressRules::default(),
            now,
        )
        .await
        .expect("press stored")
    {
        PressOutcome::Raised(a) => a.id,
        other => panic!("expected a new alert, got {other:?}"),
    }
}

/// Moves the clock on by `ms`: no ring fires a millisecond before, exactly one at `ms`.
async fn one_ring_after(gw: &Gateway, clock: &Clock, ms: i64) -> RingFired {
    clock.advance_ms(ms - 1);
    assert!(
        tick(&gw.escalation).await.unwrap().is_empty(),
        "a ring fired before {ms} ms"
    );
    clock.advance_ms(1);
    let mut fired = tick(&gw.escalation).await.unwrap();
    assert_eq!(fired.len(), 1);
    fired.remove(0)
}

async fn rings_fire_at_their_moments_and_reach_further(db: TestDb) {
    let (url, creds) = neighbourhood(&db).await;
    let clock = Clock::manual(T0);
    let gw = gateway(&url, &clock).await;
    let store = gw.store.clone();
    // A household in the middle of the street, so nearby clusters lie on both sides.
    let presser = &creds[25];
    let alert = press(store.as_ref(), &presser.device, T0).await;

    let ring0 = store.recipients(alert).await.unwrap();
    assert_eq!(
        ring0
            .iter()
            .filter(|r| r.kind == RecipientKind::Unit)
            .count(),
        9
    );
    assert_eq!(
        ring0
            .iter()
            .filter(|r| r.kind == RecipientKind::Station)
            .count(),
        1
    );

    let ring1 = one_ring_after(&gw, &clock, 30_000).await;
    assert_eq!(ring1.ring, 1);
    assert!(!ring1.clusters.is_empty());
    assert!(!ring1.clusters.contains(&ring1.alert.cluster));
    let distances: Vec<f64> = ring1.added.iter().filter_map(|r| r.distance_m).collect();
    assert_eq!(distances.len(), ring1.added.len());
    assert!(distances.windows(2).all(|w| w[0] <= w[1]), "nearest first");
    assert!(distances.iter().all(|d| *d <= 800.0));
    assert!(!ring1.alert.critical);

    let ring2 = one_ring_after(&gw, &clock, 60_000).await;
    assert_eq!(ring2.ring, 2);
    assert!(ring2.alert.critical);
    assert_eq!(ring2.alert.next_ring_at_ms, None);

    clock.advance_ms(3_600_000);
    assert!(tick(&gw.escalation).await.unwrap().is_empty(), "no ring 3");
    let detail = store.alert_detail(alert).await.unwrap().unwrap();
    let rings: Vec<(i64, &str)> = detail
        .timeline
        .iter()
        .filter(|e| e.action.starts_with("ring"))
        .map(|e| (e.at_ms - T0, e.action.as_str()))
        .collect();
    assert_eq!(rings, [(30_000, "ring1"), (90_000, "ring2")]);
}

async fn anyone_coming_stops_the_climb(db: TestDb) {
    let (url, creds) = neighbourhood(&db).await;
    let clock = Clock::manual(T0);
    let gw = gateway(&url, &clock).await;
    let alert = press(gw.store.as_ref(), &creds[0].device, T0).await;
    clock.advance_ms(12_000);
    let neighbour = &creds[3].device;
    let applied = gw
        .ingest
        .apply_action(
            alert,
            &format!("device:{neighbour}"),
            Action::Recipient(RecipientState::Coming),
            Some((RecipientKind::Unit, neighbour)),
            "",
        )
        .await
        .unwrap();
    assert_eq!(applied.alert.state, AlertState::Acknowledged);
    assert_eq!(applied.alert.responders, 1);
    assert_eq!(applied.alert.first_coming_at_ms, Some(T0 + 12_000));
    clock.advance_ms(600_000);
    assert!(tick(&gw.escalation).await.unwrap().is_empty());
    assert_eq!(gw.store.alert(alert).await.unwrap().unwrap().ring, 0);
}

async fn after_a_restart_overdue_rings_fire_exactly_once_even_with_two_gateways(db: TestDb) {
    let (url, creds) = neighbourhood(&db).await;
    let clock = Clock::manual(T0);
    let alerts = {
        let first = gateway(&url, &clock).await;
        let a = press(first.store.as_ref(), &creds[11].device, T0).await;
        let b = press(first.store.as_ref(), &creds[42].device, T0 + 50_000).await;
        [a, b]
        // The gateway stops here, before any ring.
    };
    clock.advance_ms(200_000);
    // Two gateways come up on the same database and check at the same moment.
    let (one, two) = (gateway(&url, &clock).await, gateway(&url, &clock).await);
    let (a, b) = tokio::join!(tick(&one.escalation), tick(&two.escalation));
    let mut fired: Vec<(AlertId, u8)> = a
        .unwrap()
        .into_iter()
        .chain(b.unwrap())
        .map(|f| (f.alert.id, f.ring))
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        [
            (alerts[0], 1),
            (alerts[0], 2),
            (alerts[1], 1),
            (alerts[1], 2)
        ]
    );
    assert!(tick(&one.escalation).await.unwrap().is_empty());
    assert!(tick(&two.escalation).await.unwrap().is_empty());
    for alert in alerts {
        let detail = one.store.alert_detail(alert).await.unwrap().unwrap();
        let rings = detail
            .timeline
            .iter()
            .filter(|e| e.action.starts_with("ring"))
            .count();
        assert_eq!(rings, 2, "{alert}: {:?}", detail.timeline);
    }
}
