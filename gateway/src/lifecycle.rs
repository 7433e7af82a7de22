//! The alert lifecycle as a state machine: which actions each alert state and each
//! recipient state allows, and what they become.
//!
//! `raised → notified → acknowledged → on_scene → resolved`, or `cancelled` by the presser.
//! Each recipient (a neighbour's unit, a volunteer, the station) moves forward only:
//! `notified → delivered → seen → coming | declined → on_scene`; `coming` and `declined` may
//! swap (a volunteer changes their mind) until `on_scene`. Pure functions: the store applies
//! them inside one transaction.

use serde::{Deserialize, Serialize};

use crate::domain::{AlertState, ParseError};

/// Why an action is not allowed now (409 in the API, with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

fn refuse(why: impl Into<String>) -> Refusal {
    Refusal(why.into())
}

/// How a resolved alert is classified in the bulletin (警情公示).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// 咨询
    Consult,
    /// 求助
    Help,
    /// 纠纷
    Dispute,
    /// 涉案
    Crime,
    /// 投诉
    Complaint,
    /// 误报
    FalseAlarm,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Consult,
        Category::Help,
        Category::Dispute,
        Category::Crime,
        Category::Complaint,
        Category::FalseAlarm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Consult => "consult",
            Category::Help => "help",
            Category::Dispute => "dispute",
            Category::Crime => "crime",
            Category::Complaint => "complaint",
            Category::FalseAlarm => "false_alarm",
        }
    }

    pub fn chinese(self) -> &'static str {
        match self {
            Category::Consult => "咨询",
            Category::Help => "求助",
            Category::Dispute => "纠纷",
            Category::Crime => "涉案",
            Category::Complaint => "投诉",
            Category::FalseAlarm => "误报",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s || c.chinese() == s)
            .ok_or(ParseError::Invalid {
                what: "category",
                value: s.chars().take(40).collect(),
                why: "expected consult, help, dispute, crime, complaint or false_alarm",
            })
    }
}

/// Where one recipient is with one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum RecipientState {
    Notified,
    Delivered,
    Seen,
    Coming,
    Declined,
    OnScene,
}

impl RecipientState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Notified => "notified",
            RecipientState::Delivered => "delivered",
            RecipientState::Seen => "seen",
            RecipientState::Coming => "coming",
            RecipientState::Declined => "declined",
            RecipientState::OnScene => "on_scene",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Ok(match s {
            "notified" => RecipientState::Notified,
            "delivered" => RecipientState::Delivered,
            "seen" => RecipientState::Seen,
            "coming" => RecipientState::Coming,
            "declined" => RecipientState::Declined,
            "on_scene" => RecipientState::OnScene,
            _ => {
                return Err(ParseError::Invalid {
                    what: "recipient state",
                    value: s.chars().take(40).collect(),
                    why: "expected delivered, seen, coming, declined or on_scene",
                })
            }
        })
    }

    fn rank(self) -> u8 {
        match self {
            RecipientState::Notified => 0,
            RecipientState::Delivered => 1,
            RecipientState::Seen => 2,
            RecipientState::Coming | RecipientState::Declined => 3,
            RecipientState::OnScene => 4,
        }
    }

    /// Counts towards "N coming" on the presser's unit.
    pub fn is_responding(self) -> bool {
        matches!(self, RecipientState::Coming | RecipientState::OnScene)
    }
}

/// The recipient's next state, or `None` when it is already there or further along
/// (a late "delivered" after "coming" changes nothing).
pub fn recipient_next(
    current: RecipientState,
    wanted: RecipientState,
) -> Result<Option<RecipientState>, Refusal> {
    use RecipientState::*;
    match (current, wanted) {
        (OnScene, Coming | Declined) => Err(refuse("already on scene")),
        (Coming, Declined) | (Declined, Coming) => Ok(Some(wanted)),
        _ if wanted.rank() > current.rank() => Ok(Some(wanted)),
        _ => Ok(None),
    }
}

/// What someone does to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A recipient's state moves (delivered, seen, coming, declined, on scene).
    Recipient(RecipientState),
    /// The station takes the alert.
    Acknowledge,
    /// The station sends a volunteer.
    Dispatch,
    Resolve(Category),
    Note,
    /// The station makes the alert public: its CAP messages go into the public feed.
    Publish,
}

/// The alert's next state after `action`, or why it is not allowed.
pub fn alert_next(current: AlertState, action: Action) -> Result<AlertState, Refusal> {
    use AlertState::*;
    let closed = || match current {
        Resolved => refuse("the alert is already resolved"),
        _ => refuse("the alert was cancelled by the presser"),
    };
    match action {
        Action::Note => Ok(current),
        Action::Recipient(RecipientState::Delivered | RecipientState::Seen) => Ok(current),
        _ if !current.is_open() => Err(closed()),
        Action::Recipient(RecipientState::Coming) => Ok(match current {
            Raised | Notified => Acknowledged,
            other => other,
        }),
        Action::Recipient(RecipientState::OnScene) => Ok(OnScene),
        Action::Recipient(_) | Action::Dispatch | Action::Publish => Ok(current),
        Action::Acknowledge => match current {
            Raised | Notified => Ok(Acknowledged),
            _ => Err(refuse("the alert is already acknowledged")),
        },
        Action::Resolve(_) => Ok(Resolved),
    }
}

/// How many people coming (or on scene) are enough for an alert of each kind: once that many
/// are, the others are told that enough help is on the way (units in the cluster alert,
/// volunteers by a push), so that one call brings help and not a crowd. 0: no limit for that
/// kind. Counted over every responder, neighbours and volunteers alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EnoughHelp {
    pub help: u32,
    pub medical: u32,
    pub fire: u32,
    pub intrusion: u32,
}

impl Default for EnoughHelp {
    /// Three neighbours and a volunteer for most alerts; more hands for a fire.
    fn default() -> Self {
        Self {
            help: 4,
            medical: 4,
            fire: 6,
            intrusion: 4,
        }
    }
}

impl EnoughHelp {
    /// How many are enough for an alert of `kind` (0: no limit).
    pub fn needed(&self, kind: &str) -> u32 {
        match kind {
            "medical" => self.medical,
            "fire" => self.fire,
            "intrusion" => self.intrusion,
            _ => self.help,
        }
    }

    /// Whether `responders` coming are enough for an alert of `kind`.
    pub fn is_enough(&self, kind: &str, responders: u32) -> bool {
        let needed = self.needed(kind);
        needed > 0 && responders >= needed
    }

    /// Whether one more responder made it enough just now (`responders` counts them).
    pub fn just_enough(&self, kind: &str, responders: u32) -> bool {
        let needed = self.needed(kind);
        needed > 0 && responders == needed
    }

    /// The defaults changed by a list such as `help=4,fire=6` (kinds left out keep theirs).
    pub fn parse(list: &str) -> Result<Self, ParseError> {
        let mut out = Self::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || ParseError::Invalid {
                what: "enough-help entry",
                value: item.chars().take(80).collect(),
                why: "expected KIND=COUNT: KIND one of help, medical, fire, intrusion; COUNT a \
                      whole number from 0 (no limit) to 1000",
            };
            let (kind, count) = item.split_once('=').ok_or_else(bad)?;
            let count: u32 = count.trim().parse().map_err(|_| bad())?;
            if count > 1000 {
                return Err(bad());
            }
            match kind.trim() {
                "help" => out.help = count,
                "medical" => out.medical = count,
                "fire" => out.fire = count,
                "intrusion" => out.intrusion = count,
                _ => return Err(bad()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertState::*;
    use RecipientState as R;

    #[test]
    fn enough_help_is_counted_per_kind_and_a_bad_list_is_refused_in_words() {
        let enough = EnoughHelp::parse("help=2, fire=0").unwrap();
        assert_eq!((enough.help, enough.fire), (2, 0));
        assert_eq!(
            enough.medical,
            EnoughHelp::default().medical,
            "left out: the default"
        );
        assert!(!enough.is_enough("help", 1));
        assert!(enough.is_enough("help", 2) && enough.just_enough("help", 2));
        assert!(enough.is_enough("help", 3) && !enough.just_enough("help", 3));
        assert!(!enough.is_enough("fire", 50), "0: no limit");
        assert_eq!(EnoughHelp::parse("").unwrap(), EnoughHelp::default());
        for bad in ["help", "help=x", "flood=3", "help=-1", "help=1001"] {
            let why = EnoughHelp::parse(bad).unwrap_err().to_string();
            assert!(why.contains("expected KIND=COUNT"), "{bad}: {why}");
        }
    }

    #[test]
    fn the_happy_path() {
        let s = alert_next(Notified, Action::Recipient(R::Coming)).unwrap();
        assert_eq!(s, Acknowledged);
        let s = alert_next(s, Action::Recipient(R::OnScene)).unwrap();
        assert_eq!(s, OnScene);
        let s = alert_next(s, Action::Resolve(Category::Help)).unwrap();
        assert_eq!(s, Resolved);
    }

    #[test]
    fn impossible_transitions_are_refused_with_a_reason() {
        assert_eq!(
            alert_next(Resolved, Action::Resolve(Category::Help))
                .unwrap_err()
                .0,
            "the alert is already resolved"
        );
        assert!(alert_next(Cancelled, Action::Recipient(R::Coming))
            .unwrap_err()
            .0
            .contains("cancelled"));
        assert!(alert_next(Acknowledged, Action::Acknowledge).is_err());
        assert!(alert_next(Resolved, Action::Dispatch).is_err());
        // Notes and late deliveries are always recorded.
        assert_eq!(alert_next(Resolved, Action::Note).unwrap(), Resolved);
        assert_eq!(
            alert_next(Cancelled, Action::Recipient(R::Delivered)).unwrap(),
            Cancelled
        );
    }

    #[test]
    fn recipients_move_forward_only() {
        assert_eq!(
            recipient_next(R::Notified, R::Delivered).unwrap(),
            Some(R::Delivered)
        );
        assert_eq!(recipient_next(R::Coming, R::Delivered).unwrap(), None);
        assert_eq!(
            recipient_next(R::Coming, R::Declined).unwrap(),
            Some(R::Declined)
        );
        assert_eq!(
            recipient_next(R::Declined, R::Coming).unwrap(),
            Some(R::Coming)
        );
        assert_eq!(
            recipient_next(R::Coming, R::OnScene).unwrap(),
            Some(R::OnScene)
        );
        assert!(recipient_next(R::OnScene, R::Declined).is_err());
        assert_eq!(recipient_next(R::OnScene, R::OnScene).unwrap(), None);
    }

    #[test]
    fn categories_parse_in_both_languages() {
        assert_eq!(Category::parse("涉案").unwrap(), Category::Crime);
        assert_eq!(
            Category::parse("false_alarm").unwrap(),
            Category::FalseAlarm
        );
        assert!(Category::parse("party").is_err());
    }
}
