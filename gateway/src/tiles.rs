//! A station's offline base map: raster tiles read from a local MBTiles file (MBTiles 1.3, the
//! SQLite tile container) that the gateway serves itself, for stations without internet.
//!
//! The file is checked once at start ([`TileSet::open`]): a SQLite file with a `tiles` table
//! of PNG, JPEG or WebP images; anything else is refused with words that say what is wrong.
//! It is opened read-only and `immutable` (no locks, no journal: the gateway never writes it,
//! and a station replaces the file and restarts), through a small pool of its own, apart
//! from the gateway's store. HTTP asks for a tile by its XYZ address ([`TileAddress`]); the
//! flip to MBTiles' TMS rows happens here, in one place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

/// The deepest zoom level a tile address may name: 2^30 tiles a side is far past any map
/// (street level is about 19), and keeps every coordinate in a `u32`.
pub const MAX_ZOOM: u8 = 30;

/// Connections of the tile pool: a console loads a screenful of tiles at once, each read is
/// one indexed lookup; a few readers keep up without competing with the store.
const POOL_SIZE: u32 = 4;

/// An XYZ tile address (the web's row order: row 0 at the north), checked to lie on the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileAddress {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TileAddressError {
    #[error("the tile's {0} must be a whole number (digits only), not {1:?}")]
    NotANumber(&'static str, String),
    #[error("zoom {0} is too deep: at most {MAX_ZOOM}")]
    ZoomTooDeep(String),
    #[error("{0} {1} is off the map: at zoom {2} it runs from 0 to {3}")]
    OffTheMap(&'static str, String, u8, u64),
}

impl TileAddress {
    /// Parses the three path segments of `/tiles/{z}/{x}/{y}`.
    pub fn parse(z: &str, x: &str, y: &str) -> Result<Self, TileAddressError> {
        let zoom = number("zoom", z)?;
        if zoom > u64::from(MAX_ZOOM) {
            return Err(TileAddressError::ZoomTooDeep(shown(z)));
        }
        let zoom = zoom as u8; // at most MAX_ZOOM
        let last = (1u64 << zoom) - 1;
        let column = number("column", x)?;
        if column > last {
            return Err(TileAddressError::OffTheMap("column", shown(x), zoom, last));
        }
        let row = number("row", y)?;
        if row > last {
            return Err(TileAddressError::OffTheMap("row", shown(y), zoom, last));
        }
        let (z, x, y) = (zoom, column, row);
        // Both at most 2^30 - 1.
        Ok(Self {
            z,
            x: x as u32,
            y: y as u32,
        })
    }

    /// The MBTiles (TMS) row of this tile: row 0 at the south.
    pub fn tms_row(self) -> u32 {
        ((1u64 << self.z) - 1 - u64::from(self.y)) as u32
    }
}

/// What the client sent, cut short: an error repeats it, never a page of it.
fn shown(s: &str) -> String {
    let mut cut: String = s.chars().take(24).collect();
    if cut.len() < s.len() {
        cut.push('…');
    }
    cut
}

/// Digits only (no sign, no spaces, no dots); one too long for a `u64` is off the map
/// whatever it says, and is read as `u64::MAX`.
fn number(what: &'static str, s: &str) -> Result<u64, TileAddressError> {
    let refuse = || TileAddressError::NotANumber(what, shown(s));
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    // More than 18 digits: certainly past 2^30, and still a u64.
    let digits = s.trim_start_matches('0');
    if digits.len() > 18 {
        return Ok(u64::MAX);
    }
    if digits.is_empty() {
        return Ok(0);
    }
    digits.parse().map_err(|_| refuse())
}

/// The raster formats a browser draws by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileFormat {
    Png,
    Jpeg,
    Webp,
}

impl TileFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            TileFormat::Png => "image/png",
            TileFormat::Jpeg => "image/jpeg",
            TileFormat::Webp => "image/webp",
        }
    }

    /// The metadata's `format` value (MBTiles 1.3 names `pbf`, `jpg`, `png`, `webp`).
    fn from_metadata(format: &str) -> Option<Result<Self, ()>> {
        match format.trim().to_ascii_lowercase().as_str() {
            "png" => Some(Ok(TileFormat::Png)),
            "jpg" | "jpeg" => Some(Ok(TileFormat::Jpeg)),
            "webp" => Some(Ok(TileFormat::Webp)),
            "" => None,
            // pbf (vector tiles) and anything else.
            _ => Some(Err(())),
        }
    }

    /// From a tile's first bytes, for a file whose metadata names no format.
    fn sniff(data: &[u8]) -> Option<Self> {
        if data.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(TileFormat::Png)
        } else if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(TileFormat::Jpeg)
        } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
            Some(TileFormat::Webp)
        } else {
            None
        }
    }
}

/// What the file says about itself, for the console: how to credit it and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct TileMeta {
    /// The metadata's `name`, for the logs.
    pub name: String,
    pub format: TileFormat,
    /// The credit the map's makers ask for, as text: MBTiles allows HTML in it (usually a
    /// link), which [`attribution_text`] reduces to its words; the console shows text only.
    pub attribution: String,
    /// `[west, south, east, north]` in degrees, when the file says.
    pub bounds: Option<[f64; 4]>,
    pub min_zoom: u8,
    pub max_zoom: u8,
}

/// Why a file cannot be the base map; said in words at start.
#[derive(Debug, thiserror::Error)]
pub enum TilesError {
    #[error("--tiles {0}: cannot open it: {1}")]
    Open(PathBuf, String),
    #[error(
        "--tiles {0}: not an MBTiles file ({1}); give a raster MBTiles file (a SQLite file \
         with a `tiles` table of PNG, JPEG or WebP images)"
    )]
    NotMbtiles(PathBuf, String),
    #[error(
        "--tiles {0}: its tiles are vector tiles (format {1:?}), which the console's map cannot \
         draw; give a raster MBTiles file (png, jpg or webp), or render the vector tiles to \
         raster ones first"
    )]
    NotRaster(PathBuf, String),
    #[error("--tiles {0}: it holds no tiles")]
    Empty(PathBuf),
    #[error("reading a tile: {0}")]
    Read(String),
}

/// An open MBTiles file of raster tiles.
#[derive(Debug, Clone)]
pub struct TileSet {
    /// Read-only connections to the file, apart from the store's.
    pool: SqlitePool,
    meta: TileMeta,
}

impl TileSet {
    /// Opens `path` read-only and checks that it is a raster MBTiles file.
    pub async fn open(path: &Path) -> Result<Self, TilesError> {
        let open_error =
            |e: &dyn std::fmt::Display| TilesError::Open(path.to_owned(), e.to_string());
        // Checked here so that a missing file is not mistaken for an empty database.
        std::fs::metadata(path).map_err(|e| open_error(&e))?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .immutable(true)
            .create_if_missing(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| open_error(&e))?;
        let not_mbtiles = |why: String| TilesError::NotMbtiles(path.to_owned(), why);
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name IN ('tiles', 'metadata')",
        )
        .fetch_all(&pool)
        .await
        .map_err(|e| not_mbtiles(reason(&e)))?;
        if !tables.iter().any(|t| t == "tiles") {
            return Err(not_mbtiles("it has no `tiles` table".into()));
        }
        let mut metadata = std::collections::HashMap::new();
        if tables.iter().any(|t| t == "metadata") {
            let rows = sqlx::query("SELECT name, value FROM metadata")
                .fetch_all(&pool)
                .await
                .map_err(|e| not_mbtiles(format!("its `metadata` table: {}", reason(&e))))?;
            for row in rows {
                let name: Option<String> = row.try_get(0).ok();
                let value: Option<String> = row.try_get(1).ok();
                if let (Some(name), Some(value)) = (name, value) {
                    metadata.insert(name.trim().to_ascii_lowercase(), value);
                }
            }
        }
        let get = |key: &str| metadata.get(key).map(String::as_str).unwrap_or("");

        let first: Option<Vec<u8>> = sqlx::query_scalar("SELECT tile_data FROM tiles LIMIT 1")
            .fetch_optional(&pool)
            .await
            .map_err(|e| not_mbtiles(format!("its `tiles` table: {}", reason(&e))))?;
        let Some(first) = first else {
            return Err(TilesError::Empty(path.to_owned()));
        };
        let format = match TileFormat::from_metadata(get("format")) {
            Some(Ok(format)) => format,
            Some(Err(())) => {
                return Err(TilesError::NotRaster(path.to_owned(), get("format").into()))
            }
            None => TileFormat::sniff(&first).ok_or_else(|| {
                not_mbtiles(
                    "its metadata names no format and its tiles are not PNG, JPEG or WebP images"
                        .into(),
                )
            })?,
        };

        // The zoom levels the file says it has, or else the ones its tiles have.
        let (lowest, deepest): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles")
                .fetch_one(&pool)
                .await
                .map_err(|e| not_mbtiles(format!("its `tiles` table: {}", reason(&e))))?;
        let zoom = |key: &str, found: Option<i64>| {
            get(key)
                .trim()
                .parse::<i64>()
                .ok()
                .or(found)
                .map_or(0, |z| z.clamp(0, i64::from(MAX_ZOOM)) as u8)
        };
        let min_zoom = zoom("minzoom", lowest);
        let max_zoom = zoom("maxzoom", deepest).max(min_zoom);
        let meta = TileMeta {
            name: get("name").trim().to_owned(),
            format,
            attribution: attribution_text(get("attribution")),
            bounds: parse_bounds(get("bounds")),
            min_zoom,
            max_zoom,
        };
        Ok(Self { pool, meta })
    }

    pub fn meta(&self) -> &TileMeta {
        &self.meta
    }

    /// The image of one tile, or `None` when the file has none there.
    pub async fn tile(&self, at: TileAddress) -> Result<Option<Vec<u8>>, TilesError> {
        sqlx::query_scalar(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
        )
        .bind(i64::from(at.z))
        .bind(i64::from(at.x))
        .bind(i64::from(at.tms_row()))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| TilesError::Read(e.to_string()))
    }
}

/// An attribution's words: HTML tags dropped (`<a href="…">© 测绘院</a>` → `© 测绘院`), the
/// common entities read, spaces collapsed, at most 300 characters.
fn attribution_text(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match (c, in_tag) {
            ('<', _) => in_tag = true,
            ('>', true) => in_tag = false,
            (c, false) => text.push(c),
            _ => {}
        }
    }
    let text = [
        ("&copy;", "©"),
        ("&nbsp;", " "),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(text, |t, (entity, c)| t.replace(entity, c));
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(300).collect()
}

/// SQLite's own words ("file is not a database"), without sqlx's wrapping.
fn reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// `"west,south,east,north"` in degrees, each on the globe, west before east and south
/// before north; anything else is treated as no bounds.
fn parse_bounds(s: &str) -> Option<[f64; 4]> {
    let parts: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()?;
    let [w, s, e, n]: [f64; 4] = parts.try_into().ok()?;
    let on_globe = (-180.0..=180.0).contains(&w)
        && (-180.0..=180.0).contains(&e)
        && (-90.0..=90.0).contains(&s)
        && (-90.0..=90.0).contains(&n);
    (on_globe && w < e && s < n).then_some([w, s, e, n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_on_the_map_parse_and_flip() {
        let a = TileAddress::parse("3", "2", "1").unwrap();
        assert_eq!((a.z, a.x, a.y, a.tms_row()), (3, 2, 1, 6));
        assert_eq!(TileAddress::parse("0", "0", "0").unwrap().tms_row(), 0);
        let deep = TileAddress::parse("30", "1073741823", "0").unwrap();
        assert_eq!(deep.tms_row(), 1_073_741_823);
        assert_eq!(TileAddress::parse("007", "0", "0").unwrap().z, 7);
    }

    #[test]
    fn addresses_off_the_map_or_not_numbers_are_refused() {
        use TileAddressError::*;
        assert_eq!(
            TileAddress::parse("3", "8", "0"),
            Err(OffTheMap("column", "8".into(), 3, 7))
        );
        assert_eq!(
            TileAddress::parse("3", "0", "8"),
            Err(OffTheMap("row", "8".into(), 3, 7))
        );
        assert_eq!(
            TileAddress::parse("31", "0", "0"),
            Err(ZoomTooDeep("31".into()))
        );
        assert_eq!(
            TileAddress::parse("9".repeat(30).as_str(), "0", "0")
                .unwrap_err()
                .to_string(),
            "zoom 999999999999999999999999… is too deep: at most 30"
        );
        assert!(matches!(
            TileAddress::parse("99999999999999999999999999", "0", "0"),
            Err(ZoomTooDeep(_))
        ));
        assert!(matches!(
            TileAddress::parse("2", "99999999999999999999999999", "0"),
            Err(OffTheMap("column", _, 2, 3))
        ));
        for bad in ["", "-1", "+1", "1.5", "1e3", " 1", "..", "%2e", "0x1", "一"] {
            assert!(
                matches!(
                    TileAddress::parse("2", bad, "0"),
                    Err(NotANumber("column", _))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn formats_from_metadata_and_from_bytes() {
        assert_eq!(TileFormat::from_metadata("PNG"), Some(Ok(TileFormat::Png)));
        assert_eq!(TileFormat::from_metadata("jpg"), Some(Ok(TileFormat::Jpeg)));
        assert_eq!(TileFormat::from_metadata("pbf"), Some(Err(())));
        assert_eq!(TileFormat::from_metadata(""), None);
        assert_eq!(
            TileFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(TileFormat::Webp)
        );
        assert_eq!(TileFormat::sniff(&[0x1f, 0x8b, 8]), None);
    }

    #[test]
    fn attribution_is_text() {
        assert_eq!(
            attribution_text(
                r#"<a href="https://example.org/copyright" target="_blank">&copy; 和平里测绘</a> &amp; contributors"#
            ),
            "© 和平里测绘 & contributors"
        );
        assert_eq!(attribution_text("  © 测绘院\n 2026 "), "© 测绘院 2026");
        assert_eq!(attribution_text(""), "");
    }

    #[test]
    fn bounds_are_west_south_east_north() {
        assert_eq!(
            parse_bounds("116.40, 39.95,116.42,39.96"),
            Some([116.40, 39.95, 116.42, 39.96])
        );
        assert_eq!(parse_bounds("116.42,39.95,116.40,39.96"), None);
        assert_eq!(parse_bounds("1,2,3"), None);
        assert_eq!(parse_bounds(""), None);
        assert_eq!(parse_bounds("-200,0,1,1"), None);
    }
}
