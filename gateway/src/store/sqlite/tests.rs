//! SQLite-only tests of the store: what only a look into the file shows (expired sessions
//! swept), and the console's map. The story every backend must tell, presses to receipts to
//! accounts, is `gateway/tests/store.rs`, run on SQLite and on PostgreSQL.

use super::*;
use crate::identity::{AccountKind, AccountName, Role};
use crate::store::accounts::{AccountStore, NewAccount};
use crate::store::map::{MapStore, ZoneMap};
use crate::store::{sqlite_url_in, Store};

/// A store in a fresh directory with `clusters` demo clusters, and their devices in order.
async fn seeded(
    clusters: usize,
) -> anyhow::Result<(tempfile::TempDir, SqliteStore, Vec<crate::domain::DeviceId>)> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&sqlite_url_in(dir.path())).await?;
    let devices = crate::seed::seed_demo(&store, clusters)
        .await?
        .iter()
        .map(|c| crate::domain::DeviceId::parse(&c.device))
        .collect::<Result<_, _>>()?;
    Ok((dir, store, devices))
}

/// A help press of `seq` from a unit that sends no boot id.
fn press(seq: u64) -> crate::domain::Press {
    crate::domain::Press {
        seq,
        boot: None,
        kind: crate::domain::PressKind::Help,
        device_ts_ms: None,
    }
}

#[tokio::test]
async fn a_login_sweeps_expired_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&sqlite_url_in(dir.path())).await.unwrap();
    let zone = ZoneCode::parse("11010501").unwrap();
    s.add_zone(&zone, "一区").await.unwrap();
    let id = s
        .create_account(
            &NewAccount {
                name: AccountName::parse("m").unwrap(),
                kind: AccountKind::Operator,
                role: Some(Role::Monitor),
                display_name: String::new(),
                phone: String::new(),
                password_hash: "$argon2id$fake".into(),
                zones: vec![zone],
            },
            0,
        )
        .await
        .unwrap();
    let hour = 3_600_000;
    s.create_session("h1", id, 0, hour).await.unwrap();
    s.create_session("h2", id, 200 * 60_000, 260 * 60_000)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(&s.reader)
        .await
        .unwrap();
    assert_eq!(left, 1, "the session expired at 1 h is gone");
}

#[tokio::test]
async fn map_shows_only_the_asked_zones() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&sqlite_url_in(dir.path())).await?;
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

/// A database of before boot ids and merged presses (migrated to 0007, holding alerts, their
/// presses, a cancel, recipients and events) takes 0008's rebuild of `alerts` and `presses`:
/// every row and id kept, every child row still pointing at its alert, the indexes made
/// again, the id counter kept, and an old press's repeat still answered with its alert.
#[tokio::test]
async fn a_database_of_old_presses_migrates_keeping_every_row_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url_in(dir.path());
    let now = crate::domain::now_ms();
    {
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .foreign_keys(true);
        let old = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::migrate!("migrations/sqlite")
            .run_to(7, &old)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO zones (code, name) VALUES ('11010501', '一区'); \
             INSERT INTO clusters (id, zone, name) VALUES ('c1', '11010501', 'one'); \
             INSERT INTO households (id, cluster, label, address, lat, lon) VALUES \
               ('h1', 'c1', 'one', 'one st', 39.9, 116.4), ('h2', 'c1', 'two', 'two st', 39.9, 116.4); \
             INSERT INTO devices (id, household, secret_hash) VALUES ('d1', 'h1', 'x'), ('d2', 'h2', 'y'); \
             INSERT INTO alerts (device, seq, household, cluster, zone, kind, state, raised_at_ms, \
               updated_at_ms, closed_at_ms) VALUES \
               ('d1', 5, 'h1', 'c1', '11010501', 'help', 'resolved', {old}, {old}, {old}), \
               ('d1', 6, 'h1', 'c1', '11010501', 'fire', 'notified', {now}, {now}, NULL), \
               ('d2', 1, 'h2', 'c1', '11010501', 'help', 'raised', {now}, {now}, NULL); \
             DELETE FROM alerts WHERE id = 3; \
             INSERT INTO presses (device, seq, kind, alert, at_ms) VALUES \
               ('d1', 5, 'help', 1, {old}), ('d1', 6, 'fire', 2, {now}), ('d1', 7, 'cancel', 2, {now}); \
             INSERT INTO recipients (alert, kind, who, label, ring, state, notified_at_ms, updated_at_ms) \
               VALUES (1, 'unit', 'd2', 'two', 0, 'delivered', {old}, {old}), \
               (2, 'unit', 'd2', 'two', 0, 'notified', {now}, {now}); \
             INSERT INTO alert_events (alert, at_ms, actor, action) VALUES \
               (1, {old}, 'device:d1', 'raised'), (2, {now}, 'device:d1', 'raised');",
            old = now - 86_400_000,
        )))
        .execute(&old)
        .await
        .unwrap();
        old.close().await;
    }

    let s = SqliteStore::open(&url).await.unwrap();
    let alerts: Vec<(i64, String, i64, String, String, i64, i64)> = sqlx::query_as(
        "SELECT id, device, seq, state, boot, presses, last_press_at_ms - raised_at_ms \
         FROM alerts ORDER BY id",
    )
    .fetch_all(&s.reader)
    .await
    .unwrap();
    assert_eq!(
        alerts,
        [
            (1, "d1".into(), 5, "resolved".into(), String::new(), 1, 0),
            (2, "d1".into(), 6, "notified".into(), String::new(), 1, 0),
        ]
    );
    let presses: Vec<(String, String, i64, i64)> =
        sqlx::query_as("SELECT device, boot, seq, alert FROM presses ORDER BY seq")
            .fetch_all(&s.reader)
            .await
            .unwrap();
    assert_eq!(
        presses,
        [
            ("d1".into(), String::new(), 5, 1),
            ("d1".into(), String::new(), 6, 2),
            ("d1".into(), String::new(), 7, 2)
        ]
    );
    let children: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM recipients), (SELECT COUNT(*) FROM alert_events)",
    )
    .fetch_one(&s.reader)
    .await
    .unwrap();
    assert_eq!(children, (2, 2));
    let broken: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
        .fetch_all(&s.writer)
        .await
        .unwrap();
    assert!(broken.is_empty(), "{broken:?}");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' \
         AND tbl_name IN ('alerts', 'presses') ORDER BY name",
    )
    .fetch_all(&s.reader)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [
            // 0009's, for the history (0008 rebuilt the table; 0009 runs after it).
            "alerts_cluster_raised",
            "alerts_device_raised",
            "alerts_household_pressed",
            "alerts_next_ring",
            // 0010's, for the public CAP feed.
            "alerts_public",
            "alerts_zone_raised",
            "sqlite_autoindex_presses_1"
        ],
        "UNIQUE (device, seq) on alerts is gone, every other index is back"
    );

    // The store reads the old rows: a repeat of the open alert's press gets it, with its
    // recipient; the old resolved alert's seq, a day on, is a new press.
    let device = DeviceId::parse("d1").unwrap();
    let fire = Press {
        seq: 6,
        boot: None,
        kind: crate::domain::PressKind::Fire,
        device_ts_ms: None,
    };
    let (plan, rules) = (RingPlan::default(), PressRules::default());
    let again = s
        .record_press(&device, &fire, &plan, &rules, now + 1_000)
        .await;
    assert!(
        matches!(&again, Ok(PressOutcome::Duplicate(a)) if a.id.0 == 2),
        "{again:?}"
    );
    let old_seq = Press {
        seq: 5,
        kind: crate::domain::PressKind::Help,
        ..fire
    };
    let new = s
        .record_press(&device, &old_seq, &plan, &rules, now + 2_000)
        .await;
    // The id counter went on from the deleted alert 3.
    assert!(
        matches!(&new, Ok(PressOutcome::Raised(a)) if a.id.0 == 4),
        "{new:?}"
    );
}

#[tokio::test]
async fn a_repeat_press_queued_behind_its_fan_out_record_finds_it_recorded() -> anyhow::Result<()> {
    use crate::store::{PressOutcome, PressRules, RingPlan};
    let (_dir, store, devices) = seeded(1).await?;
    let device = devices[0].clone();
    let press = press(7);
    let (plan, rules) = (RingPlan::default(), PressRules::default());
    let PressOutcome::Raised(alert) = store
        .record_press(&device, &press, &plan, &rules, 1_000)
        .await?
    else {
        panic!("a new alert");
    };
    // What the press path does: the fan-out's record is queued (not awaited) before the
    // unit's repeat of its press arrives. Both are queued before the writer looks; a repeat
    // that overtook the record would find the fan-out owed and sound the neighbours again.
    let recorded = store.mark_notified(alert.id, 1_010);
    let repeat = store.record_press(&device, &press, &plan, &rules, 1_020);
    match repeat.await? {
        PressOutcome::Duplicate(again) => {
            assert_eq!(again.id, alert.id);
            assert_eq!(
                again.notified_at_ms,
                Some(1_010),
                "the fan-out was recorded first"
            );
        }
        other => panic!("expected the repeat, got {other:?}"),
    }
    recorded.await?;
    Ok(())
}

/// At a steady rate each press meets, in the writer's queue, the fan-out record and receipts of
/// the press before it; the writer sends them to the database as one call. Every caller still
/// gets its own answer, and the timeline keeps its order.
#[tokio::test]
async fn a_press_written_with_the_receipts_before_it_answers_each_caller() -> anyhow::Result<()> {
    use crate::store::{PressOutcome, PressRules, RingPlan};
    let (_dir, store, devices) = seeded(1).await?;
    let (plan, rules) = (RingPlan::default(), PressRules::default());
    let PressOutcome::Raised(first) = store
        .record_press(&devices[0], &press(1), &plan, &rules, 1_000)
        .await?
    else {
        panic!("a new alert");
    };
    // Queued together before the writer looks: the first alert's record and two receipts
    // (the second unit's twice), then another household's press.
    let recorded = store.mark_notified(first.id, 1_010);
    let receipt_a = store.record_delivery(first.id, &devices[1], 1_020);
    let receipt_b = store.record_delivery(first.id, &devices[2], 1_021);
    let receipt_again = store.record_delivery(first.id, &devices[1], 1_022);
    let next = press(1);
    let second = store.record_press(&devices[3], &next, &plan, &rules, 1_030);

    let recorded = recorded.await?;
    assert_eq!(recorded.notified_at_ms, Some(1_010));
    assert_eq!(recorded.state.as_str(), "notified");
    let first_delivery = receipt_a
        .await?
        .expect("the first receipt is the first delivery");
    assert_eq!(first_delivery.first_delivered_at_ms, Some(1_020));
    assert!(receipt_b.await?.is_none(), "only the first receipt is news");
    assert!(
        receipt_again.await?.is_none(),
        "a repeated receipt changes nothing"
    );
    match second.await? {
        PressOutcome::Raised(alert) => assert_ne!(alert.id, first.id),
        other => panic!("expected a new alert, got {other:?}"),
    }

    let detail = store.alert_detail(first.id).await?.expect("the alert");
    let actions: Vec<(&str, &str)> = detail
        .timeline
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    let unit = |d: &DeviceId| format!("device:{d}");
    let (u1, u2) = (unit(&devices[1]), unit(&devices[2]));
    assert_eq!(
        actions,
        vec![
            ("raised", unit(&devices[0]).as_str()),
            ("notified", "gateway"),
            ("delivered", u1.as_str()),
            ("delivered", u2.as_str()),
        ]
    );
    Ok(())
}

/// The press path's thread writes a batch's presses (with the records of fan-outs) first and
/// its units' receipts after: held up to 20 ms for those of the next presses, or riding with
/// the next presses when batches queue. Five
/// clusters press one household after another, each queueing its fan-out's record and nine
/// receipts without waiting and pressing again at once: every caller gets its answer, and
/// every alert's timeline and recipients read as if written in queue order.
#[tokio::test]
async fn receipts_held_back_behind_presses_are_all_written_in_order() -> anyhow::Result<()> {
    use crate::store::{PressOutcome, PressRules, RecipientState, RingPlan};
    let (_dir, store, devices) = seeded(5).await?;
    let store = std::sync::Arc::new(store);
    let (plan, rules) = (RingPlan::default(), PressRules::default());
    let clusters = devices.chunks(10).map(<[_]>::to_vec).map(|cluster| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut alerts = Vec::new();
            let mut queued = Vec::new();
            for (i, presser) in cluster.iter().enumerate() {
                let now = 1_000 + i as i64 * 10;
                let PressOutcome::Raised(alert) = store
                    .record_press(presser, &press(1), &plan, &rules, now)
                    .await?
                else {
                    anyhow::bail!("a new alert for {presser}");
                };
                let recorded = store.mark_notified(alert.id, now + 1);
                let receipts: Vec<_> = cluster
                    .iter()
                    .filter(|d| *d != presser)
                    .map(|d| store.record_delivery(alert.id, d, now + 2))
                    .collect();
                queued.push((recorded, receipts));
                alerts.push(alert.id);
            }
            for (recorded, receipts) in queued {
                assert_eq!(recorded.await?.state.as_str(), "notified");
                let firsts = futures::future::try_join_all(receipts).await?;
                assert_eq!(firsts.iter().flatten().count(), 1, "one first delivery");
            }
            anyhow::Ok(alerts)
        })
    });
    for cluster in futures::future::try_join_all(clusters).await? {
        for id in cluster? {
            let detail = store.alert_detail(id).await?.expect("the alert");
            let actions: Vec<&str> = detail.timeline.iter().map(|e| e.action.as_str()).collect();
            assert_eq!(
                actions[..2],
                ["raised", "notified"],
                "alert {id}: {actions:?}"
            );
            assert_eq!(actions[2..], ["delivered"; 9], "alert {id}");
            let delivered = detail
                .recipients
                .iter()
                .filter(|r| r.state == RecipientState::Delivered)
                .count();
            assert_eq!(delivered, 9, "alert {id}: every unit's receipt");
        }
    }
    Ok(())
}

/// Under load presses queue while a commit is under way, and the writer sends them as one
/// transaction of a few calls, several presses a call. Each caller still gets what its own
/// press did, in queue order: a repeat in the same batch finds the press before it, an unknown
/// device is refused, a receipt queued among them is written, and the ids follow the queue.
#[tokio::test]
async fn presses_queued_together_each_get_their_own_answer() -> anyhow::Result<()> {
    use crate::store::{PressOutcome, PressRules, RingPlan};
    let (_dir, store, devices) = seeded(2).await?;
    let (plan, rules) = (RingPlan::default(), PressRules::default());
    let PressOutcome::Raised(first) = store
        .record_press(&devices[0], &press(1), &plan, &rules, 1_000)
        .await?
    else {
        panic!("a new alert");
    };
    store.mark_notified(first.id, 1_010).await?;

    // Queued before the writer looks: thirteen households' presses (more than one call's
    // worth), a receipt of the first alert among them, a device nobody registered, and a
    // repeat of the third press.
    let stranger = DeviceId::parse("d-nobody-01")?;
    let mut queued = Vec::new();
    for (i, device) in devices[1..14].iter().enumerate() {
        queued.push(store.press(device, &press(1), &plan, &rules, 2_000 + i as i64));
        if i == 4 {
            queued.push(store.press(&stranger, &press(1), &plan, &rules, 2_100));
        }
    }
    let receipt = store.record_delivery(first.id, &devices[9], 2_200);
    let repeat = store.press(&devices[3], &press(1), &plan, &rules, 2_300);

    let mut outcomes = Vec::new();
    for outcome in queued {
        outcomes.push(outcome.await?);
    }
    assert_eq!(outcomes.len(), 14);
    assert_eq!(
        outcomes[5],
        PressOutcome::UnknownDevice,
        "{:?}",
        outcomes[5]
    );
    let raised: Vec<_> = outcomes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(_, o)| match o {
            PressOutcome::Raised(alert) => alert.clone(),
            other => panic!("expected a new alert, got {other:?}"),
        })
        .collect();
    let expected: Vec<&DeviceId> = devices[1..14].iter().collect();
    let got: Vec<&DeviceId> = raised.iter().map(|a| &a.device).collect();
    assert_eq!(got, expected, "each press answered with its own alert");
    assert!(
        raised.windows(2).all(|w| w[0].id.0 < w[1].id.0),
        "ids follow the queue"
    );
    match repeat.await? {
        PressOutcome::Duplicate(again) => assert_eq!(again.id, raised[2].id),
        other => panic!("expected the repeat of the third press, got {other:?}"),
    }
    let delivered = receipt.await?.expect("the first alert's first delivery");
    assert_eq!(delivered.first_delivered_at_ms, Some(2_200));
    Ok(())
}

/// A press in a batch that the database refuses fails alone: the others of its batch are
/// written and answered, and nothing of the refused one is left behind.
#[tokio::test]
async fn a_refused_press_in_a_batch_fails_alone() -> anyhow::Result<()> {
    use crate::store::{PressOutcome, PressRules, RingPlan};
    let (_dir, store, devices) = seeded(1).await?;
    // What a full disk or a broken row would do to one press: the database refuses it.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER refuse BEFORE INSERT ON alerts WHEN NEW.device = '{}' \
         BEGIN SELECT RAISE(ABORT, 'refused for the test'); END",
        devices[2]
    )))
    .execute(&store.writer)
    .await?;
    let (plan, rules) = (RingPlan::default(), PressRules::default());
    let queued: Vec<_> = devices[..5]
        .iter()
        .enumerate()
        .map(|(i, d)| store.press(d, &press(1), &plan, &rules, 1_000 + i as i64))
        .collect();
    let mut outcomes = Vec::new();
    for outcome in queued {
        outcomes.push(outcome.await);
    }
    for (i, outcome) in outcomes.iter().enumerate() {
        match (i, outcome) {
            (2, Err(e)) => assert!(e.to_string().contains("refused"), "{e}"),
            (2, other) => panic!("the refused press: {other:?}"),
            (_, Ok(PressOutcome::Raised(alert))) => assert_eq!(alert.device, devices[i]),
            (_, other) => panic!("press {i}: {other:?}"),
        }
    }
    let (alerts, presses): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM presses)")
            .fetch_one(&store.reader)
            .await?;
    assert_eq!((alerts, presses), (4, 4));
    Ok(())
}

/// A batch that also holds other work of an alert (the station's action) is written on the
/// writer's sqlx connection, a savepoint a job: the action, the press queued behind it and the
/// receipt each get their own answer, in queue order.
#[tokio::test]
async fn a_press_queued_behind_an_action_is_written_in_the_same_order() -> anyhow::Result<()> {
    use crate::lifecycle::Action;
    use crate::store::{PressOutcome, PressRules, RingPlan};
    let (_dir, store, devices) = seeded(1).await?;
    let (plan, rules) = (RingPlan::default(), PressRules::default());
    let PressOutcome::Raised(first) = store
        .record_press(&devices[0], &press(1), &plan, &rules, 1_000)
        .await?
    else {
        panic!("a new alert");
    };
    store.mark_notified(first.id, 1_010).await?;
    // Queued together before the writer looks: the station takes the first alert, a unit's
    // receipt of it, and another household's press.
    let taken = store.apply(
        first.id,
        "operator:duty",
        Action::Acknowledge,
        None,
        "",
        1_100,
    );
    let receipt = store.record_delivery(first.id, &devices[1], 1_110);
    let second = store.press(&devices[2], &press(1), &plan, &rules, 1_120);
    let taken = taken.await?;
    assert!(taken.state_changed);
    assert_eq!(taken.alert.state.as_str(), "acknowledged");
    let delivered = receipt.await?.expect("the first delivery");
    assert_eq!(
        delivered.state.as_str(),
        "acknowledged",
        "the action came first"
    );
    match second.await? {
        PressOutcome::Raised(alert) => assert_eq!(alert.device, devices[2]),
        other => panic!("expected a new alert, got {other:?}"),
    }
    Ok(())
}
