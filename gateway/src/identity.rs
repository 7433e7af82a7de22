//! Who an account is: its kind, role, name, and the principal a request acts as. These sit
//! below the store (which stores and returns them) and the accounts logic above it (which
//! signs people in), so that neither has to import the other to name an account.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::{text_newtype, ZoneCode};

/// A name, role or kind that breaks its rule; the message says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidIdentity(pub String);

/// `as_str` and `FromStr` of an enum named by text (in the database, the API and on the command
/// line), from one table of its variants' names; any other text is refused as
/// `$what must be "a" or "b", not "x"`.
macro_rules! named_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl FromStr for $ty {
            type Err = InvalidIdentity;
            fn from_str(s: &str) -> Result<Self, InvalidIdentity> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => {
                        let names = [$(format!("{:?}", $name)),+].join(" or ");
                        Err(InvalidIdentity(format!(
                            "{} must be {names}, not {s:?}",
                            $what
                        )))
                    }
                }
            }
        }
    };
}

/// Operators work at the station console; volunteers patrol with the phone app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Operator,
    Volunteer,
}

named_enum!(AccountKind, "account kind", { Operator => "operator", Volunteer => "volunteer" });

/// An operator's role. Monitors watch and handle alerts; admins also manage the registry.
/// `FromStr` lets clap take `--role monitor|admin` directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Monitor,
    Admin,
}

named_enum!(Role, "role", { Monitor => "monitor", Admin => "admin" });

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A login name: 1–64 characters, no control characters, no whitespace at either end.
/// Names are unique regardless of ASCII case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountName(String);

impl AccountName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(s: &str) -> Result<Self, InvalidIdentity> {
        let bad = |why: &str| {
            InvalidIdentity(format!(
                "account name {:?} {why}",
                s.chars().take(80).collect::<String>()
            ))
        };
        let count = s.chars().count();
        if count == 0 {
            return Err(bad("is empty"));
        }
        if count > Self::MAX_CHARS {
            return Err(bad("is longer than 64 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(bad("contains a control character"));
        }
        if s.trim() != s {
            return Err(bad("starts or ends with whitespace"));
        }
        Ok(Self(s.to_owned()))
    }
}
text_newtype!(AccountName);

/// Who made a request: an account with an open session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    #[serde(skip)]
    pub account_id: i64,
    pub name: String,
    pub display_name: String,
    pub kind: AccountKind,
    /// `None` for volunteers.
    pub role: Option<Role>,
    /// The zones this account may see; a volunteer has exactly one.
    pub zones: Vec<ZoneCode>,
}

impl Principal {
    pub fn may_see(&self, zone: &ZoneCode) -> bool {
        self.zones.contains(zone)
    }
    pub fn is_operator(&self) -> bool {
        self.kind == AccountKind::Operator
    }
    pub fn is_admin(&self) -> bool {
        self.role == Some(Role::Admin)
    }
    /// How this account appears as the actor of a timeline event.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.name)
    }
}
