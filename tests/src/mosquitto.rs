//! A real Mosquitto 2 broker (Debian's package) for the external-broker tests: loopback
//! only, no anonymous clients, the password and ACL files `tenwatch admin export-mosquitto`
//! makes. Killed when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use crate::DEADLINE;

/// Where Debian installs the broker (it is not on a user's PATH).
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// The gateway's user on the test broker.
pub const GATEWAY_USER: &str = "tenwatch-gateway";
pub const GATEWAY_PASSWORD: &str = "gateway-broker-password";

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Whether a Mosquitto test may go on: on CI a missing broker fails the test.
pub fn require_mosquitto() -> bool {
    if Path::new(MOSQUITTO).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{MOSQUITTO} is required on CI but is not installed (scripts/test.sh installs the mosquitto package)");
    }
    eprintln!("SKIPPED: {MOSQUITTO} is not installed; run scripts/test.sh to install it");
    false
}

pub struct Mosquitto {
    pub addr: SocketAddr,
    /// Its configuration, password and ACL files, and its log.
    pub dir: PathBuf,
    child: Child,
}

impl Mosquitto {
    /// Starts a broker in `dir` with the given files; returns once it accepts connections.
    pub async fn start(dir: &Path, password_file: &Path, acl_file: &Path) -> anyhow::Result<Self> {
        // Mosquitto cannot listen on port 0: take a free port from the OS and hand it over.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let conf = dir.join("mosquitto.conf");
        // Started as root, Mosquitto drops to its own user, who may not read our files.
        let user = if is_root() { "user root\n" } else { "" };
        let log = dir.join("mosquitto.log");
        std::fs::write(
            &conf,
            format!(
                "{user}listener {port} 127.0.0.1\n\
                 allow_anonymous false\n\
                 password_file {}\n\
                 acl_file {}\n\
                 persistence false\n\
                 max_queued_messages 100000\n\
                 max_inflight_messages 100\n\
                 log_dest file {}\n\
                 log_type error\nlog_type warning\nlog_type notice\n",
                password_file.display(),
                acl_file.display(),
                log.display()
            ),
        )?;
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting mosquitto")?;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("mosquitto did not listen on {addr}: {said}");
            }
            // A process starting up has no event to await but its port.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            addr,
            dir: dir.to_path_buf(),
            child,
        })
    }

    /// What the broker logged (refused logins and ACL denials show here).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }

    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}
