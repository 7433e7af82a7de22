//! The offline base map, as a station without internet meets it: `--tiles FILE` names a
//! raster MBTiles file, the gateway serves its tiles at `/tiles/{z}/{x}/{y}` (web row order,
//! no session), and the console's settings point the map at them; a file that is not one
//! (or holds vector tiles) is refused at start, in words.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use tenwatch_tests::mbtiles::{self, png_tile, StoredTile};
use tenwatch_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RED: [u8; 3] = [200, 40, 40];
const BLUE: [u8; 3] = [40, 40, 200];
const WHITE: [u8; 3] = [255, 255, 255];

/// A map of two tiles at zoom 2, both in column 1: TMS row 0 (the southernmost, web row 3)
/// is red, TMS row 3 (the northernmost, web row 0) is blue.
async fn two_tile_map(path: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let (south, north) = (png_tile(RED, WHITE), png_tile(BLUE, WHITE));
    mbtiles::write(
        path,
        &[
            ("name", "和平里 offline"),
            ("format", "png"),
            // MBTiles allows HTML here; the console is given the words.
            (
                "attribution",
                "<a href=\"https://map.example.org/\">&copy; 和平里测绘</a>",
            ),
            ("bounds", "116.40,39.95,116.42,39.96"),
            ("minzoom", "2"),
            ("maxzoom", "2"),
        ],
        &[
            StoredTile {
                z: 2,
                column: 1,
                tms_row: 0,
                data: south.clone(),
            },
            StoredTile {
                z: 2,
                column: 1,
                tms_row: 3,
                data: north.clone(),
            },
        ],
    )
    .await?;
    Ok((south, north))
}

/// The test's PNG decoded by tools we did not write: Python's zlib and struct read its chunks
/// (each CRC checked) and inflate its rows; `file` names it.
async fn check_png_outside(png: &[u8], dir: &Path) -> anyhow::Result<()> {
    let path = dir.join("tile.png");
    std::fs::write(&path, png)?;
    if require_tool("python3") {
        let script = r#"
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n", "signature"
i, idat, kinds = 8, b"", []
while i < len(d):
    n, = struct.unpack(">I", d[i:i + 4]); kind = d[i + 4:i + 8]; body = d[i + 8:i + 8 + n]
    crc, = struct.unpack(">I", d[i + 8 + n:i + 12 + n])
    assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, kind
    kinds.append(kind.decode())
    if kind == b"IHDR": w, h, depth, colour = struct.unpack(">IIBB", body[:10])
    if kind == b"IDAT": idat += body
    i += 12 + n
rows = zlib.decompress(idat)
print(w, h, depth, colour, len(rows), ",".join(kinds))
"#;
        let out = tokio::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&path)
            .output()
            .await?;
        assert!(
            out.status.success(),
            "python3 could not read the PNG: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "256 256 1 3 8448 IHDR,PLTE,IDAT,IEND"
        );
    }
    if require_tool("file") {
        let out = tokio::process::Command::new("file")
            .arg("-b")
            .arg(&path)
            .output()
            .await?;
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.starts_with("PNG image data, 256 x 256"),
            "file says {said}"
        );
    }
    Ok(())
}

/// GET without a session, as the map's image requests are.
async fn get(url: &str) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Vec<u8>)> {
    let response = reqwest::get(url).await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Ok((status, headers, response.bytes().await?.to_vec()))
}

/// A request line sent exactly as written (no client tidies its dots away).
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_mbtiles_file_is_served_as_the_consoles_base_map() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("map.mbtiles");
    let (south, north) = two_tile_map(&file).await?;
    check_png_outside(&south, dir.path()).await?;
    let tiles = file.clone();
    let app = spawn_app_with(1, move |c| c.console.tiles = Some(tiles)).await?;

    // The row flip: TMS row r is web row 2^z - 1 - r.
    let (status, headers, body) = get(&app.url("/tiles/2/1/3")).await?;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/png");
    assert!(headers["cache-control"].to_str()?.contains("max-age="));
    assert_eq!(body, south, "web row 3 is the file's TMS row 0");
    let (status, _, body) = get(&app.url("/tiles/2/1/0")).await?;
    assert_eq!(status, 200);
    assert_eq!(body, north, "web row 0 is the file's TMS row 3");

    // No tile there: 404, in words.
    let (status, headers, body) = get(&app.url("/tiles/2/0/0")).await?;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/json");
    let error: Value = serde_json::from_slice(&body)?;
    assert_eq!(
        error["error"],
        "the base map has no tile at zoom 2, column 0, row 0"
    );

    // Not a tile's address: 400, saying what is wrong.
    for (path, says) in [
        (
            "/tiles/2/4/0",
            "column 4 is off the map: at zoom 2 it runs from 0 to 3",
        ),
        ("/tiles/2/0/4", "row 4 is off the map"),
        ("/tiles/31/0/0", "zoom 31 is too deep: at most 30"),
        ("/tiles/99999999999999999999999999/0/0", "is too deep"),
        ("/tiles/2/18446744073709551616/0", "off the map"),
        ("/tiles/2/x/0", "column must be a whole number"),
        ("/tiles/2/-1/0", "column must be a whole number"),
        ("/tiles/2/1.0/0", "column must be a whole number"),
        ("/tiles/2/1/3.png", "row must be a whole number"),
        ("/tiles/z/1/3", "zoom must be a whole number"),
        ("/tiles/2/1/%20", "row must be a whole number"),
        // Percent-encoded dots and slashes stay inside one coordinate.
        (
            "/tiles/2/..%2F..%2F..%2Fetc%2Fpasswd/0",
            "column must be a whole number",
        ),
    ] {
        let (status, _, body) = get(&app.url(path)).await?;
        let error: Value = serde_json::from_slice(&body).with_context(|| path.to_owned())?;
        assert_eq!(status, 400, "{path}: {error}");
        let text = error["error"].as_str().unwrap_or_default();
        assert!(text.contains(says), "{path}: {text}");
    }
    // A path that climbs out is no tile's address, and no file of the host (sent as written:
    // an HTTP client would tidy the dots away first).
    for (path, answered) in [
        ("/tiles/2/../../../../etc/passwd", "HTTP/1.1 404"),
        ("/tiles/../../etc/passwd", "HTTP/1.1 404"),
        ("/tiles/2/1", "HTTP/1.1 404"),
        ("/tiles/2/1/%2e%2e", "HTTP/1.1 400"),
        ("/tiles/2/%2e%2e/%2e%2e", "HTTP/1.1 400"),
    ] {
        let answer = raw_get(app.http, path).await?;
        assert!(answer.starts_with(answered), "{path}: {answer}");
        assert!(answer.contains("\"error\""), "{path}: {answer}");
        assert!(!answer.contains("root:"), "{path}: {answer}");
    }

    // The console is told to draw these tiles, credited and framed as the file says.
    let config: Value = reqwest::get(app.url("/api/console/config"))
        .await?
        .json()
        .await?;
    assert_eq!(config["tile_url"], "/tiles/{z}/{x}/{y}");
    assert_eq!(config["tile_source"], "local");
    assert_eq!(config["tile_attribution"], "© 和平里测绘");
    assert_eq!(config["tile_min_zoom"], 2);
    assert_eq!(config["tile_max_zoom"], 2);
    assert_eq!(
        config["tile_bounds"],
        json!([[39.95, 116.40], [39.96, 116.42]])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tiles_the_route_says_so_and_the_console_draws_no_base_map() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let (status, _, body) = get(&app.url("/tiles/2/1/3")).await?;
    assert_eq!(status, 404);
    let error: Value = serde_json::from_slice(&body)?;
    assert!(
        error["error"]
            .as_str()
            .unwrap_or_default()
            .contains("--tiles"),
        "{error}"
    );
    let config: Value = reqwest::get(app.url("/api/console/config"))
        .await?
        .json()
        .await?;
    assert_eq!(config["tile_url"], "");
    assert_eq!(config["tile_source"], "none");
    Ok(())
}

/// `tenwatch serve --tiles FILE` with more arguments; what it said on stderr when it ended.
async fn serve_refuses(data: &Path, more: &[&str]) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(tenwatch_bin()?)
            .arg("serve")
            .arg("--data-dir")
            .arg(data)
            .args([
                "--mqtt-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(more)
            .env("RUST_LOG", "error")
            .env_remove("TENWATCH_TILE_URL")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("tenwatch serve was expected to refuse at start, and ran on")??;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "tenwatch serve {more:?} started: {stderr}"
    );
    Ok(stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_no_raster_map_is_refused_at_start_in_words() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let data = d.join("data");
    let arg = |p: &Path| p.display().to_string();

    // Not SQLite at all.
    let text = d.join("notes.mbtiles");
    std::fs::write(&text, "street names, one a line\n".repeat(100))?;
    let said = serve_refuses(&data, &["--tiles", &arg(&text)]).await?;
    assert!(said.contains("not an MBTiles file"), "{said}");
    assert!(said.contains("not a database"), "{said}");

    // SQLite, but no tiles table.
    let other = d.join("other.sqlite");
    {
        use sqlx::{ConnectOptions, Connection};
        let mut db = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&other)
            .create_if_missing(true)
            .connect()
            .await?;
        sqlx::query("CREATE TABLE households (id TEXT)")
            .execute(&mut db)
            .await?;
        db.close().await?;
    }
    let said = serve_refuses(&data, &["--tiles", &arg(&other)]).await?;
    assert!(
        said.contains("not an MBTiles file (it has no `tiles` table)"),
        "{said}"
    );

    // Vector tiles, which the console's map cannot draw.
    let vector = d.join("vector.mbtiles");
    mbtiles::write(
        &vector,
        &[("name", "vector"), ("format", "pbf")],
        &[StoredTile {
            z: 0,
            column: 0,
            tms_row: 0,
            data: vec![0x1f, 0x8b, 8, 0],
        }],
    )
    .await?;
    let said = serve_refuses(&data, &["--tiles", &arg(&vector)]).await?;
    assert!(said.contains("vector tiles"), "{said}");
    assert!(said.contains("raster MBTiles file"), "{said}");

    // A missing file.
    let said = serve_refuses(&data, &["--tiles", &arg(&d.join("nowhere.mbtiles"))]).await?;
    assert!(said.contains("cannot open it"), "{said}");

    // A good file and a tile server: two base maps.
    let good = d.join("good.mbtiles");
    two_tile_map(&good).await?;
    let said = serve_refuses(
        &data,
        &[
            "--tiles",
            &arg(&good),
            "--tile-url",
            "https://tiles.example.org/{z}/{x}/{y}.png",
        ],
    )
    .await?;
    assert!(
        said.contains("--tiles and --tile-url name two base maps"),
        "{said}"
    );
    Ok(())
}
