//! The SQL both backends run: every store trait implemented once, in statements that SQLite
//! and PostgreSQL both accept, for the backend that includes this folder.
//!
//! # How it is shared
//! `sqlite/mod.rs` and `postgres/mod.rs` each compile this folder as their own `sql` module
//! (`#[path = "../sql/mod.rs"] mod sql;`), so the code here is written once and built once
//! per backend against that backend's concrete sqlx types. The alternatives cost more to
//! read: functions generic over `sqlx::Database` need the same long `where` clause (an
//! `Executor` for the connection, `Encode`/`Decode`/`Type` for every bound and read type) on
//! every function, because sqlx's bounds are not implied; a `macro_rules!` body would not be
//! formatted and its errors would point into the macro.
//!
//! # What the including backend provides
//! - `Db`, `Args`, `Conn`, `Row` and `ZoneList`: its sqlx database, arguments, connection
//!   and row types, and how it binds a list of zones;
//! - `Backend`: its store type, with the ways it reads and writes: `reads()` and `writes()`
//!   (pools for reads and for rare one-statement writes), `begin_write()` (a write
//!   transaction of its own, for rare writes), `write(commit, job)` (a write of the busy
//!   alert and supervision paths, committed as [`Commit`] asks), `snapshot()` (reads that
//!   see one moment), `notified(…)` and `delivery(…)` (the record of an alert's fan-out and a
//!   unit's receipt, which each backend writes its own way)
//!   and `zone_list(zones)` (a list of zones as `in_list!` binds it);
//! - the few phrases in which the dialects differ, as macros that expand to string literals
//!   (so that every query stays a `&'static str`): `lock!()` / `lock!("table")` (PostgreSQL
//!   locks the rows a transaction read before writing from them; SQLite's single writer
//!   already excludes every other write, so it adds nothing), `skip_locked!()` (the same,
//!   passing over rows another transaction holds), `in_list!("$n")` (membership in a bound
//!   list of zones: a JSON array on SQLite, a `text[]` on PostgreSQL) and
//!   `name_is!("column", "$n")` (an account name regardless of case).
//!
//! Everything else is written the way both accept: numbered `$n` parameters (sqlx-sqlite
//! binds `$n` as the n-th argument), `TRUE`/`FALSE` and bound `bool`s (0 and 1 in SQLite's
//! INTEGER columns), `CAST($n AS TEXT)` for a parameter that may be NULL, `string_agg`,
//! `IS NOT DISTINCT FROM` and `ON CONFLICT … DO NOTHING`.

/// The columns of [`AlertSummary`] (`a` is the alert, `h` its household); `concat!` keeps
/// every query a `&'static str`. Backends that add a column of their own to an alert's row
/// use this with [`alert_from!`].
macro_rules! alert_columns {
    () => {
        "a.id, a.device, a.seq, a.household, h.label, h.address, h.lat, h.lon, \
         a.cluster, a.zone, a.kind, a.state, a.raised_at_ms, a.notified_at_ms, a.updated_at_ms, \
         a.ring, a.critical, a.next_ring_at_ms, a.category, a.resolution_note, \
         a.acknowledged_at_ms, a.first_delivered_at_ms, a.first_coming_at_ms, \
         a.first_on_scene_at_ms, a.closed_at_ms, a.boot, a.presses, a.last_press_at_ms, \
         a.public_at_ms, \
         (SELECT COUNT(*) FROM recipients r WHERE r.alert = a.id \
          AND r.state IN ('coming', 'on_scene')) AS responders"
    };
}
macro_rules! alert_from {
    () => {
        " FROM alerts a JOIN households h ON h.id = a.household "
    };
}
/// A list's window ([`crate::store::ListWindow`]) on a row's time and id columns: at or after
/// `$from`, before `$to`, and older than the cursor's (`$at`, `$id`), each unless null.
macro_rules! in_window {
    ($time:literal, $id:literal, $from:literal, $to:literal, $at:literal, $after:literal) => {
        concat!(
            "(CAST(",
            $from,
            " AS BIGINT) IS NULL OR ",
            $time,
            " >= ",
            $from,
            ") AND (CAST(",
            $to,
            " AS BIGINT) IS NULL OR ",
            $time,
            " < ",
            $to,
            ") AND (CAST(",
            $at,
            " AS BIGINT) IS NULL OR ",
            $time,
            " < ",
            $at,
            " OR (",
            $time,
            " = ",
            $at,
            " AND ",
            $id,
            " < ",
            $after,
            "))"
        )
    };
}
/// An alert's row, to be followed by its `WHERE`.
macro_rules! alert_select {
    () => {
        concat!("SELECT ", alert_columns!(), alert_from!())
    };
}

mod accounts;
pub(crate) mod alerts;
mod history;
mod map;
mod notices;
mod push;
mod sia;
mod supervision;

use sqlx::Row as _;

use super::Row;
use crate::domain::AlertId;
use crate::store::rows::Columns;
use crate::store::StoreResult;

/// [`Columns`]' getters, each one `try_get` of its type.
macro_rules! columns {
    ($($name:ident: $t:ty,)*) => {
        $(fn $name(&self, col: &str) -> StoreResult<$t> {
            Ok(self.try_get(col)?)
        })*
    };
}

/// How a write of the busy path asks to be committed. SQLite keeps every promise at once: its
/// single writer runs all writes in call order and commits them in groups. PostgreSQL runs
/// each as the variant says.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Commit {
    /// In call order with every other write about this alert, from the moment of the call:
    /// a caller may hand the wait to another task and still keep a device's messages in
    /// order.
    // SQLite's writer keeps every write in call order: only PostgreSQL reads which alert.
    InOrder(#[allow(dead_code)] AlertId),
    /// All its statements in one transaction.
    Transaction,
    /// One statement, committed by itself.
    // Asked for only by PostgreSQL's own writes (its heartbeats); SQLite's build never does.
    #[allow(dead_code)]
    Statement,
}

/// Binds a list's window ([`crate::store::ListWindow`]) after a statement's other parameters,
/// in the order [`in_window!`] numbers them: from, to, and the cursor's time and id.
fn bind_window<'q>(
    query: sqlx::query::Query<'q, super::Db, super::Args>,
    window: &crate::store::ListWindow,
) -> sqlx::query::Query<'q, super::Db, super::Args> {
    query
        .bind(window.from_ms)
        .bind(window.to_ms)
        .bind(window.after.map(|a| a.0))
        .bind(window.after.map(|a| a.1))
}

/// The shared row parsers ([`crate::store::rows`]) read this backend's rows through this:
/// each column type is what the backend's driver decodes for it.
impl Columns for Row {
    columns! {
        text: String,
        opt_text: Option<String>,
        int: i64,
        opt_int: Option<i64>,
        real: f64,
        opt_real: Option<f64>,
        flag: bool,
        opt_flag: Option<bool>,
    }
}
