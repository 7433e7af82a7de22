//! SQLite-only tests of the store: the group-commit writer (receipts written together, the
//! first one told), and what a test can only check by reading the file (expired sessions
//! swept). The story every backend must tell is `gateway/tests/store.rs`.

use super::*;
use crate::accounts::{AccountKind, AccountName, Role};
use crate::domain::{ClusterId, HouseholdId, Press, PressKind};
use crate::lifecycle::RecipientState;
use crate::store::accounts::{AccountStore, NewAccount};
use crate::store::map::{MapStore, ZoneMap};
use crate::store::{
    sqlite_url_in, AlertFilter, AlertState, CancelOutcome, NewCluster, NewHousehold, PressOutcome,
    RecipientKind, RingPlan, Store,
};

async fn store_with_one_device() -> (tempfile::TempDir, SqliteStore, DeviceId) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&sqlite_url_in(dir.path()))
        .await
        .expect("open");
    let zone = ZoneCode::parse("11010501").unwrap();
    store.add_zone(&zone, "示范社区").await.unwrap();
    let cluster = ClusterId::parse("c1").unwrap();
    store
        .add_cluster(&NewCluster {
            id: cluster.clone(),
            zone,
            name: "一组".into(),
            leader_household: None,
        })
        .await
        .unwrap();
    let household = HouseholdId::parse("h1").unwrap();
    store
        .add_household(&NewHousehold {
            id: household.clone(),
            cluster,
            label: "和平路1号".into(),
            address: "和平路1号".into(),
            lat: 39.9,
            lon: 116.4,
            notes: String::new(),
            contacts: String::new(),
        })
        .await
        .unwrap();
    let device = DeviceId::parse("d1").unwrap();
    store.add_device(&device, &household, "00").await.unwrap();
    (dir, store, device)
}

fn press(seq: u64, kind: PressKind) -> Press {
    Press {
        seq,
        kind,
        device_ts_ms: None,
    }
}

#[tokio::test]
async fn a_repeated_press_yields_one_alert() {
    let (_dir, store, device) = store_with_one_device().await;
    let first = store
        .record_press(
            &device,
            &press(5, PressKind::Help),
            &RingPlan::default(),
            1_000,
        )
        .await
        .unwrap();
    let PressOutcome::Raised(alert) = first else {
        panic!("expected a new alert, got {first:?}")
    };
    let again = store
        .record_press(
            &device,
            &press(5, PressKind::Help),
            &RingPlan::default(),
            2_000,
        )
        .await
        .unwrap();
    assert_eq!(again, PressOutcome::Duplicate(alert.clone()));
    let all = store
        .list_alerts(&AlertFilter {
            limit: 10,
            zones: vec![ZoneCode::parse("11010501").unwrap()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        store.alerts_owing_fanout().await.unwrap(),
        vec![alert.clone()]
    );
    let notified = store.mark_notified(alert.id, 1_010).await.unwrap();
    assert_eq!(notified.state, AlertState::Notified);
    assert!(store.alerts_owing_fanout().await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_device_raises_nothing() {
    let (_dir, store, _) = store_with_one_device().await;
    let ghost = DeviceId::parse("ghost").unwrap();
    let out = store
        .record_press(&ghost, &press(1, PressKind::Help), &RingPlan::default(), 1)
        .await
        .unwrap();
    assert_eq!(out, PressOutcome::UnknownDevice);
}

#[tokio::test]
async fn cancel_inside_the_window_only() {
    let (_dir, store, device) = store_with_one_device().await;
    store
        .record_press(&device, &press(1, PressKind::Help), &RingPlan::default(), 0)
        .await
        .unwrap();
    let late = store
        .cancel_press(&device, &press(2, PressKind::Cancel), 30_000, 31_000)
        .await
        .unwrap();
    assert!(matches!(late, CancelOutcome::TooLate(ref a) if a.state == AlertState::Raised));
    store
        .record_press(
            &device,
            &press(3, PressKind::Medical),
            &RingPlan::default(),
            40_000,
        )
        .await
        .unwrap();
    let ok = store
        .cancel_press(&device, &press(4, PressKind::Cancel), 30_000, 45_000)
        .await
        .unwrap();
    let CancelOutcome::Cancelled(cancelled) = ok else {
        panic!("expected cancelled, got {ok:?}")
    };
    assert_eq!(cancelled.kind, "medical");
    let detail = store.alert_detail(cancelled.id).await.unwrap().unwrap();
    let actions: Vec<_> = detail.timeline.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["raised", "cancelled"]);
    let first = store.alert(AlertId(1)).await.unwrap().unwrap();
    assert_eq!(first.state, AlertState::Raised);
}

#[tokio::test]
async fn delivery_receipts_are_written_together_and_the_first_is_told() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&sqlite_url_in(dir.path()))
        .await
        .expect("open");
    let creds = crate::seed::seed_demo(&store, 1).await.unwrap();
    let id = |i: usize| DeviceId::parse(&creds[i].device).unwrap();
    let PressOutcome::Raised(alert) = store
        .record_press(&id(0), &press(1, PressKind::Help), &RingPlan::default(), 1)
        .await
        .unwrap()
    else {
        panic!("expected a new alert")
    };
    // Nine receipts queued back to back, then a repeat of the first and one from the presser
    // (not a recipient): all land in the same batch.
    let mut queued: Vec<_> = (1..10)
        .map(|i| store.record_delivery(alert.id, &id(i), 5))
        .collect();
    queued.push(store.record_delivery(alert.id, &id(1), 6));
    queued.push(store.record_delivery(alert.id, &id(0), 6));
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
    let detail = store.alert_detail(alert.id).await.unwrap().unwrap();
    assert_eq!(detail.alert.first_delivered_at_ms, Some(5));
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

#[tokio::test]
async fn stale_disconnect_does_not_hide_a_reconnect() {
    let (_dir, store, device) = store_with_one_device().await;
    store
        .record_presence(&device, 1, true, None, 1)
        .await
        .unwrap();
    store
        .record_presence(&device, 2, true, None, 2)
        .await
        .unwrap();
    store
        .record_presence(&device, 1, false, Some("replaced"), 3)
        .await
        .unwrap();
    assert_eq!(store.counts().await.unwrap().devices_online, 1);
    store
        .record_presence(&device, 2, false, Some("clean"), 4)
        .await
        .unwrap();
    assert_eq!(store.counts().await.unwrap().devices_online, 0);
}

// --- accounts ---

async fn store() -> (tempfile::TempDir, SqliteStore, ZoneCode, ZoneCode) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&sqlite_url_in(dir.path())).await.unwrap();
    let z1 = ZoneCode::parse("11010501").unwrap();
    let z2 = ZoneCode::parse("11010502").unwrap();
    store.add_zone(&z1, "一区").await.unwrap();
    store.add_zone(&z2, "二区").await.unwrap();
    (dir, store, z1, z2)
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

#[tokio::test]
async fn accounts_with_zones() {
    let (_dir, s, z1, z2) = store().await;
    let id = s
        .create_account(&account("Wang", AccountKind::Operator, &[&z2, &z1]), 1)
        .await
        .unwrap();
    let found = s
        .account_by_name(&AccountName::parse("wang").unwrap())
        .await
        .unwrap()
        .expect("found regardless of case");
    assert_eq!(found.principal.account_id, id);
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
    // Nothing of the failed account was kept.
    assert!(s
        .account_by_name(&AccountName::parse("li").unwrap())
        .await
        .unwrap()
        .is_none());
    let two_zones = s
        .create_account(&account("v2", AccountKind::Volunteer, &[&z1, &z2]), 1)
        .await;
    assert!(matches!(two_zones, Err(StoreError::Invalid(_))));
}

#[tokio::test]
async fn sessions_expire_and_slide() {
    let (_dir, s, z1, _) = store().await;
    let id = s
        .create_account(&account("m", AccountKind::Operator, &[&z1]), 0)
        .await
        .unwrap();
    let hour = 3_600_000;
    s.create_session("h1", id, 0, hour).await.unwrap();
    assert!(s.session_principal("h1", 10, hour).await.unwrap().is_some());
    assert!(s
        .session_principal("nope", 10, hour)
        .await
        .unwrap()
        .is_none());
    // Used at 50 min: now good until 1 h 50 min.
    assert!(s
        .session_principal("h1", 50 * 60_000, hour)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .session_principal("h1", 100 * 60_000, hour)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .session_principal("h1", 161 * 60_000, hour)
        .await
        .unwrap()
        .is_none());
    // A new login sweeps expired sessions.
    s.create_session("h2", id, 200 * 60_000, 260 * 60_000)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(&s.reader)
        .await
        .unwrap();
    assert_eq!(left, 1);
    s.delete_session("h2").await.unwrap();
    assert!(s
        .session_principal("h2", 200 * 60_000, hour)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn on_duty_volunteers_of_a_zone() {
    let (_dir, s, z1, z2) = store().await;
    let a = s
        .create_account(&account("va", AccountKind::Volunteer, &[&z1]), 0)
        .await
        .unwrap();
    let b = s
        .create_account(&account("vb", AccountKind::Volunteer, &[&z1]), 0)
        .await
        .unwrap();
    let c = s
        .create_account(&account("vc", AccountKind::Volunteer, &[&z2]), 0)
        .await
        .unwrap();
    let op = s
        .create_account(&account("op", AccountKind::Operator, &[&z1]), 0)
        .await
        .unwrap();
    assert!(s.on_duty_volunteers(&z1).await.unwrap().is_empty());
    // Off duty: the position is not kept.
    assert!(!s.update_position(a, 39.9, 116.4, 5).await.unwrap());
    s.set_on_duty(a, true, 10).await.unwrap();
    s.set_on_duty(b, true, 10).await.unwrap();
    s.set_on_duty(c, true, 10).await.unwrap();
    assert!(matches!(
        s.set_on_duty(op, true, 10).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.update_position(a, 39.9, 116.4, 20).await.unwrap());
    assert!(matches!(
        s.update_position(a, 91.0, 0.0, 20).await,
        Err(StoreError::Invalid(_))
    ));
    let on = s.on_duty_volunteers(&z1).await.unwrap();
    assert_eq!(on.len(), 2);
    assert_eq!(on[0].name, "va");
    assert_eq!(
        (on[0].lat, on[0].lon, on[0].position_at_ms),
        (Some(39.9), Some(116.4), Some(20))
    );
    assert_eq!(on[1].name, "vb");
    assert_eq!(on[1].lat, None);
    s.set_on_duty(a, false, 30).await.unwrap();
    s.set_on_duty(a, true, 40).await.unwrap();
    let on = s.on_duty_volunteers(&z1).await.unwrap();
    assert_eq!(
        on[0].position_at_ms, None,
        "going off duty forgets the position"
    );
}

// --- the map ---

#[tokio::test]
async fn map_shows_only_the_asked_zones() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&crate::store::sqlite_url_in(dir.path())).await?;
    crate::seed::seed_demo(&store, 2).await?;
    let other = ZoneCode::parse("11010502")?;
    store.add_zone(&other, "第二责任区").await?;

    let demo = ZoneCode::parse(crate::seed::DEMO_ZONE)?;
    let map = store.zone_map(std::slice::from_ref(&demo)).await?;
    assert_eq!(map.zones.len(), 1);
    assert_eq!(map.clusters.len(), 2);
    assert_eq!(map.households.len(), 20);
    assert_eq!(map.devices.len(), 20);
    assert!(map.devices.iter().all(|d| !d.online && d.enabled));

    let map = store.zone_map(&[other]).await?;
    assert_eq!(map.zones.len(), 1);
    assert!(map.households.is_empty() && map.devices.is_empty());
    assert_eq!(store.zone_map(&[]).await?, ZoneMap::default());
    Ok(())
}
