//! [`MapStore`] on PostgreSQL: what the station console's map draws of some zones.

use async_trait::async_trait;
use sqlx::Row;

use super::{zone_array, PgStore};
use crate::domain::ZoneCode;
use crate::store::map::{MapCluster, MapDevice, MapHousehold, MapStore, MapZone, ZoneMap};
use crate::store::{StoreError, StoreResult};

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

#[async_trait]
impl MapStore for PgStore {
    async fn zone_map(&self, zones: &[ZoneCode]) -> StoreResult<ZoneMap> {
        if zones.is_empty() {
            return Ok(ZoneMap::default());
        }
        let codes = zone_array(zones);
        // One snapshot for the four reads: a household added in between is on the map with
        // its devices, or not at all.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;

        let zones = sqlx::query("SELECT code, name FROM zones WHERE code = ANY($1) ORDER BY code")
            .bind(&codes)
            .fetch_all(&mut *tx)
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
             WHERE c.zone = ANY($1) ORDER BY c.id",
            )
            .bind(&codes)
            .fetch_all(&mut *tx)
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
             JOIN clusters c ON c.id = h.cluster WHERE c.zone = ANY($1) ORDER BY h.id",
            )
            .bind(&codes)
            .fetch_all(&mut *tx)
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
             WHERE c.zone = ANY($1) ORDER BY d.id",
        )
        .bind(&codes)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| {
            Ok(MapDevice {
                id: r.try_get("id")?,
                household: r.try_get("household")?,
                enabled: r.try_get("enabled")?,
                online: r.try_get("online")?,
                battery: r.try_get("battery")?,
                tamper: r.try_get("tamper")?,
                last_heartbeat_ms: r.try_get("last_heartbeat_ms")?,
                last_seen_ms: r.try_get("last_seen_ms")?,
                disconnect_reason: r.try_get("disconnect_reason")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;

        Ok(ZoneMap {
            zones,
            clusters,
            households,
            devices,
        })
    }
}
