//! CAP 1.2 out, through the real edge and the HTTP API, on SQLite and on PostgreSQL: a unit
//! presses, the station publishes the alert, and anyone without a session finds it in the
//! Atom feed and as a CAP document that the OASIS CAP 1.2 schema accepts (checked by lxml,
//! not by us); someone on scene and the station's resolution follow as `Update`s, a cancel as
//! a `Cancel`, each naming the first message in `references`. An alert nobody published is
//! a 404 and not in the feed; no household's label, address, id, device or contacts appear
//! in anything public; bad ids are answered with what is wrong.

mod backends;

use backends::app_on;
use serde_json::{json, Value};
use tenwatch_tests::cap::{require_cap_validator, validate};
use tenwatch_tests::*;

/// GET without a session, as a feed reader would: status, content type and body.
async fn public_get(app: &TestApp, path: &str) -> anyhow::Result<(u16, String, String)> {
    let response = reqwest::get(app.url(path)).await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, content_type, response.text().await?))
}

/// The CAP document at `path`, checked against the schema; its fields as lxml read them.
async fn cap_document(app: &TestApp, path: &str, secrets: &[String]) -> anyhow::Result<Value> {
    let (status, content_type, body) = public_get(app, path).await?;
    assert_eq!(status, 200, "{path}: {body}");
    assert!(
        content_type.starts_with("application/cap+xml"),
        "{content_type}"
    );
    let checked = validate(&body).await?;
    assert_eq!(checked["kind"], "cap", "{checked}");
    assert_eq!(
        checked["valid"], true,
        "{path} fails the CAP 1.2 schema: {checked}\n{body}"
    );
    keeps_secrets(&checked, secrets);
    Ok(checked["fields"].clone())
}

/// The Atom feed, parsed and checked; its entries.
async fn feed(app: &TestApp, secrets: &[String]) -> anyhow::Result<Vec<Value>> {
    let (status, content_type, body) = public_get(app, "/cap/feed.atom").await?;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/atom+xml"),
        "{content_type}"
    );
    let checked = validate(&body).await?;
    assert_eq!(
        (&checked["kind"], &checked["valid"]),
        (&json!("atom"), &json!(true)),
        "{checked}\n{body}"
    );
    keeps_secrets(&checked, secrets);
    Ok(checked["entries"].as_array().cloned().unwrap_or_default())
}

/// Nothing of the household in any text or attribute of a public document.
fn keeps_secrets(checked: &Value, secrets: &[String]) {
    let text = checked["text"].as_str().unwrap_or_default();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(
            !text.contains(secret.as_str()),
            "{secret:?} is public: {text}"
        );
    }
}

/// What the station knows of the alert's household, none of which may go out.
async fn household_secrets(app: &TestApp, id: &str) -> anyhow::Result<Vec<String>> {
    let (status, detail) = app.get_json(&format!("/api/alerts/{id}")).await?;
    assert_eq!(status, 200, "{detail}");
    let mut secrets: Vec<String> = [
        "label",
        "address",
        "household",
        "device",
        "contacts",
        "notes",
    ]
    .iter()
    .filter_map(|k| detail[*k].as_str().map(str::to_owned))
    .collect();
    // The contacts' phone numbers one by one, and the exact position.
    if let Some(contacts) = detail["contacts"].as_str() {
        secrets.extend(contacts.split([';', ' ']).map(str::trim).map(str::to_owned));
    }
    for k in ["lat", "lon"] {
        if let Some(v) = detail[k].as_f64() {
            secrets.push(format!("{v:.5}"));
        }
    }
    Ok(secrets)
}

async fn post(app: &TestApp, path: &str, body: Value) -> anyhow::Result<Value> {
    let (status, answer) = app.post_json(path, body).await?;
    assert_eq!(status, 200, "{path}: {answer}");
    Ok(answer)
}

fn infos_say(fields: &Value, want: &[(&str, &str)]) {
    let infos = fields["info"].as_array().cloned().unwrap_or_default();
    let languages: Vec<&str> = infos
        .iter()
        .filter_map(|i| i["language"].as_str())
        .collect();
    assert_eq!(languages, ["zh-CN", "en-US"], "{fields}");
    for info in &infos {
        for (k, v) in want {
            assert_eq!(info[*k], *v, "{k} in {info}");
        }
    }
}

async fn a_published_alert_goes_out_as_cap_through_its_life(backend: &str) -> anyhow::Result<()> {
    if !require_cap_validator() {
        return Ok(());
    }
    let Some((_db, app)) = app_on(backend, "cap_life", 2).await? else {
        return Ok(());
    };
    let mut home = connect_all(app.mqtt, &app.cluster(0)[..2]).await?;
    let mut away = connect_all(app.mqtt, &app.cluster(1)[..1]).await?;

    let fire = home[0].press_and_wait_ack(1, "fire").await?["alert"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let secrets = household_secrets(&app, &fire).await?;

    // Not public yet: nobody outside sees it.
    let (status, _, body) = public_get(&app, &format!("/cap/alerts/{fire}.xml")).await?;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains(&format!("no public alert {fire}")), "{body}");
    assert!(feed(&app, &secrets).await?.is_empty());

    // Only a station of the alert's zone publishes it, once.
    let volunteer = app.volunteer("li", "11010501").await?;
    let (status, body) = app
        .post_as(
            &volunteer,
            &format!("/api/alerts/{fire}/publish"),
            json!({}),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    {
        let store = tenwatch_gateway::store::open(&app.config.database_url).await?;
        let zone = tenwatch_gateway::domain::ZoneCode::parse("11010502")?;
        store.add_zone(&zone, "第二责任区").await?;
    }
    let other = app.operator("station-b", "11010502").await?;
    let (status, body) = app
        .post_as(&other, &format!("/api/alerts/{fire}/publish"), json!({}))
        .await?;
    assert_eq!(status, 404, "{body}");
    let published = post(&app, &format!("/api/alerts/{fire}/publish"), json!({})).await?;
    assert!(published["public_at_ms"].as_i64().is_some(), "{published}");
    let (status, body) = app
        .post_json(&format!("/api/alerts/{fire}/publish"), json!({}))
        .await?;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("already public"));
    let (_, detail) = app.get_json(&format!("/api/alerts/{fire}")).await?;
    assert!(
        detail["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["action"] == "published")),
        "{detail}"
    );

    // The first message: an Alert, in Chinese and English, of a fire nearby.
    let first = cap_document(&app, &format!("/cap/alerts/{fire}.xml"), &secrets).await?;
    let first_id = format!("tenwatch-{fire}-1");
    assert_eq!(first["identifier"], first_id.as_str());
    assert_eq!(first["sender"], "tenwatch@localhost");
    assert_eq!(first["status"], "Actual");
    assert_eq!(first["msgType"], "Alert");
    assert_eq!(first["scope"], "Public");
    assert_eq!(first["references"], Value::Null);
    infos_say(
        &first,
        &[
            ("category", "Fire"),
            ("urgency", "Immediate"),
            ("severity", "Severe"),
            ("certainty", "Likely"),
        ],
    );
    assert_eq!(first["info"][0]["event"], "火警");
    assert_eq!(first["info"][1]["event"], "Fire");
    let circle = first["info"][0]["circle"].as_str().unwrap_or_default();
    assert!(circle.ends_with(" 0.5"), "{circle}");
    let entries = feed(&app, &secrets).await?;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["href"], format!("/cap/alerts/{fire}.xml"));
    assert_eq!(entries[0]["type"], "application/cap+xml");
    assert_eq!(entries[0]["msgType"], "Alert");
    let alert_ref = format!(
        "tenwatch@localhost,{first_id},{}",
        first["sent"].as_str().unwrap_or_default()
    );

    // The station is there: an Update that names the Alert.
    post(
        &app,
        &format!("/api/alerts/{fire}/respond"),
        json!({ "answer": "on_scene" }),
    )
    .await?;
    let on_scene = cap_document(&app, &format!("/cap/alerts/{fire}.xml"), &secrets).await?;
    assert_eq!(on_scene["msgType"], "Update");
    assert_eq!(on_scene["identifier"], format!("tenwatch-{fire}-2"));
    assert_eq!(on_scene["references"], alert_ref.as_str());
    infos_say(
        &on_scene,
        &[("certainty", "Observed"), ("urgency", "Immediate")],
    );

    // Resolved as a real call: an Update that gives the all-clear and names both before it.
    post(
        &app,
        &format!("/api/alerts/{fire}/resolve"),
        json!({ "category": "help", "note": "张三家厨房起火，已扑灭" }),
    )
    .await?;
    let mut secrets_and_note = secrets.clone();
    secrets_and_note.push("张三".into());
    let over = cap_document(&app, &format!("/cap/alerts/{fire}.xml"), &secrets_and_note).await?;
    assert_eq!(over["msgType"], "Update");
    assert_eq!(over["identifier"], format!("tenwatch-{fire}-3"));
    let refs = over["references"].as_str().unwrap_or_default();
    assert!(
        refs.starts_with(&format!(
            "{alert_ref} tenwatch@localhost,tenwatch-{fire}-2,"
        )),
        "{refs}"
    );
    infos_say(
        &over,
        &[
            ("responseType", "AllClear"),
            ("urgency", "Past"),
            ("certainty", "Observed"),
        ],
    );
    // Each message stays where its identifier says, the same as when it was first read.
    let again = cap_document(&app, &format!("/cap/alerts/{fire}/1.xml"), &secrets).await?;
    assert_eq!(again, first);

    // A second alert, published, then cancelled by its household: a Cancel naming the Alert.
    let help = away[0].press_and_wait_ack(1, "intrusion").await?["alert"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let help_secrets = household_secrets(&app, &help).await?;
    post(&app, &format!("/api/alerts/{help}/publish"), json!({})).await?;
    let alert = cap_document(&app, &format!("/cap/alerts/{help}.xml"), &help_secrets).await?;
    infos_say(
        &alert,
        &[("category", "Security"), ("severity", "Moderate")],
    );
    let cancel = away[0].press_and_wait_ack(2, "cancel").await?;
    assert_eq!(cancel["state"], "cancelled");
    let cancelled = cap_document(&app, &format!("/cap/alerts/{help}.xml"), &help_secrets).await?;
    assert_eq!(cancelled["msgType"], "Cancel");
    assert_eq!(
        cancelled["references"],
        format!(
            "tenwatch@localhost,tenwatch-{help}-1,{}",
            alert["sent"].as_str().unwrap_or_default()
        )
    );
    infos_say(
        &cancelled,
        &[("certainty", "Unlikely"), ("urgency", "Past")],
    );
    // A closed alert is not published after the fact.
    let (status, body) = app
        .post_json(&format!("/api/alerts/{help}/publish"), json!({}))
        .await?;
    assert_eq!(status, 409, "{body}");

    // A third alert nobody published: absent everywhere public.
    let quiet = home[1].press_and_wait_ack(1, "medical").await?["alert"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, _, body) = public_get(&app, &format!("/cap/alerts/{quiet}.xml")).await?;
    assert_eq!(status, 404, "{body}");
    let mut all_secrets = secrets_and_note.clone();
    all_secrets.extend(help_secrets);
    let entries = feed(&app, &all_secrets).await?;
    let listed: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["href"].as_str().unwrap_or_default(),
                e["msgType"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let (help_href, fire_href) = (
        format!("/cap/alerts/{help}.xml"),
        format!("/cap/alerts/{fire}.xml"),
    );
    assert_eq!(
        listed,
        [
            (help_href.as_str(), "Cancel"),
            (fire_href.as_str(), "Update")
        ],
        "newest first, the latest message of each"
    );

    // Bad ids and names are told what is wrong.
    for (path, status, says) in [
        ("/cap/alerts/xyz.xml", 400, "expected an alert id and .xml"),
        (
            &format!("/cap/alerts/{fire}") as &str,
            400,
            "expected an alert id and .xml",
        ),
        ("/cap/alerts/A999999.xml", 404, "no public alert A999999"),
        (
            &format!("/cap/alerts/{fire}/9.xml"),
            404,
            "has no message 9",
        ),
        (
            &format!("/cap/alerts/{fire}/first.xml"),
            400,
            "expected a message number",
        ),
        ("/cap/alerts/nope/1.xml", 400, "alert id"),
    ] {
        let (got, _, body) = public_get(&app, path).await?;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    let (status, body) = app
        .post_json("/api/alerts/bogus/publish", json!({}))
        .await?;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("alert id"),
        "{body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_published_alert_goes_out_as_cap_through_its_life() -> anyhow::Result<()> {
    a_published_alert_goes_out_as_cap_through_its_life("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_published_alert_goes_out_as_cap_through_its_life() -> anyhow::Result<()> {
    a_published_alert_goes_out_as_cap_through_its_life("postgres").await
}

/// A notice to residents is public by nature (every unit of its clusters shows it): it is in
/// the feed beside the public alerts and a CAP `Alert` of its own in the operator's words,
/// valid by the schema, whose area is a circle that holds all its households and names none.
async fn a_notice_goes_out_as_cap(backend: &str) -> anyhow::Result<()> {
    if !require_cap_validator() {
        return Ok(());
    }
    let Some((_db, app)) = app_on(backend, "cap-notice", 2).await? else {
        return Ok(());
    };
    let c1 = app.cluster(1).to_vec();
    let (status, sent) = app
        .post_json(
            "/api/notices",
            json!({
                "clusters": [c1[0].cluster],
                "kind": "weather",
                "title": "今晚有大风",
                "body": "今晚 8 级大风，请收好阳台花盆，关好门窗。",
            }),
        )
        .await?;
    assert_eq!(status, 201, "{sent}");
    let id = sent["id"].as_i64().expect("the notice's id");
    // Nothing of any household of the zone may go out.
    let mut secrets = Vec::new();
    for c in &app.credentials {
        secrets.extend([c.label.clone(), c.household.clone(), c.device.clone()]);
        secrets.push(format!("{:.5}", c.lat));
    }

    let entries = feed(&app, &secrets).await?;
    let href = format!("/cap/notices/N{id}.xml");
    let entry = entries
        .iter()
        .find(|e| e["href"] == href.as_str())
        .unwrap_or_else(|| panic!("no {href} in {entries:?}"));
    assert_eq!(entry["msgType"], "Alert");
    assert!(
        entry["title"]
            .as_str()
            .is_some_and(|t| t.contains("天气预警") && t.contains("今晚有大风")),
        "{entry}"
    );

    let fields = cap_document(&app, &href, &secrets).await?;
    assert_eq!(fields["identifier"], format!("tenwatch-N{id}"), "{fields}");
    assert_eq!(
        (&fields["msgType"], &fields["status"], &fields["scope"]),
        (&json!("Alert"), &json!("Actual"), &json!("Public")),
        "{fields}"
    );
    let info = &fields["info"][0];
    assert_eq!(info["language"], "zh-CN", "{fields}");
    assert_eq!(
        (&info["category"], &info["event"], &info["urgency"]),
        (&json!("Met"), &json!("天气预警"), &json!("Expected")),
        "{info}"
    );
    assert_eq!(info["headline"], "天气预警：今晚有大风", "{info}");
    assert_eq!(info["description"], sent["body"], "{info}");
    assert!(info["expires"].is_string(), "{info}");
    // The circle holds every household of the cluster the notice was for.
    let circle = info["circle"].as_str().expect("a circle");
    let (centre, radius) = circle.split_once(' ').expect("centre and radius");
    let (lat, lon) = centre.split_once(',').expect("lat,lon");
    let (lat, lon, radius): (f64, f64, f64) = (lat.parse()?, lon.parse()?, radius.parse()?);
    for c in &c1 {
        let km = tenwatch_gateway::domain::haversine_m(lat, lon, c.lat, c.lon) / 1000.0;
        assert!(km <= radius, "{} is {km:.3} km from {circle}", c.label);
    }

    // A name that is not a notice's, and one that does not exist.
    let (status, _, body) = public_get(&app, "/cap/notices/seven.xml").await?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("N7.xml"), "{body}");
    let (status, _, body) = public_get(&app, &format!("/cap/notices/N{}.xml", id + 1000)).await?;
    assert_eq!(status, 404, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_notice_goes_out_as_cap() -> anyhow::Result<()> {
    a_notice_goes_out_as_cap("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_notice_goes_out_as_cap() -> anyhow::Result<()> {
    a_notice_goes_out_as_cap("postgres").await
}
