//! What the station looks back on (operators only, scoped to their zones):
//!
//! - `GET /api/alerts/history`: closed alerts, newest first, filtered by time, kind,
//!   category, state, cluster, household and words of the household's label or address,
//!   a page at a time with an opaque cursor (`next`);
//! - `GET /api/devices/{id}/history`: one device's presence changes and battery levels in a
//!   time window, with what was true just before it;
//! - `GET /api/stats`: the figures of a period (counts by kind and category, cancels, false
//!   alarms, escalations, and how long the first delivery, "coming" and on scene took).
//!
//! Times are taken as unix milliseconds or ISO 8601 (RFC 3339) and answered as both: every
//! `…_ms` has an ISO 8601 UTC twin without the suffix. A parameter that does not parse is a
//! 400 that says which and what it should be.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{zones_for, Operator};
use super::error::Params;
use super::openapi::{DevicePath, Refusals};
use super::paging::{bad, next_page, time, window, Asked};
use super::times::iso;
use super::{ApiError, AppState};
use crate::domain::{AlertId, ClusterId, DeviceId, HouseholdId, PressKind};
use crate::lifecycle::Category;
use crate::stats::{coverage, ClusterCoverage, Statistics, CELL_DEG};
use crate::store::history::{AlertHistoryFilter, ClosedAlert, DeviceTimeline, FiguresFilter};

/// A page of history holds this many alerts unless asked otherwise, and at most [`MAX_PAGE`].
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;
/// Words searched for are at most this long (characters).
const MAX_TEXT: usize = 100;
/// A device's history covers the last week unless asked otherwise.
const DEFAULT_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;
/// Each of a device's series holds at most this many changes (the newest of the window).
const DEVICE_CHANGES: u32 = 500;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(alert_history))
        .routes(routes!(device_history))
        .routes(routes!(stats))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Raised at or after (unix ms or ISO 8601).
    from: Option<String>,
    /// Raised before (unix ms or ISO 8601).
    to: Option<String>,
    /// `help`, `medical`, `fire`, `intrusion` …
    kind: Option<String>,
    /// The category it was resolved with (`help`, `false_alarm` …).
    category: Option<String>,
    /// `resolved` or `cancelled`.
    state: Option<String>,
    cluster: Option<String>,
    household: Option<String>,
    /// Words of the household's label or address.
    q: Option<String>,
    /// One of the account's zones (default: all of them).
    zone: Option<String>,
    /// Alerts a page: 1 to 200 (default 50).
    limit: Option<u32>,
    /// The `next` of the page before.
    cursor: Option<String>,
}

/// A closed alert as the history answers it, with how long it was open (its times also in
/// ISO 8601: [`super::times`]).
#[derive(Serialize)]
struct HistoryItem {
    #[serde(flatten)]
    alert: ClosedAlert,
    /// From the press to resolved or cancelled.
    duration_ms: Option<i64>,
}

/// Closed alerts of the operator's zones, newest first, a page at a time: `next` is the cursor
/// of the page after (absent on the last). Every `…_ms` time has an ISO 8601 twin.
#[utoipa::path(get, path = "/api/alerts/history", tag = "history", params(HistoryQuery),
    responses((status = 200, description = "{alerts: [...], next}"), Refusals))]
async fn alert_history(
    State(s): State<AppState>,
    Operator(who): Operator,
    Params(q): Params<HistoryQuery>,
) -> Result<Response, ApiError> {
    let w = window(
        Asked::new(&q.from, &q.to, &q.cursor, q.limit),
        DEFAULT_PAGE,
        MAX_PAGE,
    )?;
    let filter = AlertHistoryFilter {
        zones: zones_for(&who, q.zone.as_deref())?,
        from_ms: w.from_ms,
        to_ms: w.to_ms,
        kind: q.kind.as_deref().map(kind).transpose()?,
        category: q
            .category
            .as_deref()
            .map(|c| Category::parse(c).map_err(|e| bad(e.to_string())))
            .transpose()?,
        cancelled: q.state.as_deref().map(state).transpose()?,
        cluster: q
            .cluster
            .as_deref()
            .map(|c| ClusterId::parse(c).map_err(|e| bad(e.to_string())))
            .transpose()?,
        household: q
            .household
            .as_deref()
            .map(|h| HouseholdId::parse(h).map_err(|e| bad(e.to_string())))
            .transpose()?,
        text: q.q.as_deref().map(words).transpose()?.flatten(),
        after: w.after.map(|(at, id)| (at, AlertId(id))),
        limit: w.limit,
    };
    let mut found = s.store.alert_history(&filter).await?;
    let next = next_page(&mut found, &w, |a| (a.alert.raised_at_ms, a.alert.id.0));
    let alerts: Vec<HistoryItem> = found
        .into_iter()
        .map(|alert| HistoryItem {
            duration_ms: alert
                .alert
                .closed_at_ms
                .map(|c| c - alert.alert.raised_at_ms),
            alert,
        })
        .collect();
    Ok(Json(serde_json::json!({ "alerts": alerts, "next": next })).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct WindowQuery {
    /// The window's start (unix ms or ISO 8601): a week before `to` unless given.
    from: Option<String>,
    /// The window's end: now unless given.
    to: Option<String>,
}

/// One device's presence changes and battery levels in a time window, with what was true just
/// before it.
#[utoipa::path(get, path = "/api/devices/{id}/history", tag = "history",
    params(DevicePath, WindowQuery),
    responses((status = 200, description = "{device, presence: [...], battery: [...], before}"), Refusals))]
async fn device_history(
    State(s): State<AppState>,
    Operator(who): Operator,
    Path(id): Path<String>,
    Params(q): Params<WindowQuery>,
) -> Result<Response, ApiError> {
    let id = DeviceId::parse(&id).map_err(|e| bad(e.to_string()))?;
    let now = s.ingest.now();
    let to_ms =
        q.to.as_deref()
            .map(|v| time("to", v))
            .transpose()?
            .unwrap_or(now);
    let from_ms = match q.from.as_deref() {
        Some(v) => time("from", v)?,
        None => to_ms.saturating_sub(DEFAULT_WINDOW_MS),
    };
    if from_ms >= to_ms {
        return Err(bad("from must be earlier than to".to_owned()));
    }
    let policy = s.supervision;
    // A device of another zone is answered exactly like one that does not exist.
    let health = match s.store.device_health(&id, &policy, now).await? {
        Some(detail) if who.may_see(&detail.health.zone) => detail.health,
        _ => return Err(ApiError::NotFound(format!("device {id} not found"))),
    };
    let DeviceTimeline {
        presence_before,
        presence: changes,
        battery_before,
        battery: levels,
        truncated,
    } = s
        .store
        .device_timeline(&id, from_ms, to_ms, DEVICE_CHANGES)
        .await?;
    Ok(Json(serde_json::json!({
        "device": health,
        "from_ms": from_ms,
        "from": iso(from_ms),
        "to_ms": to_ms,
        "to": iso(to_ms),
        "presence_before": presence_before,
        "presence": changes,
        "battery_before": battery_before,
        "battery": levels,
        "truncated": truncated,
        "heartbeat_interval_ms": policy.heartbeat_interval_ms,
        "battery_low": policy.battery_low,
    }))
    .into_response())
}

/// An alert's kind as the history filters it (a cancel press raises no alert).
fn kind(value: &str) -> Result<PressKind, ApiError> {
    match PressKind::parse(value) {
        Ok(kind) if kind != PressKind::Cancel => Ok(kind),
        _ => Err(bad(format!(
            "kind must be help, medical, fire or intrusion, not {:?}",
            value.chars().take(40).collect::<String>()
        ))),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    /// The period's start (unix ms or ISO 8601): the alerts raised in `[from, to)`; by default
    /// the half-month before `to` (the 警情公示 bulletin's period). At most a year.
    from: Option<String>,
    /// The period's end: now unless given.
    to: Option<String>,
    /// One of the account's zones (default: all of them).
    zone: Option<String>,
    /// One cluster of them.
    cluster: Option<String>,
}

/// The half-month the bulletin covers, the statistics' default period.
const HALF_MONTH_MS: i64 = 15 * 24 * 3600 * 1000;
/// The longest period asked at once: a year.
pub(super) const MAX_PERIOD_MS: i64 = 366 * 24 * 3600 * 1000;

/// The figures of a period: counts by kind and category, cancels, false alarms, escalations,
/// how long the first delivery, "coming" and on scene took (p50, p90, max), the volunteers who
/// came, by hour and weekday in the station's time zone, by cluster.
#[utoipa::path(get, path = "/api/stats", tag = "history", params(StatsQuery),
    responses((status = 200, description = "the statistics of the period"), Refusals))]
async fn stats(
    State(s): State<AppState>,
    Operator(who): Operator,
    Params(q): Params<StatsQuery>,
) -> Result<Response, ApiError> {
    let to_ms = q.to.as_deref().map(|v| time("to", v)).transpose()?;
    let to_ms = to_ms.unwrap_or_else(|| s.ingest.now());
    let from_ms = match q.from.as_deref() {
        Some(v) => time("from", v)?,
        None => to_ms.saturating_sub(HALF_MONTH_MS),
    };
    if from_ms >= to_ms {
        return Err(bad("from must be earlier than to".to_owned()));
    }
    if to_ms - from_ms > MAX_PERIOD_MS {
        return Err(bad("the period is at most a year: ask for less".to_owned()));
    }
    let filter = FiguresFilter {
        zones: zones_for(&who, q.zone.as_deref())?,
        from_ms,
        to_ms,
        cluster: q
            .cluster
            .as_deref()
            .map(|c| ClusterId::parse(c).map_err(|e| bad(e.to_string())))
            .transpose()?,
    };
    let (stats, coverage) = period_figures(&s, &filter).await?;
    let mut answer = serde_json::to_value(stats).map_err(|e| ApiError::Internal(e.to_string()))?;
    answer["coverage"] =
        serde_json::to_value(coverage).map_err(|e| ApiError::Internal(e.to_string()))?;
    answer["from_ms"] = from_ms.into();
    answer["from"] = iso(from_ms).into();
    answer["to_ms"] = to_ms.into();
    answer["to"] = iso(to_ms).into();
    // The side of the places' grid cells, so the console draws each as the area it stands for.
    answer["place_cell_deg"] = CELL_DEG.into();
    answer["zones"] =
        serde_json::to_value(&filter.zones).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(answer).into_response())
}

/// The station's time zone for hours, weekdays and half-months (the console checked the name
/// at start; an unknown one counts in Beijing time).
pub(super) fn station_tz(s: &AppState) -> chrono_tz::Tz {
    s.console
        .time_zone
        .parse()
        .unwrap_or(chrono_tz::Asia::Shanghai)
}

/// The figures of `filter`'s period and its device coverage per cluster (counted up to now
/// when the period has not ended yet): what `/api/stats` and the bulletin both print.
pub(super) async fn period_figures(
    s: &AppState,
    filter: &FiguresFilter,
) -> Result<(Statistics, Vec<ClusterCoverage>), ApiError> {
    // Three reads of their own, at once: each on a reader connection of its own.
    let (figures, volunteers, presence) = tokio::try_join!(
        s.store.alert_figures(filter),
        s.store.volunteer_figures(filter),
        s.store.presence_figures(filter),
    )?;
    let until = filter.to_ms.min(s.ingest.now());
    Ok((
        Statistics::of(&figures, &volunteers, station_tz(s)),
        coverage(&presence, filter.from_ms, until),
    ))
}

/// `resolved` or `cancelled`: whether only cancelled alerts are wanted.
fn state(value: &str) -> Result<bool, ApiError> {
    match value {
        "resolved" => Ok(false),
        "cancelled" => Ok(true),
        other => Err(bad(format!(
            "state must be resolved or cancelled (the history holds closed alerts only), not {:?}",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

/// Words to search for: trimmed; none if empty.
fn words(value: &str) -> Result<Option<String>, ApiError> {
    let value = value.trim();
    if value.chars().count() > MAX_TEXT {
        return Err(bad(format!("q is longer than {MAX_TEXT} characters")));
    }
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_milliseconds_or_iso_8601() {
        assert_eq!(time("from", "1764892800000").unwrap(), 1_764_892_800_000);
        assert_eq!(
            time("from", "2025-12-05T08:00:00+08:00").unwrap(),
            1_764_892_800_000
        );
        assert_eq!(iso(1_764_892_800_000), "2025-12-05T00:00:00.000Z");
        let e = time("to", "yesterday").unwrap_err().to_string();
        assert!(e.starts_with("to must be a time"), "{e}");
    }
}
