//! What the alert path decides, the same on both backends: how an action moves its target
//! recipient and the alert's row, what the timeline says, and whether a cancel is in time.
//! A backend reads the stored state, asks these functions, and writes what they answer, all
//! in one transaction.

use super::{Recipient, RecipientKind, StoreError, StoreResult};
use crate::domain::{AlertState, DeviceId};
use crate::lifecycle::{recipient_next, Action, RecipientState};

/// The timeline's actor for a device.
pub(crate) fn device_actor(device: &DeviceId) -> String {
    format!("device:{device}")
}

/// Where an action takes its target recipient.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RecipientMove {
    /// Not a recipient yet: added in the wanted state.
    Add(Recipient),
    /// Moves to this state.
    To(RecipientState),
    /// Already there or further along: nothing to write.
    Stay,
}

/// Where `wanted` takes the recipient `who`, stored in state `current` (`None`: not a
/// recipient of this alert). `ring` is the alert's ring, for a recipient added now.
pub(crate) fn move_recipient(
    current: Option<RecipientState>,
    kind: RecipientKind,
    who: &str,
    wanted: RecipientState,
    ring: u8,
    now_ms: i64,
) -> StoreResult<RecipientMove> {
    match current {
        Some(state) => {
            if wanted == RecipientState::Notified && state != RecipientState::Declined {
                // A dispatch to someone already on it changes nothing.
                return Err(StoreError::Refused(format!(
                    "{who} is already {}",
                    state.as_str()
                )));
            }
            Ok(match recipient_next(state, wanted)? {
                Some(next) => RecipientMove::To(next),
                // Dispatching someone who declined asks them again.
                None if wanted == RecipientState::Notified => RecipientMove::To(wanted),
                None => RecipientMove::Stay,
            })
        }
        // Units are recipients only when their ring reached them.
        None if kind == RecipientKind::Unit => Err(StoreError::NotFound(format!(
            "unit {who} among the recipients of this alert"
        ))),
        // A volunteer joins an alert by the station's dispatch (wanted `notified`), or, seen on
        // the map, by saying "coming" (and then stands for it on the timeline). Anything else
        // from a volunteer nobody asked would let any volunteer of the zone mark any alert
        // "on scene" and stop its climb, or become a recipient by "seen" first and then do so.
        None if kind == RecipientKind::Volunteer
            && !matches!(wanted, RecipientState::Coming | RecipientState::Notified) =>
        {
            Err(StoreError::NotAllowed(not_a_responder(wanted)))
        }
        // The station keeps its rights: it may join in any state.
        None => Ok(RecipientMove::Add(Recipient {
            kind,
            who: who.to_owned(),
            label: who.to_owned(),
            ring,
            state: wanted,
            distance_m: None,
            notified_at_ms: now_ms,
            updated_at_ms: now_ms,
            push: None,
            push_at_ms: None,
        })),
    }
}

/// Why a volunteer who is not among an alert's recipients may not answer `wanted`, in the
/// console's two languages.
fn not_a_responder(wanted: RecipientState) -> String {
    let (zh, en) = match wanted {
        RecipientState::OnScene => ("标记到场", "mark it on scene"),
        _ => ("回复此警情", "answer it"),
    };
    format!(
        "只有收到通知、已答应前往或被派遣的队员才能{zh}；请先点「我来了」 / \
         only a responder who was notified, said coming or was dispatched may {en}: \
         say coming first"
    )
}

/// The recipient state an action wants of its target, if it moves one.
pub(crate) fn wanted_of(action: Action) -> Option<RecipientState> {
    match action {
        Action::Recipient(wanted) => Some(wanted),
        Action::Dispatch => Some(RecipientState::Notified),
        _ => None,
    }
}

/// What an allowed action writes to the alert's row and its timeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AlertChange<'a> {
    pub(crate) next: AlertState,
    pub(crate) state_changed: bool,
    /// Sets `acknowledged_at_ms` unless set.
    pub(crate) acknowledged: bool,
    /// Set `first_delivered_at_ms`, `first_coming_at_ms`, `first_on_scene_at_ms` unless set.
    pub(crate) first_delivered: bool,
    pub(crate) first_coming: bool,
    pub(crate) first_on_scene: bool,
    /// Someone coming, someone there, or the alert closed: the climb stops.
    pub(crate) stop_rings: bool,
    /// A resolution's category and note.
    pub(crate) category: Option<&'static str>,
    pub(crate) resolution_note: Option<&'a str>,
    /// Sets `closed_at_ms`.
    pub(crate) closed: bool,
    /// Sets `public_at_ms` unless set: the station made the alert public.
    pub(crate) published: bool,
    /// The timeline event (action, detail); `None` when a recipient's report changed
    /// nothing (a late or repeated one).
    pub(crate) event: Option<(&'static str, String)>,
}

impl<'a> AlertChange<'a> {
    /// `action` takes the alert from `current` to `next` (from
    /// [`crate::lifecycle::alert_next`]); `recipient_changed` says whether its target moved.
    pub(crate) fn of(
        current: AlertState,
        next: AlertState,
        action: Action,
        target: Option<&str>,
        detail: &'a str,
        recipient_changed: bool,
    ) -> Self {
        let state_changed = next != current;
        let first = |s: RecipientState| recipient_changed && action == Action::Recipient(s);
        let (first_coming, first_on_scene) = (
            first(RecipientState::Coming),
            first(RecipientState::OnScene),
        );
        // What the timeline says of the action.
        let event = match (action, target) {
            (Action::Recipient(s), _) => (s.as_str(), detail.to_owned()),
            (Action::Acknowledge, _) => ("acknowledged", detail.to_owned()),
            (Action::Dispatch, Some(who)) => {
                ("dispatched", format!("{who} {detail}").trim().to_owned())
            }
            (Action::Dispatch, None) => ("dispatched", detail.to_owned()),
            (Action::Resolve(c), _) => {
                let note = format!("{} {}: {detail}", c.as_str(), c.chinese());
                ("resolved", note)
            }
            (Action::Note, _) => ("note", detail.to_owned()),
            (Action::Publish, _) => ("published", detail.to_owned()),
        };
        let quiet = matches!(action, Action::Recipient(_)) && !recipient_changed && !state_changed;
        AlertChange {
            next,
            state_changed,
            acknowledged: next == AlertState::Acknowledged && state_changed,
            first_delivered: first(RecipientState::Delivered),
            first_coming,
            first_on_scene,
            stop_rings: first_coming || first_on_scene || !next.is_open(),
            category: match action {
                Action::Resolve(c) => Some(c.as_str()),
                _ => None,
            },
            resolution_note: matches!(action, Action::Resolve(_)).then_some(detail),
            closed: !next.is_open() && state_changed,
            published: action == Action::Publish,
            event: (!quiet).then_some(event),
        }
    }
}

/// An alert is made public once: its first CAP message's `sent` never moves.
pub(crate) fn publish_once(
    alert: crate::domain::AlertId,
    action: Action,
    public_at_ms: Option<i64>,
) -> StoreResult<()> {
    match (action, public_at_ms) {
        (Action::Publish, Some(_)) => Err(StoreError::Refused(format!(
            "alert {alert} is already public / 此警情已公开"
        ))),
        _ => Ok(()),
    }
}

/// A cancel pressed at `now_ms` for an alert raised at `raised_at_ms`: `None` inside the
/// window, else the timeline's note of why the alert stays open.
pub(crate) fn cancel_too_late(raised_at_ms: i64, now_ms: i64, window_ms: i64) -> Option<String> {
    (now_ms - raised_at_ms > window_ms).then(|| {
        format!(
            "cancel pressed {} s after the alert, window is {} s",
            (now_ms - raised_at_ms) / 1000,
            window_ms / 1000
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Category;

    #[test]
    fn a_dispatch_asks_again_only_who_declined() {
        use RecipientKind::{Station, Unit, Volunteer};
        use RecipientState::{Coming, Declined, Delivered, Notified, Seen};
        let moved = |current, kind, wanted| move_recipient(current, kind, "li", wanted, 2, 5);
        assert_eq!(
            moved(Some(Declined), Volunteer, Notified).unwrap(),
            RecipientMove::To(Notified)
        );
        assert!(matches!(
            moved(Some(Coming), Volunteer, Notified),
            Err(StoreError::Refused(m)) if m == "li is already coming"
        ));
        assert_eq!(
            moved(Some(Coming), Unit, Delivered).unwrap(),
            RecipientMove::Stay,
            "a late receipt"
        );
        assert!(matches!(
            moved(None, Unit, Seen),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            moved(None, Station, Coming),
            Ok(RecipientMove::Add(r)) if r.ring == 2 && r.label == "li"
        ));
    }

    #[test]
    fn only_a_responder_marks_on_scene_and_the_station_keeps_its_rights() {
        use RecipientKind::{Station, Volunteer};
        use RecipientState::{Coming, Declined, Notified, OnScene, Seen};
        let moved = |current, kind, wanted| move_recipient(current, kind, "li", wanted, 1, 5);
        // Nobody asked li: no "on scene", and no "seen" to become a recipient that way.
        for wanted in [OnScene, Seen, Declined] {
            assert!(
                matches!(moved(None, Volunteer, wanted), Err(StoreError::NotAllowed(m)) if m.contains("only a responder")),
                "{wanted:?}"
            );
        }
        // Saying "coming" joins; notified (a ring, a dispatch) or coming may go on scene.
        assert!(matches!(
            moved(None, Volunteer, Coming),
            Ok(RecipientMove::Add(r)) if r.state == Coming
        ));
        for current in [Notified, Coming, Declined] {
            assert_eq!(
                moved(Some(current), Volunteer, OnScene).unwrap(),
                RecipientMove::To(OnScene)
            );
        }
        assert!(matches!(
            moved(None, Station, OnScene),
            Ok(RecipientMove::Add(r)) if r.state == OnScene
        ));
    }

    #[test]
    fn the_first_coming_stops_the_climb_and_a_resolution_closes() {
        use AlertState::{Acknowledged, Notified, OnScene, Resolved};
        let coming = Action::Recipient(RecipientState::Coming);
        let first = AlertChange::of(Notified, Acknowledged, coming, Some("li"), "", true);
        assert!(first.acknowledged && first.first_coming && first.stop_rings);
        assert!(!first.closed);
        assert_eq!(first.event, Some(("coming", String::new())));
        let repeat = AlertChange::of(Acknowledged, Acknowledged, coming, Some("li"), "", false);
        assert_eq!(repeat.event, None, "a repeated report is not news");
        let resolve = Action::Resolve(Category::Help);
        let resolved = AlertChange::of(OnScene, Resolved, resolve, None, "all well", false);
        assert!(resolved.closed && resolved.stop_rings);
        assert_eq!(resolved.category, Some("help"));
        assert_eq!(resolved.resolution_note, Some("all well"));
        let note = "help 求助: all well".to_owned();
        assert_eq!(resolved.event, Some(("resolved", note)));
    }

    #[test]
    fn a_cancel_is_in_time_inside_the_window_only() {
        assert_eq!(cancel_too_late(0, 30_000, 30_000), None);
        assert_eq!(
            cancel_too_late(0, 31_000, 30_000).as_deref(),
            Some("cancel pressed 31 s after the alert, window is 30 s")
        );
    }
}
