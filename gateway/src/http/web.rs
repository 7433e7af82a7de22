//! Serving the web pages: the station console (`/`) and the patrol volunteers' app (`/app/`,
//! with its service worker `/app/sw.js` and manifest), both built by Vite into `web/dist`, and
//! the console's settings (tile URL, station time zone).
//!
//! The pages are **embedded in the binary** when it is built ([`Pages`]): a copied binary
//! serves its own console, wherever it runs. `cargo build` still never depends on npm: a
//! binary built before `web/dist` existed carries no pages and answers the console's address
//! with a page that says how to build them, and the API works as before. `--web-dir` serves
//! another build from disk instead (a console under development, say).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use tower::ServiceExt;
use tower_http::services::ServeDir;

use super::{ApiError, AppState};

/// The console as `npm run build` left it in `web/dist` when this binary was built (nothing,
/// if it had not been built; `build.rs` rebuilds the gateway when it changes).
#[derive(rust_embed::RustEmbed)]
#[folder = "../web/dist"]
#[allow_missing = true]
struct Pages;

/// Whether this binary carries a built console.
pub fn has_embedded_pages() -> bool {
    Pages::get("index.html").is_some()
}

/// The console's settings, validated at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleConfig {
    /// A built console to serve from disk instead of the embedded one.
    pub web_dir: Option<PathBuf>,
    /// A Leaflet tile URL template (`https://…/{z}/{x}/{y}.png`); empty: no tiles, the map
    /// draws only the neighbourhood's own layer (offline stations).
    pub tile_url: String,
    /// Attribution the tile provider requires, shown on the map.
    pub tile_attribution: String,
    /// A local MBTiles file of raster tiles the gateway serves itself at `/tiles/{z}/{x}/{y}`
    /// (stations without internet); never together with `tile_url`. Opened and checked when
    /// the application is built ([`crate::tiles::TileSet::open`]).
    pub tiles: Option<PathBuf>,
    /// The station's IANA time zone; every time on the console is shown in it.
    pub time_zone: String,
    /// Who the station's public CAP messages say they are from (`serve --cap-sender`).
    pub cap_sender: crate::cap::CapSender,
    /// The station's contact printed on the 警情公示 bulletin (`serve --station-contact`).
    pub station_contact: String,
    /// The CJK font (TrueType or a collection's first face) the bulletin's PDF is set in
    /// (`serve --bulletin-font`); read when a PDF is asked for.
    pub bulletin_font: PathBuf,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            web_dir: None,
            tile_url: String::new(),
            tile_attribution: String::new(),
            tiles: None,
            time_zone: "Asia/Shanghai".to_owned(),
            cap_sender: crate::cap::CapSender::default(),
            station_contact: String::new(),
            bulletin_font: PathBuf::from(crate::bulletin::DEFAULT_FONT),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConsoleConfigError {
    #[error(
        "--tile-url must be an http(s) URL with {{z}}, {{x}} and {{y}} in it \
         (e.g. https://tile.example.org/{{z}}/{{x}}/{{y}}.png), or empty for no tiles; got {0:?}"
    )]
    TileUrl(String),
    #[error(
        "--tiles and --tile-url name two base maps: give one (--tiles FILE for a local MBTiles \
         file served by the gateway, --tile-url for a tile server)"
    )]
    TilesAndTileUrl,
    #[error("--time-zone must be an IANA time zone name such as Asia/Shanghai or UTC; got {0:?}")]
    TimeZone(String),
}

/// The console's command-line flags; flatten into `serve` and `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleArgs {
    /// Serve the station console from this directory (a `web/dist` built by `npm run build`)
    /// instead of the one embedded in the binary when it was built.
    #[arg(long, env = "TENWATCH_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Map tile URL template with {z}, {x}, {y}; empty: no tiles (the map draws households,
    /// clusters and streets itself).
    #[arg(long, env = "TENWATCH_TILE_URL", default_value = "")]
    pub tile_url: String,
    /// Attribution text the tile provider requires.
    #[arg(long, env = "TENWATCH_TILE_ATTRIBUTION", default_value = "")]
    pub tile_attribution: String,
    /// A local MBTiles file of raster tiles (png, jpg, webp) that the gateway serves itself
    /// at /tiles/{z}/{x}/{y} as the console's base map, for stations without internet; not
    /// with --tile-url. The file's own attribution is shown unless --tile-attribution is given.
    #[arg(long, env = "TENWATCH_TILES", value_name = "FILE")]
    pub tiles: Option<PathBuf>,
    /// The station's time zone (IANA name); the console shows every time in it.
    #[arg(long, env = "TENWATCH_TIME_ZONE", default_value = "Asia/Shanghai")]
    pub time_zone: String,
}

impl ConsoleArgs {
    pub fn into_config(self) -> Result<ConsoleConfig, ConsoleConfigError> {
        let tile_url = self.tile_url.trim().to_owned();
        if !tile_url.is_empty()
            && !((tile_url.starts_with("https://") || tile_url.starts_with("http://"))
                && ["{z}", "{x}", "{y}"].iter().all(|p| tile_url.contains(p)))
        {
            return Err(ConsoleConfigError::TileUrl(tile_url));
        }
        // An empty TENWATCH_TILES= in an environment file means no file, as for the URL.
        let tiles = self.tiles.filter(|p| !p.as_os_str().is_empty());
        if tiles.is_some() && !tile_url.is_empty() {
            return Err(ConsoleConfigError::TilesAndTileUrl);
        }
        let time_zone = self.time_zone.trim().to_owned();
        if !valid_time_zone_name(&time_zone) {
            return Err(ConsoleConfigError::TimeZone(time_zone));
        }
        Ok(ConsoleConfig {
            web_dir: self.web_dir,
            tile_url,
            tile_attribution: self.tile_attribution.trim().to_owned(),
            tiles,
            time_zone,
            cap_sender: crate::cap::CapSender::default(),
            station_contact: String::new(),
            bulletin_font: PathBuf::from(crate::bulletin::DEFAULT_FONT),
        })
    }
}

/// The shape of an IANA name ("Area/Location", "UTC"). Whether the zone exists is checked by
/// the browser's time-zone database, which the console uses for every time it shows; an
/// unknown one is reported on the page, which then falls back to Asia/Shanghai.
fn valid_time_zone_name(tz: &str) -> bool {
    !tz.is_empty()
        && tz.len() <= 64
        && tz.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
        })
}

/// Whether the console was built into `dir`.
pub fn is_built(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}

/// The router's fallback: unknown `/api/…` routes are JSON 404s; everything else is a file of
/// the built console (`/` is its `index.html`).
pub async fn fallback(State(s): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if path == "/api" || path.starts_with("/api/") {
        return ApiError::NotFound("no such route".into()).into_response();
    }
    if path == "/tiles" || path.starts_with("/tiles/") {
        return ApiError::NotFound("a tile's address is /tiles/{z}/{x}/{y}".into()).into_response();
    }
    let mut response = match &s.console.web_dir {
        Some(dir) if !is_built(dir) => return not_built(Some(dir)),
        Some(dir) => match ServeDir::new(dir).oneshot(req).await {
            Ok(response) => response.into_response(),
            // ServeDir's error type is Infallible.
            Err(never) => match never {},
        },
        None if !has_embedded_pages() => return not_built(None),
        None => embedded(&path, req.headers()),
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control(&path)),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(&s.console.tile_url)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// A file of the embedded console, as a static file server answers: a folder's `index.html`
/// for the folder (`/app` is sent to `/app/`), its content type, an ETag from its content
/// (`304` when the browser has it), `404` for anything else.
fn embedded(path: &str, request: &HeaderMap) -> Response {
    let name = path.trim_start_matches('/');
    let file = match name {
        "" => Pages::get("index.html"),
        n if n.ends_with('/') => Pages::get(&format!("{n}index.html")),
        n => match Pages::get(n) {
            Some(file) => Some(file),
            None if Pages::get(&format!("{n}/index.html")).is_some() => {
                return Redirect::temporary(&format!("{path}/")).into_response();
            }
            None => None,
        },
    };
    let Some(file) = file else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag));
    let mut headers = HeaderMap::new();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    if let Ok(mime) = HeaderValue::from_str(file.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    let body = match file.data {
        Cow::Borrowed(bytes) => axum::body::Body::from(bytes),
        Cow::Owned(bytes) => axum::body::Body::from(bytes),
    };
    (headers, body).into_response()
}

/// Vite names assets by content hash, so they never change; everything else always may. That
/// includes the volunteer app's service worker, whose name is fixed: a stale copy would keep
/// phones on old code. (Current browsers check it past the HTTP cache anyway; a proxy or an
/// older browser might not.) Its manifest and icons have fixed names too.
fn cache_control(path: &str) -> &'static str {
    if path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

/// Scripts only from the gateway itself; images also from the tile server, if one is set.
fn content_security_policy(tile_url: &str) -> String {
    let tiles = tile_origin(tile_url)
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:{tiles}; connect-src 'self'; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'self'"
    )
}

/// `https://{s}.tile.example.org/{z}/…` → `https://*.tile.example.org`.
fn tile_origin(tile_url: &str) -> Option<String> {
    let (scheme, rest) = tile_url.split_once("://")?;
    let host = rest.split('/').next()?.replace("{s}", "*");
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// The console's address when there is no console to serve: how to get one.
fn not_built(dir: Option<&Path>) -> Response {
    let what = match dir {
        Some(dir) => format!(
            "<p>The gateway is running and its API works, but <code>--web-dir</code> names \
             <code>{}</code>, which holds no built console.</p><p>Run <code>npm ci &amp;&amp; \
             npm run build</code> in <code>web/</code> and point <code>--web-dir</code> at its \
             <code>dist</code>, or leave the flag out to serve the pages built into the \
             binary.</p>",
            html_escape(&dir.display().to_string())
        ),
        None => "<p>The gateway is running and its API works, but this binary was built \
                 before its station console was: it carries no pages.</p><p>Run <code>npm ci \
                 &amp;&amp; npm run build</code> in <code>web/</code>, then build tenwatch again \
                 (<code>cargo build --release</code>; <code>scripts/demo.sh</code> does both), \
                 or start it with <code>--web-dir</code> pointing at a built console.</p>"
            .to_owned(),
    };
    let page = format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\">\
         <title>tenwatch: console not built</title>\
         <body style=\"font:16px system-ui,sans-serif;max-width:40em;margin:4em auto\">\
         <h1>站务台尚未构建 / console not built</h1>{what}</body></html>"
    );
    (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(tile_url: &str, time_zone: &str) -> ConsoleArgs {
        ConsoleArgs {
            web_dir: None,
            tile_url: tile_url.into(),
            tile_attribution: String::new(),
            tiles: None,
            time_zone: time_zone.into(),
        }
    }

    #[test]
    fn a_local_tile_file_or_a_tile_server_not_both() {
        let local = ConsoleArgs {
            tiles: Some("/srv/map.mbtiles".into()),
            ..args("", "UTC")
        };
        assert_eq!(
            local.clone().into_config().map(|c| c.tiles),
            Ok(Some(PathBuf::from("/srv/map.mbtiles")))
        );
        let both = ConsoleArgs {
            tile_url: "https://t.example/{z}/{x}/{y}.png".into(),
            ..local
        };
        assert_eq!(both.into_config(), Err(ConsoleConfigError::TilesAndTileUrl));
        let empty = ConsoleArgs {
            tiles: Some(PathBuf::new()),
            ..args("", "UTC")
        };
        assert_eq!(empty.into_config().map(|c| c.tiles), Ok(None));
    }

    #[test]
    fn settings_are_checked_at_start_up() {
        assert!(args("", "Asia/Shanghai").into_config().is_ok());
        assert!(args("https://t.example/{z}/{x}/{y}.png", "UTC")
            .into_config()
            .is_ok());
        assert_eq!(
            args("t.example/{z}/{x}/{y}", "UTC").into_config(),
            Err(ConsoleConfigError::TileUrl("t.example/{z}/{x}/{y}".into()))
        );
        assert!(args("https://t.example/tiles.png", "UTC")
            .into_config()
            .is_err());
        assert!(args("", "Asia/../etc").into_config().is_err());
        assert!(args("", "").into_config().is_err());
        assert!(args("", "America/Argentina/Buenos_Aires")
            .into_config()
            .is_ok());
    }

    #[test]
    fn only_hashed_assets_are_cached_for_long() {
        assert_eq!(
            cache_control("/assets/app-BBxsg5_9.js"),
            "public, max-age=31536000, immutable"
        );
        for path in [
            "/",
            "/index.html",
            "/app/",
            "/app/sw.js",
            "/app/manifest.webmanifest",
            "/app/icons/icon-192.png",
        ] {
            assert_eq!(cache_control(path), "no-cache", "{path}");
        }
    }

    #[test]
    fn tile_server_is_allowed_for_images_only() {
        assert_eq!(
            tile_origin("https://{s}.tile.example.org/{z}/{x}/{y}.png").as_deref(),
            Some("https://*.tile.example.org")
        );
        assert_eq!(tile_origin(""), None);
        let csp = content_security_policy("http://10.0.0.5:8081/{z}/{x}/{y}.png");
        assert!(csp.contains("img-src 'self' data: http://10.0.0.5:8081;"));
        assert!(csp.contains("script-src 'self';"));
    }
}
