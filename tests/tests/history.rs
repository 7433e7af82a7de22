//! What a station monitor looks back on, through the real edge and the HTTP API, on SQLite
//! and on PostgreSQL: closed alerts found by time, kind, category, state, cluster, household
//! and words of the address; paged with the cursor the answer gives, every alert once; an
//! operator of another zone sees none of it; every bad parameter is a 400 that says what is
//! wrong. And a device's page: its presence changes with their reasons and its battery levels.

mod backends;

use std::time::Duration;

use anyhow::bail;
use backends::app_on;
use serde_json::{json, Value};
use tenwatch_tests::*;

/// GETs `path` as `token` until `check` holds on a 200 answer (what the gateway applies off
/// the uplink worker, such as a heartbeat's battery, shows a moment later).
async fn once(
    app: &TestApp,
    token: &str,
    path: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.get_as(token, path).await?;
        if status == 200 && check(&body) {
            return Ok(body);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{path} never showed what was expected: {status} {body}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The alert ids of a history answer, in its order.
fn ids(body: &Value) -> Vec<String> {
    body["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn resolve(app: &TestApp, id: &str, category: &str) -> anyhow::Result<()> {
    let (status, body) = app
        .post_json(
            &format!("/api/alerts/{id}/resolve"),
            json!({ "category": category, "note": "" }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

async fn history(app: &TestApp, query: &str) -> anyhow::Result<Value> {
    let (status, body) = app.get_json(&format!("/api/alerts/history{query}")).await?;
    assert_eq!(status, 200, "{query}: {body}");
    Ok(body)
}

async fn closed_alerts_are_found_paged_and_kept_to_their_zone(backend: &str) -> anyhow::Result<()> {
    let Some((_db, app)) = app_on(backend, "history_alerts", 2).await? else {
        return Ok(());
    };
    let mut home = connect_all(app.mqtt, &app.cluster(0)[..3]).await?;
    let mut away = connect_all(app.mqtt, &app.cluster(1)[..2]).await?;

    // Four alerts closed, one left open, raised in this order.
    let medical = home[0].press_and_wait_ack(1, "medical").await?["alert"].clone();
    let fire = home[1].press_and_wait_ack(1, "fire").await?["alert"].clone();
    let help = away[0].press_and_wait_ack(1, "help").await?["alert"].clone();
    let intrusion = home[2].press_and_wait_ack(1, "intrusion").await?["alert"].clone();
    let cancel = home[2].press_and_wait_ack(2, "cancel").await?;
    assert_eq!(cancel["state"], "cancelled");
    let open = away[1].press_and_wait_ack(1, "help").await?["alert"].clone();
    let [medical, fire, help, intrusion, open] =
        [medical, fire, help, intrusion, open].map(|v| v.as_str().unwrap_or_default().to_owned());
    resolve(&app, &medical, "help").await?;
    resolve(&app, &fire, "误报").await?;
    resolve(&app, &help, "dispute").await?;

    // Newest first, closed ones only, each with its times in words a machine reads twice.
    let all = history(&app, "").await?;
    assert_eq!(
        ids(&all),
        [&intrusion, &help, &fire, &medical].map(String::clone),
        "{all}"
    );
    assert!(!ids(&all).contains(&open));
    assert_eq!(all["next"], Value::Null);
    let first = &all["alerts"][3];
    assert_eq!(
        (&first["kind"], &first["category"], &first["state"]),
        (&json!("medical"), &json!("help"), &json!("resolved"))
    );
    assert_eq!(
        first["cluster_name"].as_str().map(|n| !n.is_empty()),
        Some(true)
    );
    let raised = first["raised_at"].as_str().unwrap_or_default();
    assert!(raised.ends_with('Z') && raised.contains('T'), "{first}");
    assert_eq!(
        first["duration_ms"].as_i64(),
        Some(
            first["closed_at_ms"].as_i64().unwrap_or(-1)
                - first["raised_at_ms"].as_i64().unwrap_or(0)
        )
    );

    // Each filter.
    let cases: Vec<(String, Vec<&String>)> = vec![
        ("?kind=fire".into(), vec![&fire]),
        ("?category=help".into(), vec![&medical]),
        ("?category=%E8%AF%AF%E6%8A%A5".into(), vec![&fire]),
        ("?state=cancelled".into(), vec![&intrusion]),
        ("?state=resolved&kind=help".into(), vec![&help]),
        (
            format!("?cluster={}", app.cluster(1)[0].cluster),
            vec![&help],
        ),
        (
            format!("?household={}", app.cluster(0)[2].household),
            vec![&intrusion],
        ),
        // A LIKE wildcard is a character to find, not "anything".
        ("?q=%25".into(), vec![]),
    ];
    for (query, want) in cases {
        let want: Vec<String> = want.into_iter().cloned().collect();
        assert_eq!(ids(&history(&app, &query).await?), want, "{query}");
    }
    // Words of the address: the household's own label finds its alert, not the others'.
    let label = app.cluster(1)[0].label.clone();
    let found = ids(&history(&app, &format!("?q={}", urlencode(&label))).await?);
    assert!(
        found.contains(&help) && !found.contains(&medical),
        "{label}: {found:?}"
    );

    // A time window, in milliseconds or ISO 8601: from is inclusive, to is not.
    let fire_ms = all["alerts"][2]["raised_at_ms"]
        .as_i64()
        .unwrap_or_default();
    let fire_iso = all["alerts"][2]["raised_at"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let since = ids(&history(&app, &format!("?from={}", urlencode(&fire_iso))).await?);
    assert!(
        since.contains(&fire) && !since.contains(&medical),
        "{since:?}"
    );
    let before = ids(&history(&app, &format!("?to={fire_ms}")).await?);
    assert!(
        before.contains(&medical) && !before.contains(&fire),
        "{before:?}"
    );

    // Paged one at a time, following `next`: every closed alert once, in order.
    let mut paged = Vec::new();
    let mut query = "?limit=1".to_owned();
    loop {
        let page = history(&app, &query).await?;
        assert_eq!(page["alerts"].as_array().map(Vec::len), Some(1), "{page}");
        paged.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=1&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(paged, ids(&all));
    // A cursor goes on with the filtered list it came from.
    let page = history(&app, "?limit=2&state=resolved").await?;
    let rest = history(
        &app,
        &format!(
            "?limit=2&state=resolved&cursor={}",
            page["next"].as_str().unwrap_or_default()
        ),
    )
    .await?;
    assert_eq!(ids(&page), [&help, &fire].map(String::clone));
    assert_eq!(
        (ids(&rest), &rest["next"]),
        (vec![medical.clone()], &Value::Null)
    );

    // Another zone's operator: nothing, not even by naming this zone or its device.
    {
        let store = tenwatch_gateway::store::open(&app.config.database_url).await?;
        let zone = tenwatch_gateway::domain::ZoneCode::parse("11010502")?;
        store.add_zone(&zone, "第二责任区").await?;
    }
    let other = app.operator("station-b", "11010502").await?;
    for query in ["", "?zone=11010501", "?kind=medical"] {
        let (status, body) = app
            .get_as(&other, &format!("/api/alerts/history{query}"))
            .await?;
        assert_eq!(
            (status, &body["alerts"], &body["next"]),
            (200, &json!([]), &Value::Null)
        );
    }
    let device = &app.cluster(0)[0].device;
    let (status, body) = app
        .get_as(&other, &format!("/api/devices/{device}/history"))
        .await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some(format!("device {device} not found").as_str()))
    );
    // A volunteer is no station.
    let volunteer = app.volunteer("vol-li", "11010501").await?;
    let (status, _) = app.get_as(&volunteer, "/api/alerts/history").await?;
    assert_eq!(status, 403);

    // Bad parameters: 400, saying what is wrong.
    let bad = [
        ("?limit=0", "limit must be from 1 to 200"),
        ("?limit=500", "limit must be from 1 to 200"),
        ("?limit=many", "limit"),
        ("?from=yesterday", "from must be a time"),
        ("?to=2026-13-01", "to must be a time"),
        ("?from=2000&to=1000", "from must be earlier than to"),
        (
            "?kind=cancel",
            "kind must be help, medical, fire or intrusion",
        ),
        ("?category=party", "category"),
        ("?state=open", "state must be resolved or cancelled"),
        ("?cluster=a%2Fb", "cluster"),
        ("?household=%2B", "household"),
        ("?cursor=bm9wZQ", "cursor is not one this server gave"),
        ("?colour=red", "unknown field `colour`"),
    ];
    for (query, words) in bad {
        let (status, body) = app.get_json(&format!("/api/alerts/history{query}")).await?;
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            status == 400 && error.contains(words),
            "{query}: {status} {body}"
        );
    }
    let (status, body) = app
        .get_json(&format!("/api/devices/{device}/history?from=later"))
        .await?;
    assert_eq!(status, 400, "{body}");
    Ok(())
}

async fn a_device_page_shows_its_presence_and_battery(backend: &str) -> anyhow::Result<()> {
    let Some((_db, app)) = app_on(backend, "history_device", 2).await? else {
        return Ok(());
    };
    let cred = &app.cluster(0)[4];
    let path = format!("/api/devices/{}/history", cred.device);
    let unit = TestDevice::connect(app.mqtt, cred).await?;
    let levels = |body: &Value| -> Vec<i64> {
        body["battery"]
            .as_array()
            .map(|b| b.iter().filter_map(|r| r["level"].as_i64()).collect())
            .unwrap_or_default()
    };
    let states = |b: &Value| -> Vec<(String, String)> {
        b["presence"]
            .as_array()
            .map(|p| {
                p.iter()
                    .map(|c| {
                        let text = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                        (text("state"), text("reason"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let pair = |s: &str, r: &str| (s.to_owned(), r.to_owned());
    // Online first (the edge's report is applied on its own path: a heartbeat ahead of it
    // would bring the unit online itself).
    once(&app, &app.token, &path, |b| {
        states(b) == [pair("online", "connected")]
    })
    .await?;
    // Each level seen before the next is sent: a heartbeat that changes something is applied
    // on a task of its own, so two sent at once may land in either order.
    unit.publish("heartbeat", json!({ "seq": 1, "battery": 80 }))
        .await?;
    once(&app, &app.token, &path, |b| levels(b) == [80]).await?;
    unit.publish("heartbeat", json!({ "seq": 2, "battery": 74 }))
        .await?;
    // (The state now and the history are two reads: the first may come a moment before.)
    let page = once(&app, &app.token, &path, |b| {
        levels(b) == [80, 74] && b["device"]["battery"] == 74
    })
    .await?;
    assert_eq!(page["device"]["device"], json!(cred.device));
    assert!(page["battery"][0]["at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    // It leaves cleanly, and (as units do) comes straight back: the page tells both, in order,
    // the reason with the leaving.
    unit.client.disconnect().await?;
    // (The state now is read apart from the history: wait for both to have caught up.)
    let page = once(&app, &app.token, &path, |b| {
        states(b).len() == 3 && b["device"]["state"] == "online"
    })
    .await?;
    assert_eq!(
        states(&page),
        [
            pair("online", "connected"),
            pair("offline", "clean_disconnect"),
            pair("online", "connected")
        ],
        "{page}"
    );
    assert_eq!(page["device"]["state"], "online");

    // A window before any of it holds nothing; one after it tells what was true before it.
    let first = [&page["battery"][0], &page["presence"][0]]
        .iter()
        .filter_map(|c| c["at_ms"].as_i64())
        .min()
        .unwrap_or_default();
    let (status, early) = app
        .get_json(&format!("{path}?from={}&to={first}", first - 60_000))
        .await?;
    assert_eq!(
        (status, &early["presence"], &early["battery"]),
        (200, &json!([]), &json!([]))
    );
    let last = page["presence"][2]["at_ms"].as_i64().unwrap_or_default();
    let (_, late) = app.get_json(&format!("{path}?from={}", last + 1)).await?;
    assert_eq!(
        (
            &late["presence"],
            &late["presence_before"]["reason"],
            &late["battery_before"]["level"]
        ),
        (&json!([]), &json!("connected"), &json!(74)),
        "{late}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_closed_alerts_are_found_paged_and_kept_to_their_zone() -> anyhow::Result<()> {
    closed_alerts_are_found_paged_and_kept_to_their_zone("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_closed_alerts_are_found_paged_and_kept_to_their_zone() -> anyhow::Result<()>
{
    closed_alerts_are_found_paged_and_kept_to_their_zone("postgres").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_device_page_shows_its_presence_and_battery() -> anyhow::Result<()> {
    a_device_page_shows_its_presence_and_battery("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_device_page_shows_its_presence_and_battery() -> anyhow::Result<()> {
    a_device_page_shows_its_presence_and_battery("postgres").await
}

/// The figures of a period (`/api/stats`): each alert of the operator's zones counted once, by
/// kind and category, with cancels, false alarms and what is still open, and how long the first
/// delivery and the first "I'm coming" took; a cluster or a period narrows it; another zone's
/// operator gets nothing; a bad parameter is a 400 that says what is wrong. Where: the
/// pressers' streets as grid cells with their counts, naming no household.
async fn the_figures_of_a_period_count_each_alert_once(backend: &str) -> anyhow::Result<()> {
    let Some((_db, app)) = app_on(backend, "history_stats", 2).await? else {
        return Ok(());
    };
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut home = connect_all(app.mqtt, &app.cluster(0)[..4]).await?;
    let mut away = connect_all(app.mqtt, &app.cluster(1)[..1]).await?;

    // A help alert: a neighbour's unit sounds, another's resident is coming.
    let help = home[0].press_and_wait_ack(1, "help").await?["alert"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    home[1]
        .publish("delivered", json!({ "alert": help }))
        .await?;
    home[2]
        .publish("respond", json!({ "alert": help, "answer": "coming" }))
        .await?;
    let detail = once(&app, &app.token, &format!("/api/alerts/{help}"), |b| {
        b["first_delivered_at_ms"].is_i64() && b["first_coming_at_ms"].is_i64()
    })
    .await?;
    let took = |field: &str| {
        detail[field].as_i64().unwrap_or(0) - detail["raised_at_ms"].as_i64().unwrap_or(0)
    };
    // A patrol volunteer comes to it too, and checks in once on patrol.
    let volunteer = app.volunteer("vol-li", "11010501").await?;
    let (status, body) = app
        .post_as(
            &volunteer,
            &format!("/api/alerts/{help}/respond"),
            json!({ "answer": "coming" }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let p = &app.cluster(0)[0];
    let (status, body) = app
        .post_as(
            &volunteer,
            "/api/volunteer/checkin",
            json!({ "lat": p.lat, "lon": p.lon, "note": "北门 north gate" }),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    // A fire resolved as a false alarm, an intrusion withdrawn, a medical alert elsewhere.
    let fire = home[1].press_and_wait_ack(1, "fire").await?["alert"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    resolve(&app, &fire, "false_alarm").await?;
    home[3].press_and_wait_ack(1, "intrusion").await?;
    assert_eq!(
        home[3].press_and_wait_ack(2, "cancel").await?["state"],
        "cancelled"
    );
    away[0].press_and_wait_ack(1, "medical").await?;

    let (status, all) = app.get_json("/api/stats").await?;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["alerts"], 4, "{all}");
    assert_eq!(
        all["by_kind"],
        json!({ "fire": 1, "help": 1, "intrusion": 1, "medical": 1 })
    );
    assert_eq!(all["by_category"], json!({ "false_alarm": 1 }));
    assert_eq!(
        (&all["open"], &all["cancelled"], &all["false_alarms"]),
        (&json!(2), &json!(1), &json!(1))
    );
    assert_eq!(
        (&all["escalated_ring1"], &all["escalated_ring2"]),
        (&json!(0), &json!(0))
    );
    let delivery = took("first_delivered_at_ms");
    assert_eq!(
        all["first_delivery"],
        json!({ "n": 1, "p50_ms": delivery, "p90_ms": delivery, "max_ms": delivery })
    );
    assert_eq!(all["first_coming"]["n"], 1);
    assert_eq!(all["first_coming"]["p50_ms"], took("first_coming_at_ms"));
    assert_eq!(all["first_on_scene"]["n"], 0);
    // Where and when: every alert in one hour and one weekday, and by cluster, most first.
    let sum = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).sum::<u64>())
    };
    assert_eq!(
        (sum(&all["by_hour"]), sum(&all["by_weekday"])),
        (Some(4), Some(4))
    );
    assert_eq!(all["by_hour"].as_array().map(Vec::len), Some(24));
    assert_eq!(
        all["by_cluster"],
        json!([
            { "cluster": app.cluster(0)[0].cluster, "alerts": 3 },
            { "cluster": app.cluster(1)[0].cluster, "alerts": 1 }
        ])
    );
    // By place: the pressers' streets as ~100 m grid cells, each said by its centre (within
    // half a cell of a presser), the counts adding up, and nothing that names a household.
    let pressers = [
        &app.cluster(0)[0],
        &app.cluster(0)[1],
        &app.cluster(0)[3],
        &app.cluster(1)[0],
    ];
    let places = all["places"].as_array().cloned().unwrap_or_default();
    assert_eq!(all["place_cell_deg"], 0.001, "{all}");
    let counted: u64 = places.iter().filter_map(|p| p["alerts"].as_u64()).sum();
    assert_eq!(counted, 4, "{all}");
    let near = |p: &Value, c: &tenwatch_gateway::seed::Credential| {
        let (lat, lon) = (
            p["lat"].as_f64().unwrap_or(0.0),
            p["lon"].as_f64().unwrap_or(0.0),
        );
        (lat - c.lat).abs() <= 0.000_51 && (lon - c.lon).abs() <= 0.000_51
    };
    for place in &places {
        assert!(
            pressers.iter().any(|c| near(place, c)),
            "{place} is no presser's street"
        );
        let mut keys: Vec<&String> = place
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        keys.sort();
        assert_eq!(keys, ["alerts", "lat", "lon"], "{place}");
    }
    for c in pressers {
        assert!(
            places.iter().any(|p| near(p, c)),
            "{} is on no place",
            c.label
        );
        assert!(!all["places"].to_string().contains(&c.household), "{all}");
    }
    // Which volunteers came, and their check-ins.
    let volunteers = all["volunteers"].as_array().cloned().unwrap_or_default();
    assert_eq!(volunteers.len(), 1, "{all}");
    assert_eq!(
        (
            &volunteers[0]["volunteer"],
            &volunteers[0]["came"],
            &volunteers[0]["on_scene"],
            &volunteers[0]["checkins"]
        ),
        (&json!("vol-li"), &json!(1), &json!(0), &json!(1))
    );
    assert!(
        volunteers[0]["coming_p50_ms"]
            .as_i64()
            .is_some_and(|ms| ms >= 0),
        "{all}"
    );
    assert!(
        all["to"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{all}"
    );

    // One cluster; a period before any of it.
    let (_, one) = app
        .get_json(&format!("/api/stats?cluster={}", app.cluster(1)[0].cluster))
        .await?;
    assert_eq!(
        (&one["alerts"], &one["by_kind"]),
        (&json!(1), &json!({ "medical": 1 }))
    );
    assert_eq!(
        one["places"].as_array().map(|p| p.len()),
        Some(1),
        "the one cluster's one place: {one}"
    );
    let (_, before) = app
        .get_json(&format!(
            "/api/stats?from={}&to={started}",
            started - 3_600_000
        ))
        .await?;
    assert_eq!(before["alerts"], 0, "{before}");

    // Another zone's operator counts none of it, even naming this zone.
    {
        let store = tenwatch_gateway::store::open(&app.config.database_url).await?;
        let zone = tenwatch_gateway::domain::ZoneCode::parse("11010502")?;
        store.add_zone(&zone, "第二责任区").await?;
    }
    let other = app.operator("station-b", "11010502").await?;
    for query in ["", "?zone=11010501"] {
        let (status, body) = app.get_as(&other, &format!("/api/stats{query}")).await?;
        assert_eq!(
            (status, &body["alerts"]),
            (200, &json!(0)),
            "{query}: {body}"
        );
    }

    // Bad parameters: 400, saying what is wrong.
    for (query, words) in [
        ("?from=yesterday", "from must be a time"),
        ("?from=2000&to=1000", "from must be earlier than to"),
        ("?from=0&to=40000000000", "at most a year"),
        ("?cluster=no%20such", "cluster"),
        ("?zone=1", "zone"),
        ("?limit=5", "unknown field"),
    ] {
        let (status, body) = app.get_json(&format!("/api/stats{query}")).await?;
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            status == 400 && error.contains(words),
            "{query}: {status} {body}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_the_figures_of_a_period_count_each_alert_once() -> anyhow::Result<()> {
    the_figures_of_a_period_count_each_alert_once("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_the_figures_of_a_period_count_each_alert_once() -> anyhow::Result<()> {
    the_figures_of_a_period_count_each_alert_once("postgres").await
}
