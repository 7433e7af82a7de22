//! Notices to residents (a crime-prevention tip, a wanted warning, a weather or fire warning)
//! and what residents think of how their alert was handled: the [`NoticeStore`] trait, its
//! types and the checks a notice passes before it is stored, free of sqlx.

use async_trait::async_trait;
use serde::Serialize;

use super::StoreResult;
use crate::domain::{AlertId, ClusterId, DeviceId, ParseError, ZoneCode};

/// What a notice is about; units and the console show it as a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// 防范提示: a crime-prevention tip.
    Prevention,
    /// 协查通报: a wanted person or vehicle.
    Wanted,
    /// 天气预警.
    Weather,
    /// 火灾预警.
    Fire,
    /// 其他.
    Other,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 5] = [
        NoticeKind::Prevention,
        NoticeKind::Wanted,
        NoticeKind::Weather,
        NoticeKind::Fire,
        NoticeKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Prevention => "prevention",
            NoticeKind::Wanted => "wanted",
            NoticeKind::Weather => "weather",
            NoticeKind::Fire => "fire",
            NoticeKind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseError::Invalid {
                what: "notice kind",
                value: s.chars().take(20).collect(),
                why: "must be prevention, wanted, weather, fire or other",
            })
    }

    /// The Chinese and English words, for a push and a unit's screen.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            NoticeKind::Prevention => ("防范提示", "Prevention tip"),
            NoticeKind::Wanted => ("协查通报", "Wanted"),
            NoticeKind::Weather => ("天气预警", "Weather warning"),
            NoticeKind::Fire => ("火灾预警", "Fire warning"),
            NoticeKind::Other => ("通知", "Notice"),
        }
    }
}

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 60;
/// Longest body, in characters: with its title and the JSON around it a notice stays under
/// 2,048 bytes in UTF-8 (three bytes a Chinese character), the payload size units are built
/// for (docs/protocol.md, *Limits*).
pub const MAX_BODY_CHARS: usize = 400;
/// Most clusters one notice may name (a zone has a few hundred at most).
pub const MAX_CLUSTERS: usize = 500;

/// A notice's title or body: trimmed, not empty, at most `max` characters (`too_long` says
/// so), no control characters but line breaks in a body.
fn notice_text(
    what: &'static str,
    s: &str,
    (max, too_long): (usize, &'static str),
    lines: bool,
) -> Result<String, ParseError> {
    let t = s.trim();
    let bad = |why| ParseError::Invalid {
        what,
        value: t.chars().take(20).collect(),
        why,
    };
    if t.is_empty() {
        return Err(bad("must not be empty"));
    }
    if t.chars().count() > max {
        return Err(bad(too_long));
    }
    if t.chars().any(|c| c.is_control() && !(lines && c == '\n')) {
        return Err(bad("must not hold control characters"));
    }
    Ok(t.to_owned())
}

/// A notice as an operator wrote it, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotice {
    pub zone: ZoneCode,
    /// Empty: every cluster of the zone.
    pub clusters: Vec<ClusterId>,
    pub kind: NoticeKind,
    pub title: String,
    pub body: String,
    /// The operator's account name.
    pub author: String,
}

impl NewNotice {
    pub fn parse(
        zone: ZoneCode,
        clusters: Vec<ClusterId>,
        kind: &str,
        title: &str,
        body: &str,
        author: &str,
    ) -> Result<Self, ParseError> {
        if clusters.len() > MAX_CLUSTERS {
            return Err(ParseError::Invalid {
                what: "clusters",
                value: clusters.len().to_string(),
                why: "too many: at most 500",
            });
        }
        let mut clusters = clusters;
        clusters.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        clusters.dedup();
        Ok(Self {
            zone,
            clusters,
            kind: NoticeKind::parse(kind)?,
            title: notice_text(
                "title",
                title,
                (MAX_TITLE_CHARS, "is too long: at most 60 characters"),
                false,
            )?,
            body: notice_text(
                "body",
                body,
                (MAX_BODY_CHARS, "is too long: at most 400 characters"),
                true,
            )?,
            author: author.to_owned(),
        })
    }
}

/// A stored notice, as units and volunteers are told it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub id: i64,
    pub zone: ZoneCode,
    /// Empty: the whole zone.
    pub clusters: Vec<ClusterId>,
    pub kind: NoticeKind,
    pub title: String,
    pub body: String,
    pub author: String,
    pub created_at_ms: i64,
}

/// A notice just stored, with whom it is for.
#[derive(Debug, Clone)]
pub struct SentNotice {
    pub notice: Notice,
    /// The clusters whose units it is for (each hears it on `tw/c/{cluster}/notice`).
    pub clusters: Vec<ClusterId>,
    /// On-duty volunteers of the zone (account names), to be pushed it.
    pub volunteers: Vec<String>,
}

/// A notice as the console lists it: who it was for and who got it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoticeView {
    #[serde(flatten)]
    pub notice: Notice,
    /// Households with a unit it was sent to, and those of them with a unit that reported it
    /// `delivered`.
    pub households: i64,
    pub households_delivered: i64,
    /// Units it was sent to, and those that reported it delivered.
    pub units: i64,
    pub units_delivered: i64,
    /// On-duty volunteers pushed it, and those whose push service accepted it.
    pub volunteers: i64,
    pub volunteers_reached: i64,
}

/// What became of a unit's `delivered` receipt for a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeReceipt {
    /// The unit's first receipt: recorded.
    First,
    /// The unit had reported it already: nothing changes.
    Again,
    /// No such notice, or not one sent to this unit: refused.
    NotForIt,
}

/// A household's answer on its resolved alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Satisfaction {
    pub satisfied: bool,
    pub answered_at_ms: i64,
}

/// What became of a satisfaction answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SatisfactionOutcome {
    Stored,
    /// The alert was answered already (the first answer is kept).
    AlreadyAnswered,
    /// The unit is not of the household that pressed.
    NotTheirs,
    /// The alert is not resolved (open, or cancelled).
    NotResolved,
    UnknownAlert,
}

#[async_trait]
pub trait NoticeStore: Send + Sync + 'static {
    /// Stores the notice with a row for every enabled unit of its clusters (every cluster of
    /// the zone when none are named) and one for every on-duty volunteer of the zone, in one
    /// transaction. A named cluster outside the zone is refused ([`super::StoreError::Invalid`]).
    async fn create_notice(&self, notice: &NewNotice, now_ms: i64) -> StoreResult<SentNotice>;
    /// The notices of these zones in the window, newest first, with their counts.
    async fn notices(
        &self,
        zones: &[ZoneCode],
        window: &super::ListWindow,
    ) -> StoreResult<Vec<NoticeView>>;
    /// One notice with its counts.
    async fn notice(&self, id: i64) -> StoreResult<Option<NoticeView>>;
    /// The newest notices of every zone, newest first, at most `limit`: the public feed's.
    async fn recent_notices(&self, limit: u32) -> StoreResult<Vec<Notice>>;
    /// Where the households a notice was sent to are (degrees): its CAP area holds them all.
    async fn notice_places(&self, id: i64) -> StoreResult<Vec<(f64, f64)>>;
    /// A unit's `delivered` receipt.
    async fn notice_delivered(
        &self,
        id: i64,
        device: &DeviceId,
        now_ms: i64,
    ) -> StoreResult<NoticeReceipt>;
    /// What became of a volunteer's push of a notice. `accepted` is never overwritten.
    async fn notice_push_outcome(
        &self,
        id: i64,
        volunteer: &str,
        outcome: &str,
        now_ms: i64,
    ) -> StoreResult<()>;
    /// The notices sent to `device` since `from_ms` it has not reported delivered, newest
    /// first, at most `limit`.
    async fn owed_notices(
        &self,
        device: &DeviceId,
        from_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<Notice>>;
    /// A household's answer on its resolved alert, from one of its units; the first is kept,
    /// with an entry on the alert's timeline.
    async fn record_satisfaction(
        &self,
        alert: AlertId,
        device: &DeviceId,
        satisfied: bool,
        now_ms: i64,
    ) -> StoreResult<SatisfactionOutcome>;
    /// The answer on an alert, if any.
    async fn satisfaction(&self, alert: AlertId) -> StoreResult<Option<Satisfaction>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_checked_before_it_is_stored() {
        let zone = ZoneCode::parse("11010501").unwrap();
        let ok = NewNotice::parse(
            zone.clone(),
            vec![],
            "wanted",
            " 协查 ",
            "正文\n第二行",
            "op",
        )
        .unwrap();
        assert_eq!((ok.title.as_str(), ok.kind), ("协查", NoticeKind::Wanted));
        let err = |kind: &str, title: &str, body: &str| {
            NewNotice::parse(zone.clone(), vec![], kind, title, body, "op")
                .unwrap_err()
                .to_string()
        };
        assert!(err("party", "t", "b").contains("notice kind"));
        assert!(err("tip", "", "b").contains("notice kind"));
        assert!(err("fire", " ", "b").contains("title"));
        assert!(err("fire", "t", &"字".repeat(401)).contains("at most 400"));
        assert!(err("fire", &"字".repeat(61), "b").contains("at most 60"));
        assert!(err("fire", "a\u{7}b", "b").contains("control"));
        assert!(NewNotice::parse(zone, vec![], "fire", "t", &"字".repeat(400), "op").is_ok());
    }
}
