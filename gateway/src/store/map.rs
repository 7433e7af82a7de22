//! What the station console's map draws: the zones an operator may see, their clusters with
//! leaders, the households with positions, and each device's health. The [`MapStore`] trait
//! and its SQLite implementation, read from the reader pool only.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::Row;

use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};
use crate::domain::ZoneCode;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MapZone {
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, sqlx::FromRow)]
pub struct MapCluster {
    pub id: String,
    pub zone: String,
    pub name: String,
    /// The leader's (十户长) household id, if one is set.
    pub leader_household: Option<String>,
    /// The leader's household label, for the legend and the alert panel.
    pub leader_label: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, sqlx::FromRow)]
pub struct MapHousehold {
    pub id: String,
    pub cluster: String,
    pub label: String,
    pub address: String,
    pub lat: f64,
    pub lon: f64,
}

/// A device's health as the console shows it; the page decides "low battery" and "silent".
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MapDevice {
    pub id: String,
    pub household: String,
    pub enabled: bool,
    pub online: bool,
    /// Percent, from the last heartbeat.
    pub battery: Option<i64>,
    pub tamper: Option<bool>,
    pub last_heartbeat_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    pub disconnect_reason: Option<String>,
}

/// The console map of some zones.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ZoneMap {
    pub zones: Vec<MapZone>,
    pub clusters: Vec<MapCluster>,
    pub households: Vec<MapHousehold>,
    pub devices: Vec<MapDevice>,
}

#[async_trait]
pub trait MapStore: Send + Sync + 'static {
    /// Everything the map shows of these zones (an operator's own zones only).
    async fn zone_map(&self, zones: &[ZoneCode]) -> StoreResult<ZoneMap>;
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

#[async_trait]
impl MapStore for SqliteStore {
    async fn zone_map(&self, zones: &[ZoneCode]) -> StoreResult<ZoneMap> {
        if zones.is_empty() {
            return Ok(ZoneMap::default());
        }
        let codes = serde_json::to_string(&zones.iter().map(ZoneCode::as_str).collect::<Vec<_>>())
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let mut conn = self.reader.acquire().await.map_err(backend)?;

        let zones = sqlx::query(
            "SELECT code, name FROM zones WHERE code IN (SELECT value FROM json_each(?)) \
             ORDER BY code",
        )
        .bind(&codes)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| {
            Ok(MapZone {
                code: r.try_get("code")?,
                name: r.try_get("name")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(backend)?;

        let clusters: Vec<MapCluster> = sqlx::query_as(
            "SELECT c.id, c.zone, c.name, c.leader_household, h.label AS leader_label \
             FROM clusters c LEFT JOIN households h ON h.id = c.leader_household \
             WHERE c.zone IN (SELECT value FROM json_each(?)) ORDER BY c.id",
        )
        .bind(&codes)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;

        let households: Vec<MapHousehold> = sqlx::query_as(
            "SELECT h.id, h.cluster, h.label, h.address, h.lat, h.lon FROM households h \
             JOIN clusters c ON c.id = h.cluster \
             WHERE c.zone IN (SELECT value FROM json_each(?)) ORDER BY h.id",
        )
        .bind(&codes)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;

        let devices = sqlx::query(
            "SELECT d.id, d.household, d.enabled, d.online, d.battery, d.tamper, \
             d.last_heartbeat_ms, d.last_seen_ms, d.disconnect_reason FROM devices d \
             JOIN households h ON h.id = d.household JOIN clusters c ON c.id = h.cluster \
             WHERE c.zone IN (SELECT value FROM json_each(?)) ORDER BY d.id",
        )
        .bind(&codes)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| {
            Ok(MapDevice {
                id: r.try_get("id")?,
                household: r.try_get("household")?,
                enabled: r.try_get::<i64, _>("enabled")? != 0,
                online: r.try_get::<i64, _>("online")? != 0,
                battery: r.try_get("battery")?,
                tamper: r.try_get::<Option<i64>, _>("tamper")?.map(|t| t != 0),
                last_heartbeat_ms: r.try_get("last_heartbeat_ms")?,
                last_seen_ms: r.try_get("last_seen_ms")?,
                disconnect_reason: r.try_get("disconnect_reason")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(backend)?;

        Ok(ZoneMap {
            zones,
            clusters,
            households,
            devices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn map_shows_only_the_asked_zones() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(&crate::store::sqlite_url_in(dir.path())).await?;
        crate::seed::seed_demo(&store, 2).await?;
        let other = ZoneCode::parse("11010502")?;
        store.add_zone(&other, "第二责任区").await?;

        let demo = ZoneCode::parse(crate::seed::DEMO_ZONE)?;
        let map = store.zone_map(std::slice::from_ref(&demo)).await?;
        assert_eq!(map.zones.len(), 1);
        assert_eq!(map.clusters.len(), 2);
        assert_eq!(map.households.len(), 20);
        assert_eq!(map.devices.len(), 20);
        assert!(map.devices.iter().all(|d| !d.online && d.enabled));

        let map = store.zone_map(&[other]).await?;
        assert_eq!(map.zones.len(), 1);
        assert!(map.households.is_empty() && map.devices.is_empty());
        assert_eq!(store.zone_map(&[]).await?, ZoneMap::default());
        Ok(())
    }
}
