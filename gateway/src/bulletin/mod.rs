//! The half-monthly bulletin (警情公示) a station posts for its community: a zone's figures of
//! a period in Chinese, as a printable A4 page ([`html`]) and a PDF ([`pdf`]), both drawn from
//! one [`Bulletin`] so they always say the same.
//!
//! What goes in is what `GET /api/stats` counts ([`crate::stats`]): alerts by category and
//! kind, response times (p50 / p90), escalations, cancels and false alarms, and device coverage
//! per cluster. What never goes in: a household, a resident's name, address or phone. The
//! finest place named is a cluster (ten households, under the name the registry gave it).
//!
//! "What residents should watch for" is derived from the figures ([`Bulletin::watch_for`]):
//! the categories and kinds that happened, the three hours with the most alerts, false alarms,
//! clusters whose units were often offline; an operator may put a note of their own first.

pub mod html;
pub mod pdf;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike};
use chrono_tz::Tz;

use crate::lifecycle::Category;
use crate::stats::{ClusterCoverage, Durations, SatisfactionStats, Statistics};

/// Where Debian's `fonts-wqy-microhei` puts its font: the default of `--bulletin-font`.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

/// An operator's own note is at most this many characters.
pub const MAX_NOTE: usize = 300;

/// The period a bulletin covers, `[from_ms, to_ms)`, and how it is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub from_ms: i64,
    pub to_ms: i64,
    /// `2026年12月1日至2026年12月15日`.
    pub label: String,
    /// For a file name: `2026-12-H1`, or the first and last day.
    pub slug: String,
}

impl Period {
    /// The first (1st–15th, `half` 1) or second (16th–end, `half` 2) half of a month, from
    /// midnight to midnight in the station's time zone.
    pub fn half_month(year: i32, month: u32, half: u8, tz: Tz) -> Option<Period> {
        let first = NaiveDate::from_ymd_opt(year, month, 1)?;
        let next_month = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)?
        };
        let sixteenth = NaiveDate::from_ymd_opt(year, month, 16)?;
        let (from, to) = match half {
            1 => (first, sixteenth),
            2 => (sixteenth, next_month),
            _ => return None,
        };
        let mut p = Period::between(midnight(from, tz)?, midnight(to, tz)?, tz)?;
        p.slug = format!("{year}-{month:02}-H{half}");
        Some(p)
    }

    /// `2026-12-H1` (1st–15th) or `2026-12-H2` (16th–end of month).
    pub fn parse_half(value: &str, tz: Tz) -> Result<Period, String> {
        let refused = || {
            format!(
                "period must be a half-month such as 2026-12-H1 (1st–15th) or 2026-12-H2 \
                 (16th–end); not {:?}",
                value.chars().take(40).collect::<String>()
            )
        };
        let mut parts = value.trim().split('-');
        let (Some(y), Some(m), Some(h), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refused());
        };
        let year = y.parse::<i32>().ok().filter(|y| (2000..=2200).contains(y));
        let month = m.parse::<u32>().ok().filter(|m| (1..=12).contains(m));
        let half = match h {
            "H1" | "h1" => Some(1),
            "H2" | "h2" => Some(2),
            _ => None,
        };
        match (year, month, half) {
            (Some(y), Some(m), Some(h)) => Period::half_month(y, m, h, tz).ok_or_else(refused),
            _ => Err(refused()),
        }
    }

    /// The latest half-month that has ended by `now_ms`: what a bulletin posted now covers.
    pub fn last_half_month(now_ms: i64, tz: Tz) -> Period {
        let today = tz
            .timestamp_millis_opt(now_ms)
            .single()
            .map(|t| t.date_naive())
            .unwrap_or_default();
        let (y, m) = (today.year(), today.month());
        let p = if today.day() >= 16 {
            Period::half_month(y, m, 1, tz)
        } else if m == 1 {
            Period::half_month(y - 1, 12, 2, tz)
        } else {
            Period::half_month(y, m - 1, 2, tz)
        };
        p.unwrap_or_else(|| Period::custom(now_ms - 15 * 86_400_000, now_ms, tz))
    }

    /// Any period; named by its first and last day (and the times, if not whole days).
    pub fn custom(from_ms: i64, to_ms: i64, tz: Tz) -> Period {
        let at = |ms: i64| tz.timestamp_millis_opt(ms).single();
        match (at(from_ms), at(to_ms)) {
            (Some(from), Some(to)) => Period::between(from, to, tz).unwrap_or_else(|| Period {
                from_ms,
                to_ms,
                label: String::new(),
                slug: format!("{from_ms}-{to_ms}"),
            }),
            _ => Period {
                from_ms,
                to_ms,
                label: String::new(),
                slug: format!("{from_ms}-{to_ms}"),
            },
        }
    }

    fn between(from: DateTime<Tz>, to: DateTime<Tz>, tz: Tz) -> Option<Period> {
        let whole_days = [from, to]
            .iter()
            .all(|t| t.hour() == 0 && t.minute() == 0 && t.second() == 0);
        let last = if whole_days {
            to - Duration::days(1)
        } else {
            to
        };
        let day = |t: DateTime<Tz>| format!("{}年{}月{}日", t.year(), t.month(), t.day());
        let label = if whole_days {
            format!("{}至{}", day(from), day(last.with_timezone(&tz)))
        } else {
            format!(
                "{} {:02}:{:02}至{} {:02}:{:02}",
                day(from),
                from.hour(),
                from.minute(),
                day(to),
                to.hour(),
                to.minute()
            )
        };
        Some(Period {
            from_ms: from.timestamp_millis(),
            to_ms: to.timestamp_millis(),
            label,
            slug: format!("{}-{}", from.format("%Y%m%d"), last.format("%Y%m%d")),
        })
    }
}

/// Midnight of `date` in `tz` (the earlier one if the clocks went back over it).
fn midnight(date: NaiveDate, tz: Tz) -> Option<DateTime<Tz>> {
    tz.from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
        .earliest()
}

/// Alerts' kinds and how the bulletin names them, in the order printed.
const KINDS: [(&str, &str); 4] = [
    ("help", "居民求助"),
    ("medical", "医疗求助"),
    ("fire", "火警"),
    ("intrusion", "入室警情"),
];

/// `45秒`, `3分12秒`, `1小时5分`; `—` when nothing reached the step.
pub fn duration_chinese(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "—".to_owned();
    };
    let s = (ms + 500) / 1000;
    match s {
        s if s < 60 => format!("{s}秒"),
        s if s < 3600 => format!("{}分{}秒", s / 60, s % 60),
        s => format!("{}小时{}分", s / 3600, (s % 3600) / 60),
    }
}

/// A row of the response-time table.
pub struct ResponseRow {
    pub step: &'static str,
    /// Alerts that reached the step.
    pub n: usize,
    pub p50: String,
    pub p90: String,
}

/// What the households answered after their alert was resolved: `满意率 75%（4户评价，3户满意）`,
/// or that nobody answered.
pub fn satisfaction_text(s: &SatisfactionStats) -> String {
    match s.rate {
        Some(rate) => format!(
            "{}%（{}户评价，{}户满意）",
            (rate * 100.0).round(),
            s.answered,
            s.satisfied
        ),
        None => "暂无评价".to_owned(),
    }
}

/// A zone's bulletin for a period: everything the page and the PDF print.
pub struct Bulletin {
    pub zone: String,
    pub zone_name: String,
    pub period: Period,
    pub stats: Statistics,
    /// Per cluster, least covered first.
    pub coverage: Vec<ClusterCoverage>,
    /// The station's contact (`--station-contact`); empty: only 110 is given.
    pub contact: String,
    /// The operator's own words for residents, printed first under "watch for".
    pub note: Option<String>,
    /// The day it was made, `2026年12月16日`.
    pub issued: String,
}

impl Bulletin {
    /// The title: `和平里社区第一责任区 警情公示`.
    pub fn title(&self) -> String {
        format!("{} 警情公示", self.zone_name)
    }

    /// Resolved alerts by category, every category named (zero too), in the fixed order.
    pub fn categories(&self) -> Vec<(&'static str, usize)> {
        Category::ALL
            .iter()
            .map(|c| {
                let n = self.stats.by_category.get(c.as_str()).copied();
                (c.chinese(), n.unwrap_or(0))
            })
            .collect()
    }

    /// Alerts by kind, every kind named.
    pub fn kinds(&self) -> Vec<(&'static str, usize)> {
        KINDS
            .iter()
            .map(|&(kind, name)| (name, self.stats.by_kind.get(kind).copied().unwrap_or(0)))
            .collect()
    }

    /// The headline figures, label and value.
    pub fn summary(&self) -> Vec<(&'static str, String)> {
        let s = &self.stats;
        let resolved: usize = s.by_category.values().sum();
        vec![
            ("接报警情", format!("{}起", s.alerts)),
            ("已处置", format!("{resolved}起")),
            ("居民撤销", format!("{}起", s.cancelled)),
            ("误报", format!("{}起", s.false_alarms)),
            (
                "扩大呼叫（周边联防组及队员）",
                format!("{}起", s.escalated_ring1),
            ),
            ("全辖区呼叫", format!("{}起", s.escalated_ring2)),
            ("尚在处置", format!("{}起", s.open)),
            ("群众满意率", satisfaction_text(&s.satisfaction)),
        ]
    }

    /// How fast help came: p50 and p90 from the press.
    pub fn responses(&self) -> Vec<ResponseRow> {
        let row = |step, d: &Durations| ResponseRow {
            step,
            n: d.n,
            p50: duration_chinese(d.p50_ms),
            p90: duration_chinese(d.p90_ms),
        };
        vec![
            row("邻居报警器响起", &self.stats.first_delivery),
            row("首位响应“我来了”", &self.stats.first_coming),
            row("首位到达现场", &self.stats.first_on_scene),
        ]
    }

    /// A cluster as the bulletin names it: its street and its number, never finer. A cluster's
    /// registered name may say which houses it is (`和平里东街 11-20号 十户联防组`), and a
    /// public bulletin goes no closer than the street: the name up to its first digit, then
    /// the cluster's own number (`和平里东街 第002组`).
    pub fn cluster_label(c: &ClusterCoverage) -> String {
        let street = c
            .cluster_name
            .split(|ch: char| ch.is_ascii_digit() || ('０'..='９').contains(&ch))
            .next()
            .unwrap_or("")
            .trim();
        let number = c.cluster.rsplit('-').next().unwrap_or(&c.cluster);
        if street.is_empty() {
            format!("第{number}组")
        } else {
            format!("{street} 第{number}组")
        }
    }

    /// The zone's coverage over every unit: (units, outage minutes, percent online).
    pub fn total_coverage(&self) -> (usize, i64, Option<f64>) {
        let units = self.coverage.iter().map(|c| c.units).sum();
        let minutes: i64 = self.coverage.iter().map(|c| c.unit_minutes).sum();
        let outage: i64 = self.coverage.iter().map(|c| c.outage_minutes).sum();
        let percent = (minutes > 0)
            .then(|| ((minutes - outage).max(0) as f64 * 1000.0 / minutes as f64).round() / 10.0);
        (units, outage, percent)
    }

    /// The contact line.
    pub fn contact_line(&self) -> String {
        if self.contact.is_empty() {
            "紧急情况请拨打110。".to_owned()
        } else {
            format!("{}；紧急情况请拨打110。", self.contact)
        }
    }

    /// What residents should watch for: the operator's note first, then what the figures
    /// show.
    pub fn watch_for(&self) -> Vec<String> {
        let s = &self.stats;
        let mut out: Vec<String> = self.note.iter().cloned().collect();
        let count = |k: &str| s.by_kind.get(k).copied().unwrap_or(0);
        let category = |c: &str| s.by_category.get(c).copied().unwrap_or(0);
        let (intrusion, crime) = (count("intrusion"), category("crime"));
        if intrusion + crime > 0 {
            out.push(format!(
                "本期入室警情{intrusion}起、涉案警情{crime}起：外出和夜间请锁好门窗，\
                 发现可疑人员请按报警键或拨打110，勿独自上前。"
            ));
        }
        if count("fire") > 0 {
            out.push(format!(
                "本期火警{}起：请检查燃气、电线和电动自行车充电，楼道不堆放杂物。",
                count("fire")
            ));
        }
        if count("medical") > 0 {
            out.push(format!(
                "本期医疗求助{}起：家有独居老人或病人的，请与邻居互留联系方式，常用药放在显眼处。",
                count("medical")
            ));
        }
        if category("dispute") > 0 {
            out.push(format!(
                "本期邻里纠纷{}起：有矛盾请找社区调解，避免争执升级。",
                category("dispute")
            ));
        }
        if let Some((start, n)) = busiest_hours(&s.by_hour) {
            out.push(format!(
                "警情多发于{:02}:00至{:02}:00（{n}起）：这段时间请多加留意，巡逻队员将加强巡逻。",
                start,
                (start + 3) % 24
            ));
        }
        if s.false_alarms + s.cancelled > 0 {
            out.push(format!(
                "误报{}起、撤销{}起：误按报警键时请在30秒内按取消键。",
                s.false_alarms, s.cancelled
            ));
        }
        let weak = self
            .coverage
            .iter()
            .filter(|c| c.coverage_percent.is_some_and(|p| p < 95.0))
            .count();
        if weak > 0 {
            out.push(format!(
                "{weak}个联防组的报警器在线率低于95%：请检查家中报警器的电源和网络，\
                 离线的报警器收不到邻居的求助。"
            ));
        }
        if out.is_empty() {
            out.push("本期辖区平稳。请继续保持邻里守望，一家求助，多家支援。".to_owned());
        }
        out
    }
}

/// The three consecutive hours (wrapping past midnight) with the most alerts: their first
/// hour and the count; none if no alert.
fn busiest_hours(by_hour: &[usize]) -> Option<(usize, usize)> {
    if by_hour.len() != 24 {
        return None;
    }
    (0..24)
        .map(|h| (h, (0..3).map(|i| by_hour[(h + i) % 24]).sum::<usize>()))
        .filter(|&(_, n)| n > 0)
        // The earliest of equals.
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
}

/// `2026年12月16日` for `now_ms` in `tz`.
pub fn day_chinese(now_ms: i64, tz: Tz) -> String {
    tz.timestamp_millis_opt(now_ms)
        .single()
        .map(|t| format!("{}年{}月{}日", t.year(), t.month(), t.day()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;

    #[test]
    fn half_months_run_midnight_to_midnight_in_the_station_s_time() {
        let p = Period::parse_half("2026-12-H1", SHANGHAI).unwrap();
        // 2026-12-01T00:00+08:00 and 2026-12-16T00:00+08:00.
        assert_eq!((p.from_ms, p.to_ms), (1_796_054_400_000, 1_797_350_400_000));
        assert_eq!(p.label, "2026年12月1日至2026年12月15日");
        assert_eq!(p.slug, "2026-12-H1");
        let p = Period::parse_half("2026-02-H2", SHANGHAI).unwrap();
        assert_eq!(p.label, "2026年2月16日至2026年2月28日");
        let p = Period::parse_half("2026-12-H2", SHANGHAI).unwrap();
        assert_eq!(p.label, "2026年12月16日至2026年12月31日");
        for bad in [
            "2026-13-H1",
            "2026-12",
            "2026-12-H3",
            "x",
            "2026-12-H1-x",
            "",
        ] {
            let e = Period::parse_half(bad, SHANGHAI).unwrap_err();
            assert!(e.starts_with("period must be a half-month"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_default_is_the_last_half_month_that_has_ended() {
        // 2026-12-06 08:00 Shanghai: the second half of November.
        let p = Period::last_half_month(1_796_515_200_000, SHANGHAI);
        assert_eq!(p.slug, "2026-11-H2");
        // 2026-12-20: the first half of December.
        let p = Period::last_half_month(1_797_724_800_000, SHANGHAI);
        assert_eq!(p.slug, "2026-12-H1");
        // 2027-01-03: the second half of December 2026.
        let p = Period::last_half_month(1_798_934_400_000, SHANGHAI);
        assert_eq!(p.slug, "2026-12-H2");
    }

    #[test]
    fn a_cluster_is_named_by_its_street_and_number_only() {
        let c = |cluster: &str, name: &str| ClusterCoverage {
            cluster: cluster.into(),
            cluster_name: name.into(),
            units: 10,
            unit_minutes: 0,
            outage_minutes: 0,
            coverage_percent: None,
        };
        let label = |cluster, name| Bulletin::cluster_label(&c(cluster, name));
        assert_eq!(
            label("11010501-002", "和平里东街 11-20号 十户联防组"),
            "和平里东街 第002组"
        );
        assert_eq!(
            label("11010501-003", "和平里东街１１号院"),
            "和平里东街 第003组"
        );
        assert_eq!(label("11010501-004", "12号楼 十户联防组"), "第004组");
        assert_eq!(label("c7", ""), "第c7组");
    }

    #[test]
    fn satisfaction_reads_as_a_rate_with_its_answers() {
        let s = |answered, satisfied| SatisfactionStats {
            resolved: 5,
            answered,
            satisfied,
            rate: (answered > 0).then(|| satisfied as f64 / answered as f64),
        };
        assert_eq!(satisfaction_text(&s(4, 3)), "75%（4户评价，3户满意）");
        assert_eq!(satisfaction_text(&s(3, 2)), "67%（3户评价，2户满意）");
        assert_eq!(satisfaction_text(&s(0, 0)), "暂无评价");
    }

    #[test]
    fn durations_read_in_chinese() {
        assert_eq!(duration_chinese(None), "—");
        assert_eq!(duration_chinese(Some(45_200)), "45秒");
        assert_eq!(duration_chinese(Some(192_000)), "3分12秒");
        assert_eq!(duration_chinese(Some(3_900_000)), "1小时5分");
    }

    #[test]
    fn the_busiest_three_hours_wrap_past_midnight() {
        let mut h = vec![0; 24];
        (h[23], h[0], h[1], h[12]) = (2, 1, 1, 3);
        assert_eq!(busiest_hours(&h), Some((23, 4)));
        assert_eq!(busiest_hours(&[0; 24]), None);
    }
}
