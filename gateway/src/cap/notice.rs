//! Notices to residents as CAP 1.2: a notice an operator sent (a crime-prevention tip, a
//! wanted warning, a weather or fire warning) is public by nature, since every unit of its
//! clusters shows it, so each one is a CAP message in the public feed too, for sirens, apps
//! and aggregators that read CAP.
//!
//! One message a notice (`Alert`, identifier `tenwatch-N7`); it `expires` when units back
//! online stop being given it (a week). Its one `info` is in `zh-CN`, the operator's own words
//! (`headline` the title, `description` the text). Its area is a circle that holds every
//! household the notice is for, centred on the [`super::GRID_DEG`] grid and rounded up to a
//! tenth of a kilometre, so it says the streets, never a house; and the zone's code.

use chrono_tz::Tz;

use super::{cap_time, finish, new_writer, text, value_pair, CapSender, CAP_NS, GRID_DEG, W};
use crate::domain::haversine_m;
use crate::ingest::NOTICE_CATCH_UP_WINDOW_MS;
use crate::store::notices::{Notice, NoticeKind};

/// The CAP identifier of a notice's message (unique for the sender, stable).
pub fn identifier(n: &Notice) -> String {
    format!("tenwatch-N{}", n.id)
}

/// The smallest circle the notice's area is said as: no tighter than this, in kilometres.
const MIN_RADIUS_KM: f64 = 0.5;

/// The circle (`lat,lon radius`) that holds every point of `households`: centred on the grid
/// cell of their middle, its radius the farthest of them from that centre rounded up to a
/// tenth of a kilometre, at least [`MIN_RADIUS_KM`]. `None` without households.
pub fn covering_circle(households: &[(f64, f64)]) -> Option<String> {
    let points: Vec<(f64, f64)> = households
        .iter()
        .copied()
        .filter(|(lat, lon)| lat.is_finite() && lon.is_finite())
        .collect();
    if points.is_empty() {
        return None;
    }
    let middle = |f: fn(&(f64, f64)) -> f64| {
        let (lo, hi) = points
            .iter()
            .map(f)
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        (lo + hi) / 2.0
    };
    let centre = |v: f64| ((v / GRID_DEG).floor() + 0.5) * GRID_DEG;
    let lat = centre(middle(|p| p.0)).clamp(-90.0, 90.0);
    let lon = centre(middle(|p| p.1)).clamp(-180.0, 180.0);
    let farthest_km = points
        .iter()
        .map(|(a, b)| haversine_m(lat, lon, *a, *b) / 1000.0)
        .fold(0.0, f64::max);
    // Rounded up, so that the circle still holds the farthest house once written.
    let radius = ((farthest_km * 10.0).ceil() / 10.0 + 0.1).max(MIN_RADIUS_KM);
    Some(format!("{lat:.4},{lon:.4} {radius:.1}"))
}

/// How CAP says a kind of notice: category, urgency, severity, certainty, response.
struct Words {
    category: &'static str,
    urgency: &'static str,
    severity: &'static str,
    certainty: &'static str,
    response: &'static str,
}

fn words(kind: NoticeKind) -> Words {
    let w = |category, urgency, severity, certainty, response| Words {
        category,
        urgency,
        severity,
        certainty,
        response,
    };
    match kind {
        // Advice for the days ahead: be ready, nothing is happening now.
        NoticeKind::Prevention => w("Security", "Future", "Minor", "Possible", "Prepare"),
        NoticeKind::Wanted => w("Security", "Expected", "Moderate", "Likely", "Monitor"),
        NoticeKind::Weather => w("Met", "Expected", "Moderate", "Likely", "Prepare"),
        NoticeKind::Fire => w("Fire", "Expected", "Moderate", "Likely", "Prepare"),
        NoticeKind::Other => w("Other", "Future", "Minor", "Possible", "None"),
    }
}

/// What the area is called: the zone, or so many of its clusters.
fn area_desc(n: &Notice) -> String {
    match n.clusters.len() {
        0 => format!("责任区 {}（全部联防组，不指明住户）", n.zone),
        k => format!("责任区 {} 的 {k} 个联防组（不指明住户）", n.zone),
    }
}

/// The CAP 1.2 document of notice `n`; `circle` from [`covering_circle`] of its households.
pub fn notice_document(n: &Notice, circle: Option<&str>, sender: &CapSender, tz: Tz) -> String {
    write_notice(n, circle, sender, tz).map_or_else(|_| String::new(), finish)
}

fn write_notice(
    n: &Notice,
    circle: Option<&str>,
    sender: &CapSender,
    tz: Tz,
) -> std::io::Result<W> {
    let mut w = new_writer()?;
    let words = words(n.kind);
    let (event, _) = n.kind.names();
    w.create_element("alert")
        .with_attribute(("xmlns", CAP_NS))
        .write_inner_content(|w| {
            text(w, "identifier", &identifier(n))?;
            text(w, "sender", sender.as_str())?;
            text(w, "sent", &cap_time(n.created_at_ms, tz))?;
            text(w, "status", "Actual")?;
            text(w, "msgType", "Alert")?;
            text(w, "scope", "Public")?;
            w.create_element("info").write_inner_content(|w| {
                text(w, "language", "zh-CN")?;
                text(w, "category", words.category)?;
                text(w, "event", event)?;
                text(w, "responseType", words.response)?;
                text(w, "urgency", words.urgency)?;
                text(w, "severity", words.severity)?;
                text(w, "certainty", words.certainty)?;
                value_pair(w, "eventCode", "tenwatch:notice", n.kind.as_str())?;
                text(
                    w,
                    "expires",
                    &cap_time(n.created_at_ms + NOTICE_CATCH_UP_WINDOW_MS, tz),
                )?;
                text(w, "senderName", &format!("十户联防 · 责任区 {}", n.zone))?;
                text(w, "headline", &format!("{event}：{}", n.title))?;
                text(w, "description", &n.body)?;
                w.create_element("area").write_inner_content(|w| {
                    text(w, "areaDesc", &area_desc(n))?;
                    if let Some(circle) = circle {
                        text(w, "circle", circle)?;
                    }
                    value_pair(w, "geocode", "tenwatch:zone", n.zone.as_str())
                })?;
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_circle_holds_every_household_and_names_none() {
        // Two streets of houses 300 m apart.
        let houses = [
            (39.95612, 116.41021),
            (39.95648, 116.41133),
            (39.95912, 116.41021),
            (39.95930, 116.41250),
        ];
        let circle = covering_circle(&houses).expect("a circle");
        let (centre, radius) = circle.split_once(' ').expect("centre and radius");
        let (lat, lon) = centre.split_once(',').expect("lat,lon");
        let (lat, lon, radius): (f64, f64, f64) = (
            lat.parse().unwrap(),
            lon.parse().unwrap(),
            radius.parse().unwrap(),
        );
        for (a, b) in houses {
            assert!(
                haversine_m(lat, lon, a, b) / 1000.0 <= radius,
                "{circle} misses {a},{b}"
            );
            assert!(
                !circle.contains(&format!("{a:.4}")),
                "{circle} names a house"
            );
        }
        // On the grid: every house of the same cell gives the same centre.
        let k = lat / GRID_DEG - 0.5;
        assert!((k - k.round()).abs() < 1e-6, "{circle}");
        assert!((MIN_RADIUS_KM..1.0).contains(&radius), "{circle}");
        assert_eq!(covering_circle(&[]), None);
        assert_eq!(covering_circle(&[(f64::NAN, 1.0)]), None);
    }

    #[test]
    fn each_kind_reads_as_cap_words() {
        assert_eq!(words(NoticeKind::Weather).category, "Met");
        assert_eq!(words(NoticeKind::Fire).category, "Fire");
        assert_eq!(words(NoticeKind::Prevention).urgency, "Future");
        assert_eq!(words(NoticeKind::Wanted).response, "Monitor");
    }
}
