//! Small MBTiles files for the offline base map's tests, written with sqlx as a map-making
//! tool would (MBTiles 1.3: `metadata(name, value)`, `tiles(zoom_level, tile_column,
//! tile_row, tile_data)` with TMS rows), and real PNG tiles to put in them.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// One stored tile: its TMS address (row 0 at the south) and its bytes.
pub struct StoredTile {
    pub z: u32,
    pub column: u32,
    pub tms_row: u32,
    pub data: Vec<u8>,
}

/// Writes a new MBTiles file at `path` with `metadata` pairs and `tiles`.
pub async fn write(
    path: &Path,
    metadata: &[(&str, &str)],
    tiles: &[StoredTile],
) -> anyhow::Result<()> {
    let mut db = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await?;
    sqlx::query("CREATE TABLE metadata (name TEXT, value TEXT)")
        .execute(&mut db)
        .await?;
    sqlx::query(
        "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)",
    )
    .execute(&mut db)
    .await?;
    sqlx::query("CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row)")
        .execute(&mut db)
        .await?;
    for (name, value) in metadata {
        sqlx::query("INSERT INTO metadata (name, value) VALUES (?, ?)")
            .bind(*name)
            .bind(*value)
            .execute(&mut db)
            .await?;
    }
    for t in tiles {
        sqlx::query(
            "INSERT INTO tiles (zoom_level, tile_column, tile_row, tile_data) VALUES (?, ?, ?, ?)",
        )
        .bind(i64::from(t.z))
        .bind(i64::from(t.column))
        .bind(i64::from(t.tms_row))
        .bind(&t.data)
        .execute(&mut db)
        .await?;
    }
    db.close().await?;
    Ok(())
}

/// A 256×256 PNG tile: `fill` with a one-pixel `edge`, as a two-colour palette image
/// (1 bit a pixel, the zlib stream in one stored block: 8448 bytes of rows).
pub fn png_tile(fill: [u8; 3], edge: [u8; 3]) -> Vec<u8> {
    const SIDE: usize = 256;
    let mut rows = Vec::with_capacity(SIDE * (1 + SIDE / 8));
    for y in 0..SIDE {
        rows.push(0); // filter: none
        for byte in 0..SIDE / 8 {
            let mut bits = 0u8;
            for bit in 0..8 {
                let x = byte * 8 + bit;
                if x == 0 || y == 0 || x == SIDE - 1 || y == SIDE - 1 {
                    bits |= 0x80 >> bit;
                }
            }
            rows.push(bits);
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let len = u16::try_from(rows.len()).expect("one stored block");
    zlib.push(1); // the last block, stored
    zlib.extend_from_slice(&len.to_le_bytes());
    zlib.extend_from_slice(&(!len).to_le_bytes());
    zlib.extend_from_slice(&rows);
    zlib.extend_from_slice(&adler32(&rows).to_be_bytes());

    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(SIDE as u32).to_be_bytes());
    ihdr.extend_from_slice(&(SIDE as u32).to_be_bytes());
    ihdr.extend_from_slice(&[1, 3, 0, 0, 0]); // 1 bit, palette, deflate, no filter, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"PLTE", &[fill, edge].concat());
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], body: &[u8]) {
    png.extend_from_slice(&(body.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(body);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

/// CRC-32 (ISO-HDLC), as PNG's chunks carry it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &d in data {
        a = (a + u32::from(d)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}
