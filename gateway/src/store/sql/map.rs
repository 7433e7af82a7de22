//! [`MapStore`] in shared SQL: what the station console's map draws of some zones, read in
//! one snapshot so that a household added in between is on the map with its devices, or
//! not at all.

use async_trait::async_trait;

use super::super::{Backend, Conn, Row, ZoneList};
use crate::domain::ZoneCode;
use crate::store::map::{MapStore, ZoneMap};
use crate::store::{rows, StoreResult};

const ZONES: &str = concat!(
    "SELECT code, name FROM zones WHERE code ",
    in_list!("$1"),
    " ORDER BY code"
);
const CLUSTERS: &str = concat!(
    "SELECT c.id, c.zone, c.name, c.leader_household, h.label AS leader_label \
     FROM clusters c LEFT JOIN households h ON h.id = c.leader_household WHERE c.zone ",
    in_list!("$1"),
    " ORDER BY c.id"
);
const HOUSEHOLDS: &str = concat!(
    "SELECT h.id, h.cluster, h.label, h.address, h.lat, h.lon FROM households h \
     JOIN clusters c ON c.id = h.cluster WHERE c.zone ",
    in_list!("$1"),
    " ORDER BY h.id"
);
const DEVICES: &str = concat!(
    "SELECT d.id, d.household, d.enabled, d.online, d.battery, d.tamper, \
     d.last_heartbeat_ms, d.last_seen_ms, d.disconnect_reason FROM devices d \
     JOIN households h ON h.id = d.household JOIN clusters c ON c.id = h.cluster WHERE c.zone ",
    in_list!("$1"),
    " ORDER BY d.id"
);

/// What one of the map's queries finds in the zones bound as `$1`.
async fn in_zones<T>(
    tx: &mut Conn,
    sql: &'static str,
    zones: &ZoneList,
    parse: fn(&Row) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let found = sqlx::query(sql).bind(zones).fetch_all(&mut *tx).await?;
    found.iter().map(parse).collect()
}

#[async_trait]
impl MapStore for Backend {
    async fn zone_map(&self, zones: &[ZoneCode]) -> StoreResult<ZoneMap> {
        if zones.is_empty() {
            return Ok(ZoneMap::default());
        }
        let codes = Backend::zone_list(zones)?;
        let mut tx = self.snapshot().await?;
        let map = ZoneMap {
            zones: in_zones(&mut tx, ZONES, &codes, rows::map_zone).await?,
            clusters: in_zones(&mut tx, CLUSTERS, &codes, rows::map_cluster).await?,
            households: in_zones(&mut tx, HOUSEHOLDS, &codes, rows::map_household).await?,
            devices: in_zones(&mut tx, DEVICES, &codes, rows::map_device).await?,
        };
        tx.commit().await?;
        Ok(map)
    }
}
