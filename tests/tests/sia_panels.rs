//! Alarm panels in: a panel speaking SIA DC-09 with Contact ID, built from pysiaalarm's parts
//! (a library we did not write: its CRC, its AES, its receiver as a second judge), against the
//! gateway's receiver on loopback. A panel's panic reaches the neighbours' units once, a repeat
//! does not double it, a 406 cancels it; every damaged, stale, unknown, wrongly keyed or
//! garbage message gets the answer DC-09 gives; a flood is cut off.

use serde_json::{json, Value};
use tenwatch_gateway::domain::HouseholdId;
use tenwatch_gateway::store::sia::{SiaAccount, SiaAccountId, SiaKey};
use tenwatch_tests::sia_peer::{cid, null, require_sia_peer, PeerAccount, SiaPeer};
use tenwatch_tests::*;

/// Registers `account` for `household` as `tenwatch admin add-sia-account` does.
async fn register(app: &TestApp, account: &PeerAccount, household: &str) -> anyhow::Result<()> {
    let store = tenwatch_gateway::store::open(&app.config.database_url).await?;
    let id = SiaAccountId::parse(&account.account)?;
    let registered = SiaAccount {
        device: id.device()?,
        household: HouseholdId::parse(household)?,
        key: account
            .key_hex()
            .as_deref()
            .map(SiaKey::parse_hex)
            .transpose()?,
        account: id,
    };
    store
        .add_sia_account(
            &registered,
            "not-a-login",
            tenwatch_gateway::domain::now_ms(),
        )
        .await?;
    Ok(())
}

/// Runs `tenwatch admin ARGS` on the app's database; its standard output, or an error with
/// its standard error.
fn admin(app: &TestApp, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(tenwatch_bin()?)
        .arg("admin")
        .args(args)
        .args(["--database-url", &app.config.database_url])
        .output()?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    anyhow::ensure!(out.status.success(), "tenwatch admin {args:?}: {stderr}");
    Ok(stdout)
}

fn token(answer: &Value) -> &str {
    answer["token"].as_str().unwrap_or("<none>")
}

/// The answer is a well-formed DC-09 frame by pysiaalarm's own CRC.
fn assert_framed(answer: &Value) {
    assert_eq!(answer["framed"], true, "{answer}");
    assert_eq!(answer["crc_ok"], true, "{answer}");
    assert_eq!(answer["length_ok"], true, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panels_panic_sounds_the_neighbours_once_and_its_cancel_withdraws_it(
) -> anyhow::Result<()> {
    if !require_sia_peer() {
        return Ok(());
    }
    let app = spawn_app_with_sia(1, |_| {}).await?;
    let panel = PeerAccount::clear("1234");
    let household = app.cluster(0)[0].household.clone();
    // Registered as an administrator does, with the admin command.
    let added = admin(
        &app,
        &[
            "add-sia-account",
            "--account",
            "1234",
            "--household",
            &household,
        ],
    )?;
    assert!(added.contains("added SIA account 1234"), "{added}");
    let twice = admin(
        &app,
        &[
            "add-sia-account",
            "--account",
            "1234",
            "--household",
            &household,
        ],
    );
    let refused = twice
        .expect_err("a second registration is refused")
        .to_string();
    assert!(refused.contains("already exists"), "{refused}");
    let listed = admin(&app, &["list-sia-accounts"])?;
    assert!(
        listed.contains(&format!("1234\t{household}\tsia-1234\tfalse")),
        "{listed}"
    );
    // A neighbour has a panel too: it is no unit to sound the alert.
    register(
        &app,
        &PeerAccount::clear("5678"),
        &app.cluster(0)[1].household,
    )
    .await?;
    let mut units = connect_all(app.mqtt, app.cluster(0)).await?;
    let mut feed = open_feed(&app).await?;
    let mut peer = SiaPeer::start(app.sia.expect("receiver"), std::slice::from_ref(&panel)).await?;

    // 120 panic, over TCP: acknowledged once stored.
    let answer = peer.send(false, cid(&panel, 1, "1120 01 015")).await?;
    assert_framed(&answer);
    assert_eq!(token(&answer), "ACK", "{answer}");
    assert_eq!(answer["route"], "0001R0L0#1234");
    assert_eq!(answer["pysiaalarm"], "ACK", "pysiaalarm's receiver agrees");

    let raised = next_alert_event(&mut feed).await?;
    assert_eq!(raised["event"], "raised");
    assert_eq!(raised["alert"]["household"], household.as_str());
    assert_eq!(raised["alert"]["device"], "sia-1234");
    assert_eq!(raised["alert"]["kind"], "help");
    let alert = raised["alert"]["id"].clone();
    for neighbour in &mut units[1..] {
        let body = neighbour.expect_message("/alert").await?;
        assert_eq!(body["alert"], alert, "{}", neighbour.id);
        assert_eq!(body["kind"], "help");
        assert_eq!(body["state"], "raised");
        assert_eq!(body["from_label"], app.cluster(0)[0].label.as_str());
    }

    let (_, detail) = app
        .get_json(&format!("/api/alerts/{}", alert.as_str().unwrap_or("")))
        .await?;
    let told: Vec<&str> = detail["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .filter(|r| r["kind"] == "unit")
        .filter_map(|r| r["who"].as_str())
        .collect();
    assert_eq!(
        told.len(),
        9,
        "the nine neighbours' units, no panel: {told:?}"
    );

    // The panel missed the ACK and repeats the message (same sequence number), over UDP this
    // time: acknowledged again, stored once.
    let again = peer.send(true, cid(&panel, 1, "1120 01 015")).await?;
    assert_framed(&again);
    assert_eq!(token(&again), "ACK", "{again}");
    app.wait_for_metrics("the repeat counted as one", |m| m.presses_duplicate == 1)
        .await?;

    // 406: the household cancels within the window. The next thing every neighbour hears is
    // the cancel of the same alert: nothing was sounded twice in between.
    let cancel = peer.send(false, cid(&panel, 2, "1406 01 001")).await?;
    assert_eq!(token(&cancel), "ACK", "{cancel}");
    for neighbour in &mut units[1..] {
        let body = neighbour.expect_message("/alert").await?;
        assert_eq!(body["alert"], alert, "{}", neighbour.id);
        assert_eq!(body["state"], "cancelled", "{}", neighbour.id);
    }
    let (_, list) = app.get_json("/api/alerts?state=all").await?;
    let alerts = list["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 1, "one alert: {list}");
    assert_eq!(alerts[0]["state"], "cancelled");
    assert_eq!(alerts[0]["presses"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_gets_the_answer_dc09_gives() -> anyhow::Result<()> {
    if !require_sia_peer() {
        return Ok(());
    }
    let app = spawn_app_with_sia(1, |_| {}).await?;
    let clear = PeerAccount::clear("1234");
    let sealed = PeerAccount::encrypted("ABCD", "AAAAAAAAAAAAAAAA");
    register(&app, &clear, &app.cluster(0)[1].household).await?;
    register(&app, &sealed, &app.cluster(0)[2].household).await?;
    let mut feed = open_feed(&app).await?;
    let mut peer =
        SiaPeer::start(app.sia.expect("receiver"), &[clear.clone(), sealed.clone()]).await?;

    // Where DC-09 and pysiaalarm's receiver agree: (what is sent, over UDP?, the answer).
    let stamped = |offset: i64| {
        let mut m = cid(&clear, 9, "1602 00 000");
        m["ts_offset"] = json!(offset);
        m
    };
    let wrong_key = PeerAccount::encrypted("ABCD", "BBBBBBBBBBBBBBBB");
    let agreed: Vec<(&str, Value, bool, &str)> = vec![
        (
            "a link test in the clear, no timestamp",
            {
                let mut m = null(&clear, 3);
                m["ts_offset"] = Value::Null;
                m
            },
            false,
            "ACK",
        ),
        ("a link test over UDP", null(&clear, 4), true, "ACK"),
        (
            "a periodic test",
            cid(&clear, 5, "1602 00 000"),
            false,
            "ACK",
        ),
        (
            "an event tenwatch does not map (arming)",
            cid(&clear, 6, "3401 01 003"),
            false,
            "ACK",
        ),
        (
            "a stale timestamp (an hour old: a replay)",
            stamped(-3600),
            false,
            "NAK",
        ),
        ("a timestamp an hour ahead", stamped(3600), true, "NAK"),
        (
            "an unknown account",
            cid(&PeerAccount::clear("9999"), 1, "1120 01 001"),
            false,
            "NAK",
        ),
        (
            "garbage",
            json!({"raw": "hello, is this the police?"}),
            false,
            "NAK",
        ),
        (
            "garbage over UDP",
            json!({"raw": "\u{1}\u{2}ZZZZ"}),
            true,
            "NAK",
        ),
        (
            "an encrypted link test with the right key",
            null(&sealed, 7),
            false,
            "*ACK",
        ),
        (
            "encrypted with the wrong key",
            cid(&wrong_key, 8, "1120 01 001"),
            false,
            "NAK",
        ),
    ];
    for (what, message, udp, expected) in agreed {
        let answer = peer.send(udp, message).await?;
        assert_framed(&answer);
        assert_eq!(token(&answer), expected, "{what}: {answer}");
        let pysia = expected.trim_start_matches('*');
        assert_eq!(
            answer["pysiaalarm"], pysia,
            "{what}: pysiaalarm's receiver agrees"
        );
        match expected {
            // A NAK repeats nothing of the message and carries the receiver's time.
            "NAK" => {
                assert_eq!(answer["route"], "0000R0L0A0", "{what}: {answer}");
                assert_eq!(answer["ts_ok"], true, "{what}: {answer}");
            }
            // An encrypted ACK decrypts with the account's key to the receiver's time.
            "*ACK" => {
                assert_eq!(answer["ts_ok"], true, "{what}: {answer}");
                let inner = answer["decrypted"].as_str().unwrap_or("");
                assert!(inner.contains("|]_"), "{what}: {inner:?}");
            }
            _ => assert!(answer["route"]
                .as_str()
                .is_some_and(|r| r.ends_with("#1234"))),
        }
    }

    // Where the standard's answer differs from pysiaalarm's (which ignores a bad CRC, accepts
    // SIA-DCS and a message in the clear from an account with a key, and NAKs what it cannot
    // parse).
    let mut bad_crc = cid(&clear, 10, "1120 01 001");
    bad_crc["corrupt_crc"] = json!(true);
    let mut sia_dcs = cid(&clear, 11, "Nri1/PA501");
    sia_dcs["token"] = json!("SIA-DCS");
    let mut in_the_clear = cid(&sealed, 12, "1120 01 001");
    in_the_clear["encrypt"] = json!(false);
    let ours: Vec<(&str, Value, &str)> = vec![
        ("a damaged message (wrong CRC)", bad_crc, "NAK"),
        ("a message type not handled (SIA-DCS)", sia_dcs, "DUH"),
        (
            "Contact ID that does not parse",
            cid(&clear, 13, "1120-01-001"),
            "DUH",
        ),
        (
            "a message in the clear from an account with a key",
            in_the_clear,
            "NAK",
        ),
    ];
    for (what, message, expected) in ours {
        let answer = peer.send(false, message).await?;
        assert_framed(&answer);
        assert_eq!(token(&answer), expected, "{what}: {answer}");
    }

    // None of that raised an alert. An encrypted medical alarm over UDP does: "*ACK", then
    // the station sees it.
    let answer = peer.send(true, cid(&sealed, 14, "1100 01 002")).await?;
    assert_eq!(token(&answer), "*ACK", "{answer}");
    let raised = next_alert_event(&mut feed).await?;
    assert_eq!(raised["event"], "raised");
    assert_eq!(raised["alert"]["kind"], "medical");
    assert_eq!(raised["alert"]["device"], "sia-ABCD");
    let (_, list) = app.get_json("/api/alerts").await?;
    assert_eq!(list["alerts"].as_array().map(Vec::len), Some(1), "{list}");

    // The link tests made the clear panel's device online; a tamper report (sent twice: a
    // replayed sequence is acknowledged again) and a low battery show on its record, and a
    // link test after them keeps the tamper switch open.
    for _ in 0..2 {
        let answer = peer.send(false, cid(&clear, 15, "1137 01 000")).await?;
        assert_eq!(token(&answer), "ACK", "{answer}");
    }
    let answer = peer.send(true, cid(&clear, 16, "1302 00 000")).await?;
    assert_eq!(token(&answer), "ACK", "{answer}");
    let answer = peer.send(false, null(&clear, 17)).await?;
    assert_eq!(token(&answer), "ACK", "{answer}");
    let health = wait_health(&app, "sia-1234", |h| {
        h["state"] == "online" && h["tamper"] == true && h["battery_low"] == true
    })
    .await?;
    assert_eq!(health["household"], app.cluster(0)[1].household.as_str());
    // Restored: the problems close.
    for (seq, event) in [(18, "3137 01 000"), (19, "3302 00 000")] {
        let answer = peer.send(false, cid(&clear, seq, event)).await?;
        assert_eq!(token(&answer), "ACK", "{answer}");
    }
    wait_health(&app, "sia-1234", |h| {
        h["tamper"] == false && h["battery_low"] == false
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_cut_off_and_the_receiver_keeps_answering_a_panel_that_keeps_its_connection(
) -> anyhow::Result<()> {
    if !require_sia_peer() {
        return Ok(());
    }
    let app = spawn_app_with_sia(1, |_| {}).await?;
    let panel = PeerAccount::clear("0C0FFEE");
    register(&app, &panel, &app.cluster(0)[0].household).await?;
    let mut peer = SiaPeer::start(app.sia.expect("receiver"), std::slice::from_ref(&panel)).await?;

    let flood = peer.flood(200, "garbage").await?;
    let cut = app.config.sia.max_refused_in_a_row;
    assert_eq!(flood["closed"], true, "{flood}");
    // NAKed until cut off (answers still in flight when the connection is reset may be lost).
    assert!(
        flood["answers"]
            .as_u64()
            .is_some_and(|n| n <= u64::from(cut)),
        "{flood}"
    );

    let oversize = peer.oversize(64 * 1024).await?;
    assert_eq!(oversize["closed"], true, "{oversize}");
    assert!(
        oversize["answer"]
            .as_str()
            .is_some_and(|a| a.contains("\"NAK\"")),
        "{oversize}"
    );

    let answer = peer.send(false, null(&panel, 1)).await?;
    assert_eq!(token(&answer), "ACK", "{answer}");

    // A panel that keeps its connection: one message after another, each answered, a refused
    // one among them not ending it.
    let answers = peer
        .session(vec![
            null(&panel, 2),
            json!({"raw": "noise"}),
            cid(&panel, 3, "1602 00 000"),
            null(&panel, 4),
        ])
        .await?;
    let tokens: Vec<&str> = answers.iter().map(token).collect();
    assert_eq!(tokens, ["ACK", "NAK", "ACK", "ACK"], "{answers:?}");
    let seqs: Vec<&str> = answers.iter().filter_map(|a| a["seq"].as_str()).collect();
    assert_eq!(seqs, ["0002", "0000", "0003", "0004"]);
    Ok(())
}

/// Re-reads a device's health until `check` holds or [`DEADLINE`] passes: heartbeats are
/// stored off the receiver's path.
async fn wait_health(
    app: &TestApp,
    id: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, body) = app.get_json(&format!("/api/devices/{id}")).await?;
        if status == 200 && check(&body) {
            return Ok(body);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{id} never got there: {status} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
