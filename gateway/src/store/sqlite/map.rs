//! [`MapStore`] on SQLite: what the station console's map draws of some zones, read from the
//! reader pool only.

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::domain::ZoneCode;
use crate::store::map::{MapCluster, MapDevice, MapHousehold, MapStore, MapZone, ZoneMap};
use crate::store::{StoreError, StoreResult};

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

        let clusters: Vec<MapCluster> =
            sqlx::query_as::<_, (String, String, String, Option<String>, Option<String>)>(
                "SELECT c.id, c.zone, c.name, c.leader_household, h.label AS leader_label \
             FROM clusters c LEFT JOIN households h ON h.id = c.leader_household \
             WHERE c.zone IN (SELECT value FROM json_each(?)) ORDER BY c.id",
            )
            .bind(&codes)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?
            .into_iter()
            .map(
                |(id, zone, name, leader_household, leader_label)| MapCluster {
                    id,
                    zone,
                    name,
                    leader_household,
                    leader_label,
                },
            )
            .collect();

        let households: Vec<MapHousehold> =
            sqlx::query_as::<_, (String, String, String, String, f64, f64)>(
                "SELECT h.id, h.cluster, h.label, h.address, h.lat, h.lon FROM households h \
             JOIN clusters c ON c.id = h.cluster \
             WHERE c.zone IN (SELECT value FROM json_each(?)) ORDER BY h.id",
            )
            .bind(&codes)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?
            .into_iter()
            .map(|(id, cluster, label, address, lat, lon)| MapHousehold {
                id,
                cluster,
                label,
                address,
                lat,
                lon,
            })
            .collect();

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
