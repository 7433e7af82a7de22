//! The half-monthly bulletin (警情公示) and device coverage, through the real edge and the
//! HTTP API, on SQLite and on PostgreSQL: the printable page and the PDF show a zone's counts
//! by category and kind, response times, cancels and false alarms, what residents should watch
//! for, the station's contact and each cluster's outage minutes; no household's label,
//! address, id or contact is in either; the PDF's text, read back by poppler's `pdftotext`,
//! holds the same Chinese figures; bad parameters and another zone are refused in words; a
//! missing font is a 503 that says what to install. `/api/stats` answers the same coverage.

mod backends;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use backends::app_on;
use serde_json::json;
use tenwatch_gateway::domain::DeviceId;
use tenwatch_gateway::store::supervision::{PresenceReport, SupervisionPolicy};
use tenwatch_gateway::store::Store;
use tenwatch_tests::*;

const MINUTE: i64 = 60_000;

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

/// GET as `token`: status, content type, body bytes.
async fn get_raw(app: &TestApp, token: &str, path: &str) -> anyhow::Result<(u16, String, Vec<u8>)> {
    let r = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await?;
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, kind, r.bytes().await?.to_vec()))
}

/// The PDF's text as poppler reads it (a tool we did not write); none when pdftotext is not
/// installed outside CI.
fn pdf_text(pdf: &[u8]) -> anyhow::Result<Option<String>> {
    if !require_tool("pdftotext") {
        return Ok(None);
    }
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bulletin.pdf");
    std::fs::write(&file, pdf)?;
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&file)
        .arg("-")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "pdftotext refused the PDF: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Some(String::from_utf8(out.stdout)?))
}

/// Nothing of a household in `text`: no label, address, household id or contact of the
/// seeded neighbourhood.
fn assert_no_household(app: &TestApp, text: &str, what: &str) {
    for c in &app.credentials {
        for private in [
            c.label.clone(),
            format!("北京市东城区{}", c.label),
            c.household.clone(),
            c.device.clone(),
        ] {
            assert!(!text.contains(&private), "{what} names {private}");
        }
    }
    // The seed's contacts ("王先生/女士 138…") and notes for responders; the clusters'
    // house numbers (their names say "1-10号"): the street and the cluster's number at most.
    for private in [
        "1-10号",
        "11-20号",
        "先生/女士",
        "13800",
        "独居老人，行动不便",
        "心脏病患者",
        "听力障碍",
    ] {
        assert!(!text.contains(private), "{what} holds {private}");
    }
}

/// Writes a unit's presence at a past moment, as the edge's reports would have.
async fn presence(
    store: &dyn Store,
    device: &str,
    session: u64,
    online: bool,
    at_ms: i64,
) -> anyhow::Result<()> {
    let report = PresenceReport {
        device: DeviceId::parse(device)?,
        session,
        online,
        disconnect_reason: (!online).then(|| "connection_lost".to_owned()),
        seen_ms: at_ms,
        offline: (!online).then_some("connection_lost"),
    };
    store
        .apply_presence(vec![report], &SupervisionPolicy::default(), at_ms)
        .await?;
    Ok(())
}

async fn the_bulletin_shows_the_zone_s_figures_and_no_household(
    backend: &str,
) -> anyhow::Result<()> {
    let Some((_db, app)) = app_on(backend, "bulletin", 2).await? else {
        return Ok(());
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    // A past period of 100 minutes, written as the units' presence history: every unit of the
    // zone came online before it; in the second cluster one unit was lost from minute 10 to
    // 40, and one was never heard from at all.
    let t0 = now - 300 * MINUTE;
    let (c0, c1) = (app.cluster(0).to_vec(), app.cluster(1).to_vec());
    {
        let store = tenwatch_gateway::store::open(&app.config.database_url).await?;
        for (i, cred) in c0.iter().chain(&c1[..9]).enumerate() {
            presence(
                store.as_ref(),
                &cred.device,
                90_000 + i as u64,
                true,
                t0 - 10 * MINUTE,
            )
            .await?;
        }
        presence(
            store.as_ref(),
            &c1[1].device,
            90_011,
            false,
            t0 + 10 * MINUTE,
        )
        .await?;
        presence(
            store.as_ref(),
            &c1[1].device,
            90_111,
            true,
            t0 + 40 * MINUTE,
        )
        .await?;
    }
    let past = format!("from={t0}&to={}", t0 + 100 * MINUTE);
    let (status, stats) = app.get_json(&format!("/api/stats?{past}")).await?;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stats["coverage"],
        json!([
            {
                "cluster": c1[0].cluster, "cluster_name": "和平里东街 11-20号 十户联防组",
                "units": 10, "unit_minutes": 1000, "outage_minutes": 130,
                "coverage_percent": 87.0
            },
            {
                "cluster": c0[0].cluster, "cluster_name": "和平里东街 1-10号 十户联防组",
                "units": 10, "unit_minutes": 1000, "outage_minutes": 0,
                "coverage_percent": 100.0
            }
        ]),
        "{stats}"
    );

    // Now alerts: a help alert a neighbour's unit sounds for and one comes to, resolved as a
    // crime; a fire that was a false alarm; an intrusion withdrawn; a medical alert next door,
    // resolved as help.
    let mut home = connect_all(app.mqtt, &c0[..4]).await?;
    let mut away = connect_all(app.mqtt, &c1[..1]).await?;
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let detail = loop {
        let (_, d) = app.get_json(&format!("/api/alerts/{help}")).await?;
        if d["first_delivered_at_ms"].is_i64() && d["first_coming_at_ms"].is_i64() {
            break d;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "never answered: {d}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    resolve(&app, &help, "crime").await?;
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
    let medical = away[0].press_and_wait_ack(1, "medical").await?["alert"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    resolve(&app, &medical, "help").await?;
    // What the two households whose alerts were resolved think: one satisfied, one not.
    home[0]
        .publish(
            "satisfaction",
            json!({ "alert": help, "answer": "satisfied" }),
        )
        .await?;
    away[0]
        .publish(
            "satisfaction",
            json!({ "alert": medical, "answer": "unsatisfied" }),
        )
        .await?;

    let period = format!("from={}&to={}", now - MINUTE, now + 60 * MINUTE);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, s) = app.get_json(&format!("/api/stats?{period}")).await?;
        if s["satisfaction"]["answered"] == 2 {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the answers never counted: {}",
            s["satisfaction"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let note = "近期有冒充燃气公司上门推销，请勿开门";
    let query = format!("?{period}&note={}", urlencode(note));
    let (status, kind, body) = get_raw(&app, &app.token, &format!("/api/bulletin{query}")).await?;
    let page = String::from_utf8(body)?;
    assert_eq!(status, 200, "{page}");
    assert!(kind.starts_with("text/html"), "{kind}");
    let cell = |figure: &str| -> String {
        let key = format!("data-figure=\"{figure}\">");
        page.split_once(&key)
            .and_then(|(_, rest)| rest.split_once('<'))
            .map(|(v, _)| v.to_owned())
            .unwrap_or_default()
    };
    assert!(page.contains("第一责任区 警情公示"), "{page}");
    assert_eq!(cell("接报警情"), "4起");
    assert_eq!(cell("群众满意率"), "50%（2户评价，1户满意）");
    assert_eq!(cell("已处置"), "3起");
    assert_eq!(
        (cell("居民撤销"), cell("误报")),
        ("1起".into(), "1起".into())
    );
    assert_eq!(
        ["咨询", "求助", "纠纷", "涉案", "投诉", "误报"].map(|c| cell(&format!("category-{c}"))),
        ["0", "1", "0", "1", "0", "1"].map(String::from)
    );
    assert_eq!(
        ["居民求助", "医疗求助", "火警", "入室警情"].map(|k| cell(&format!("kind-{k}"))),
        ["1", "1", "1", "1"].map(String::from)
    );
    // Response times as the alert's own record has them, in the bulletin's words.
    let took = |field: &str| {
        detail[field].as_i64().unwrap_or(0) - detail["raised_at_ms"].as_i64().unwrap_or(0)
    };
    let words = tenwatch_gateway::bulletin::duration_chinese(Some(took("first_delivered_at_ms")));
    assert!(
        page.contains(&format!("<td>1</td><td>{words}</td><td>{words}</td>")),
        "first delivery {words}: {page}"
    );
    assert!(page.contains(&format!("<li>{note}</li>")), "{page}");
    assert!(page.contains("本期入室警情1起、涉案警情1起"), "{page}");
    assert!(page.contains("本期火警1起"), "{page}");
    assert_eq!(cell("contact"), "紧急情况请拨打110。");
    assert!(page.contains("@page { size: A4"), "print CSS");
    assert_no_household(&app, &page, "the page");

    // The PDF of the past period (the outage minutes) and of this one (the alerts).
    for (query, figures) in [
        (
            format!("?{past}"),
            vec![
                "警情公示",
                "报警器在线情况",
                "全责任区报警器20台，离线累计130分钟，在线率93.5%",
                "和平里东街 第002组",
                "87.0%",
            ],
        ),
        (
            format!("?{period}"),
            vec![
                "接报警情：4起",
                "误报：1起",
                "居民撤销：1起",
                "涉案",
                "本期火警1起",
                "群众满意率：50%（2户评价，1户满意）",
            ],
        ),
    ] {
        let (status, kind, pdf) =
            get_raw(&app, &app.token, &format!("/api/bulletin.pdf{query}")).await?;
        assert_eq!(
            (status, kind.as_str()),
            (200, "application/pdf"),
            "{}",
            String::from_utf8_lossy(&pdf)
        );
        assert!(pdf.starts_with(b"%PDF-"));
        if let Some(text) = pdf_text(&pdf)? {
            // Read with its layout kept, each row of a table is a line of the text.
            for f in &figures {
                assert!(text.contains(f), "the PDF's text lacks {f}: {text}");
            }
            assert_no_household(&app, &text, "the PDF");
        }
    }

    // The last half-month by default; a named half-month; bad parameters, in words.
    let (status, _, body) = get_raw(&app, &app.token, "/api/bulletin?period=2026-11-H2").await?;
    let page = String::from_utf8(body)?;
    assert_eq!(status, 200);
    assert!(page.contains("2026年11月16日至2026年11月30日"), "{page}");
    for (query, words) in [
        ("?period=2026-13-H1", "period must be a half-month"),
        ("?period=last", "period must be a half-month"),
        ("?period=2026-12-H1&from=0", "not both"),
        ("?from=1000", "from and to go together"),
        ("?from=2000&to=1000", "from must be earlier than to"),
        ("?from=yesterday&to=1000", "from must be a time"),
        ("?from=0&to=40000000000", "at most a year"),
        ("?zone=1", "zone"),
        ("?colour=red", "unknown field"),
    ] {
        for route in ["/api/bulletin", "/api/bulletin.pdf"] {
            let (status, body) = app.get_json(&format!("{route}{query}")).await?;
            let error = body["error"].as_str().unwrap_or_default();
            assert!(
                status == 400 && error.contains(words),
                "{route}{query}: {status} {body}"
            );
        }
    }
    let long = urlencode(&"注意".repeat(200));
    let (status, body) = app.get_json(&format!("/api/bulletin?note={long}")).await?;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("note must be at most"));

    // Another zone's operator: refused naming this zone; its own zone has none of this.
    {
        let store = tenwatch_gateway::store::open(&app.config.database_url).await?;
        let zone = tenwatch_gateway::domain::ZoneCode::parse("11010502")?;
        store.add_zone(&zone, "第二责任区").await?;
    }
    let other = app.operator("station-b", "11010502").await?;
    let (status, body) = app
        .get_as(&other, &format!("/api/bulletin?zone=11010501&{period}"))
        .await?;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("11010501"));
    let (status, _, body) = get_raw(&app, &other, &format!("/api/bulletin?{period}")).await?;
    let page = String::from_utf8(body)?;
    assert_eq!(status, 200);
    assert!(page.contains("第二责任区 警情公示"), "{page}");
    assert!(page.contains("data-figure=\"接报警情\">0起<"), "{page}");
    // Without a session: nothing.
    let r = reqwest::get(app.url("/api/bulletin")).await?;
    assert_eq!(r.status().as_u16(), 401);
    Ok(())
}

/// Without its font the PDF is a 503 that says what to install; the page still works; the
/// station's contact is printed as set.
async fn without_its_font_the_pdf_says_what_to_install(backend: &str) -> anyhow::Result<()> {
    let db = match backend {
        "sqlite" => backends::common::TestDb::sqlite().await,
        _ => match backends::common::TestDb::postgres("bulletin_font").await {
            Some(db) => db,
            None => return Ok(()),
        },
    };
    let app = spawn_app_on_database(&db.url, 1, |c| {
        c.console.bulletin_font = "/nonexistent/wqy-microhei.ttc".into();
        c.console.station_contact = "和平里派出所 值班电话 010-64210000".into();
    })
    .await?;
    let (status, body) = app.get_json("/api/bulletin.pdf").await?;
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().context("an error in words")?;
    for words in [
        "/nonexistent/wqy-microhei.ttc",
        "fonts-wqy-microhei",
        "--bulletin-font",
    ] {
        assert!(error.contains(words), "{error}");
    }
    let (status, _, page) = get_raw(&app, &app.token, "/api/bulletin").await?;
    let page = String::from_utf8(page)?;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("和平里派出所 值班电话 010-64210000；紧急情况请拨打110。"),
        "{page}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_the_bulletin_shows_the_zone_s_figures_and_no_household() -> anyhow::Result<()> {
    the_bulletin_shows_the_zone_s_figures_and_no_household("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_the_bulletin_shows_the_zone_s_figures_and_no_household() -> anyhow::Result<()>
{
    the_bulletin_shows_the_zone_s_figures_and_no_household("postgres").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_without_its_font_the_pdf_says_what_to_install() -> anyhow::Result<()> {
    without_its_font_the_pdf_says_what_to_install("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_without_its_font_the_pdf_says_what_to_install() -> anyhow::Result<()> {
    without_its_font_the_pdf_says_what_to_install("postgres").await
}
