//! The test-side handle of the push-service emulator (`tests/push-emulator/emulator.py`): an
//! independent Web Push service that verifies VAPID, decrypts aes128gcm and records what it
//! got, so tests can check what the gateway really sent, and script 410/404/429/5xx/hang
//! answers to test how it copes.
//!
//! The emulator runs from a venv that `scripts/test.sh` installs; without it a test skips
//! (`require_push_emulator`), except on CI where it fails.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::tls::{certificate, free_port, Nginx};
use crate::venv::{repo_root, Venv};
use crate::DEADLINE;

/// The emulator's venv.
const VENV: Venv = Venv {
    dir: "push-emulator-venv",
    what: "the push emulator",
};

/// Whether a test that needs the push emulator may go on ([`Venv::require`]).
pub fn require_push_emulator() -> bool {
    VENV.require()
}

/// A running emulator, killed when dropped (and, should the test process die first, it
/// exits on its own when its standard input closes).
pub struct PushEmulator {
    /// `http://127.0.0.1:PORT`, as the emulator printed it.
    base_url: String,
    /// For the control calls; a short timeout, since the control API never hangs.
    http: reqwest::Client,
    /// Kept for `kill_on_drop` and for the stdin pipe whose closing also stops the emulator.
    _child: Child,
}

/// A subscription as a browser's `PushSubscription` gives it, flattened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The emulator's own handle for it, for the control calls.
    pub id: String,
    /// Where a sender POSTs its pushes.
    pub endpoint: String,
    /// The subscription's P-256 public key, uncompressed, base64url.
    pub p256dh: String,
    /// The 16-byte auth secret, base64url.
    pub auth: String,
}

impl Subscription {
    /// The subscription as `PushSubscription.toJSON()` shows it: what a browser posts to a
    /// web app's server.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "endpoint": self.endpoint,
            "expirationTime": null,
            "keys": { "p256dh": self.p256dh, "auth": self.auth },
        })
    }
}

/// How a subscription's push endpoint answers from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Behaviour {
    /// Verify, decrypt, record, 201.
    Ok,
    /// 410 Gone on every push: the user unsubscribed.
    Gone,
    /// 404 Not Found on every push.
    NotFound,
    /// 429 with `Retry-After: retry_after` for the next `count` pushes, then `Ok`.
    RateLimit { retry_after: u32, count: u32 },
    /// `status` (a 5xx) for the next `count` pushes, then `Ok`; `Retry-After` when given.
    Error {
        status: u16,
        count: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u32>,
    },
    /// 307 to subscription `to`'s endpoint, with a body no sender may show anyone.
    Redirect { to: String },
    /// Accept the connection and never answer. A push hung this way is never answered even
    /// once the behaviour changes (its connection is then closed); it is not recorded as a
    /// message.
    Hang,
}

/// Everything one subscription's endpoint saw.
#[derive(Debug, Clone, Deserialize)]
pub struct Messages {
    /// Pushes accepted (201), in order.
    pub messages: Vec<Message>,
    /// Every POST to the endpoint, answered or not.
    pub attempts: Vec<Attempt>,
    /// Pushes refused because of the request itself (bad VAPID, bad body, no TTL, too big).
    pub rejections: Vec<Rejection>,
}

/// One accepted push, decrypted.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// Wall-clock time the emulator accepted it (verified and decrypted), ms since the Unix
    /// epoch.
    pub received_at_ms: u64,
    /// Wall-clock time its request reached the emulator, before any checking: what the sender
    /// alone decides.
    pub arrived_at_ms: u64,
    /// The `TTL` header, seconds.
    pub ttl: u64,
    /// The `Urgency` header (`very-low`, `low`, `normal`, `high`), if sent.
    pub urgency: Option<String>,
    /// The `Topic` header, if sent.
    pub topic: Option<String>,
    /// The verified VAPID JWT's claims.
    pub jwt_claims: VapidClaims,
    /// Whether `aud` carried the endpoint's port (`web-push` 0.11 leaves it out; both pass).
    pub aud_includes_port: bool,
    /// The decrypted body as text; `None` for a push without a body.
    pub payload: Option<String>,
    /// The `k` of the `Authorization: vapid` header, base64url.
    pub vapid_public_key: String,
}

/// The VAPID claims the emulator checked (others, such as `iat`, are left out here).
#[derive(Debug, Clone, Deserialize)]
pub struct VapidClaims {
    pub aud: String,
    pub exp: u64,
    pub sub: String,
}

/// One POST to a push endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Attempt {
    pub at_ms: u64,
    /// The status answered; `None` while (or because) it hung.
    pub status: Option<u16>,
}

/// A push refused because of what it carried.
#[derive(Debug, Clone, Deserialize)]
pub struct Rejection {
    pub at_ms: u64,
    pub status: u16,
    pub reason: String,
}

/// What a benchmark reads from the emulator.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct EmulatorStats {
    /// Pushes accepted in all subscriptions.
    pub messages: u64,
    /// The emulator process's CPU time so far, seconds.
    pub cpu_s: f64,
}

/// The emulator's answer to `/subscribe`, before flattening.
#[derive(Deserialize)]
struct SubscribeReply {
    id: String,
    endpoint: String,
    keys: Keys,
}

#[derive(Deserialize)]
struct Keys {
    p256dh: String,
    auth: String,
}

impl PushEmulator {
    /// Starts an emulator on a free port. Fails with [`crate::venv::NotInstalled`] (panics on CI) when its
    /// venv is missing; check [`require_push_emulator`] first to skip instead.
    pub async fn start() -> anyhow::Result<PushEmulator> {
        Self::start_behind(None).await
    }

    /// Starts an emulator whose endpoints name `origin` (`https://127.0.0.1:PORT`, a TLS front
    /// that forwards to it) instead of its own address.
    pub async fn start_behind(origin: Option<&str>) -> anyhow::Result<PushEmulator> {
        VENV.installed()?;
        let script = repo_root().join("tests/push-emulator/emulator.py");
        let mut command = Command::new(VENV.python());
        command.arg(&script).args(["--port", "0"]);
        if let Some(origin) = origin {
            command.args(["--origin", origin]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .context("the push emulator did not say where it listens in time")??
            .ok_or_else(|| anyhow!("the push emulator exited before listening"))?;
        let Some(base_url) = line.strip_prefix("listening ") else {
            bail!("unexpected first line from the push emulator: {line:?}");
        };
        let http = reqwest::Client::builder().timeout(DEADLINE).build()?;
        Ok(PushEmulator {
            base_url: base_url.to_string(),
            http,
            _child: child,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A new subscription with fresh keys, as a browser's `pushManager.subscribe()` makes.
    pub async fn subscribe(&self) -> anyhow::Result<Subscription> {
        self.subscribe_with(None).await
    }

    /// A subscription restricted to one VAPID key (`applicationServerKey`, base64url): a push
    /// signed with another key gets 403.
    pub async fn subscribe_restricted(
        &self,
        application_server_key: &str,
    ) -> anyhow::Result<Subscription> {
        self.subscribe_with(Some(application_server_key)).await
    }

    async fn subscribe_with(&self, key: Option<&str>) -> anyhow::Result<Subscription> {
        let body = match key {
            Some(key) => serde_json::json!({ "applicationServerKey": key }),
            None => serde_json::json!({}),
        };
        let reply: SubscribeReply = self.control("subscribe", &body).await?;
        Ok(Subscription {
            id: reply.id,
            endpoint: reply.endpoint,
            p256dh: reply.keys.p256dh,
            auth: reply.keys.auth,
        })
    }

    /// Sets how subscription `id` answers pushes from now on; lets go of hung pushes.
    pub async fn behave(&self, id: &str, behaviour: Behaviour) -> anyhow::Result<()> {
        let _: serde_json::Value = self.control(&format!("behave/{id}"), &behaviour).await?;
        Ok(())
    }

    /// What subscription `id`'s endpoint has seen so far.
    pub async fn messages(&self, id: &str) -> anyhow::Result<Messages> {
        self.get_json(&format!("{}/messages/{id}", self.base_url), DEADLINE)
            .await
    }

    /// Waits until subscription `id` has accepted at least `n` pushes and returns them all;
    /// on timeout the error lists the attempts and rejections seen, to say why.
    pub async fn wait_for_messages(
        &self,
        id: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Message>> {
        // Polling: the pushes arrive in another process, which has no way to tell us.
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let seen = self.messages(id).await?;
            if seen.messages.len() >= n {
                return Ok(seen.messages);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} of {n} pushes to {id} after {timeout:?}; attempts {:?}, rejections {:?}",
                    seen.messages.len(),
                    seen.attempts,
                    seen.rejections
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Pushes accepted so far in all, and the emulator's own CPU time.
    pub async fn stats(&self) -> anyhow::Result<EmulatorStats> {
        self.get_json(&format!("{}/stats", self.base_url), DEADLINE)
            .await
    }

    /// Waits (in the emulator, no polling) until `n` pushes in all were accepted; then or at
    /// the timeout, the stats.
    pub async fn wait_total(&self, n: u64, timeout: Duration) -> anyhow::Result<EmulatorStats> {
        let url = format!(
            "{}/wait?messages={n}&timeout_ms={}",
            self.base_url,
            timeout.as_millis()
        );
        self.get_json(&url, timeout + DEADLINE).await
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        url: &str,
        timeout: Duration,
    ) -> anyhow::Result<T> {
        let response = self.http.get(url).timeout(timeout).send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!("GET {url}: {status}: {}", response.text().await?);
        }
        Ok(response.json().await?)
    }

    async fn control<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let url = format!("{}/{path}", self.base_url);
        let response = self.http.post(&url).json(body).send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!("POST {url}: {status}: {}", response.text().await?);
        }
        Ok(response.json().await?)
    }
}

/// The emulator behind a TLS front that speaks HTTP/2, as the browsers' push services do:
/// nginx on its own port, forwarding to the emulator, whose endpoints name the front. nginx
/// logs the connection and protocol of every request, so a test can see how a sender used it.
pub struct PushFront {
    /// The emulator behind the front; its subscriptions' endpoints are on [`PushFront::origin`].
    pub emulator: PushEmulator,
    origin: String,
    cert: PathBuf,
    log: PathBuf,
    _nginx: Nginx,
    _dir: tempfile::TempDir,
}

/// One request through the front, as nginx logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontRequest {
    /// nginx's serial number of the client connection that carried it.
    pub connection: u64,
    /// `HTTP/2.0`, `HTTP/1.1`, ...
    pub protocol: String,
    pub status: u16,
    pub path: String,
}

impl PushFront {
    pub async fn start() -> anyhow::Result<PushFront> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let port = free_port()?;
        let origin = format!("https://127.0.0.1:{port}");
        let emulator = PushEmulator::start_behind(Some(&origin)).await?;
        let (cert, key) = certificate(d).await?;
        let log = d.join("push-access.log");
        let upstream = emulator.base_url().trim_start_matches("http://");
        let site = format!(
            "log_format push '$connection $server_protocol $status $request_uri';\n\
             upstream emulator {{ server {upstream}; keepalive 32; }}\n\
             server {{\n  listen 127.0.0.1:{port} ssl http2;\n\
               ssl_certificate {cert};\n  ssl_certificate_key {key};\n\
               access_log {log} push;\n\
               location / {{\n    proxy_pass http://emulator;\n    proxy_http_version 1.1;\n\
                 proxy_set_header Connection \"\";\n  }}\n}}\n",
            cert = cert.display(),
            key = key.display(),
            log = log.display(),
        );
        let nginx = Nginx::start(d, &site)?;
        // Up when the emulator answers through the front (nginx starts in its own time).
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&cert)?)?)
            .timeout(DEADLINE)
            .build()?;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match client.get(format!("{origin}/healthz")).send().await {
                Ok(r) if r.status().is_success() => break,
                other => {
                    anyhow::ensure!(
                        tokio::time::Instant::now() < deadline,
                        "the push front does not answer: {other:?}; nginx: {}",
                        nginx.errors()
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Ok(PushFront {
            emulator,
            origin,
            cert,
            log,
            _nginx: nginx,
            _dir: dir,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The front's certificate (PEM), for the gateway to trust (`--push-ca-file`).
    pub fn certificate_pem(&self) -> anyhow::Result<Vec<u8>> {
        Ok(std::fs::read(&self.cert)?)
    }

    /// Every request nginx has logged, in order.
    pub fn requests(&self) -> anyhow::Result<Vec<FrontRequest>> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                anyhow::ensure!(f.len() == 4, "unexpected access log line {line:?}");
                Ok(FrontRequest {
                    connection: f[0].parse()?,
                    protocol: f[1].to_owned(),
                    status: f[2].parse()?,
                    path: f[3].to_owned(),
                })
            })
            .collect()
    }
}
