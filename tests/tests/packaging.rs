//! What a deployer installs from `packaging/`, tried as shipped: the systemd unit passes
//! `systemd-analyze verify` with no warning, and the TLS proxy example (nginx, a certificate of
//! our own) in front of the real `tenwatch serve`, started with the example environment file,
//! carries the console, a sign-in whose cookie is `Secure`, and the station's live feed (a
//! WebSocket upgrade). Everything on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tenwatch_tests::tls::{certificate, free_port, Nginx};
use tenwatch_tests::*;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

fn packaging(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(file)
}

#[tokio::test]
async fn the_systemd_unit_verifies_without_a_warning() -> anyhow::Result<()> {
    if !require_tool("systemd-analyze") {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let env = dir.path().join("tenwatch.env");
    std::fs::copy(packaging("tenwatch.env"), &env)?;
    // The unit as shipped, pointed at the binary just built and at the copied environment.
    let unit = std::fs::read_to_string(packaging("tenwatch.service"))?
        .replace(
            "/usr/local/bin/tenwatch",
            &tenwatch_bin()?.display().to_string(),
        )
        .replace("/etc/tenwatch/tenwatch.env", &env.display().to_string());
    let path = dir.path().join("tenwatch.service");
    std::fs::write(&path, unit)?;
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    let about_ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("tenwatch.service"))
        .collect();
    assert!(about_ours.is_empty(), "warnings: {about_ours:?}");
    Ok(())
}

/// `KEY=VALUE` lines of an environment file (comments and blank lines skipped).
fn env_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_proxy_example_carries_the_console_a_secure_sign_in_and_the_feed(
) -> anyhow::Result<()> {
    if !require_tool("nginx") || !require_tool("openssl") {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let bin = tenwatch_bin()?;
    let (http, mqtt, https) = (free_port()?, free_port()?, free_port()?);
    let origin = format!("https://127.0.0.1:{https}");

    // A certificate for 127.0.0.1, as a station would get one for its name.
    let (cert, key) = certificate(d).await?;

    // The gateway, told what the example environment file says, on this test's ports.
    let data = d.join("data");
    let seeded = Command::new(&bin)
        .args(["admin", "seed-demo", "--clusters", "1", "--data-dir"])
        .arg(&data)
        .arg("--credentials-out")
        .arg(d.join("creds.json"))
        .stdout(Stdio::null())
        .status()
        .await?;
    assert!(seeded.success());
    let created = Command::new(&bin)
        .args([
            "admin",
            "create-operator",
            "--name",
            "duty",
            "--zone",
            "11010501",
        ])
        .args(["--password-env", "DUTY_PASSWORD", "--data-dir"])
        .arg(&data)
        .env("DUTY_PASSWORD", "a long station password")
        .stdout(Stdio::null())
        .status()
        .await?;
    assert!(created.success());
    let mut serve = Command::new(&bin);
    serve.args(["serve", "--data-dir"]).arg(&data);
    for (k, v) in env_file(&packaging("tenwatch.env"))? {
        serve.env(k, v);
    }
    serve
        .env("TENWATCH_HTTP_LISTEN", format!("127.0.0.1:{http}"))
        .env("TENWATCH_MQTT_LISTEN", format!("127.0.0.1:{mqtt}"))
        .env("TENWATCH_PUBLIC_ORIGIN", &origin)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("serve.log"))?)
        .kill_on_drop(true);
    // Killed when the test ends, as nginx below (kill_on_drop).
    let _gateway = serve.spawn()?;

    // nginx with the example's server block, made to run as this user on this test's ports.
    let site = std::fs::read_to_string(packaging("nginx-tenwatch.conf"))?
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"))
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{https} ssl;"))
        .replace("listen [::]:443 ssl;", "")
        .replace("listen 80;", &format!("listen 127.0.0.1:{};", free_port()?))
        .replace("listen [::]:80;", "")
        .replace(
            "/etc/ssl/tenwatch/fullchain.pem",
            &cert.display().to_string(),
        )
        .replace("/etc/ssl/tenwatch/privkey.pem", &key.display().to_string());
    let nginx = Nginx::start(d, &site)?;

    let roots = reqwest::Certificate::from_pem(&std::fs::read(&cert)?)?;
    let client = reqwest::Client::builder()
        .add_root_certificate(roots)
        .use_rustls_tls()
        .timeout(Duration::from_secs(10))
        .build()?;
    // Up through the proxy (the gateway and nginx start in their own time).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match client.get(format!("{origin}/healthz")).send().await {
            Ok(r) if r.status().is_success() => break,
            other => {
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "no answer through the proxy: {other:?}; gateway log: {}; nginx log: {}",
                    std::fs::read_to_string(d.join("serve.log")).unwrap_or_default(),
                    nginx.errors()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    // The console's page.
    let page = client.get(format!("{origin}/")).send().await?;
    assert_eq!(page.status(), 200);
    assert!(page.text().await?.contains("<html"), "the console's page");

    // Signing in from the station's own origin: the cookie is Secure, as HTTPS asks.
    let signed = client
        .post(format!("{origin}/api/session"))
        .header("origin", &origin)
        .json(&serde_json::json!({ "name": "duty", "password": "a long station password" }))
        .send()
        .await?;
    assert_eq!(signed.status(), 200);
    let cookie = signed
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
    let session = cookie.split(';').next().unwrap_or_default().to_owned();
    let body: serde_json::Value = signed.json().await?;
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    let me = client
        .get(format!("{origin}/api/session"))
        .header("cookie", &session)
        .send()
        .await?;
    assert_eq!(
        me.status(),
        200,
        "the session cookie works through the proxy"
    );

    // The live feed: a WebSocket upgrade, over TLS, through the proxy, answered by the gateway
    // with its first message.
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(&cert)?)) {
        roots.add(c?)?;
    }
    let config = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", https)).await?;
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let tls = connector.connect(name, tcp).await?;
    let request = format!("wss://127.0.0.1:{https}/api/feed");
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            request.as_str(),
        )?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, answer) = tokio_tungstenite::client_async(request, tls).await?;
    assert_eq!(answer.status(), 101);
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the feed closed"))??;
    let Message::Text(text) = first else {
        anyhow::bail!("expected the feed's snapshot, got {first:?}");
    };
    let hello: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(hello["type"], "snapshot", "{hello}");
    Ok(())
}
