//! Alarm panels' SIA accounts in the store, told the same way to each backend (SQLite, and
//! PostgreSQL when a server is given): an account belongs to a household with a device row of
//! its own, keeps its key, refuses a second registration and an unknown household, and its
//! device's presses take the units' press path (one alert however often repeated, the
//! household's cancel).

// A test binary: an unwrap that fails is a failed test (clippy.toml only covers #[test] fns).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use tenwatch_gateway::domain::{HouseholdId, Press, PressKind};
use tenwatch_gateway::seed::seed_demo;
use tenwatch_gateway::store::sia::{SiaAccount, SiaAccountId, SiaKey};
use tenwatch_gateway::store::{CancelOutcome, PressOutcome, PressRules, RingPlan, StoreError};

use common::TestDb;

store_tests!(a_panel_account_is_a_household_device_whose_presses_take_the_press_path,);

const T0: i64 = 1_800_000_000_000;

fn press(seq: u64, kind: PressKind) -> Press {
    Press {
        seq,
        boot: None,
        kind,
        device_ts_ms: None,
    }
}

async fn a_panel_account_is_a_household_device_whose_presses_take_the_press_path(db: TestDb) {
    let store = db.open().await;
    let creds = seed_demo(store.as_ref(), 1).await.unwrap();
    let household = HouseholdId::parse(&creds[0].household).unwrap();
    let id = SiaAccountId::parse("0c0ffee").unwrap();
    assert_eq!(id.as_str(), "0C0FFEE", "kept upper case");
    let account = SiaAccount {
        device: id.device().unwrap(),
        household: household.clone(),
        key: Some(SiaKey::parse_hex("000102030405060708090a0b0c0d0e0f").unwrap()),
        account: id.clone(),
    };
    store.add_sia_account(&account, "hash", T0).await.unwrap();
    assert_eq!(store.sia_account(&id).await.unwrap(), Some(account.clone()));
    assert_eq!(
        store.list_sia_accounts().await.unwrap(),
        vec![account.clone()]
    );
    let unknown = SiaAccountId::parse("123").unwrap();
    assert_eq!(store.sia_account(&unknown).await.unwrap(), None);

    assert!(matches!(
        store.add_sia_account(&account, "hash", T0).await,
        Err(StoreError::Conflict(m)) if m.contains("0C0FFEE")
    ));
    let nowhere = SiaAccount {
        account: unknown.clone(),
        device: unknown.device().unwrap(),
        household: HouseholdId::parse("nobody").unwrap(),
        key: None,
    };
    assert!(matches!(
        store.add_sia_account(&nowhere, "hash", T0).await,
        Err(StoreError::NotFound(m)) if m.contains("nobody")
    ));
    assert_eq!(
        store.sia_account(&unknown).await.unwrap(),
        None,
        "nothing half-made"
    );

    // The panel's device raises its household's alert, once however often repeated.
    let (plan, rules) = (RingPlan::default(), PressRules::default());
    let device = &account.device;
    let raised = store
        .record_press(device, &press(1, PressKind::Help), &plan, &rules, T0)
        .await
        .unwrap();
    let PressOutcome::Raised(alert) = raised else {
        panic!("raised: {raised:?}")
    };
    assert_eq!(alert.household, household);
    let again = store
        .record_press(
            device,
            &press(1, PressKind::Help),
            &plan,
            &rules,
            T0 + 5_000,
        )
        .await
        .unwrap();
    assert!(
        matches!(again, PressOutcome::Duplicate(ref a) if a.id == alert.id),
        "{again:?}"
    );
    let cancelled = store
        .cancel_press(
            device,
            &press(2, PressKind::Cancel),
            30_000,
            &rules,
            T0 + 10_000,
        )
        .await
        .unwrap();
    assert!(matches!(cancelled, CancelOutcome::Cancelled(ref a) if a.id == alert.id));
}
