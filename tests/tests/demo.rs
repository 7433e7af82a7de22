//! The demo as a newcomer meets it, through the `tenwatch` binary: `tenwatch demo press
//! HOUSEHOLD` against a running gateway on a demo data directory, and `tenwatch demo` started
//! again on a directory whose alerts were left open. Every assertion is on what a person sees:
//! the lines printed, the units that sound.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde_json::{json, Value};
use tenwatch_gateway::seed;
use tenwatch_sim::device::DeviceEvent;
use tenwatch_tests::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// `tenwatch demo press …` with its output, within a deadline.
async fn demo_press(dir: &Path, household: &str, args: &[&str]) -> anyhow::Result<Output> {
    let run = Command::new(tenwatch_bin()?)
        .args(["demo", "press", household, "--data-dir"])
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .context("tenwatch demo press did not end within 30 s")?
        .context("running tenwatch demo press")
}

/// The alert id in a line such as `… alert A12 received …`.
fn alert_in(text: &str) -> anyhow::Result<String> {
    let at = text
        .find("alert A")
        .ok_or_else(|| anyhow!("no alert id in {text:?}"))?;
    let id: String = text[at + "alert ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    Ok(id)
}

/// A gateway on a demo data directory, as `tenwatch demo` leaves it.
async fn demo_gateway(
    clusters: usize,
    tune: impl FnOnce(&mut tenwatch_gateway::Config),
) -> anyhow::Result<TestApp> {
    let app = spawn_app_with(clusters, tune).await?;
    seed::write_credentials(
        &app.dir.path().join("demo-credentials.json"),
        &app.credentials,
    )?;
    Ok(app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomers_press_sounds_the_nine_neighbours_and_leaves_the_households_unit_alone(
) -> anyhow::Result<()> {
    let app = demo_gateway(1, |_| {}).await?;
    let home = app.cluster(0)[2].clone();
    // The nine neighbours' units online, and the household's own unit as the demo runs it
    // (the simulator's unit, answering "coming" to every neighbour's alert).
    let neighbours: Vec<_> = app
        .cluster(0)
        .iter()
        .filter(|c| c.household != home.household)
        .cloned()
        .collect();
    let mut units = connect_all(app.mqtt, &neighbours).await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let mut own = SimUnit::start(app.mqtt, &home, stop.clone()).await?;
    let broker = app.mqtt.to_string();

    let out = demo_press(
        app.dir.path(),
        &home.household,
        &["--kind", "medical", "--broker", &broker],
    )
    .await?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let alert = alert_in(&stdout)?;
    assert!(
        stdout.contains(&format!("the spare button of {}", home.label)),
        "{stdout}"
    );
    assert!(
        stdout.contains("9 neighbours' units told") && stdout.contains("0 coming"),
        "{stdout}"
    );

    // The household's own unit hears it as its household's alert (it does not sound or
    // answer), on the connection it had all along: a press under its id would have taken
    // its session over.
    loop {
        match own.next().await? {
            DeviceEvent::Alert {
                alert: heard,
                own: household,
                ..
            } if heard.alert.0 == alert => {
                assert!(
                    household,
                    "the household's own unit took {alert} for a neighbour's"
                );
                break;
            }
            DeviceEvent::Offline { error, .. } => {
                panic!("the household's own unit lost its connection: {error}")
            }
            _ => {}
        }
    }
    // The nine neighbours' units sound for that alert, from that household.
    for unit in units.iter_mut() {
        let heard = unit.expect_message("/alert").await?;
        assert_eq!(heard["alert"], alert.as_str(), "{}: {heard}", unit.id);
        assert_eq!(heard["from_label"], home.label.as_str(), "{heard}");
        assert_eq!(heard["kind"], "medical", "{heard}");
    }
    let (status, detail) = app.get_json(&format!("/api/alerts/{alert}")).await?;
    assert_eq!(status, 200, "{detail}");
    let units_told: Vec<&str> = detail["recipients"]
        .as_array()
        .context("recipients")?
        .iter()
        .filter(|r| r["kind"] == "unit")
        .filter_map(|r| r["who"].as_str())
        .collect();
    let neighbour_ids: Vec<&str> = neighbours.iter().map(|c| c.device.as_str()).collect();
    assert_eq!(units_told, neighbour_ids, "{detail}");

    // Pressed again, the same spare joins the household's open alert: press 2.
    let again = demo_press(
        app.dir.path(),
        &home.household,
        &["--kind", "medical", "--broker", &broker],
    )
    .await?;
    let again_out = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{again_out}");
    assert_eq!(alert_in(&again_out)?, alert);
    assert!(again_out.contains("press 2"), "{again_out}");
    for unit in units.iter_mut() {
        // (Skipping any later state of the first press's alert.)
        while unit.expect_message("/alert").await?["presses"] != 2 {}
    }
    // Still the same session: the unit never went offline.
    while let Some(event) = own.try_next() {
        assert!(!matches!(event, DeviceEvent::Offline { .. }), "{event:?}");
    }
    Ok(())
}

/// A unit as the demo runs it: the simulator's, every event it reports kept for the test.
struct SimUnit {
    events: tokio::sync::mpsc::UnboundedReceiver<DeviceEvent>,
    _unit: tenwatch_sim::device::Device,
}

struct Events(tokio::sync::mpsc::UnboundedSender<DeviceEvent>);

impl tenwatch_sim::device::EventSink for Events {
    fn event(&self, _: &tenwatch_sim::device::DeviceCtx, _: tokio::time::Instant, e: DeviceEvent) {
        let _ = self.0.send(e);
    }
}

impl SimUnit {
    /// Starts the unit and waits until it is online (connected and subscribed).
    async fn start(
        broker: std::net::SocketAddr,
        cred: &seed::Credential,
        stop: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<SimUnit> {
        use tenwatch_sim::{creds, device, proto};
        let cred = creds::Credential {
            device: proto::DeviceId::parse(cred.device.as_str())?,
            password: creds::Password::new(cred.password.as_str()),
            cluster: proto::ClusterId::parse(cred.cluster.as_str())?,
            household: cred.household.clone(),
            label: Some(cred.label.clone()),
        };
        let mut config = device::DeviceConfig::new(broker.ip().to_string(), broker.port());
        config.heartbeat = None;
        config.respond_probability = 1.0;
        let ctx = std::sync::Arc::new(device::DeviceCtx {
            index: 0,
            topics: proto::Topics::new(&cred.device, &cred.cluster),
            cred,
        });
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let tracker = tokio_util::task::TaskTracker::new();
        let unit = device::spawn(
            ctx,
            std::sync::Arc::new(config),
            std::sync::Arc::new(Events(tx)),
            stop,
            &tracker,
        );
        let mut unit = SimUnit {
            events,
            _unit: unit,
        };
        loop {
            match unit.next().await? {
                DeviceEvent::Online => return Ok(unit),
                DeviceEvent::SubscribeRefused => anyhow::bail!("subscriptions refused"),
                _ => {}
            }
        }
    }

    async fn next(&mut self) -> anyhow::Result<DeviceEvent> {
        tokio::time::timeout(DEADLINE, self.events.recv())
            .await
            .context("the unit reported nothing in time")?
            .context("the unit stopped")
    }

    fn try_next(&mut self) -> Option<DeviceEvent> {
        self.events.try_recv().ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_with_no_demo_running_or_an_unknown_household_says_so() -> anyhow::Result<()> {
    let app = demo_gateway(1, |_| {}).await?;
    // A port nothing listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let home = &app.cluster(0)[0].household;
    let out = demo_press(
        app.dir.path(),
        home,
        &["--broker", &closed.to_string(), "--timeout", "2"],
    )
    .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("演示没有在运行") && stderr.contains("the demo is not running"),
        "{stderr}"
    );

    let broker = app.mqtt.to_string();
    let out = demo_press(app.dir.path(), "11010501-009-01", &["--broker", &broker]).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no household 11010501-009-01"), "{stderr}");

    let empty = tempfile::tempdir()?;
    let out = demo_press(empty.path(), home, &["--broker", &broker]).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no demo in"), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_monitor_takes_up_the_alerts_a_stopped_demo_left_open() -> anyhow::Result<()> {
    // Rings within a second, so that one alert reaches ring 2 before the stop.
    let mut app = demo_gateway(2, |c| {
        c.plan.ring1_after_ms = 200;
        c.plan.ring2_after_ms = 400;
    })
    .await?;
    let mut feed = open_feed(&app).await?;
    let mut first = connect_all(app.mqtt, app.cluster(0)).await?;
    let mut second = TestDevice::connect(app.mqtt, &app.cluster(1)[0]).await?;

    // A1: a neighbour is coming (acknowledged). A2: nobody comes, it climbs to ring 2.
    let a1 = first[0].press_and_wait_ack(1, "help").await?["alert"].clone();
    first[1]
        .publish("respond", json!({ "alert": a1, "answer": "coming" }))
        .await?;
    let a2 = second.press_and_wait_ack(1, "fire").await?["alert"].clone();
    let (mut a1_acknowledged, mut a2_ring2) = (false, false);
    while !(a1_acknowledged && a2_ring2) {
        let event = next_alert_event(&mut feed).await?;
        let id = &event["alert"]["id"];
        a1_acknowledged |= id == &a1 && event["alert"]["state"] == "acknowledged";
        a2_ring2 |= id == &a2 && event["event"] == "ring2";
    }
    drop((first, second, feed));
    app.stop().await?;

    // The demo again on that directory: its monitor tells and closes both.
    let mut demo = Command::new(tenwatch_bin()?)
        .args(["demo", "--data-dir"])
        .arg(app.dir.path())
        .args([
            "--mqtt-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        // No simulated press of its own during the test (one a million seconds on average).
        .args(["--press-every", "1000000", "--monitor-pace", "0.3"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(demo.stdout.take().context("stdout")?).lines();
    let (a1, a2) = (as_text(&a1)?, as_text(&a2)?);
    let mut wanted = vec![
        format!("🗂  {a1} "),
        format!("🗂  {a2} "),
        format!("📍 {a1} someone is on scene"),
        format!("✅ {a1} resolved: help"),
        format!("✅ {a2} resolved: false_alarm"),
    ];
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !wanted.is_empty() {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .map_err(|_| {
                anyhow!(
                    "the demo never printed {wanted:?}; it printed:\n{}",
                    seen.join("\n")
                )
            })??
            .ok_or_else(|| anyhow!("the demo ended; it printed:\n{}", seen.join("\n")))?;
        wanted.retain(|w| !line.starts_with(w.as_str()));
        seen.push(line);
    }
    let picked_up = seen
        .iter()
        .find(|l| l.starts_with(&format!("🗂  {a1} ")))
        .context("A1")?;
    assert!(picked_up.contains("(acknowledged)"), "{picked_up}");
    let picked_up = seen
        .iter()
        .find(|l| l.starts_with(&format!("🗂  {a2} ")))
        .context("A2")?;
    assert!(picked_up.contains("ring 2"), "{picked_up}");
    demo.kill().await?;
    Ok(())
}

fn as_text(v: &Value) -> anyhow::Result<String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("not an alert id: {v}"))
}

/// `scripts/demo.sh` run from another directory, with `npm` and `cargo` standing in for the
/// real ones (each writes down what it was asked and where): the console is built in this
/// clone's `web/` first, then this clone's `tenwatch demo` runs with the arguments given; a
/// `press` builds no pages.
#[test]
fn demo_sh_builds_this_clones_pages_before_the_binary_from_any_directory() -> anyhow::Result<()> {
    let clone = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace")?
        .canonicalize()?;
    let (tools, elsewhere) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let log = tools.path().join("asked.log");
    for tool in ["npm", "cargo"] {
        let path = tools.path().join(tool);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"{tool} $* @ $(pwd -P)\" >> \"$DEMO_SH_ASKED\"\n"),
        )?;
        let mut mode = std::fs::metadata(&path)?.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
        std::fs::set_permissions(&path, mode)?;
    }
    let path = format!(
        "{}:{}",
        tools.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| -> anyhow::Result<Vec<String>> {
        let _ = std::fs::remove_file(&log);
        let status = std::process::Command::new("bash")
            .arg(clone.join("scripts/demo.sh"))
            .args(args)
            .current_dir(elsewhere.path())
            .env("PATH", &path)
            .env("DEMO_SH_ASKED", &log)
            .stdin(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "scripts/demo.sh {args:?}: {status}");
        Ok(std::fs::read_to_string(&log)?
            .lines()
            .map(str::to_owned)
            .collect())
    };
    let (web, root) = (
        clone.join("web").display().to_string(),
        clone.display().to_string(),
    );
    assert_eq!(
        run(&["--duration", "5"])?,
        [
            format!("npm ci --no-audit --no-fund --loglevel=error @ {web}"),
            format!("npm run build --silent @ {web}"),
            format!("cargo run --release --locked --bin tenwatch -- demo --duration 5 @ {root}"),
        ]
    );
    assert_eq!(
        run(&["press", "11010501-003-07", "--kind", "fire"])?,
        [format!(
            "cargo run --quiet --release --locked --bin tenwatch -- demo press 11010501-003-07 --kind fire @ {root}"
        )]
    );
    Ok(())
}
