//! How the API's lists are asked for, the same on every list: a time range (`from`, `to`,
//! each unix milliseconds or ISO 8601), a page size (`limit`) and an opaque `cursor`, the
//! `next` of the page before. Newest first; a page holds what is older than its cursor.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::DateTime;

use super::ApiError;
use crate::store::ListWindow;

pub(super) fn bad(why: String) -> ApiError {
    ApiError::BadRequest(why)
}

/// A time parameter: unix milliseconds, or ISO 8601 with its offset
/// (`2026-12-05T08:00:00+08:00`, `2026-12-05T00:00:00Z`).
pub(super) fn time(field: &str, value: &str) -> Result<i64, ApiError> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            bad(format!(
                "{field} must be a time: milliseconds since 1970-01-01 UTC, or ISO 8601 with \
                 its offset such as 2026-12-05T08:00:00+08:00; not {:?}",
                value.chars().take(40).collect::<String>()
            ))
        })
}

/// Where the next page starts: after the last item of this one, in the list's order (its
/// time, then its id). Opaque to clients (base64 of `at_ms.id`), so its form can change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Cursor {
    pub at_ms: i64,
    pub id: i64,
}

impl Cursor {
    pub(super) fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.at_ms, self.id))
    }

    pub(super) fn parse(s: &str) -> Result<Self, ApiError> {
        let refused = || {
            bad(
                "cursor is not one this server gave: use the `next` of the page before, or \
                 leave it out to start from the newest"
                    .to_owned(),
            )
        };
        let text = URL_SAFE_NO_PAD.decode(s).map_err(|_| refused())?;
        let text = String::from_utf8(text).map_err(|_| refused())?;
        let (at, id) = text.split_once('.').ok_or_else(refused)?;
        match (at.parse::<i64>(), id.parse::<i64>()) {
            (Ok(at_ms), Ok(id)) if id > 0 => Ok(Cursor { at_ms, id }),
            _ => Err(refused()),
        }
    }
}

/// A list's parameters as given, each optional.
pub(super) struct Asked<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub cursor: Option<&'a str>,
    pub limit: Option<u32>,
}

impl<'a> Asked<'a> {
    /// From a query's own fields.
    pub(super) fn new(
        from: &'a Option<String>,
        to: &'a Option<String>,
        cursor: &'a Option<String>,
        limit: Option<u32>,
    ) -> Self {
        Asked {
            from: from.as_deref(),
            to: to.as_deref(),
            cursor: cursor.as_deref(),
            limit,
        }
    }
}

/// The window of a list: `limit` 1 to `max` (`default` if not given), `from` before `to`,
/// the cursor one this server gave. The store is asked for one more than the page holds, to
/// know whether there is a next page ([`next_page`]).
pub(super) fn window(asked: Asked<'_>, default: u32, max: u32) -> Result<ListWindow, ApiError> {
    let limit = asked.limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(bad(format!("limit must be from 1 to {max}, not {limit}")));
    }
    let from_ms = asked.from.map(|v| time("from", v)).transpose()?;
    let to_ms = asked.to.map(|v| time("to", v)).transpose()?;
    if let (Some(from), Some(to)) = (from_ms, to_ms) {
        if from >= to {
            return Err(bad("from must be earlier than to".to_owned()));
        }
    }
    let after = asked
        .cursor
        .map(Cursor::parse)
        .transpose()?
        .map(|c| (c.at_ms, c.id));
    Ok(ListWindow {
        from_ms,
        to_ms,
        after,
        limit: limit + 1,
    })
}

/// Cuts `found` (asked with [`window`]'s one more) to the page, and says where the next one
/// starts, if there is one: the cursor of the page's last item, by `key` (its time and id).
pub(super) fn next_page<T>(
    found: &mut Vec<T>,
    window: &ListWindow,
    key: impl Fn(&T) -> (i64, i64),
) -> Option<String> {
    let page = window.limit.saturating_sub(1) as usize;
    if found.len() <= page {
        return None;
    }
    found.truncate(page);
    found.last().map(|item| {
        let (at_ms, id) = key(item);
        Cursor { at_ms, id }.encode()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_a_forged_one_is_refused_in_words() {
        let c = Cursor {
            at_ms: 1_764_900_000_123,
            id: 42,
        };
        assert_eq!(Cursor::parse(&c.encode()).unwrap(), c);
        for forged in [
            "",
            "%%%",
            "bm90IGEgY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("5.0"),
        ] {
            let e = Cursor::parse(forged).unwrap_err().to_string();
            assert!(
                e.contains("cursor is not one this server gave"),
                "{forged}: {e}"
            );
        }
    }

    #[test]
    fn a_window_is_checked_and_pages_are_cut() {
        let asked = |from, to, limit| Asked {
            from,
            to,
            cursor: None,
            limit,
        };
        let w = window(
            asked(Some("2026-12-05T00:00:00Z"), Some("1796515200000"), None),
            20,
            200,
        )
        .unwrap();
        assert_eq!(
            (w.from_ms, w.to_ms, w.limit),
            (Some(1_796_428_800_000), Some(1_796_515_200_000), 21)
        );
        for (a, why) in [
            (
                asked(None, None, Some(0)),
                "limit must be from 1 to 200, not 0",
            ),
            (asked(None, None, Some(201)), "not 201"),
            (
                asked(Some("2"), Some("1"), None),
                "from must be earlier than to",
            ),
            (asked(Some("yesterday"), None, None), "from must be a time"),
        ] {
            let e = window(a, 20, 200).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        let mut found: Vec<(i64, i64)> = (0..3).map(|i| (100 - i, 10 - i)).collect();
        let w = window(asked(None, None, Some(2)), 20, 200).unwrap();
        let next = next_page(&mut found, &w, |x| *x).expect("a next page");
        assert_eq!(found.len(), 2);
        assert_eq!(Cursor::parse(&next).unwrap(), Cursor { at_ms: 99, id: 9 });
        let mut last: Vec<(i64, i64)> = vec![(1, 1)];
        assert_eq!(next_page(&mut last, &w, |x| *x), None);
    }
}
