//! What a failed sqlx call means to the store's callers, the same on both backends: the
//! database failed (`?` on any sqlx call), unless the caller broke a constraint
//! ([`refused`]).

use super::StoreError;

/// The database failed: details are logged, not shown to clients.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// A write the database refused, as the caller hears of it: a row that breaks a unique,
/// foreign-key or check constraint is the caller's mistake (409, 404, 422; `referenced` names
/// what the foreign keys point at); anything else is the database's.
pub(crate) fn refused(e: sqlx::Error, referenced: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::NotFound(referenced.to_owned())
        }
        sqlx::Error::Database(db) if db.is_check_violation() => {
            StoreError::Invalid(db.message().to_owned())
        }
        _ => e.into(),
    }
}

/// [`refused`] in the caller's words: a taken key is `row` ("household h1"), a missing
/// reference is `parent` ("cluster c1").
pub(crate) fn refused_naming(e: sqlx::Error, row: String, parent: String) -> StoreError {
    match refused(e, "") {
        StoreError::Conflict(_) => StoreError::Conflict(row),
        StoreError::NotFound(_) => StoreError::NotFound(parent),
        other => other,
    }
}
