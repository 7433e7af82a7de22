//! [`MapStore`] in shared SQL: what the station console's map draws of some zones, read in
//! one snapshot so that a household added in between is on the map with its devices, or
//! not at all.

use async_trait::async_trait;

use super::super::Backend;
use super::backend;
use crate::domain::ZoneCode;
use crate::store::map::{MapCluster, MapDevice, MapHousehold, MapStore, MapZone, ZoneMap};
use crate::store::rows::Columns;
use crate::store::StoreResult;

#[async_trait]
impl MapStore for Backend {
    async fn zone_map(&self, zones: &[ZoneCode]) -> StoreResult<ZoneMap> {
        if zones.is_empty() {
            return Ok(ZoneMap::default());
        }
        let codes = Backend::zone_list(zones)?;
        let mut tx = self.snapshot().await?;

        let zones: Vec<(String, String)> = sqlx::query_as(concat!(
            "SELECT code, name FROM zones WHERE code ",
            in_list!("$1"),
            " ORDER BY code"
        ))
        .bind(&codes)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;

        let clusters: Vec<(String, String, String, Option<String>, Option<String>)> =
            sqlx::query_as(concat!(
                "SELECT c.id, c.zone, c.name, c.leader_household, h.label \
                 FROM clusters c LEFT JOIN households h ON h.id = c.leader_household \
                 WHERE c.zone ",
                in_list!("$1"),
                " ORDER BY c.id"
            ))
            .bind(&codes)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;

        let households: Vec<(String, String, String, String, f64, f64)> = sqlx::query_as(concat!(
            "SELECT h.id, h.cluster, h.label, h.address, h.lat, h.lon FROM households h \
             JOIN clusters c ON c.id = h.cluster WHERE c.zone ",
            in_list!("$1"),
            " ORDER BY h.id"
        ))
        .bind(&codes)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;

        let devices = sqlx::query(concat!(
            "SELECT d.id, d.household, d.enabled, d.online, d.battery, d.tamper, \
             d.last_heartbeat_ms, d.last_seen_ms, d.disconnect_reason FROM devices d \
             JOIN households h ON h.id = d.household JOIN clusters c ON c.id = h.cluster \
             WHERE c.zone ",
            in_list!("$1"),
            " ORDER BY d.id"
        ))
        .bind(&codes)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| {
            Ok(MapDevice {
                id: r.text("id")?,
                household: r.text("household")?,
                enabled: r.flag("enabled")?,
                online: r.flag("online")?,
                battery: r.opt_int("battery")?,
                tamper: r.opt_flag("tamper")?,
                last_heartbeat_ms: r.opt_int("last_heartbeat_ms")?,
                last_seen_ms: r.opt_int("last_seen_ms")?,
                disconnect_reason: r.opt_text("disconnect_reason")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
        tx.commit().await.map_err(backend)?;

        Ok(ZoneMap {
            zones: zones
                .into_iter()
                .map(|(code, name)| MapZone { code, name })
                .collect(),
            clusters: clusters
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
                .collect(),
            households: households
                .into_iter()
                .map(|(id, cluster, label, address, lat, lon)| MapHousehold {
                    id,
                    cluster,
                    label,
                    address,
                    lat,
                    lon,
                })
                .collect(),
            devices,
        })
    }
}
