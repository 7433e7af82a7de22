//! What the station console's map draws: the zones an operator may see, their clusters with
//! leaders, the households with positions, and each device's health. The [`MapStore`] trait
//! and its types.

use async_trait::async_trait;
use serde::Serialize;

use super::StoreResult;
use crate::domain::ZoneCode;

/// A police station's zone. The map's ids stay plain text: the page only draws them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MapZone {
    pub code: String,
    pub name: String,
}

/// A cluster, coloured as one on the map.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MapCluster {
    pub id: String,
    /// The zone whose page lists it.
    pub zone: String,
    pub name: String,
    /// The leader's (十户长) household id, if one is set.
    pub leader_household: Option<String>,
    /// The leader's household label, for the legend and the alert panel.
    pub leader_label: Option<String>,
}

/// A household's marker.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MapHousehold {
    pub id: String,
    pub cluster: String,
    /// The marker's caption, and the address its popup shows.
    pub label: String,
    pub address: String,
    /// Where the marker stands (degrees).
    pub lat: f64,
    pub lon: f64,
}

/// A device's health as the console shows it; the page decides "low battery" and "silent".
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MapDevice {
    pub id: String,
    /// The household whose marker shows it.
    pub household: String,
    /// Disabled devices are refused at login; the page greys them out.
    pub enabled: bool,
    /// The edge holds a session for it now.
    pub online: bool,
    /// Percent, from the last heartbeat.
    pub battery: Option<i64>,
    /// The tamper switch as the last heartbeat reported it; `None` before the first.
    pub tamper: Option<bool>,
    /// When it last sent a heartbeat, and when the edge last saw it come or go.
    pub last_heartbeat_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    /// Why its last session ended (`keepalive_lost`, `gateway restart`, …).
    pub disconnect_reason: Option<String>,
}

/// The console map of some zones.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ZoneMap {
    /// Each sorted by id.
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
