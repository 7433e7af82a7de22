//! The store's story, told the same way to each backend (SQLite, and PostgreSQL when a server
//! is given): the registry and what it refuses, a press stored once however often it is
//! repeated, cancels inside the window only, receipts, an alert's life from "coming" to
//! resolved, an alert made public once (the CAP feed), accounts and sessions, Web Push subscriptions and check-ins, presence; and, with
//! two stores on one database as two gateways would have, a ring fired once and a repeated
//! press raised once even when both try at the same moment.

// A test binary: an unwrap that fails is a failed test (clippy.toml only covers #[test] fns).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::Arc;

use tenwatch_gateway::accounts::{AccountKind, AccountName, Role};
use tenwatch_gateway::domain::{
    AlertId, AlertState, BootId, ClusterId, DeviceId, HouseholdId, Press, PressKind, ZoneCode,
};
use tenwatch_gateway::lifecycle::{Action, Category, RecipientState};
use tenwatch_gateway::seed::{seed_demo, Credential, DEMO_ZONE};
use tenwatch_gateway::store::accounts::NewAccount;
use tenwatch_gateway::store::push::{NewPushSubscription, VapidKeyPair};
use tenwatch_gateway::store::supervision::{
    DeviceReportKind, DeviceState, PresenceReport, Report, SupervisionPolicy,
};
use tenwatch_gateway::store::{
    AlertFilter, AlertSummary, Applied, CancelOutcome, ListWindow, NewCluster, NewHousehold,
    Ordered, PressOutcome, PressRules, RecipientKind, RingPlan, Store, StoreError,
};

use common::TestDb;

store_tests!(
    the_registry_keeps_what_it_is_given_and_refuses_what_breaks_it,
    a_repeated_press_is_one_alert_fanned_out_once,
    a_press_is_told_apart_by_its_boot_and_a_bare_seq_only_for_a_while,
    a_household_pressing_again_adds_to_its_open_alert,
    cancel_inside_the_window_only,
    receipts_move_units_and_the_first_is_told,
    an_alert_from_coming_to_resolved,
    a_published_alert_is_public_once_and_listed_for_the_cap_feed,
    only_a_responder_marks_an_alert_on_scene,
    a_unit_back_online_catches_up_on_its_recent_alerts_and_rings_only,
    accounts_sessions_and_duty,
    push_subscriptions_outcomes_and_checkins,
    a_stale_disconnect_does_not_hide_a_reconnect,
    presence_reports_taken_together_apply_each_in_order,
    two_gateways_racing_fire_each_ring_once,
    two_gateways_racing_raise_a_repeated_press_once,
    two_gateways_sweeping_at_once_report_each_silent_device_once,
    devices_are_listed_disabled_rotated_and_deleted_only_without_history,
    accounts_are_listed_disabled_reset_and_deleted_only_without_history,
    a_volunteer_keeps_the_newest_ten_push_subscriptions,
);

const T0: i64 = 1_800_000_000_000;

fn zone() -> ZoneCode {
    ZoneCode::parse(DEMO_ZONE).unwrap()
}

fn device(creds: &[Credential], i: usize) -> DeviceId {
    DeviceId::parse(&creds[i].device).unwrap()
}

fn press(seq: u64, kind: PressKind) -> Press {
    Press {
        seq,
        boot: None,
        kind,
        device_ts_ms: None,
    }
}

/// A press of `kind` stored with the default rings.
async fn record(
    store: &dyn Store,
    device: &DeviceId,
    seq: u64,
    kind: PressKind,
    now: i64,
) -> PressOutcome {
    store
        .record_press(
            device,
            &press(seq, kind),
            &RingPlan::default(),
            &PressRules::default(),
            now,
        )
        .await
        .unwrap()
}

async fn raise(store: &dyn Store, device: &DeviceId, seq: u64, now: i64) -> AlertId {
    match record(store, device, seq, PressKind::Help, now).await {
        PressOutcome::Raised(a) => a.id,
        other => panic!("expected a new alert, got {other:?}"),
    }
}

/// A cancel press, with a 30 s window.
async fn cancel(store: &dyn Store, device: &DeviceId, seq: u64, now: i64) -> CancelOutcome {
    store
        .cancel_press(
            device,
            &press(seq, PressKind::Cancel),
            30_000,
            &PressRules::default(),
            now,
        )
        .await
        .unwrap()
}

/// What the station's operator does to an alert.
fn by_station(
    store: &dyn Store,
    alert: AlertId,
    action: Action,
    target: Option<(RecipientKind, &str)>,
    detail: &str,
    now: i64,
) -> Ordered<Applied> {
    store.apply(alert, "operator:wang", action, target, detail, now)
}

/// The alerts of `zones`, open ones only or all.
async fn listed(store: &dyn Store, open_only: bool, zones: Vec<ZoneCode>) -> Vec<AlertSummary> {
    let filter = AlertFilter {
        open_only,
        zones,
        window: ListWindow {
            limit: 100,
            ..ListWindow::default()
        },
    };
    store.list_alerts(&filter).await.unwrap()
}

fn household(id: &str, cluster: &ClusterId, lat: f64) -> NewHousehold {
    NewHousehold {
        id: HouseholdId::parse(id).unwrap(),
        cluster: cluster.clone(),
        label: format!("和平路{id}号"),
        address: format!("北京市东城区和平路{id}号"),
        lat,
        lon: 116.4,
        notes: String::new(),
        contacts: String::new(),
    }
}

async fn the_registry_keeps_what_it_is_given_and_refuses_what_breaks_it(db: TestDb) {
    let store = db.open().await;
    let zone = zone();
    store.add_zone(&zone, "示范社区").await.unwrap();
    assert!(matches!(
        store.add_zone(&zone, "again").await,
        Err(StoreError::Conflict(m)) if m.contains(DEMO_ZONE)
    ));
    let cluster = ClusterId::parse("c1").unwrap();
    let new_cluster = |id: &ClusterId, zone: &ZoneCode| NewCluster {
        id: id.clone(),
        zone: zone.clone(),
        name: "一组".into(),
        leader_household: None,
    };
    store
        .add_cluster(&new_cluster(&cluster, &zone))
        .await
        .unwrap();
    let nowhere = ZoneCode::parse("99999999").unwrap();
    let orphan = ClusterId::parse("c9").unwrap();
    assert!(matches!(
        store.add_cluster(&new_cluster(&orphan, &nowhere)).await,
        Err(StoreError::NotFound(m)) if m.contains("99999999")
    ));
    let other = ClusterId::parse("c2").unwrap();
    store
        .add_cluster(&new_cluster(&other, &zone))
        .await
        .unwrap();

    store
        .add_household(&household("h1", &cluster, 39.9))
        .await
        .unwrap();
    assert!(matches!(
        store.add_household(&household("h1", &cluster, 39.9)).await,
        Err(StoreError::Conflict(m)) if m.contains("h1")
    ));
    assert!(matches!(
        store.add_household(&household("h9", &orphan, 39.9)).await,
        Err(StoreError::NotFound(m)) if m.contains("c9")
    ));
    assert!(matches!(
        store.add_household(&household("h8", &cluster, 91.0)).await,
        Err(StoreError::Invalid(m)) if m.contains("not a latitude") && !m.contains("CHECK")
    ));
    let h1 = HouseholdId::parse("h1").unwrap();
    let d1 = DeviceId::parse("d1").unwrap();
    store.add_device(&d1, &h1, "ab12").await.unwrap();
    assert!(matches!(
        store.add_device(&d1, &h1, "ab12").await,
        Err(StoreError::Conflict(m)) if m.contains("d1")
    ));
    let ghost_home = HouseholdId::parse("h404").unwrap();
    assert!(matches!(
        store.add_device(&DeviceId::parse("d2").unwrap(), &ghost_home, "00").await,
        Err(StoreError::NotFound(m)) if m.contains("h404")
    ));
    // Many households in one transaction: one bad row keeps none of them.
    let rows = vec![
        (
            household("h2", &other, 39.9),
            DeviceId::parse("d2").unwrap(),
            "01".to_owned(),
        ),
        (
            household("h3", &other, 39.9),
            DeviceId::parse("d1").unwrap(),
            "02".to_owned(),
        ),
    ];
    assert!(store.add_households_with_devices(&rows).await.is_err());
    assert_eq!(store.counts().await.unwrap().households, 1);
    let rows = vec![(
        household("h2", &other, 39.9),
        DeviceId::parse("d2").unwrap(),
        "01".to_owned(),
    )];
    store.add_households_with_devices(&rows).await.unwrap();

    store.set_cluster_leader(&cluster, &h1).await.unwrap();
    assert!(matches!(
        store.set_cluster_leader(&other, &h1).await,
        Err(StoreError::NotFound(_))
    ));
    let credential = store.device_credential(&d1).await.unwrap().unwrap();
    assert_eq!(credential.secret_hash, "ab12");
    assert!(credential.enabled);
    assert_eq!(credential.cluster, cluster);
    assert!(store
        .device_credential(&DeviceId::parse("d404").unwrap())
        .await
        .unwrap()
        .is_none());
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (
            counts.zones,
            counts.clusters,
            counts.households,
            counts.devices,
            counts.devices_online
        ),
        (1, 2, 2, 2, 0)
    );
    let map = store.zone_map(std::slice::from_ref(&zone)).await.unwrap();
    assert_eq!(map.clusters.len(), 2);
    assert_eq!(map.clusters[0].leader_label.as_deref(), Some("和平路h1号"));
    assert_eq!(map.households.len(), 2);
    assert_eq!(map.devices.len(), 2);
    assert!(map.devices.iter().all(|d| d.enabled && !d.online));
    assert!(store
        .zone_map(&[nowhere])
        .await
        .unwrap()
        .clusters
        .is_empty());
    store.ping().await.unwrap();
}

/// A press with a boot id: (device, boot, seq).
fn booted(seq: u64, boot: &str) -> Press {
    Press {
        boot: Some(BootId::parse(boot).unwrap()),
        ..press(seq, PressKind::Help)
    }
}

async fn store_press(
    store: &dyn Store,
    device: &DeviceId,
    press: &Press,
    now: i64,
) -> PressOutcome {
    store
        .record_press(
            device,
            press,
            &RingPlan::default(),
            &PressRules::default(),
            now,
        )
        .await
        .unwrap()
}

/// A unit whose counter starts again (a battery change, a replacement) presses seq 1 again:
/// with a new boot id that is a new press, while the same boot and seq is a repeat however
/// late; without a boot id the seq alone tells, for the repeat window only (10 minutes).
async fn a_press_is_told_apart_by_its_boot_and_a_bare_seq_only_for_a_while(db: TestDb) {
    let store = db.open().await;
    let creds = seed_demo(store.as_ref(), 1).await.unwrap();
    let (unit, old_unit) = (device(&creds, 0), device(&creds, 1));
    let window = PressRules::default().repeat_window_ms;

    let PressOutcome::Raised(first) =
        store_press(store.as_ref(), &unit, &booted(1, "b1"), T0).await
    else {
        panic!("a new alert")
    };
    assert_eq!(first.boot.as_ref().map(BootId::as_str), Some("b1"));
    let late_repeat = store_press(store.as_ref(), &unit, &booted(1, "b1"), T0 + 2 * window).await;
    assert_eq!(late_repeat, PressOutcome::Duplicate(first.clone()));
    // Rebooted, and counting from 1 again: a new alert, which names the new boot.
    let rebooted = store_press(store.as_ref(), &unit, &booted(1, "b2"), T0 + 3 * window).await;
    let PressOutcome::Raised(second) = &rebooted else {
        panic!("a new alert after a reboot, got {rebooted:?}")
    };
    assert_ne!(second.id, first.id);
    assert_eq!(second.first_press().1.map(BootId::as_str), Some("b2"));
    let repeat = store_press(
        store.as_ref(),
        &unit,
        &booted(1, "b2"),
        T0 + 3 * window + 2_000,
    )
    .await;
    assert_eq!(repeat, PressOutcome::Duplicate(second.clone()));

    // A unit that sends no boot id: a repeat within the window, a new press after it.
    let PressOutcome::Raised(bare) =
        record(store.as_ref(), &old_unit, 5, PressKind::Fire, T0).await
    else {
        panic!("a new alert")
    };
    assert_eq!(bare.boot, None);
    assert_eq!(
        record(store.as_ref(), &old_unit, 5, PressKind::Fire, T0 + window).await,
        PressOutcome::Duplicate(bare.clone())
    );
    let later = record(
        store.as_ref(),
        &old_unit,
        5,
        PressKind::Fire,
        T0 + window + 1,
    )
    .await;
    let PressOutcome::Raised(anew) = &later else {
        panic!("a new alert once the repeat window is over, got {later:?}")
    };
    assert_ne!(anew.id, bare.id);
    // From then on its repeats are the new alert's.
    assert_eq!(
        record(
            store.as_ref(),
            &old_unit,
            5,
            PressKind::Fire,
            T0 + window + 3_000
        )
        .await,
        PressOutcome::Duplicate(anew.clone())
    );
    // A cancel is told apart the same way: with a new boot, seq 1 is a new cancel.
    let cancel_b2 = Press {
        kind: PressKind::Cancel,
        ..booted(1, "b3")
    };
    let cancelled = store
        .cancel_press(
            &unit,
            &cancel_b2,
            30_000,
            &PressRules::default(),
            T0 + 3 * window + 5_000,
        )
        .await
        .unwrap();
    assert!(
        matches!(&cancelled, CancelOutcome::Cancelled(a) if a.id == second.id),
        "{cancelled:?}"
    );
    assert_eq!(listed(store.as_ref(), false, vec![zone()]).await.len(), 4);
}

/// A household that presses again while its alert is open adds to that alert: one press more,
/// the latest press's time, a timeline entry, the same recipients. Another kind, another
/// household, a closed alert or a window gone by make a new alert; a window of 0 never merges.
async fn a_household_pressing_again_adds_to_its_open_alert(db: TestDb) {
    let store = db.open().await;
    let creds = seed_demo(store.as_ref(), 1).await.unwrap();
    let (d, neighbour) = (device(&creds, 0), device(&creds, 1));
    let window = PressRules::default().merge_window_ms;
    let first = raise(store.as_ref(), &d, 1, T0).await;
    let recipients = store.recipients(first).await.unwrap().len();

    let again = record(store.as_ref(), &d, 2, PressKind::Help, T0 + 60_000).await;
    let PressOutcome::Merged(merged) = &again else {
        panic!("one more press on the open alert, got {again:?}")
    };
    assert_eq!((merged.id, merged.presses), (first, 2));
    assert_eq!(merged.last_press_at_ms, T0 + 60_000);
    assert_eq!(
        merged.first_press(),
        (1, None),
        "acks still name the first press"
    );
    // Its repeat is a repeat, not a third press.
    assert_eq!(
        record(store.as_ref(), &d, 2, PressKind::Help, T0 + 62_000).await,
        PressOutcome::Duplicate(merged.clone())
    );
    assert_eq!(store.recipients(first).await.unwrap().len(), recipients);
    let detail = store.alert_detail(first).await.unwrap().unwrap();
    let actions: Vec<_> = detail.timeline.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["raised", "pressed_again"]);

    // Another kind, another household: alerts of their own.
    let fire = record(store.as_ref(), &d, 3, PressKind::Fire, T0 + 70_000).await;
    assert!(matches!(fire, PressOutcome::Raised(_)), "{fire:?}");
    let theirs = record(store.as_ref(), &neighbour, 1, PressKind::Help, T0 + 70_000).await;
    assert!(matches!(theirs, PressOutcome::Raised(_)), "{theirs:?}");

    // The window runs from the latest press.
    let late = T0 + 60_000 + window;
    let still = record(store.as_ref(), &d, 4, PressKind::Help, late).await;
    assert!(
        matches!(&still, PressOutcome::Merged(a) if a.id == first && a.presses == 3),
        "{still:?}"
    );
    let gone = record(store.as_ref(), &d, 5, PressKind::Help, late + window + 1).await;
    let PressOutcome::Raised(newer) = gone else {
        panic!("a new alert once the window is over, got {gone:?}")
    };

    // Closed: a new alert.
    by_station(
        store.as_ref(),
        newer.id,
        Action::Resolve(Category::Help),
        None,
        "",
        late + window + 2,
    )
    .await
    .unwrap();
    let after = record(store.as_ref(), &d, 6, PressKind::Help, late + window + 3).await;
    assert!(matches!(after, PressOutcome::Raised(_)), "{after:?}");

    // Merging off.
    let off = PressRules {
        merge_window_ms: 0,
        ..PressRules::default()
    };
    let each = store
        .record_press(
            &d,
            &press(7, PressKind::Help),
            &RingPlan::default(),
            &off,
            late + window + 4,
        )
        .await
        .unwrap();
    assert!(matches!(each, PressOutcome::Raised(_)), "{each:?}");
}

async fn a_repeated_press_is_one_alert_fanned_out_once(db: TestDb) {
    let store = db.open().await;
    let creds = seed_demo(store.as_ref(), 2).await.unwrap();
    let presser = device(&creds, 3);
    let first = record(store.as_ref(), &presser, 5, PressKind::Medical, T0).await;
    let PressOutcome::Raised(alert) = first else {
        panic!("expected a new alert, got {first:?}")
    };
    assert_eq!(alert.state, AlertState::Raised);
    assert_eq!(alert.kind, "medical");
    assert_eq!(alert.seq, 5);
    assert_eq!(alert.next_ring_at_ms, Some(T0 + 30_000));
    assert_eq!(alert.label, creds[3].label);
    let again = record(store.as_ref(), &presser, 5, PressKind::Medical, T0 + 1_000).await;
    assert_eq!(again, PressOutcome::Duplicate(alert.clone()));
    // Nothing open any more: a cancel is answered with the latest alert, closed, and so is
    // its repeat (the unit stops repeating it).
    let d2 = device(&creds, 1);
    let only = raise(store.as_ref(), &d2, 1, T0).await;
    assert!(matches!(
        cancel(store.as_ref(), &d2, 2, T0 + 1_000).await,
        CancelOutcome::Cancelled(_)
    ));
    let late = cancel(store.as_ref(), &d2, 3, T0 + 2_000).await;
    assert!(
        matches!(&late, CancelOutcome::NothingOpen(Some(a))
            if a.id == only && a.state == AlertState::Cancelled),
        "{late:?}"
    );
    let repeated = cancel(store.as_ref(), &d2, 3, T0 + 4_000).await;
    assert!(
        matches!(&repeated, CancelOutcome::Duplicate(a) if a.id == only),
        "{repeated:?}"
    );
    let ghost = DeviceId::parse("ghost").unwrap();
    assert_eq!(
        record(store.as_ref(), &ghost, 1, PressKind::Help, T0).await,
        PressOutcome::UnknownDevice
    );

    let recipients = store.recipients(alert.id).await.unwrap();
    let units: Vec<&str> = recipients
        .iter()
        .filter(|r| r.kind == RecipientKind::Unit)
        .map(|r| r.who.as_str())
        .collect();
    assert_eq!(units.len(), 9, "the cluster's other nine units");
    assert!(!units.contains(&presser.as_str()));
    assert!(units.windows(2).all(|w| w[0] < w[1]), "{units:?}");
    assert_eq!(
        recipients
            .iter()
            .filter(|r| r.kind == RecipientKind::Station && r.who == DEMO_ZONE)
            .count(),
        1
    );
    assert!(recipients
        .iter()
        .all(|r| r.ring == 0 && r.state == RecipientState::Notified));
    assert_eq!(
        store.alert_clusters(alert.id).await.unwrap(),
        vec![alert.cluster.clone()]
    );

    assert_eq!(
        store.alerts_owing_fanout().await.unwrap(),
        vec![alert.clone()]
    );
    let notified = store.mark_notified(alert.id, T0 + 10).await.unwrap();
    assert_eq!(notified.state, AlertState::Notified);
    assert_eq!(notified.notified_at_ms, Some(T0 + 10));
    assert!(store.alerts_owing_fanout().await.unwrap().is_empty());
    // Recorded twice (a repeated press after a restart): nothing moves.
    let twice = store.mark_notified(alert.id, T0 + 20).await.unwrap();
    assert_eq!(twice.notified_at_ms, Some(T0 + 10));

    assert_eq!(listed(store.as_ref(), true, vec![zone()]).await.len(), 1);
    let elsewhere = ZoneCode::parse("11010599").unwrap();
    assert!(listed(store.as_ref(), true, vec![elsewhere])
        .await
        .is_empty());
    let detail = store.alert_detail(alert.id).await.unwrap().unwrap();
    let actions: Vec<_> = detail.timeline.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["raised", "notified"]);
    assert_eq!(detail.timeline[0].actor, format!("device:{presser}"));
    assert_eq!(detail.leader.as_deref(), Some(creds[0].label.as_str()));
    assert_eq!(detail.recipients.len(), 10);
    assert!(store
        .alert(AlertId(alert.id.0 + 100))
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.next_ring_deadline().await.unwrap(), Some(T0 + 30_000));
}

async fn cancel_inside_the_window_only(db: TestDb) {
    let store = db.open().await;
    let creds = seed_demo(store.as_ref(), 1).await.unwrap();
    let d = device(&creds, 0);
    assert_eq!(
        cancel(store.as_ref(), &d, 1, T0).await,
        CancelOutcome::NothingOpen(None)
    );
    let first = raise(store.as_ref(), &d, 2, T0).await;
    let late = cancel(store.as_ref(), &d, 3, T0 + 31_000).await;
    assert!(matches!(late, CancelOutcome::TooLate(ref a) if a.state == AlertState::Raised));
    // Another kind: a new alert, not one more press on the first.
    let second = match record(store.as_ref(), &d, 4, PressKind::Medical, T0 + 40_000).await {
        PressOutcome::Raised(a) => a.id,
        other => panic!("expected a new alert, got {other:?}"),
    };
    let ok = cancel(store.as_ref(), &d, 5, T0 + 45_000).await;
    let CancelOutcome::Cancelled(cancelled) = ok else {
        panic!("expected cancelled, got {ok:?}")
    };
    assert_eq!(cancelled.id, second, "the latest open alert");
    assert_eq!(cancelled.closed_at_ms, Some(T0 + 45_000));
    assert_eq!(cancelled.next_ring_at_ms, None);
    let repeated = cancel(store.as_ref(), &d, 5, T0 + 46_000).await;
    assert!(matches!(repeated, CancelOutcome::Duplicate(ref a) if a.id == second));
    let detail = store.alert_detail(second).await.unwrap().unwrap();
    let actions: Vec<_> = detail.timeline.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["raised", "cancelled"]);
    let first = store.alert(first).await.unwrap().unwrap();
    assert_eq!(first.state, AlertState::Raised);
    let ghost = DeviceId::parse("ghost").unwrap();
    assert_eq!(
        cancel(store.as_ref(), &ghost, 1, T0).await,
        CancelOutcome::UnknownDevice
    );
    // A cancelled alert is done with: a "coming" is refused with the reason.
    let refused = store
        .apply(
            second,
            "device:x",
            Action::Recipient(RecipientState::Coming),
            Some((RecipientKind::Unit, &creds[1].device)),
            "",
            T0 + 50_000,
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Refused(m)) if m.contains("cancelled")));
}

async fn receipts_move_units_and_the_first_is_told(db: TestDb) {
    let store = db.open().await;
    let creds = seed_demo(store.as_ref(), 1).await.unwrap();
    let alert = raise(store.as_ref(), &device(&creds, 0), 1, T0).await;
    // Nine receipts queued back to back, then a repeat of the first and one from the presser
    // (not a recipient).
    let mut queued: Vec<_> = (1..10)
        .map(|i| store.record_delivery(alert, &device(&creds, i), T0 + 5))
        .collect();
    queued.push(store.record_delivery(alert, &device(&creds, 1), T0 + 6));
    queued.push(store.record_delivery(alert, &device(&creds, 0), T0 + 6));
    let answers = futures::future::join_all(queued).await;
    let told: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a, Ok(Some(_))))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        told,
        [0],
        "only the first receipt reports the first delivery"
    );
    assert!(answers.iter().all(|a| a.is_ok()));
    let detail = store.alert_detail(alert).await.unwrap().unwrap();
    assert_eq!(detail.alert.first_delivered_at_ms, Some(T0 + 5));
    let delivered = detail
        .timeline
        .iter()
        .filter(|e| e.action == "delivered")
        .count();
    assert_eq!(
        delivered, 9,
        "one event per unit, none for the repeat or the presser"
    );
    let units = detail
        .recipients
        .iter()
        .filter(|r| r.kind == RecipientKind::Unit && r.state == RecipientState::Delivered)
        .count();
    assert_eq!(units, 9);
}

async fn an_alert_from_coming_to_resolved(db: TestDb) {
    let store = db.open().await;
    let creds = seed_demo(store.as_ref(), 1).await.unwrap();
    let alert = raise(store.as_ref(), &device(&creds, 0), 1, T0).await;
    let neighbour = creds[4].device.as_str();
    let unit = Some((RecipientKind::Unit, neighbour));
    let actor = format!("device:{neighbour}");
    let by_unit = |state, now| store.apply(alert, &actor, Action::Recipient(state), unit, "", now);
    let station = |action, target, detail: &'static str, now| {
        by_station(store.as_ref(), alert, action, target, detail, now)
    };

    let coming = by_unit(RecipientState::Coming, T0 + 12_000).await.unwrap();
    assert!(coming.state_changed && coming.recipient_changed);
    assert_eq!(coming.alert.state, AlertState::Acknowledged);
    assert_eq!(coming.alert.responders, 1);
    assert_eq!(coming.alert.acknowledged_at_ms, Some(T0 + 12_000));
    assert_eq!(coming.alert.first_coming_at_ms, Some(T0 + 12_000));
    assert_eq!(coming.alert.next_ring_at_ms, None, "the climb stops");
    // The same answer again is no news: no change, no event.
    let again = by_unit(RecipientState::Coming, T0 + 13_000).await.unwrap();
    assert!(!again.state_changed && !again.recipient_changed);
    // A unit that was never told cannot answer.
    let stranger = store
        .apply(
            alert,
            "device:x",
            Action::Recipient(RecipientState::Coming),
            Some((RecipientKind::Unit, "d-nowhere")),
            "",
            T0 + 13_000,
        )
        .await;
    assert!(matches!(stranger, Err(StoreError::NotFound(_))));
    // The station sends a volunteer, who is added as a recipient; twice is refused.
    let li = Some((RecipientKind::Volunteer, "li"));
    let sent = station(Action::Dispatch, li, "请到现场", T0 + 14_000)
        .await
        .unwrap();
    assert!(sent.recipient_changed && !sent.state_changed);
    let twice = station(Action::Dispatch, li, "", T0 + 14_500).await;
    assert!(matches!(twice, Err(StoreError::Refused(m)) if m.contains("already")));
    let there = by_unit(RecipientState::OnScene, T0 + 20_000).await.unwrap();
    assert_eq!(there.alert.state, AlertState::OnScene);
    assert_eq!(there.alert.first_on_scene_at_ms, Some(T0 + 20_000));
    let dispute = Action::Resolve(Category::Dispute);
    let resolved = station(dispute, None, "邻里纠纷，已调解", T0 + 60_000)
        .await
        .unwrap();
    assert_eq!(resolved.alert.state, AlertState::Resolved);
    assert_eq!(resolved.alert.category.as_deref(), Some("dispute"));
    assert_eq!(
        resolved.alert.resolution_note.as_deref(),
        Some("邻里纠纷，已调解")
    );
    assert_eq!(resolved.alert.closed_at_ms, Some(T0 + 60_000));
    let after = station(Action::Resolve(Category::Help), None, "", T0 + 61_000).await;
    assert!(matches!(after, Err(StoreError::Refused(m)) if m.contains("already resolved")));
    let note = station(Action::Note, None, "回访完毕", T0 + 62_000)
        .await
        .unwrap();
    assert_eq!(note.alert.state, AlertState::Resolved);
    let missing = AlertId(alert.0 + 100);
    assert!(matches!(
        by_station(store.as_ref(), missing, Action::Note, None, "", T0).await,
        Err(StoreError::NotFound(_))
    ));

    let detail = store.alert_detail(alert).await.unwrap().unwrap();
    let actions: Vec<_> = detail.timeline.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "raised",
            "coming",
            "dispatched",
            "on_scene",
            "resolved",
            "note"
        ]
    );
    assert_eq!(detail.timeline[2].detail, "li 请到现场");
    assert!(detail.timeline[4].detail.starts_with("dispute"));
    assert!(
        listed(store.as_ref(), true, vec![zone()]).await.is_empty(),
        "resolved is not open"
    );
    assert_eq!(store.next_ring_deadline().await.unwrap(), None);
}

async fn a_published_alert_is_public_once_and_listed_for_the_cap_feed(db: TestDb) {
    let store = db.open().await;
    let creds = seed_demo(store.as_ref(), 1).await.unwrap();
    let public = raise(store.as_ref(), &device(&creds, 0), 1, T0).await;
    let private = raise(store.as_ref(), &device(&creds, 1), 1, T0 + 1_000).await;
    assert!(store.public_alerts(100).await.unwrap().is_empty());

    let published = by_station(
        store.as_ref(),
        public,
        Action::Publish,
        None,
        "",
        T0 + 5_000,
    )
    .await
    .unwrap();
    assert_eq!(published.alert.public_at_ms, Some(T0 + 5_000));
    assert_eq!(
        published.alert.state,
        AlertState::Raised,
        "publishing moves nothing else"
    );
    assert!(!published.state_changed);
    // Once: the first message's `sent` never moves.
    let again = by_station(
        store.as_ref(),
        public,
        Action::Publish,
        None,
        "",
        T0 + 9_000,
    )
    .await;
    assert!(matches!(again, Err(StoreError::Refused(m)) if m.contains("already public")));
    assert_eq!(
        store.alert(public).await.unwrap().unwrap().public_at_ms,
        Some(T0 + 5_000)
    );
    let listed: Vec<AlertId> = store
        .public_alerts(100)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, [public], "only what was published");
    assert_eq!(
        store.alert(private).await.unwrap().unwrap().public_at_ms,
        None
    );

    // Closed, it stays public (its Cancel or all-clear goes out) but is not published anew.
    let resolve = Action::Resolve(Category::FalseAlarm);
    by_station(store.as_ref(), private, resolve, None, "", T0 + 10_000)
        .await
        .unwrap();
    let late = by_station(
        store.as_ref(),
        private,
        Action::Publish,
        None,
        "",
        T0 + 11_000,
    )
    .await;
    assert!(matches!(late, Err(StoreError::Refused(m)) if m.contains("already resolved")));
    by_station(store.as_ref(), public, resolve, None, "", T0 + 12_000)
        .await
        .unwrap();
    let listed = store.public_alerts(100).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].closed_at_ms, Some(T0 + 12_000));
    let detail = store.alert_detail(public).await.unwrap().unwrap();
    let actions: Vec<_> = detail.timeline.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["raised", "published", "resolved"]);
}

async fn only_a_responder_marks_an_alert_on_scene(db: TestDb) {
    let store = db.open().await;
    let creds = seed_demo(store.as_ref(), 1).await.unwrap();
    let alert = raise(store.as_ref(), &device(&creds, 0), 1, T0).await;
    let by = |who: &'static str, state, now| {
        let target = Some((RecipientKind::Volunteer, who));
        let actor = format!("volunteer:{who}");
        store.apply(alert, &actor, Action::Recipient(state), target, "", now)
    };
    // A volunteer of the zone whom nobody notified or dispatched: refused with the reason,
    // straight away or through "seen" first, and the climb goes on.
    let on_scene = by("zhang", RecipientState::OnScene, T0 + 5_000).await;
    assert!(
        matches!(&on_scene, Err(StoreError::NotAllowed(m)) if m.contains("only a responder")),
        "{on_scene:?}"
    );
    let seen = by("zhang", RecipientState::Seen, T0 + 5_000).await;
    assert!(matches!(seen, Err(StoreError::NotAllowed(_))), "{seen:?}");
    let still = store.alert(alert).await.unwrap().unwrap();
    assert_eq!(still.state, AlertState::Raised);
    assert_eq!(still.first_on_scene_at_ms, None);
    assert!(still.next_ring_at_ms.is_some(), "the climb goes on");
    // Dispatched, a volunteer may; so may one who said "coming", and the station itself.
    let li = Some((RecipientKind::Volunteer, "li"));
    by_station(store.as_ref(), alert, Action::Dispatch, li, "", T0 + 6_000)
        .await
        .unwrap();
    let there = by("li", RecipientState::OnScene, T0 + 7_000).await.unwrap();
    assert_eq!(there.alert.state, AlertState::OnScene);
    assert_eq!(there.alert.first_on_scene_at_ms, Some(T0 + 7_000));
    by("wu", RecipientState::Coming, T0 + 8_000).await.unwrap();
    by("wu", RecipientState::OnScene, T0 + 9_000).await.unwrap();
    let station = Some((RecipientKind::Station, DEMO_ZONE));
    let on = Action::Recipient(RecipientState::OnScene);
    by_station(store.as_ref(), alert, on, station, "", T0 + 9_500)
        .await
        .unwrap();
    let detail = store.alert_detail(alert).await.unwrap().unwrap();
    assert!(
        detail.recipients.iter().all(|r| r.who != "zhang"),
        "the refused volunteer is no recipient"
    );
    assert!(detail.timeline.iter().all(|e| e.actor != "volunteer:zhang"));
}

async fn a_unit_back_online_catches_up_on_its_recent_alerts_and_rings_only(db: TestDb) {
    let store = db.open().await;
    let creds = seed_demo(store.as_ref(), 2).await.unwrap();
    let (presser, neighbour, nearby) = (device(&creds, 0), device(&creds, 4), device(&creds, 13));
    let ids = |alerts: Vec<AlertSummary>| alerts.into_iter().map(|a| a.id).collect::<Vec<_>>();
    let window = 30 * 60_000;
    let missed = |who: DeviceId, until: i64, limit: u32| {
        let store = store.clone();
        async move {
            ids(store
                .catch_up_alerts(&who, until - window, until, limit)
                .await
                .unwrap())
        }
    };
    let first = raise(store.as_ref(), &presser, 1, T0).await;
    // Its cluster's alert, for a neighbour; never the presser's own; not yet for the nearby
    // cluster, which no ring has reached.
    assert_eq!(missed(neighbour.clone(), T0 + 1_000, 3).await, [first]);
    assert!(missed(presser.clone(), T0 + 1_000, 3).await.is_empty());
    assert!(missed(nearby.clone(), T0 + 1_000, 3).await.is_empty());
    // Ring 1 reaches the nearby cluster: a unit of it back online after that hears the alert;
    // back before it, the ring reached it live on its cluster topic.
    let plan = RingPlan::default();
    let fired = store
        .fire_ring(first, &plan, T0 + 31_000)
        .await
        .unwrap()
        .expect("ring 1 fires");
    assert!(fired.added.iter().any(|r| r.who == nearby.as_str()));
    assert_eq!(missed(nearby.clone(), T0 + 40_000, 3).await, [first]);
    assert!(missed(nearby.clone(), T0 + 30_000, 3).await.is_empty());

    // Five alerts later: the newest three only, newest first.
    let mut later = Vec::new();
    for i in 1..=5u64 {
        let at = T0 + 60_000 + i as i64 * 1_000;
        later.push(raise(store.as_ref(), &device(&creds, i as usize), 1, at).await);
    }
    let newest: Vec<AlertId> = later.iter().rev().take(3).copied().collect();
    assert_eq!(missed(device(&creds, 9), T0 + 70_000, 3).await, newest);
    // A closed alert is not sounded again; an alert older than the window never is.
    let resolve = Action::Resolve(Category::FalseAlarm);
    by_station(store.as_ref(), later[4], resolve, None, "", T0 + 71_000)
        .await
        .unwrap();
    assert_eq!(
        missed(device(&creds, 9), T0 + 72_000, 10).await,
        [later[3], later[2], later[1], later[0], first]
    );
    assert_eq!(
        missed(nearby.clone(), T0 + window + 1_000, 3).await,
        Vec::<AlertId>::new(),
        "half an hour on, the ring's alert is not sounded again"
    );
    assert_eq!(
        missed(device(&creds, 9), T0 + window + 1_000, 10).await,
        [later[3], later[2], later[1], later[0]]
    );
}

fn account(name: &str, kind: AccountKind, zones: &[&ZoneCode]) -> NewAccount {
    NewAccount {
        name: AccountName::parse(name).unwrap(),
        kind,
        role: (kind == AccountKind::Operator).then_some(Role::Monitor),
        display_name: format!("{name} display"),
        phone: String::new(),
        password_hash: "$argon2id$fake".into(),
        zones: zones.iter().map(|z| (*z).clone()).collect(),
    }
}

/// A new volunteer of `zone`; its account id.
async fn volunteer(store: &dyn Store, name: &str, zone: &ZoneCode) -> i64 {
    let new = account(name, AccountKind::Volunteer, &[zone]);
    store.create_account(&new, 0).await.unwrap()
}

async fn accounts_sessions_and_duty(db: TestDb) {
    let s = db.open().await;
    let z1 = zone();
    let z2 = ZoneCode::parse("11010502").unwrap();
    s.add_zone(&z1, "一区").await.unwrap();
    s.add_zone(&z2, "二区").await.unwrap();

    let wang = s
        .create_account(&account("Wang", AccountKind::Operator, &[&z2, &z1]), 1)
        .await
        .unwrap();
    let found = s
        .account_by_name(&AccountName::parse("wANG").unwrap())
        .await
        .unwrap()
        .expect("found regardless of case");
    assert_eq!(found.principal.account_id, wang);
    assert_eq!(found.principal.name, "Wang");
    assert_eq!(found.principal.zones, vec![z1.clone(), z2.clone()]);
    assert_eq!(found.principal.role, Some(Role::Monitor));
    assert!(!found.disabled);
    let taken = s
        .create_account(&account("WANG", AccountKind::Volunteer, &[&z1]), 1)
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(ref m)) if m.contains("WANG")));
    let nowhere = ZoneCode::parse("99999999").unwrap();
    let unknown_zone = s
        .create_account(&account("li", AccountKind::Operator, &[&nowhere]), 1)
        .await;
    assert!(matches!(unknown_zone, Err(StoreError::NotFound(ref m)) if m.contains("99999999")));
    assert!(s
        .account_by_name(&AccountName::parse("li").unwrap())
        .await
        .unwrap()
        .is_none());
    let twice = s
        .create_account(&account("zhao", AccountKind::Operator, &[&z1, &z1]), 1)
        .await;
    assert!(matches!(twice, Err(StoreError::Invalid(_))), "{twice:?}");
    let two_zones = s
        .create_account(&account("v2", AccountKind::Volunteer, &[&z1, &z2]), 1)
        .await;
    assert!(matches!(two_zones, Err(StoreError::Invalid(_))));

    // Sessions slide while used and then expire.
    let hour = 3_600_000;
    s.create_session("h1", wang, 0, hour).await.unwrap();
    let signed_in = |token, now| {
        let s = s.clone();
        async move {
            s.session_principal(token, now, hour)
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(signed_in("h1", 10).await);
    assert!(!signed_in("nope", 10).await);
    assert!(signed_in("h1", 50 * 60_000).await);
    assert!(signed_in("h1", 100 * 60_000).await);
    assert!(!signed_in("h1", 161 * 60_000).await);
    s.create_session("h2", wang, 200 * 60_000, 260 * 60_000)
        .await
        .unwrap();
    s.delete_session("h2").await.unwrap();
    assert!(!signed_in("h2", 200 * 60_000).await);
    assert!(matches!(
        s.create_session("h3", 404_404, 0, hour).await,
        Err(StoreError::NotFound(_))
    ));

    // Duty and position.
    let a = volunteer(s.as_ref(), "va", &z1).await;
    let b = volunteer(s.as_ref(), "vb", &z1).await;
    let c = volunteer(s.as_ref(), "vc", &z2).await;
    assert!(s.on_duty_volunteers(&z1).await.unwrap().is_empty());
    assert!(!s.update_position(a, 39.9, 116.4, 5).await.unwrap());
    for v in [a, b, c] {
        s.set_on_duty(v, true, 10).await.unwrap();
    }
    assert!(matches!(
        s.set_on_duty(wang, true, 10).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.update_position(a, 39.9, 116.4, 20).await.unwrap());
    assert!(matches!(
        s.update_position(a, 91.0, 0.0, 20).await,
        Err(StoreError::Invalid(_))
    ));
    let on = s.on_duty_volunteers(&z1).await.unwrap();
    let names: Vec<&str> = on.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["va", "vb"]);
    assert_eq!(
        (on[0].lat, on[0].lon, on[0].position_at_ms),
        (Some(39.9), Some(116.4), Some(20))
    );
    assert_eq!(on[1].lat, None);
    s.set_on_duty(a, false, 30).await.unwrap();
    s.set_on_duty(a, true, 40).await.unwrap();
    let profile = s.volunteer_profile(a).await.unwrap();
    assert!(profile.on_duty);
    assert_eq!(profile.position_at_ms, None, "going off duty forgets it");
}

async fn push_subscriptions_outcomes_and_checkins(db: TestDb) {
    let s = db.open().await;
    let creds = seed_demo(s.as_ref(), 1).await.unwrap();
    let z = zone();
    let li = volunteer(s.as_ref(), "Li", &z).await;
    let zhou = volunteer(s.as_ref(), "zhou", &z).await;

    let first = VapidKeyPair {
        private_key: "priv-1".into(),
        public_key: "pub-1".into(),
    };
    let second = VapidKeyPair {
        private_key: "priv-2".into(),
        public_key: "pub-2".into(),
    };
    assert_eq!(s.vapid_key_or_insert(&first, 1).await.unwrap(), first);
    assert_eq!(
        s.vapid_key_or_insert(&second, 2).await.unwrap(),
        first,
        "the key the browsers subscribed with stays"
    );

    let sub = |endpoint| NewPushSubscription {
        endpoint,
        p256dh: "key",
        auth: "secret",
        user_agent: "test",
    };
    let phone = s
        .add_push_subscription(li, &sub("https://push.test/a"), 10)
        .await
        .unwrap();
    let tablet = s
        .add_push_subscription(li, &sub("https://push.test/b"), 11)
        .await
        .unwrap();
    let mine = s.push_subscriptions_of("li").await.unwrap();
    assert_eq!(
        mine.iter().map(|r| r.id).collect::<Vec<_>>(),
        [phone, tablet]
    );
    assert_eq!(mine[0].endpoint, "https://push.test/a");
    // The shared tablet changes hands: the endpoint is now zhou's, with its id kept.
    let moved = s
        .add_push_subscription(zhou, &sub("https://push.test/b"), 12)
        .await
        .unwrap();
    assert_eq!(moved, tablet);
    assert_eq!(s.push_subscriptions_of("Li").await.unwrap().len(), 1);
    assert_eq!(s.push_subscriptions_of("zhou").await.unwrap().len(), 1);
    assert!(matches!(
        s.add_push_subscription(404_404, &sub("https://push.test/c"), 13)
            .await,
        Err(StoreError::NotFound(_))
    ));
    s.push_sent(phone, None, 20).await.unwrap();
    s.push_sent(phone, Some("timeout"), 21).await.unwrap();
    assert!(!s
        .remove_push_subscription(li, "https://push.test/b")
        .await
        .unwrap());
    assert!(s
        .remove_push_subscription(zhou, "https://push.test/b")
        .await
        .unwrap());
    s.forget_push_endpoint("https://push.test/a").await.unwrap();
    assert!(s.push_subscriptions_of("li").await.unwrap().is_empty());
    assert_eq!(s.volunteer_profile(li).await.unwrap().subscriptions, 0);
    assert!(matches!(
        s.volunteer_profile(404_404).await,
        Err(StoreError::NotFound(_))
    ));

    // A volunteer recipient (dispatched) and what became of the push to them: an accepted
    // push is not overwritten by a later failure on another phone.
    let alert = raise(s.as_ref(), &device(&creds, 0), 1, T0).await;
    let li_target = Some((RecipientKind::Volunteer, "Li"));
    by_station(s.as_ref(), alert, Action::Dispatch, li_target, "", T0 + 1)
        .await
        .unwrap();
    let push_of = |s: Arc<dyn Store>| async move {
        s.recipients(alert)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.kind == RecipientKind::Volunteer)
            .map(|r| (r.push, r.push_at_ms))
            .unwrap()
    };
    assert_eq!(push_of(s.clone()).await, (None, None));
    s.record_push_outcome(alert, "Li", "accepted", T0 + 2)
        .await
        .unwrap();
    s.record_push_outcome(alert, "Li", "failed: 500", T0 + 3)
        .await
        .unwrap();
    assert_eq!(
        push_of(s.clone()).await,
        (Some("accepted".to_owned()), Some(T0 + 2))
    );

    // Check-ins, newest first.
    for (i, note) in ["东门", "西门", "北门"].iter().enumerate() {
        s.add_checkin(li, 39.95, 116.40, note, 100 + i as i64)
            .await
            .unwrap();
    }
    assert!(matches!(
        s.add_checkin(li, 95.0, 116.4, "", 200).await,
        Err(StoreError::Invalid(_))
    ));
    let window = |from_ms, to_ms, after, limit| ListWindow {
        from_ms,
        to_ms,
        after,
        limit,
    };
    let latest = s.checkins(li, &window(None, None, None, 2)).await.unwrap();
    let notes: Vec<&str> = latest.iter().map(|c| c.note.as_str()).collect();
    assert_eq!(notes, ["北门", "西门"]);
    assert_eq!(latest[0].at_ms, 102);
    // After the second: the first; in [101, 102): the second only.
    let after = Some((latest[1].at_ms, latest[1].id));
    let older = s
        .checkins(li, &window(None, None, after, 10))
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|c| c.note.as_str()).collect::<Vec<_>>(),
        ["东门"]
    );
    let range = s
        .checkins(li, &window(Some(101), Some(102), None, 10))
        .await
        .unwrap();
    assert_eq!(
        range.iter().map(|c| c.note.as_str()).collect::<Vec<_>>(),
        ["西门"]
    );
    assert!(s
        .checkins(zhou, &window(None, None, None, 10))
        .await
        .unwrap()
        .is_empty());
}

async fn a_stale_disconnect_does_not_hide_a_reconnect(db: TestDb) {
    let store = db.open().await;
    let creds = seed_demo(store.as_ref(), 1).await.unwrap();
    let d = device(&creds, 0);
    let s = store.as_ref();
    report_each(s, &[connected(&d, 1, 1), connected(&d, 2, 2)]).await;
    report_each(s, &[session(&d, 1, false, Some("replaced"), 3)]).await;
    assert_eq!(store.counts().await.unwrap().devices_online, 1);
    report_each(s, &[session(&d, 2, false, Some("clean"), 4)]).await;
    assert_eq!(store.counts().await.unwrap().devices_online, 0);
    report_each(
        s,
        &[connected(&d, 3, 5), connected(&device(&creds, 1), 4, 5)],
    )
    .await;
    assert_eq!(store.counts().await.unwrap().devices_online, 2);
    store.reset_presence("gateway restart", 6).await.unwrap();
    assert_eq!(store.counts().await.unwrap().devices_online, 0);
    let map = store.zone_map(&[zone()]).await.unwrap();
    let d0 = map.devices.iter().find(|m| m.id == d.as_str()).unwrap();
    assert_eq!(d0.disconnect_reason.as_deref(), Some("gateway restart"));
    assert_eq!(d0.last_seen_ms, Some(6));
}

/// A session opened or ended as the edge reports it; an ended one moves no supervision (as
/// a replaced session's end).
fn session(
    device: &DeviceId,
    session: u64,
    online: bool,
    reason: Option<&str>,
    at_ms: i64,
) -> PresenceReport {
    PresenceReport {
        device: device.clone(),
        session,
        online,
        disconnect_reason: reason.map(str::to_owned),
        seen_ms: at_ms,
        offline: None,
    }
}

fn connected(device: &DeviceId, session_id: u64, at_ms: i64) -> PresenceReport {
    session(device, session_id, true, None, at_ms)
}

/// A session lost: the device offline, if it was its latest.
fn lost(device: &DeviceId, session_id: u64, at_ms: i64) -> PresenceReport {
    PresenceReport {
        offline: Some("connection_lost"),
        ..session(device, session_id, false, Some("connection lost"), at_ms)
    }
}

/// Each session report in a write of its own, as the edge's reports come one at a time.
async fn report_each(store: &dyn Store, reports: &[PresenceReport]) {
    let policy = SupervisionPolicy::default();
    for report in reports {
        store
            .apply_presence(vec![report.clone()], &policy, report.seen_ms)
            .await
            .unwrap();
    }
}

/// Households and reachable households of each of the zone's clusters.
async fn reachable(store: &dyn Store, policy: &SupervisionPolicy) -> Vec<(u32, u32)> {
    let clusters = store.cluster_health(&[zone()], policy).await.unwrap();
    clusters
        .iter()
        .map(|c| (c.households, c.reachable))
        .collect()
}

/// What the edge reported, taken in one write as the presence workers take what has queued up:
/// each report applies in order, as if alone; a stale one changes nothing; an unknown device
/// has no zone; every cluster touched is counted as the last report left it.
async fn presence_reports_taken_together_apply_each_in_order(db: TestDb) {
    let store = db.open().await;
    let creds = seed_demo(store.as_ref(), 2).await.unwrap();
    // A cluster is flagged under 9 households of 10.
    let policy = SupervisionPolicy {
        coverage_min_percent: 90,
        ..SupervisionPolicy::default()
    };
    let unknown = DeviceId::parse("d-11010501-999-01-a").unwrap();
    // Both clusters' twenty units come back at once, and a login for a device the registry
    // does not have is reported too.
    let mut reports: Vec<PresenceReport> = (0..20)
        .map(|i| connected(&device(&creds, i), i as u64 + 1, T0))
        .collect();
    reports.insert(5, connected(&unknown, 100, T0));
    let applied = store
        .apply_presence(reports.clone(), &policy, T0)
        .await
        .unwrap();
    assert_eq!(applied.zones.len(), 21);
    assert_eq!(applied.zones[5], None, "no such device");
    assert!(applied
        .zones
        .iter()
        .enumerate()
        .all(|(i, z)| i == 5 || z.as_ref() == Some(&zone())));
    assert_eq!(store.counts().await.unwrap().devices_online, 20);
    assert_eq!(
        reachable(store.as_ref(), &policy).await,
        [(10, 10), (10, 10)]
    );

    // Then, in one write: unit 0 loses its connection and comes back on a new session; unit 1
    // loses its connection; unit 2's old session 0 ending late says nothing.
    let (d0, d1, d2) = (device(&creds, 0), device(&creds, 1), device(&creds, 2));
    let at = T0 + 1_000;
    let applied = store
        .apply_presence(
            vec![
                lost(&d0, 1, at),
                connected(&d0, 30, at),
                lost(&d1, 2, at),
                lost(&d2, 0, at),
            ],
            &policy,
            at,
        )
        .await
        .unwrap();
    let offline: Vec<&str> = applied
        .reports
        .iter()
        .filter_map(|r| match r {
            Report::Device(d) if d.event == DeviceReportKind::Offline => Some(d.device.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(offline, [d0.as_str(), d1.as_str()]);
    // The station hears once that the first cluster fell below: counted after the write's
    // last report (8 of 10), not after each.
    let coverage: Vec<(String, u32, bool)> = applied
        .reports
        .iter()
        .filter_map(|r| match r {
            Report::Coverage(c) => Some((c.cluster.as_str().to_owned(), c.reachable, c.below)),
            _ => None,
        })
        .collect();
    assert_eq!(coverage, [(creds[0].cluster.clone(), 8, true)]);
    assert_eq!(store.counts().await.unwrap().devices_online, 19);
    let map = store.zone_map(&[zone()]).await.unwrap();
    let row = |d: &DeviceId| map.devices.iter().find(|m| m.id == d.as_str()).unwrap();
    assert!(row(&d0).online && !row(&d1).online && row(&d2).online);
    // Supervision saw the same: unit 0 online again (since the reconnect), 1 offline, 2
    // online since the first write.
    let mut states = Vec::new();
    for d in [&d0, &d1, &d2] {
        let health = store.device_health(d, &policy, at).await.unwrap().unwrap();
        states.push((health.health.state, health.health.since_ms));
    }
    assert_eq!(
        states,
        [
            (DeviceState::Online, Some(at)),
            (DeviceState::Offline, Some(at)),
            (DeviceState::Online, Some(T0)),
        ]
    );
    assert_eq!(
        row(&d1).disconnect_reason.as_deref(),
        Some("connection lost")
    );
    assert_eq!(row(&d1).last_seen_ms, Some(at));
    // Unit 0 is back but its offline episode has not settled: its household is not counted on
    // yet, nor unit 1's.
    assert_eq!(
        reachable(store.as_ref(), &policy).await,
        [(10, 8), (10, 10)]
    );
}

/// Two stores on one database, as two gateways: both see the same overdue rings and try to
/// fire each at the same moment; every ring fires once, with one timeline event.
async fn two_gateways_racing_fire_each_ring_once(db: TestDb) {
    let (one, two) = (db.open().await, db.open().await);
    let creds = seed_demo(one.as_ref(), 6).await.unwrap();
    let mut alerts = Vec::new();
    for i in (0..60).step_by(6) {
        alerts.push(raise(one.as_ref(), &device(&creds, i), 1, T0).await);
    }
    let plan = RingPlan::default();
    let now = T0 + 200_000;
    assert_eq!(two.due_rings(now).await.unwrap(), alerts);
    let race = |store: Arc<dyn Store>| {
        let alerts = alerts.clone();
        tokio::spawn(async move {
            let mut fired = Vec::new();
            for alert in alerts {
                while let Some(ring) = store.fire_ring(alert, &plan, now).await.unwrap() {
                    fired.push((alert, ring.ring));
                }
            }
            fired
        })
    };
    let (a, b) = tokio::join!(race(one.clone()), race(two.clone()));
    let mut fired: Vec<(AlertId, u8)> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    fired.sort();
    let expected: Vec<(AlertId, u8)> = alerts.iter().flat_map(|a| [(*a, 1), (*a, 2)]).collect();
    assert_eq!(fired, expected);
    assert!(one.due_rings(now).await.unwrap().is_empty());
    for alert in alerts {
        let detail = two.alert_detail(alert).await.unwrap().unwrap();
        let rings: Vec<&str> = detail
            .timeline
            .iter()
            .filter(|e| e.action.starts_with("ring"))
            .map(|e| e.action.as_str())
            .collect();
        assert_eq!(rings, ["ring1", "ring2"], "{alert}");
        assert!(detail.alert.critical);
    }
}

/// A device repeats its press to two gateways at once (a shared subscription hands the copies
/// to both): one alert, and both answers name it.
async fn two_gateways_racing_raise_a_repeated_press_once(db: TestDb) {
    let (one, two) = (db.open().await, db.open().await);
    let creds = seed_demo(one.as_ref(), 2).await.unwrap();
    let press_on = |store: Arc<dyn Store>, i: usize| {
        let d = device(&creds, i);
        tokio::spawn(async move { record(store.as_ref(), &d, 7, PressKind::Help, T0).await })
    };
    for i in 0..20 {
        let (a, b) = tokio::join!(press_on(one.clone(), i), press_on(two.clone(), i));
        let (a, b) = (a.unwrap(), b.unwrap());
        let id = |o: &PressOutcome| match o {
            PressOutcome::Raised(a) | PressOutcome::Duplicate(a) => a.id,
            PressOutcome::Merged(a) => panic!("one press per household: {a:?}"),
            PressOutcome::UnknownDevice => panic!("known device"),
        };
        assert_eq!(id(&a), id(&b));
        let raised = [&a, &b]
            .iter()
            .filter(|o| matches!(o, PressOutcome::Raised(_)))
            .count();
        assert_eq!(raised, 1, "{a:?} / {b:?}");
    }
    assert_eq!(listed(one.as_ref(), false, vec![zone()]).await.len(), 20);
}

/// Thirty devices connect and then fall silent; two gateways' supervisors sweep at the same
/// moment, twice. Each device goes offline once, reported once, and every cluster's coverage
/// drop is reported once.
async fn two_gateways_sweeping_at_once_report_each_silent_device_once(db: TestDb) {
    let (one, two) = (db.open().await, db.open().await);
    let creds = seed_demo(one.as_ref(), 3).await.unwrap();
    let policy = SupervisionPolicy::default();
    for (i, c) in creds.iter().enumerate() {
        let d = DeviceId::parse(&c.device).unwrap();
        let session = i as u64 + 1;
        one.apply_presence(vec![connected(&d, session, T0)], &policy, T0)
            .await
            .unwrap();
    }
    let silent = T0 + policy.heartbeat_interval_ms + policy.grace_ms;
    let sweep = |store: Arc<dyn Store>| {
        tokio::spawn(async move {
            let mut reports = store.supervise_due(&policy, silent).await.unwrap();
            reports.extend(store.supervise_due(&policy, silent + 1).await.unwrap());
            reports
        })
    };
    let (a, b) = tokio::join!(sweep(one.clone()), sweep(two.clone()));
    let reports: Vec<Report> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    let mut offline: Vec<String> = reports
        .iter()
        .filter_map(|r| match r {
            Report::Device(d) if d.event == DeviceReportKind::Offline => Some(d.device.to_string()),
            _ => None,
        })
        .collect();
    offline.sort();
    let mut all: Vec<String> = creds.iter().map(|c| c.device.clone()).collect();
    all.sort();
    assert_eq!(offline, all, "each silent device reported once");
    let mut drops: Vec<String> = reports
        .iter()
        .filter_map(|r| match r {
            Report::Coverage(c) if c.below => Some(c.cluster.to_string()),
            _ => None,
        })
        .collect();
    drops.sort();
    assert_eq!(drops.len(), 3, "one coverage report per cluster: {drops:?}");
    drops.dedup();
    assert_eq!(drops.len(), 3);
    let health = one.cluster_health(&[zone()], &policy).await.unwrap();
    assert!(health.iter().all(|c| c.reachable == 0 && c.below));
}

#[test]
fn a_database_url_in_a_message_shows_no_password() {
    use tenwatch_gateway::store::redacted_url;
    assert_eq!(
        redacted_url("postgres://tw:s3cret@db.internal:5432/tenwatch"),
        "postgres://tw:***@db.internal:5432/tenwatch"
    );
    assert_eq!(
        redacted_url("postgresql://tw@127.0.0.1/tenwatch"),
        "postgresql://tw@127.0.0.1/tenwatch"
    );
    assert_eq!(
        redacted_url("sqlite:/var/lib/tenwatch/tenwatch.db"),
        "sqlite:/var/lib/tenwatch/tenwatch.db"
    );
}

async fn devices_are_listed_disabled_rotated_and_deleted_only_without_history(db: TestDb) {
    let s = db.open().await;
    let creds = seed_demo(s.as_ref(), 1).await.unwrap();
    let listed = s.list_devices(None).await.unwrap();
    assert_eq!(listed.len(), 10);
    assert!(listed
        .windows(2)
        .all(|w| w[0].id.as_str() < w[1].id.as_str()));
    assert!(listed
        .iter()
        .all(|d| d.enabled && d.state == "never_seen" && d.zone.as_str() == DEMO_ZONE));
    let other = ZoneCode::parse("11010502").unwrap();
    s.add_zone(&other, "二区").await.unwrap();
    assert!(s.list_devices(Some(&other)).await.unwrap().is_empty());
    assert_eq!(s.list_devices(Some(&zone())).await.unwrap().len(), 10);

    let (d0, d1) = (device(&creds, 0), device(&creds, 1));
    assert!(s.set_device_enabled(&d0, false).await.unwrap());
    assert!(!s.device_credential(&d0).await.unwrap().unwrap().enabled);
    assert!(s.set_device_enabled(&d0, true).await.unwrap());
    assert!(s.device_credential(&d0).await.unwrap().unwrap().enabled);
    let nobody = DeviceId::parse("d-nobody").unwrap();
    assert!(!s.set_device_enabled(&nobody, false).await.unwrap());
    assert!(s.set_device_secret(&d1, "new-hash").await.unwrap());
    assert_eq!(
        s.device_credential(&d1).await.unwrap().unwrap().secret_hash,
        "new-hash"
    );

    // A unit with a history stays: the presser's, and a neighbour's that was sent the alert.
    raise(s.as_ref(), &d0, 1, T0).await;
    for d in [&d0, &d1] {
        let refused = s.delete_device(d).await;
        assert!(
            matches!(&refused, Err(StoreError::Invalid(m)) if m.contains("disable it instead")),
            "{refused:?}"
        );
    }
    // One that never went up is removed, with its presence history.
    let spare = DeviceId::parse("d-spare-01").unwrap();
    let household = s.list_devices(None).await.unwrap()[0].household.clone();
    s.add_device(&spare, &household, "h").await.unwrap();
    assert!(s.delete_device(&spare).await.unwrap());
    assert!(!s.delete_device(&spare).await.unwrap());
    assert_eq!(s.list_devices(None).await.unwrap().len(), 10);
}

async fn accounts_are_listed_disabled_reset_and_deleted_only_without_history(db: TestDb) {
    let s = db.open().await;
    let z = zone();
    s.add_zone(&z, "一区").await.unwrap();
    let wang = s
        .create_account(&account("wang", AccountKind::Operator, &[&z]), 0)
        .await
        .unwrap();
    volunteer(s.as_ref(), "li", &z).await;
    let zhao = volunteer(s.as_ref(), "zhao", &z).await;
    let listed = s.list_accounts().await.unwrap();
    let names: Vec<(&str, bool)> = listed.iter().map(|(a, d)| (a.name.as_str(), *d)).collect();
    assert_eq!(names, [("li", false), ("wang", false), ("zhao", false)]);
    assert_eq!(listed[1].0.zones, std::slice::from_ref(&z));

    let name = AccountName::parse("WANG").unwrap();
    let hour = 3_600_000;
    s.create_session("t1", wang, 0, hour).await.unwrap();
    assert!(s.session_open("t1", 1).await.unwrap());
    assert!(s.set_account_disabled(&name, true).await.unwrap());
    assert!(
        !s.session_open("t1", 1).await.unwrap(),
        "disabling ends its sessions"
    );
    assert!(s.account_by_name(&name).await.unwrap().unwrap().disabled);
    assert!(s.set_account_disabled(&name, false).await.unwrap());
    assert!(!s.account_by_name(&name).await.unwrap().unwrap().disabled);

    s.create_session("t2", wang, 0, hour).await.unwrap();
    assert!(s.set_password_hash(&name, "$argon2id$new").await.unwrap());
    assert_eq!(
        s.account_by_name(&name)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$new"
    );
    assert!(
        !s.session_open("t2", 1).await.unwrap(),
        "a new password ends its sessions"
    );
    let nobody = AccountName::parse("nobody").unwrap();
    assert!(!s.set_password_hash(&nobody, "x").await.unwrap());
    assert!(!s.set_account_disabled(&nobody, true).await.unwrap());

    // A volunteer who checked in keeps the record; one who never did anything goes.
    s.add_checkin(zhao, 39.95, 116.40, "", 100).await.unwrap();
    let refused = s.delete_account(&AccountName::parse("zhao").unwrap()).await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid(m)) if m.contains("disable it instead")),
        "{refused:?}"
    );
    let li = AccountName::parse("li").unwrap();
    assert!(s.delete_account(&li).await.unwrap());
    assert!(s.account_by_name(&li).await.unwrap().is_none());
    assert!(!s.delete_account(&li).await.unwrap());
}

async fn a_volunteer_keeps_the_newest_ten_push_subscriptions(db: TestDb) {
    let s = db.open().await;
    let z = zone();
    s.add_zone(&z, "一区").await.unwrap();
    let li = volunteer(s.as_ref(), "li", &z).await;
    for i in 0..12 {
        let endpoint = format!("https://push.example.org/{i}");
        let sub = NewPushSubscription {
            endpoint: &endpoint,
            p256dh: "k",
            auth: "a",
            user_agent: "",
        };
        s.add_push_subscription(li, &sub, 1_000 + i).await.unwrap();
    }
    let kept = s.push_subscriptions_of("li").await.unwrap();
    assert_eq!(kept.len(), 10);
    assert!(
        kept.iter()
            .all(|k| !k.endpoint.ends_with("/0") && !k.endpoint.ends_with("/1")),
        "the two registered longest ago are given up"
    );
}

/// PostgreSQL's 0008 on a database holding alerts and presses of before it: the rows are kept,
/// each old alert counts its one press, and a repeat of an old press still gets its alert.
/// (SQLite's rebuild has its own test, in `store/sqlite/tests.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrates_old_presses_keeping_their_alerts() {
    let Some(db) = TestDb::postgres("migrate_old_presses").await else {
        return;
    };
    let now = T0;
    {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::migrate!("migrations/postgres")
            .run_to(7, &pool)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO zones (code, name) VALUES ('11010501', '一区'); \
             INSERT INTO clusters (id, zone, name) VALUES ('c1', '11010501', 'one'); \
             INSERT INTO households (id, cluster, label, address, lat, lon) VALUES \
               ('h1', 'c1', 'one', 'one st', 39.9, 116.4); \
             INSERT INTO devices (id, household, secret_hash) VALUES ('d1', 'h1', 'x'); \
             INSERT INTO alerts (device, seq, household, cluster, zone, kind, state, raised_at_ms, \
               updated_at_ms) VALUES ('d1', 6, 'h1', 'c1', '11010501', 'fire', 'notified', {now}, {now}); \
             INSERT INTO presses (device, seq, kind, alert, at_ms) VALUES ('d1', 6, 'fire', 1, {now});"
        )))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let store = db.open().await;
    let d1 = DeviceId::parse("d1").unwrap();
    let again = record(store.as_ref(), &d1, 6, PressKind::Fire, now + 1_000).await;
    let PressOutcome::Duplicate(alert) = again else {
        panic!("the old press's alert, got {again:?}")
    };
    assert_eq!((alert.id, alert.seq, alert.presses), (AlertId(1), 6, 1));
    assert_eq!((alert.boot.clone(), alert.last_press_at_ms), (None, now));
    // The old UNIQUE (device, seq) is gone: the same seq a window later is another alert.
    let off = PressRules {
        merge_window_ms: 0,
        ..PressRules::default()
    };
    let later = store
        .record_press(
            &d1,
            &press(6, PressKind::Fire),
            &RingPlan::default(),
            &off,
            now + 3_600_000,
        )
        .await
        .unwrap();
    assert!(
        matches!(&later, PressOutcome::Raised(a) if a.id == AlertId(2) && a.seq == 6),
        "{later:?}"
    );
}
