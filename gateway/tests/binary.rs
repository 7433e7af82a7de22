//! The `tenwatch` binary as a deployer handles it: copied on its own to another directory, it
//! still serves the station console and the volunteers' app, because it carries them; a
//! service manager's SIGTERM stops it in order; it says so when a setting is left a placeholder.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header;
use reqwest::redirect::Policy;
use reqwest::StatusCode;

/// The gateway process, stopped when the test ends however it ends.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

#[tokio::test]
async fn a_copied_binary_serves_the_console_it_was_built_with() -> anyhow::Result<()> {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/dist");
    if !tenwatch_gateway::http::web::has_embedded_pages() {
        let why = "this build carries no console: build web/ first (npm ci && npm run build), \
                   then the gateway";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPED a_copied_binary_serves_the_console_it_was_built_with: {why}");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let binary = dir.path().join("tenwatch");
    std::fs::copy(env!("CARGO_BIN_EXE_tenwatch"), &binary)?;
    let data = dir.path().join("data");
    let seeded = Command::new(&binary)
        .current_dir(dir.path())
        .args(["admin", "seed-demo", "--clusters", "1", "--data-dir"])
        .arg(&data)
        .arg("--credentials-out")
        .arg(dir.path().join("credentials.json"))
        .stdout(Stdio::null())
        .status()?;
    assert!(seeded.success(), "seed-demo failed");
    let port = free_port();
    let _served = Served(
        Command::new(&binary)
            .current_dir(dir.path())
            .args(["serve", "--mqtt-listen", "127.0.0.1:0", "--http-listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    until_serving(port).await?;

    // The console, byte for byte as `npm run build` wrote it.
    let page = http.get(url("/")).send().await?;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html");
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
    assert_eq!(
        page.text().await?,
        std::fs::read_to_string(built.join("index.html"))?
    );

    // The volunteers' app: its folder, and its service worker as a script.
    let app = http.get(url("/app")).send().await?;
    assert_eq!(app.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(app.headers()[header::LOCATION], "/app/");
    let app = http.get(url("/app/")).send().await?;
    assert_eq!(app.status(), StatusCode::OK);
    assert_eq!(
        app.text().await?,
        std::fs::read_to_string(built.join("app/index.html"))?
    );
    let sw = http.get(url("/app/sw.js")).send().await?;
    assert_eq!(sw.status(), StatusCode::OK);
    assert_eq!(sw.headers()[header::CONTENT_TYPE], "text/javascript");

    // A hashed asset: cached for good, and not sent again to a browser that has it.
    let asset = std::fs::read_dir(built.join("assets"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.ends_with(".js"))
        .expect("the build has a script");
    let first = http.get(url(&format!("/assets/{asset}"))).send().await?;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        first.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    let etag = first.headers()[header::ETAG].clone();
    let again = http
        .get(url(&format!("/assets/{asset}")))
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await?;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // Nothing else is made up.
    let missing = http.get(url("/assets/no-such-file.js")).send().await?;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    Ok(())
}

/// Polls `/healthz` until the gateway on `port` answers (or fails after 30 s).
async fn until_serving(port: u16) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            _ if Instant::now() < deadline => tokio::task::yield_now().await,
            other => anyhow::bail!("the gateway never answered /healthz: {other:?}"),
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_stops_serve_in_order_and_a_placeholder_vapid_subject_is_named(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tenwatch"))
        .args(["serve", "--mqtt-listen", "127.0.0.1:0", "--http-listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Err(e) = until_serving(port).await {
        let mut child = Served(child);
        let _ = child.0.kill();
        return Err(e);
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(term.success(), "kill -TERM failed");
    let exited = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    let log = String::from_utf8_lossy(&exited.stderr);
    assert!(
        exited.status.success(),
        "SIGTERM must end serve with success, got {:?}; log:\n{log}",
        exited.status
    );
    assert!(log.contains("SIGTERM: shutting down"), "{log}");
    // A quiet start and stop: nothing went wrong, so nothing says it did (the router's
    // readiness probe once made rumqttd log an error at every start).
    assert!(
        !log.contains("ERROR"),
        "an error where nothing was wrong: {log}"
    );
    assert!(
        log.contains("--vapid-subject is the placeholder"),
        "the placeholder contact is named at start: {log}"
    );
    Ok(())
}
