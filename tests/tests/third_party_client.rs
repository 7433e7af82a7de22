//! An ordinary MQTT device works, and the ACL holds against it: Mosquitto's own command-line
//! clients (`mosquitto_sub`, `mosquitto_pub`), which we did not write, act as units.

use std::process::Stdio;

use tenwatch_tests::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn client(tool: &str, app: &TestApp, device: &str, password: &str) -> Command {
    // stdbuf: mosquitto_sub buffers its output when it goes to a pipe; we read it line by line.
    let mut cmd = Command::new("stdbuf");
    cmd.args([
        "-oL",
        tool,
        "-h",
        "127.0.0.1",
        "-p",
        &app.mqtt.port().to_string(),
    ])
    .args([
        "-i", device, "-u", device, "-P", password, "-V", "mqttv311", "-q", "1",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_press_and_hear_alerts_within_the_acl() -> anyhow::Result<()> {
    if !require_tool("mosquitto_sub") || !require_tool("mosquitto_pub") {
        return Ok(());
    }
    let app = spawn_app(2).await?;
    let (listener, presser) = (&app.cluster(0)[1], &app.cluster(0)[2]);

    // A neighbour's unit: mosquitto_sub on its cluster topic, printing "topic payload".
    let mut sub = client("mosquitto_sub", &app, &listener.device, &listener.password)
        .args([
            "-t",
            &format!("tw/c/{}/alert", listener.cluster),
            "-v",
            "-C",
            "1",
            "-d",
        ])
        .spawn()?;
    let mut lines = BufReader::new(sub.stdout.take().expect("stdout")).lines();
    // With -d, mosquitto_sub reports the SUBACK: only then is it listening.
    loop {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await??
            .ok_or_else(|| anyhow::anyhow!("mosquitto_sub ended before subscribing"))?;
        if line.contains("received SUBACK") {
            break;
        }
    }

    // The presser: mosquitto_pub on its own press topic, and a unit of ours reads the ack.
    let mut presser_unit = TestDevice::connect(app.mqtt, presser).await?;
    let status = client(
        "mosquitto_pub",
        &app,
        &format!("{}-pub", presser.device),
        "x",
    )
    .args(["-t", "x", "-m", "x"])
    .status()
    .await?;
    assert!(!status.success(), "an unknown device must be refused");
    drop(presser_unit.drain());
    presser_unit.press(5, "intrusion").await?;
    let ack = presser_unit.expect_ack(5).await?;

    let line = loop {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await??
            .ok_or_else(|| anyhow::anyhow!("mosquitto_sub printed no alert"))?;
        if line.starts_with("tw/c/") {
            break line;
        }
    };
    let (topic, payload) = line.split_once(' ').expect("topic and payload");
    assert_eq!(topic, format!("tw/c/{}/alert", listener.cluster));
    let body: serde_json::Value = serde_json::from_str(payload)?;
    assert_eq!(body["alert"], ack["alert"]);
    assert_eq!(body["kind"], "intrusion");
    assert!(sub.wait().await?.success());

    // mosquitto_pub as a real device: its press raises an alert our unit hears.
    let pub_status = client("mosquitto_pub", &app, &listener.device, &listener.password)
        .args(["-t", &format!("tw/d/{}/up/press", listener.device)])
        .args(["-m", r#"{"seq":77,"kind":"medical","ts":0}"#])
        .status()
        .await?;
    assert!(pub_status.success());
    let heard = presser_unit.expect_message("/alert").await?;
    assert_eq!(heard["kind"], "medical");
    assert_eq!(heard["from_label"], listener.label.as_str());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_are_refused_outside_the_acl() -> anyhow::Result<()> {
    if !require_tool("mosquitto_sub") || !require_tool("mosquitto_pub") {
        return Ok(());
    }
    let app = spawn_app(2).await?;
    let me = &app.cluster(0)[0];

    // Subscribing to everything is denied, and mosquitto_sub says so.
    let out = client("mosquitto_sub", &app, &me.device, &me.password)
        .args(["-t", "#", "-C", "1", "-W", "5"])
        .output()
        .await?;
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        said.to_lowercase().contains("denied"),
        "mosquitto_sub said: {said}"
    );

    // A wrong password is refused with the CONNACK code, which mosquitto_pub prints.
    let out = client("mosquitto_pub", &app, &me.device, "wrong")
        .args(["-t", &format!("tw/d/{}/up/press", me.device), "-m", "{}"])
        .output()
        .await?;
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(
        said.to_lowercase().contains("bad user name or password")
            || said.contains("not authorised"),
        "mosquitto_pub said: {said}"
    );

    // A forged press in a neighbour's name is refused: no alert appears for the neighbour.
    let victim = &app.cluster(0)[1];
    let _ = client("mosquitto_pub", &app, &me.device, &me.password)
        .args(["-t", &format!("tw/d/{}/up/press", victim.device)])
        .args(["-m", r#"{"seq":1,"kind":"help"}"#])
        .output()
        .await?;
    app.wait_for_edge("forged publish refused", |s| s.acl_publish_refused == 1)
        .await?;
    let (_, list) = app.get_json("/api/alerts").await?;
    assert_eq!(list["alerts"].as_array().map(Vec::len), Some(0));
    Ok(())
}
