//! The test-side handle of the OpenAPI validator (`tests/openapi-validator/validate.py`):
//! openapi-spec-validator checks a document against the OpenAPI specification's own schemas, so
//! a description the gateway gets wrong is caught by someone else's reading of the standard.
//!
//! It runs from a venv that `scripts/test.sh` installs; without it a test skips
//! (`require_openapi_validator`), except on CI where it fails.

use serde_json::Value;

use crate::venv::Venv;

/// The validator's venv.
const VENV: Venv = Venv {
    dir: "openapi-validator-venv",
    what: "the OpenAPI validator",
};

/// Whether a test that needs the validator may go on ([`Venv::require`]).
pub fn require_openapi_validator() -> bool {
    VENV.require()
}

/// What the validator says of one document: `valid`, `errors`, its `openapi` version and its
/// `operations` (each path with its methods).
pub async fn validate(document: &[u8]) -> anyhow::Result<Value> {
    VENV.pipe_json("tests/openapi-validator/validate.py", document)
        .await
}
