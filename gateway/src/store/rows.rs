//! Stored rows to domain types, the same on both backends: a backend hands each row over as
//! [`Columns`], and the parsers here decide what the stored values mean. A value that no
//! longer parses is [`corrupt`]: the database changed behind the gateway's back.

use std::fmt::Display;

use super::accounts::OnDutyVolunteer;
use super::history::{AlertFigures, BatteryReading, PresenceChange, VolunteerFigure};
use super::map::{MapCluster, MapDevice, MapHousehold, MapZone};
use super::push::{Checkin, PushSubscriptionRecord};
use super::supervision::{
    self, ClusterHealth, DeviceHealth, DeviceRow, DeviceState, HistoryEntry, Problem,
    SupervisionPolicy, FLAPPING_AT,
};
use super::{corrupt, AlertSummary, Recipient, RecipientKind, StoreResult};
use crate::domain::{AlertId, AlertState, BootId, ClusterId, DeviceId, HouseholdId, ZoneCode};
use crate::identity::Principal;
use crate::lifecycle::RecipientState;

/// One stored row, read by column name. Each backend implements it for its own row type
/// with what its driver decodes; the parsers below never see the driver.
pub(crate) trait Columns {
    fn text(&self, col: &str) -> StoreResult<String>;
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    fn int(&self, col: &str) -> StoreResult<i64>;
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>>;
    fn real(&self, col: &str) -> StoreResult<f64>;
    fn opt_real(&self, col: &str) -> StoreResult<Option<f64>>;
    /// `BOOLEAN` on PostgreSQL, 0 or 1 on SQLite.
    fn flag(&self, col: &str) -> StoreResult<bool>;
    fn opt_flag(&self, col: &str) -> StoreResult<Option<bool>>;

    /// A text column parsed as the domain type `what` names.
    fn parsed<T, E: Display>(
        &self,
        col: &str,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> StoreResult<T> {
        parse(&self.text(col)?).map_err(|e| corrupt(what, e))
    }
}

/// An alert, from the columns of the backends' `alert_select!`.
pub(crate) fn alert(row: &impl Columns) -> StoreResult<AlertSummary> {
    Ok(AlertSummary {
        id: AlertId(row.int("id")?),
        device: row.parsed("device", "device", DeviceId::parse)?,
        seq: row.int("seq")? as u64,
        household: row.parsed("household", "household", HouseholdId::parse)?,
        label: row.text("label")?,
        address: row.text("address")?,
        lat: row.real("lat")?,
        lon: row.real("lon")?,
        cluster: row.parsed("cluster", "cluster", ClusterId::parse)?,
        zone: row.parsed("zone", "zone", ZoneCode::parse)?,
        kind: row.text("kind")?,
        state: row.parsed("state", "state", AlertState::parse)?,
        raised_at_ms: row.int("raised_at_ms")?,
        notified_at_ms: row.opt_int("notified_at_ms")?,
        updated_at_ms: row.int("updated_at_ms")?,
        responders: row.int("responders")? as u32,
        ring: row.int("ring")? as u8,
        critical: row.flag("critical")?,
        next_ring_at_ms: row.opt_int("next_ring_at_ms")?,
        category: row.opt_text("category")?,
        resolution_note: row.opt_text("resolution_note")?,
        acknowledged_at_ms: row.opt_int("acknowledged_at_ms")?,
        first_delivered_at_ms: row.opt_int("first_delivered_at_ms")?,
        first_coming_at_ms: row.opt_int("first_coming_at_ms")?,
        first_on_scene_at_ms: row.opt_int("first_on_scene_at_ms")?,
        closed_at_ms: row.opt_int("closed_at_ms")?,
        boot: row.parsed("boot", "boot id", BootId::from_stored)?,
        presses: row.int("presses")? as u32,
        last_press_at_ms: row.int("last_press_at_ms")?,
        public_at_ms: row.opt_int("public_at_ms")?,
    })
}

/// A recipient, from the columns of `recipients`.
pub(crate) fn recipient(row: &impl Columns) -> StoreResult<Recipient> {
    let kind = row.text("kind")?;
    Ok(Recipient {
        kind: RecipientKind::parse(&kind).ok_or_else(|| corrupt("recipient kind", &kind))?,
        who: row.text("who")?,
        label: row.text("label")?,
        ring: row.int("ring")? as u8,
        state: row.parsed("state", "recipient state", RecipientState::parse)?,
        distance_m: row.opt_real("distance_m")?,
        notified_at_ms: row.int("notified_at_ms")?,
        updated_at_ms: row.int("updated_at_ms")?,
        push: row.opt_text("push")?,
        push_at_ms: row.opt_int("push_at_ms")?,
    })
}

/// Who an account is, from `a.id`, `a.name`, `a.display_name`, `a.kind`, `a.role` and its
/// zones comma-separated as `zones`.
pub(crate) fn principal(row: &impl Columns) -> StoreResult<Principal> {
    let mut zones = row
        .opt_text("zones")?
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|z| !z.is_empty())
        .map(ZoneCode::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt("zone", e))?;
    zones.sort();
    Ok(Principal {
        account_id: row.int("id")?,
        name: row.text("name")?,
        display_name: row.text("display_name")?,
        kind: row.parsed("kind", "account kind", str::parse)?,
        role: row
            .opt_text("role")?
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| corrupt("role", e))?,
        zones,
    })
}

/// A device as supervision moves it, from the backends' `device_columns!`.
pub(crate) fn device(row: &impl Columns) -> StoreResult<DeviceRow> {
    let state = row.text("sup_state")?;
    Ok(DeviceRow {
        device: row.parsed("id", "device", DeviceId::parse)?,
        household: row.parsed("household", "household", HouseholdId::parse)?,
        label: row.text("label")?,
        cluster: row.parsed("cluster", "cluster", ClusterId::parse)?,
        zone: row.parsed("zone", "zone", ZoneCode::parse)?,
        state: DeviceState::parse(&state).ok_or_else(|| corrupt("device state", &state))?,
        reason: row.opt_text("sup_reason")?,
        battery: row.opt_int("battery")?.and_then(|b| u8::try_from(b).ok()),
        tamper: row.opt_flag("tamper")?,
        firmware: row.opt_text("firmware")?,
        rssi_recorded: row
            .opt_int("rssi_recorded")?
            .and_then(|r| i16::try_from(r).ok()),
        online: row.flag("online")?,
        session: row.opt_int("session")?,
    })
}

/// A device's health as the station lists it, from `device_columns!`, as of `now_ms`.
pub(crate) fn device_health(
    row: &impl Columns,
    policy: &SupervisionPolicy,
    now_ms: i64,
) -> StoreResult<DeviceHealth> {
    let d = device(row)?;
    let (state, due, offline_at) =
        supervision::heartbeat_deadlines(d.state, row.opt_int("evidence_ms")?, policy, now_ms);
    let problems: Vec<String> = row
        .opt_text("open_problems")?
        .map(|p| p.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    Ok(DeviceHealth {
        battery_low: problems.iter().any(|p| p == "low_battery"),
        device: d.device,
        household: d.household,
        label: d.label,
        cluster: d.cluster,
        zone: d.zone,
        state,
        reason: d.reason,
        since_ms: row.opt_int("sup_since_ms")?,
        connected: d.online,
        last_heartbeat_ms: row.opt_int("last_heartbeat_ms")?,
        last_seen_ms: row.opt_int("last_seen_ms")?,
        heartbeat_due_ms: due,
        offline_at_ms: offline_at,
        battery: d.battery,
        tamper: d.tamper.unwrap_or(false),
        rssi: row.opt_int("rssi")?.and_then(|r| i16::try_from(r).ok()),
        firmware: d.firmware,
        problems,
    })
}

/// A device problem, from the backends' `problem_select!`.
pub(crate) fn problem(row: &impl Columns) -> StoreResult<Problem> {
    let zone = row.parsed("zone", "zone", ZoneCode::parse)?;
    let household = row.parsed("household", "household", HouseholdId::parse)?;
    let label = row.text("label")?;
    let flaps = row.int("flaps")?.max(0) as u32;
    let kind = row.text("kind")?;
    let leader = match row.opt_text("leader_id")? {
        Some(who) => Some(supervision::Leader {
            who,
            label: row.opt_text("leader_label")?.unwrap_or_default(),
            contacts: row.opt_text("leader_contacts")?.unwrap_or_default(),
        }),
        None => None,
    };
    let notify =
        supervision::problem_notify(&zone, &household, &label, row.text("contacts")?, leader);
    Ok(Problem {
        id: Some(row.int("id")?),
        flapping: kind == "offline" && flaps >= FLAPPING_AT,
        kind,
        device: Some(row.parsed("device", "device", DeviceId::parse)?),
        household: Some(household),
        label: Some(label),
        cluster: row.parsed("cluster", "cluster", ClusterId::parse)?,
        cluster_name: row.text("cluster_name")?,
        zone,
        reason: row.text("reason")?,
        opened_at_ms: Some(row.int("opened_at_ms")?),
        updated_at_ms: Some(row.int("updated_at_ms")?),
        closed_at_ms: row.opt_int("closed_at_ms")?,
        flaps,
        settle_at_ms: row.opt_int("settle_at_ms")?,
        reachable: None,
        households: None,
        notify,
        history: Vec::new(),
    })
}

/// A cluster's coverage, from `c.id`, `c.zone`, `c.name`, the leader's label as `leader`,
/// and the backends' `coverage_counts!`.
pub(crate) fn cluster_health(
    row: &impl Columns,
    policy: &SupervisionPolicy,
) -> StoreResult<ClusterHealth> {
    let households = row.int("households")? as u32;
    let reachable = row.int("reachable")? as u32;
    Ok(ClusterHealth {
        cluster: row.parsed("id", "cluster", ClusterId::parse)?,
        zone: row.parsed("zone", "zone", ZoneCode::parse)?,
        name: row.text("name")?,
        households,
        reachable,
        below: policy.below(reachable, households),
        leader: row.opt_text("leader")?,
    })
}

/// A volunteer on duty, from `a.id`, `a.name`, `a.display_name` and `volunteers v`.
pub(crate) fn on_duty_volunteer(row: &impl Columns) -> StoreResult<OnDutyVolunteer> {
    Ok(OnDutyVolunteer {
        account_id: row.int("id")?,
        name: row.text("name")?,
        display_name: row.text("display_name")?,
        lat: row.opt_real("lat")?,
        lon: row.opt_real("lon")?,
        position_at_ms: row.opt_int("position_at_ms")?,
    })
}

/// A push subscription, from `push_subscriptions`.
pub(crate) fn push_subscription(row: &impl Columns) -> StoreResult<PushSubscriptionRecord> {
    Ok(PushSubscriptionRecord {
        id: row.int("id")?,
        endpoint: row.text("endpoint")?,
        p256dh: row.text("p256dh")?,
        auth: row.text("auth")?,
    })
}

/// A patrol check-in, from `checkins`.
pub(crate) fn checkin(row: &impl Columns) -> StoreResult<Checkin> {
    Ok(Checkin {
        id: row.int("id")?,
        lat: row.real("lat")?,
        lon: row.real("lon")?,
        note: row.text("note")?,
        at_ms: row.int("at_ms")?,
    })
}

/// A line of a device's history, from `device_events`.
pub(crate) fn history_entry(row: &impl Columns) -> StoreResult<HistoryEntry> {
    Ok(HistoryEntry {
        at_ms: row.int("at_ms")?,
        kind: row.text("kind")?,
        value: row.text("value")?,
        detail: row.text("detail")?,
    })
}

/// A presence change, from `device_events` (`online` or `offline`; the reason in `detail`).
pub(crate) fn presence_change(row: &impl Columns) -> StoreResult<PresenceChange> {
    Ok(PresenceChange {
        at_ms: row.int("at_ms")?,
        state: row.text("kind")?,
        reason: row.text("detail")?,
    })
}

/// A battery level, from `device_events` (`battery`, the percent in `value`).
pub(crate) fn battery_reading(row: &impl Columns) -> StoreResult<BatteryReading> {
    Ok(BatteryReading {
        at_ms: row.int("at_ms")?,
        level: row.parsed("value", "battery level", str::parse::<u8>)?,
    })
}

/// What the statistics count of an alert, from `alerts`.
pub(crate) fn alert_figures(row: &impl Columns) -> StoreResult<AlertFigures> {
    Ok(AlertFigures {
        cluster: row.text("cluster")?,
        lat: row.real("lat")?,
        lon: row.real("lon")?,
        kind: row.text("kind")?,
        state: row.text("state")?,
        category: row.opt_text("category")?,
        ring: u32::try_from(row.int("ring")?).unwrap_or_default(),
        raised_at_ms: row.int("raised_at_ms")?,
        first_delivered_at_ms: row.opt_int("first_delivered_at_ms")?,
        first_coming_at_ms: row.opt_int("first_coming_at_ms")?,
        first_on_scene_at_ms: row.opt_int("first_on_scene_at_ms")?,
        satisfied: row.opt_flag("satisfied")?,
    })
}

/// A volunteer's answer to an alert, or their check-ins (`action` empty).
pub(crate) fn volunteer_figure(row: &impl Columns) -> StoreResult<VolunteerFigure> {
    Ok(VolunteerFigure {
        volunteer: row.text("volunteer")?,
        display_name: row.text("display_name")?,
        action: row.text("action")?,
        alert: row.int("alert")?,
        raised_at_ms: row.int("raised_at_ms")?,
        at_ms: row.int("at_ms")?,
        checkins: row.int("checkins")?,
    })
}

/// A zone on the console's map, from `zones`.
pub(crate) fn map_zone(row: &impl Columns) -> StoreResult<MapZone> {
    Ok(MapZone {
        code: row.text("code")?,
        name: row.text("name")?,
    })
}

/// A cluster on the map, from `clusters` with its leader's label as `leader_label`.
pub(crate) fn map_cluster(row: &impl Columns) -> StoreResult<MapCluster> {
    Ok(MapCluster {
        id: row.text("id")?,
        zone: row.text("zone")?,
        name: row.text("name")?,
        leader_household: row.opt_text("leader_household")?,
        leader_label: row.opt_text("leader_label")?,
    })
}

/// A household on the map, from `households`.
pub(crate) fn map_household(row: &impl Columns) -> StoreResult<MapHousehold> {
    Ok(MapHousehold {
        id: row.text("id")?,
        cluster: row.text("cluster")?,
        label: row.text("label")?,
        address: row.text("address")?,
        lat: row.real("lat")?,
        lon: row.real("lon")?,
    })
}

/// A device on the map, from `devices`.
pub(crate) fn map_device(row: &impl Columns) -> StoreResult<MapDevice> {
    Ok(MapDevice {
        id: row.text("id")?,
        household: row.text("household")?,
        enabled: row.flag("enabled")?,
        online: row.flag("online")?,
        battery: row.opt_int("battery")?,
        tamper: row.opt_flag("tamper")?,
        last_heartbeat_ms: row.opt_int("last_heartbeat_ms")?,
        last_seen_ms: row.opt_int("last_seen_ms")?,
        disconnect_reason: row.opt_text("disconnect_reason")?,
    })
}
