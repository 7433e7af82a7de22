//! Contact ID (ADM-CID) events and what each means to tenwatch.
//!
//! An ADM-CID message's data is `Q EEE GG ZZZ` written `QEEE GG ZZZ`: the qualifier (1 new
//! event or opening, 3 restore or closing, 6 still present), the three-digit event code, the
//! partition (group) and the zone or user number.

use crate::domain::PressKind;

/// One Contact ID event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cid {
    pub qualifier: u8,
    pub event: u16,
    pub partition: u8,
    /// The zone or user number.
    pub zone: u16,
}

impl Cid {
    /// `1120 01 015`: a qualifier digit, three event digits, a space, two partition digits, a
    /// space, three zone digits.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u16> {
            let part = s.get(r)?;
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())
                .flatten()
        };
        if b.len() != 11 || b[4] != b' ' || b[7] != b' ' {
            return Err("Contact ID data is not 'QEEE GG ZZZ'");
        }
        let (Some(q), Some(event), Some(partition), Some(zone)) =
            (digits(0..1), digits(1..4), digits(5..7), digits(8..11))
        else {
            return Err("Contact ID data has a non-digit where a digit belongs");
        };
        if !matches!(q, 1 | 3 | 6) {
            return Err("Contact ID qualifier is not 1, 3 or 6");
        }
        Ok(Cid {
            qualifier: q as u8,
            event,
            partition: partition as u8,
            zone,
        })
    }
}

/// What a Contact ID event does in tenwatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelEvent {
    /// An alarm the household raises: a press of this kind from the account's household.
    Press(PressKind),
    /// A restore of such an alarm (qualifier 3) or a cancel (406): the household's cancel,
    /// under the cancel window like a unit's.
    Cancel,
    /// The panel's tamper switch opened (`true`) or closed again.
    Tamper(bool),
    /// The panel's battery is low (`true`) or restored.
    BatteryLow(bool),
    /// A periodic test report: the panel is alive.
    Test,
    /// Not one tenwatch acts on (arming, troubles of other kinds, …): acknowledged and
    /// logged, so that the panel does not repeat it.
    NotMapped,
}

/// The mapping of issue 15: 120 panic, 121 duress, 122 silent and 123 audible panic raise a
/// `help` press, 100 a `medical` one, 110 a `fire` one; their restores and 406 cancel; 137
/// tamper and 302 / 309 low battery are supervision; 602 is a periodic test.
pub fn map(cid: &Cid) -> PanelEvent {
    let alarm = match cid.event {
        100 => Some(PressKind::Medical),
        110 => Some(PressKind::Fire),
        120..=123 => Some(PressKind::Help),
        _ => None,
    };
    match (cid.qualifier, cid.event, alarm) {
        (1, _, Some(kind)) => PanelEvent::Press(kind),
        (3, _, Some(_)) | (1, 406, None) => PanelEvent::Cancel,
        (1 | 3, 137, _) => PanelEvent::Tamper(cid.qualifier == 1),
        (1 | 3, 302 | 309, _) => PanelEvent::BatteryLow(cid.qualifier == 1),
        (1, 602, _) => PanelEvent::Test,
        _ => PanelEvent::NotMapped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(s: &str) -> PanelEvent {
        map(&Cid::parse(s).unwrap())
    }

    #[test]
    fn parses_contact_id() {
        assert_eq!(
            Cid::parse("1120 01 015"),
            Ok(Cid {
                qualifier: 1,
                event: 120,
                partition: 1,
                zone: 15
            })
        );
        for bad in [
            "",
            "1120 01 15",
            "1120-01-015",
            "2120 01 015",
            "1a20 01 015",
            "1120 01 015 ",
        ] {
            assert!(Cid::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn maps_the_issues_events() {
        assert_eq!(mapped("1120 01 001"), PanelEvent::Press(PressKind::Help));
        assert_eq!(mapped("1121 01 001"), PanelEvent::Press(PressKind::Help));
        assert_eq!(mapped("1122 01 001"), PanelEvent::Press(PressKind::Help));
        assert_eq!(mapped("1123 01 001"), PanelEvent::Press(PressKind::Help));
        assert_eq!(mapped("1100 01 001"), PanelEvent::Press(PressKind::Medical));
        assert_eq!(mapped("1110 01 001"), PanelEvent::Press(PressKind::Fire));
        assert_eq!(mapped("3120 01 001"), PanelEvent::Cancel);
        assert_eq!(mapped("3110 01 001"), PanelEvent::Cancel);
        assert_eq!(mapped("1406 01 003"), PanelEvent::Cancel);
        assert_eq!(mapped("1137 01 000"), PanelEvent::Tamper(true));
        assert_eq!(mapped("3137 01 000"), PanelEvent::Tamper(false));
        assert_eq!(mapped("1302 00 000"), PanelEvent::BatteryLow(true));
        assert_eq!(mapped("3309 00 000"), PanelEvent::BatteryLow(false));
        assert_eq!(mapped("1602 00 000"), PanelEvent::Test);
        assert_eq!(mapped("1401 01 003"), PanelEvent::NotMapped);
        assert_eq!(mapped("6120 01 001"), PanelEvent::NotMapped);
    }
}
