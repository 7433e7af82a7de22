//! The test-side handle of the SIA DC-09 peer (`tests/sia-peer/peer.py`): an alarm panel made
//! of pysiaalarm's own parts (its CRC, its AES, its receiver's parser), a library we did not
//! write. It sends the messages a test asks for, on loopback only, and reports the gateway's
//! answer as it read it, with what pysiaalarm's own receiver would have answered.
//!
//! The peer runs from a venv that `scripts/test.sh` installs; without it a test skips
//! (`require_sia_peer`), except on CI where it fails.

use std::net::SocketAddr;
use std::process::Stdio;

use anyhow::{anyhow, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::venv::{repo_root, Venv};
use crate::DEADLINE;

/// The peer's venv.
const VENV: Venv = Venv {
    dir: "sia-peer-venv",
    what: "the SIA peer",
};

/// Whether a test that needs the peer may go on ([`Venv::require`]).
pub fn require_sia_peer() -> bool {
    VENV.require()
}

/// A pysiaalarm account: the key is pysiaalarm's, 16 characters whose bytes are the AES key.
#[derive(Debug, Clone)]
pub struct PeerAccount {
    pub account: String,
    pub key: Option<String>,
}

impl PeerAccount {
    pub fn clear(account: &str) -> Self {
        Self {
            account: account.into(),
            key: None,
        }
    }

    pub fn encrypted(account: &str, key: &str) -> Self {
        Self {
            account: account.into(),
            key: Some(key.into()),
        }
    }

    /// The key as `tenwatch admin add-sia-account --key` takes it: 32 hex digits.
    pub fn key_hex(&self) -> Option<String> {
        self.key
            .as_ref()
            .map(|k| k.bytes().map(|b| format!("{b:02X}")).collect())
    }

    fn to_json(&self) -> Value {
        json!({"account": self.account, "key": self.key})
    }
}

/// The running peer (killed when dropped; it also exits when its stdin closes).
pub struct SiaPeer {
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// The gateway's receiver: TCP and UDP.
    tcp: SocketAddr,
    udp: SocketAddr,
    /// The accounts pysiaalarm's own receiver knows when it judges a message: those the
    /// gateway has registered, with the same keys.
    oracle: Vec<PeerAccount>,
    _child: Child,
}

impl SiaPeer {
    pub async fn start(
        receiver: (SocketAddr, SocketAddr),
        registered: &[PeerAccount],
    ) -> anyhow::Result<SiaPeer> {
        anyhow::ensure!(
            receiver.0.ip().is_loopback() && receiver.1.ip().is_loopback(),
            "the SIA peer sends to loopback only"
        );
        let script = repo_root().join("tests/sia-peer/peer.py");
        let mut child = Command::new(VENV.python())
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin pipe"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        Ok(SiaPeer {
            stdin,
            lines: BufReader::new(stdout).lines(),
            tcp: receiver.0,
            udp: receiver.1,
            oracle: registered.to_vec(),
            _child: child,
        })
    }

    async fn call(&mut self, command: Value) -> anyhow::Result<Value> {
        let mut line = command.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        let answer = tokio::time::timeout(DEADLINE, self.lines.next_line())
            .await
            .context("the SIA peer did not answer in time")??
            .ok_or_else(|| anyhow!("the SIA peer exited"))?;
        let value: Value = serde_json::from_str(&answer)?;
        if let Some(e) = value.get("error") {
            anyhow::bail!("the SIA peer failed: {e}");
        }
        Ok(value)
    }

    /// Sends one message (see `peer.py` for its fields) over TCP or UDP and reads the answer.
    pub async fn send(&mut self, udp: bool, message: Value) -> anyhow::Result<Value> {
        let addr = if udp { self.udp } else { self.tcp };
        let oracle: Vec<Value> = self.oracle.iter().map(PeerAccount::to_json).collect();
        self.call(json!({
            "op": "send",
            "host": addr.ip().to_string(),
            "port": addr.port(),
            "transport": if udp { "udp" } else { "tcp" },
            "message": message,
            "oracle_accounts": oracle,
        }))
        .await
    }

    /// `messages` one after another on one TCP connection, each answer read before the next is
    /// sent: the answers.
    pub async fn session(&mut self, messages: Vec<Value>) -> anyhow::Result<Vec<Value>> {
        let answers = self
            .call(json!({
                "op": "session", "host": self.tcp.ip().to_string(), "port": self.tcp.port(),
                "messages": messages,
            }))
            .await?;
        Ok(answers["answers"].as_array().cloned().unwrap_or_default())
    }

    /// `lines` copies of `line` on one TCP connection: how many were answered, and whether the
    /// receiver closed the connection.
    pub async fn flood(&mut self, lines: usize, line: &str) -> anyhow::Result<Value> {
        self.call(json!({
            "op": "flood", "host": self.tcp.ip().to_string(), "port": self.tcp.port(),
            "lines": lines, "line": line,
        }))
        .await
    }

    /// `bytes` bytes without an end on one TCP connection.
    pub async fn oversize(&mut self, bytes: usize) -> anyhow::Result<Value> {
        self.call(json!({
            "op": "oversize", "host": self.tcp.ip().to_string(), "port": self.tcp.port(),
            "bytes": bytes,
        }))
        .await
    }
}

/// A Contact ID message of `account` (its key, if it has one, encrypts it), timestamped now.
pub fn cid(account: &PeerAccount, seq: u32, event: &str) -> Value {
    json!({
        "account": account.account, "key": account.key, "seq": seq, "token": "ADM-CID",
        "event": event, "encrypt": account.key.is_some(), "ts_offset": 0,
    })
}

/// A NULL (link test) message of `account`, timestamped now.
pub fn null(account: &PeerAccount, seq: u32) -> Value {
    json!({
        "account": account.account, "key": account.key, "seq": seq, "token": "NULL",
        "encrypt": account.key.is_some(), "ts_offset": 0,
    })
}
