//! TLS on loopback for the tests: a certificate for 127.0.0.1 made by openssl, and nginx (a
//! server we did not write) run as this user with a server block of the test's, in front of
//! something the test started.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use tokio::process::{Child, Command};

/// A free port on 127.0.0.1 for a server that cannot be told to take port 0 (nginx): bound,
/// read and let go.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A server certificate for 127.0.0.1 (P-256, a day long) and its key, written into `dir`:
/// (`cert.pem`, `key.pem`), as a station would get one for its name.
pub async fn certificate(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256"])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        // A server's certificate, not a CA's (what `req -x509` makes by default).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .await?;
    anyhow::ensure!(made.success(), "openssl could not make a certificate");
    Ok((cert, key))
}

/// nginx in the foreground with `site` (server blocks, at the `http` level) as its whole
/// configuration, its files in `dir`; killed when dropped.
pub struct Nginx {
    _child: Child,
    dir: PathBuf,
}

impl Nginx {
    pub fn start(dir: &Path, site: &str) -> anyhow::Result<Nginx> {
        std::fs::write(dir.join("site.conf"), site)?;
        let temp = dir.join("nginx-temp");
        std::fs::create_dir_all(&temp)?;
        let main = format!(
            "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n\
               fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n\
               include {dir}/site.conf;\n}}\n",
            dir = dir.display(),
            t = temp.display()
        );
        std::fs::write(dir.join("nginx.conf"), main)?;
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("nginx.log"))?)
            .kill_on_drop(true)
            .spawn()
            .context("starting nginx")?;
        Ok(Nginx {
            _child: child,
            dir: dir.to_owned(),
        })
    }

    /// What nginx wrote to its error log, for a failure's message.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.join("nginx-error.log")).unwrap_or_default()
    }
}
