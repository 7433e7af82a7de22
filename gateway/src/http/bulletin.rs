//! The half-monthly bulletin (警情公示) of one of the operator's zones:
//!
//! - `GET /api/bulletin?zone=&period=2026-12-H1&note=`: the printable page (HTML, A4);
//! - `GET /api/bulletin.pdf?…`: the same as a PDF file, set in `--bulletin-font` (503 saying
//!   what to install when the font is missing).
//!
//! The period is a half-month (`period=YYYY-MM-H1` for the 1st–15th, `H2` for the 16th to the
//! month's end, in the station's time zone), or `from` and `to` as `/api/stats` takes them; by
//! default the last half-month that has ended. The figures are `/api/stats`' own
//! ([`super::history::period_figures`]).

use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Operator;
use super::error::Params;
use super::history::{period_figures, station_tz, MAX_PERIOD_MS};
use super::openapi::{ErrorBody, Refusals};
use super::paging::{bad, time};
use super::{ApiError, AppState};
use crate::bulletin::{day_chinese, html, pdf, Bulletin, Period, MAX_NOTE};
use crate::domain::ZoneCode;
use crate::identity::Principal;
use crate::store::history::FiguresFilter;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(pdf_file))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct BulletinQuery {
    /// One of the operator's zones; may be left out by an operator of one zone.
    zone: Option<String>,
    /// `2026-12-H1` or `2026-12-H2`.
    period: Option<String>,
    /// Or any period, as `/api/stats` takes it (unix ms or ISO 8601), both given.
    from: Option<String>,
    /// The end of such a period.
    to: Option<String>,
    /// The operator's own words for residents, printed first under "watch for".
    note: Option<String>,
}

/// The bulletin (警情公示) of a zone and half-month as a printable A4 page, in Chinese: counts
/// by category and kind, response times, escalations, cancels, false alarms, coverage per
/// cluster, what residents should watch for, the station's contact; no household named.
#[utoipa::path(get, path = "/api/bulletin", tag = "history", params(BulletinQuery),
    responses((status = 200, description = "the printable page", content_type = "text/html"), Refusals))]
async fn page(
    State(s): State<AppState>,
    Operator(who): Operator,
    uri: OriginalUri,
    Params(q): Params<BulletinQuery>,
) -> Result<Response, ApiError> {
    let b = bulletin(&s, &who, &q).await?;
    let pdf_href = match uri.query() {
        Some(query) => format!("/api/bulletin.pdf?{query}"),
        None => "/api/bulletin.pdf".to_owned(),
    };
    Ok(Html(html::render(&b, &pdf_href)).into_response())
}

/// The same bulletin as a PDF file, set in `--bulletin-font`.
#[utoipa::path(get, path = "/api/bulletin.pdf", tag = "history", params(BulletinQuery),
    responses(
        (status = 200, description = "the PDF", content_type = "application/pdf"),
        Refusals,
        (status = 503, description = "no CJK font at --bulletin-font: what to install", body = ErrorBody),
    ))]
async fn pdf_file(
    State(s): State<AppState>,
    Operator(who): Operator,
    Params(q): Params<BulletinQuery>,
) -> Result<Response, ApiError> {
    let b = bulletin(&s, &who, &q).await?;
    let path = s.console.bulletin_font.clone();
    let missing = |why: String| {
        ApiError::Unavailable(format!(
            "公示PDF需要中文字体 the bulletin's PDF needs a CJK font: {} {why}; install \
             fonts-wqy-microhei or point --bulletin-font (TENWATCH_BULLETIN_FONT) at a \
             TrueType font with Chinese. The printable page /api/bulletin works without it.",
            path.display()
        ))
    };
    let font = tokio::fs::read(&path)
        .await
        .map_err(|e| missing(format!("cannot be read ({e})")))?;
    let file = format!("bulletin-{}-{}.pdf", b.zone, b.period.slug);
    // Shaping and subsetting a CJK font takes a moment of CPU: off the async threads.
    let bytes = tokio::task::spawn_blocking(move || pdf::render(&b, font))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match e {
            pdf::PdfError::Font => missing(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        })?;
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// The bulletin the query asks for, every parameter checked first.
async fn bulletin(s: &AppState, who: &Principal, q: &BulletinQuery) -> Result<Bulletin, ApiError> {
    let zone = zone_of(who, q.zone.as_deref())?;
    let tz = station_tz(s);
    let now = s.ingest.now();
    let period = match (&q.period, &q.from, &q.to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(bad(
                "give either period (a half-month) or from and to, not both".to_owned(),
            ))
        }
        (Some(p), None, None) => Period::parse_half(p, tz).map_err(bad)?,
        (None, Some(from), Some(to)) => {
            let (from, to) = (time("from", from)?, time("to", to)?);
            if from >= to {
                return Err(bad("from must be earlier than to".to_owned()));
            }
            if to - from > MAX_PERIOD_MS {
                return Err(bad("the period is at most a year: ask for less".to_owned()));
            }
            Period::custom(from, to, tz)
        }
        (None, None, None) => Period::last_half_month(now, tz),
        (None, _, _) => {
            return Err(bad(
                "from and to go together (or give period, or neither for the last half-month)"
                    .to_owned(),
            ))
        }
    };
    let note = match q.note.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) if n.chars().count() > MAX_NOTE || n.chars().any(char::is_control) => {
            return Err(bad(format!(
                "note must be at most {MAX_NOTE} characters on one line"
            )))
        }
        Some(n) => Some(n.to_owned()),
    };
    let filter = FiguresFilter {
        zones: vec![zone.clone()],
        from_ms: period.from_ms,
        to_ms: period.to_ms,
        cluster: None,
    };
    let (stats, coverage) = period_figures(s, &filter).await?;
    let zone_name = s
        .store
        .zone_map(std::slice::from_ref(&zone))
        .await?
        .zones
        .into_iter()
        .find(|z| z.code == zone.as_str())
        .map(|z| z.name)
        .unwrap_or_else(|| zone.to_string());
    Ok(Bulletin {
        zone: zone.to_string(),
        zone_name,
        period,
        stats,
        coverage,
        contact: s.console.station_contact.clone(),
        note,
        issued: day_chinese(now, tz),
    })
}

/// The zone asked for, which must be one of the operator's; an operator of one zone may
/// leave it out.
fn zone_of(who: &Principal, zone: Option<&str>) -> Result<ZoneCode, ApiError> {
    match (zone, who.zones.as_slice()) {
        (Some(z), _) => {
            let z = ZoneCode::parse(z).map_err(|e| bad(e.to_string()))?;
            if who.may_see(&z) {
                Ok(z)
            } else {
                Err(ApiError::Forbidden(format!(
                    "责任区 {z} 不在您的辖区 zone {z} is not one of your zones"
                )))
            }
        }
        (None, [one]) => Ok(one.clone()),
        (None, []) => Err(ApiError::Forbidden(
            "您没有责任区 this account has no zone".to_owned(),
        )),
        (None, many) => Err(bad(format!(
            "name the zone: zone= one of {}",
            many.iter()
                .map(ZoneCode::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
