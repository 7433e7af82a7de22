//! The Python programs the tests run as outside parties (the push-service emulator, the CAP
//! validator, the SIA peer): each runs from a venv that `scripts/test.sh` installs under
//! `target/`, and writes the copy of its requirements into it once every package installed (a
//! half-made venv does not count). Without its venv a test skips, except on CI where it fails.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::DEADLINE;

/// The repository's root: the programs and their venvs live at fixed places under it.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// One program's venv.
#[derive(Debug, Clone, Copy)]
pub struct Venv {
    /// Its directory under `target/`.
    pub dir: &'static str,
    /// What it holds, for the messages (`the push emulator`).
    pub what: &'static str,
}

/// A venv is not installed (run `scripts/test.sh`); a test may skip on it.
#[derive(Debug)]
pub struct NotInstalled(String);

impl std::fmt::Display for NotInstalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotInstalled {}

impl Venv {
    /// The venv's Python, with the program's packages.
    pub fn python(&self) -> PathBuf {
        repo_root().join("target").join(self.dir).join("bin/python")
    }

    fn stamp(&self) -> PathBuf {
        repo_root()
            .join("target")
            .join(self.dir)
            .join("installed-requirements.txt")
    }

    /// Ok when installed; else [`NotInstalled`], and on CI a panic.
    pub fn installed(&self) -> Result<(), NotInstalled> {
        if self.python().exists() && self.stamp().exists() {
            return Ok(());
        }
        let why = NotInstalled(format!(
            "{}'s venv is not installed (no {}); scripts/test.sh installs it",
            self.what,
            self.stamp().display()
        ));
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{why}: it is required on CI");
        }
        Err(why)
    }

    /// Whether a test that needs the program may go on: `false` (after a SKIPPED line) when
    /// its venv is missing, so the test returns early; on CI a missing venv panics instead.
    pub fn require(&self) -> bool {
        match self.installed() {
            Ok(()) => true,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                false
            }
        }
    }

    /// Runs `script` (a path under the repository) with the venv's Python, `input` on its
    /// stdin, and reads the one JSON document it prints.
    pub async fn pipe_json(&self, script: &str, input: &[u8]) -> anyhow::Result<Value> {
        let mut child = Command::new(self.python())
            .arg(repo_root().join(script))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.what))?;
        let mut stdin = child.stdin.take().context("the program's stdin")?;
        stdin.write_all(input).await?;
        drop(stdin);
        let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
            .await
            .with_context(|| format!("{} did not answer in time", self.what))??;
        if !out.status.success() {
            bail!(
                "{} failed: {}",
                self.what,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}
