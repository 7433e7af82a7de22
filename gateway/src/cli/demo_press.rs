//! `tenwatch demo press HOUSEHOLD`: a newcomer presses a household's panic button in the
//! running demo and sees what the unit is told.
//!
//! It presses as the household's *spare unit*, `d-{household}-spare`, a device of its own
//! (own id, own MQTT client id, own password), so the household's simulated unit in the demo
//! keeps its connection: a second login under that unit's id would take its session over. The
//! spare is made in the registry on first use and given a fresh password on every use (it
//! is printed nowhere and kept nowhere), so nothing has to be seeded beforehand and a data
//! directory seeded by an older demo works too. The press itself is the simulator's unit
//! (`tenwatch_sim::device`): the same MQTT, repeated until `down/ack`, as every demo unit.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use tenwatch_sim::creds::{Credential, Password};
use tenwatch_sim::device::{self, DeviceConfig, DeviceCtx, DeviceEvent, EventSink};
use tenwatch_sim::proto::{self, Ack, AlertState, Topics};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::StoreArgs;
use crate::devices::{hash_secret, new_secret};
use crate::domain::{AlertId, DeviceId, HouseholdId};
use crate::store::{RecipientKind, Store};

#[derive(Args, Clone)]
pub struct PressArgs {
    /// The household whose button is pressed, e.g. 11010501-003-07 (zone-cluster-household;
    /// every id is in the data directory's demo-credentials.json).
    pub household: String,
    /// What the resident asks for.
    #[arg(long, value_enum, default_value_t = Kind::Help)]
    pub kind: Kind,
    #[command(flatten)]
    pub store: StoreArgs,
    /// The demo's device port (`tenwatch demo --mqtt-listen`).
    #[arg(long, env = "TENWATCH_DEMO_BROKER", default_value = "127.0.0.1:1883")]
    pub broker: String,
    /// Seconds to wait for the demo to answer the press.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Seconds to keep listening after the answer: neighbours coming, on scene, resolved.
    #[arg(long, default_value_t = 0)]
    pub follow: u64,
}

/// The kinds of press a resident makes (a cancel is the household's own unit's business).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    Help,
    Medical,
    Fire,
    Intrusion,
}

impl From<Kind> for proto::PressKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Help => proto::PressKind::Help,
            Kind::Medical => proto::PressKind::Medical,
            Kind::Fire => proto::PressKind::Fire,
            Kind::Intrusion => proto::PressKind::Intrusion,
        }
    }
}

/// The spare unit of a household, as the demo's registry knows it.
struct Spare {
    credential: Credential,
    /// The household's address, as its neighbours' units show it.
    label: String,
}

pub async fn press(args: PressArgs) -> anyhow::Result<()> {
    let household = HouseholdId::parse(&args.household)
        .map_err(|e| anyhow::anyhow!("户号有误 / {e} (e.g. 11010501-003-07)"))?;
    let (host, port) = tenwatch_sim::parse_broker(&args.broker).map_err(anyhow::Error::msg)?;
    if args.store.database_url.is_none()
        && !args.store.data_dir.join("demo-credentials.json").exists()
    {
        bail!(
            "这里没有演示数据 / no demo in {}: start the demo first (bash scripts/demo.sh), \
             or give its --data-dir",
            args.store.data_dir.display()
        );
    }
    let store = args.store.open().await?;
    let spare = spare_unit(store.as_ref(), &household).await?;
    let id = spare.credential.device.to_string();
    println!(
        "{id}: {} 的备用按钮 / the spare button of {} (household {household})",
        spare.label, spare.label
    );
    let mut unit = DeviceConfig::new(host, port);
    unit.heartbeat = None;
    let ack = press_and_follow(
        spare.credential,
        unit,
        args.kind.into(),
        Duration::from_secs(args.timeout),
        Duration::from_secs(args.follow),
        &args.broker,
        store.as_ref(),
    )
    .await?;
    if args.follow == 0 {
        println!(
            "   follow it: the console shows alert {} (or add --follow 60 to hear who is coming)",
            ack.alert
        );
    }
    Ok(())
}

/// The household's spare unit, made on first use; a fresh password either way.
async fn spare_unit(store: &dyn Store, household: &HouseholdId) -> anyhow::Result<Spare> {
    let device = DeviceId::parse(&format!("d-{household}-spare"))
        .map_err(|e| anyhow::anyhow!("户号太长 / household id too long for a spare unit: {e}"))?;
    let devices = store.list_devices(None).await?;
    let Some(home) = devices.iter().find(|d| &d.household == household) else {
        bail!(
            "没有这一户 / no household {household} in the demo: its ids look like \
             11010501-003-07 (zone-cluster-household; see demo-credentials.json)"
        );
    };
    let secret = new_secret();
    if devices.iter().any(|d| d.id == device) {
        store
            .set_device_secret(&device, &hash_secret(secret.as_bytes()))
            .await?;
    } else {
        store
            .add_device(&device, household, &hash_secret(secret.as_bytes()))
            .await
            .with_context(|| format!("adding the spare unit {device}"))?;
    }
    let credential = Credential {
        device: proto::DeviceId::parse(device.as_str())?,
        password: Password::new(secret),
        cluster: proto::ClusterId::parse(home.cluster.as_str())?,
        household: household.to_string(),
        label: Some(home.label.clone()),
    };
    Ok(Spare {
        credential,
        label: home.label.clone(),
    })
}

/// Hands the unit's events to the command, which prints them.
struct Events(mpsc::Sender<DeviceEvent>);

impl EventSink for Events {
    fn event(&self, _device: &DeviceCtx, _at: Instant, event: DeviceEvent) {
        // One unit's few events; a reader this far behind loses nothing it needs.
        let _ = self.0.try_send(event);
    }
}

/// Presses once, waits for the first `down/ack` and prints it with how many neighbours' units
/// were told; then prints every later ack for `follow`. The first ack, or why there is none.
async fn press_and_follow(
    credential: Credential,
    unit: DeviceConfig,
    kind: proto::PressKind,
    timeout: Duration,
    follow: Duration,
    broker: &str,
    store: &dyn Store,
) -> anyhow::Result<Ack> {
    let (tx, mut events) = mpsc::channel(256);
    let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
    let ctx = Arc::new(DeviceCtx {
        index: 0,
        topics: Topics::new(&credential.device, &credential.cluster),
        cred: credential,
    });
    let id = ctx.cred.device.to_string();
    let button = device::spawn(
        ctx,
        Arc::new(unit),
        Arc::new(Events(tx)),
        stop.clone(),
        &tracker,
    );
    let mut until = Instant::now() + timeout;
    let (mut online, mut last_error, mut first) = (false, None::<String>, None::<Ack>);
    let outcome = loop {
        let event = tokio::select! {
            _ = tokio::time::sleep_until(until) => None,
            event = events.recv() => event,
        };
        let Some(event) = event else {
            break match (first.take(), online, last_error.take()) {
                (Some(ack), _, _) => Ok(ack),
                (None, false, Some(e)) if e.contains("return code") => Err(anyhow::anyhow!(
                    "演示拒绝了备用按钮的登录 / the demo refused the spare unit's login ({e}): \
                     is {broker} the demo of this --data-dir?"
                )),
                (None, false, e) => Err(anyhow::anyhow!(
                    "演示没有在运行 / the demo is not running: nothing answered at {broker} \
                     within {}s{} — start it with bash scripts/demo.sh (or give its --broker)",
                    timeout.as_secs(),
                    e.map(|e| format!(" ({e})")).unwrap_or_default()
                )),
                (None, true, _) => Err(anyhow::anyhow!(
                    "演示没有确认这次按键 / the demo did not acknowledge the press within {}s",
                    timeout.as_secs()
                )),
            };
        };
        match event {
            DeviceEvent::Online if !online => {
                online = true;
                if button.press(kind).is_err() {
                    break Err(anyhow::anyhow!("the spare unit stopped before it pressed"));
                }
            }
            DeviceEvent::Offline { error, .. } => last_error = Some(error),
            DeviceEvent::SubscribeRefused => {
                break Err(anyhow::anyhow!(
                    "the demo refused the spare unit's subscriptions (topic ACL)"
                ))
            }
            DeviceEvent::PressSent { kind, attempt, .. } => match attempt {
                1 => println!("{id}: 按下 {kind} / pressed {kind}"),
                n => println!("{id}: 还没有确认，再按一次 / no answer yet, pressing again ({n})"),
            },
            DeviceEvent::Acked {
                ack, first: true, ..
            } => {
                let told = units_told(store, &ack).await;
                println!("{}", describe_first(&ack, told));
                until = Instant::now() + follow;
                first = Some(ack);
                if follow.is_zero() {
                    break first.take().context("the first ack");
                }
            }
            DeviceEvent::Acked { ack, .. } => println!("   {}", describe_later(&ack)),
            _ => {}
        }
    };
    stop.cancel();
    tracker.close();
    // The unit says goodbye (a clean disconnect) within a second.
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
    outcome
}

/// The neighbours' units the alert reached, from the gateway's own record of it (stored before
/// the ack was sent); `None` if it cannot be read.
async fn units_told(store: &dyn Store, ack: &Ack) -> Option<usize> {
    let alert = AlertId::parse(&ack.alert.0).ok()?;
    let recipients = store.recipients(alert).await.ok()?;
    Some(
        recipients
            .iter()
            .filter(|r| r.kind == RecipientKind::Unit)
            .count(),
    )
}

fn describe_first(ack: &Ack, told: Option<usize>) -> String {
    let (alert, coming) = (&ack.alert, ack.responders);
    let told = match told {
        Some(n) => format!("{n} 户邻居的报警器已响 / {n} neighbours' units told"),
        None => "邻居已通知 / neighbours told".to_owned(),
    };
    let state = match ack.state {
        AlertState::Cancelled => " — 已取消 / cancelled",
        AlertState::Resolved => " — 已处置 / resolved",
        _ => "",
    };
    let pressed = match ack.presses {
        1 => String::new(),
        n => format!(" (第 {n} 次按键 / press {n})"),
    };
    format!(
        "✅ 报警 {alert} 已收到 / alert {alert} received{pressed}: {told}, \
         {coming} 人在赶来 / {coming} coming{state}"
    )
}

fn describe_later(ack: &Ack) -> String {
    let (alert, coming) = (&ack.alert, ack.responders);
    match ack.state {
        AlertState::Raised | AlertState::Notified | AlertState::Acknowledged => {
            format!("{alert}: {coming} 人在赶来 / {coming} coming")
        }
        AlertState::OnScene => format!("{alert}: 已有人到场 / help is on scene"),
        AlertState::Resolved => format!("{alert}: 已处置 / resolved"),
        AlertState::Cancelled => format!("{alert}: 已取消 / cancelled"),
    }
}
