//! Filling the registry: the demo neighbourhood (`admin seed-demo`) and the CSV import of
//! households (`admin import-households`), both writing device credentials once, as JSON.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::devices::{hash_secret, new_secret};
use crate::domain::{ClusterId, DeviceId, HouseholdId, ZoneCode};
use crate::store::{NewCluster, NewHousehold, Store, StoreError};

/// One device's login, as handed to the installer (and to `tenwatch-sim`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Credential {
    pub device: String,
    pub password: String,
    pub cluster: String,
    pub household: String,
    pub label: String,
    pub lat: f64,
    pub lon: f64,
}

pub const DEMO_ZONE: &str = "11010501";

/// Streets of the demo neighbourhood, running east–west about 200 m apart.
const STREETS: [&str; 8] = [
    "和平里东街",
    "青年湖南街",
    "地坛北街",
    "和平里中街",
    "安德里北街",
    "小黄庄北街",
    "和平里西街",
    "民旺南街",
];
const SURNAMES: [&str; 10] = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"];
/// What residents tell responders, on some households.
const NOTES: [&str; 4] = [
    "独居老人，行动不便 / elderly, lives alone, walks with difficulty",
    "家有心脏病患者，药在客厅抽屉 / heart patient, medicine in living-room drawer",
    "听力障碍，请敲门并拨打电话 / hard of hearing: knock and call",
    "有婴儿 / infant at home",
];

/// Base of the demo map (a residential part of Dongcheng, Beijing).
const BASE_LAT: f64 = 39.9560;
const BASE_LON: f64 = 116.4080;
/// Clusters per street before the next street starts.
const CLUSTERS_PER_STREET: usize = 6;

/// Creates the demo zone with `clusters` clusters of ten households, one device each.
pub async fn seed_demo(store: &dyn Store, clusters: usize) -> Result<Vec<Credential>, StoreError> {
    let zone = ZoneCode::parse(DEMO_ZONE).map_err(|e| StoreError::Invalid(e.to_string()))?;
    store
        .add_zone(&zone, "东城区 和平里街道 和平里社区 第一责任区")
        .await?;
    let mut credentials = Vec::with_capacity(clusters * 10);
    for c in 0..clusters {
        let street = STREETS[(c / CLUSTERS_PER_STREET) % STREETS.len()];
        let street_lat = BASE_LAT - (c / CLUSTERS_PER_STREET) as f64 * 0.0018;
        let block_lon = BASE_LON + (c % CLUSTERS_PER_STREET) as f64 * 0.0013;
        let cluster = parse_id(ClusterId::parse(&format!("{DEMO_ZONE}-{:03}", c + 1)))?;
        let first_number = (c % CLUSTERS_PER_STREET) * 10 + 1;
        store
            .add_cluster(&NewCluster {
                id: cluster.clone(),
                zone: zone.clone(),
                name: format!(
                    "{street} {}-{}号 十户联防组",
                    first_number,
                    first_number + 9
                ),
                leader_household: None,
            })
            .await?;
        let mut rows = Vec::with_capacity(10);
        for i in 0..10 {
            let number = first_number + i;
            // Odd numbers on the north side, even on the south, as on Chinese streets.
            let side = if number % 2 == 1 { 0.00012 } else { -0.00012 };
            let household = parse_id(HouseholdId::parse(&format!("{cluster}-{:02}", i + 1)))?;
            let device = parse_id(DeviceId::parse(&format!("d-{cluster}-{:02}", i + 1)))?;
            let label = format!("{street}{number}号");
            let (lat, lon) = (street_lat + side, block_lon + (i / 2) as f64 * 0.00026);
            let secret = new_secret();
            let seed = c * 10 + i;
            rows.push((
                NewHousehold {
                    id: household.clone(),
                    cluster: cluster.clone(),
                    label: label.clone(),
                    address: format!("北京市东城区{label}"),
                    lat,
                    lon,
                    notes: if seed % 7 == 3 {
                        NOTES[(seed / 7) % NOTES.len()].to_owned()
                    } else {
                        String::new()
                    },
                    contacts: format!(
                        "{}先生/女士 138{:08}",
                        SURNAMES[seed % SURNAMES.len()],
                        (seed * 7919) % 100_000_000
                    ),
                },
                device.clone(),
                hash_secret(secret.as_bytes()),
            ));
            credentials.push(Credential {
                device: device.to_string(),
                password: secret,
                cluster: cluster.to_string(),
                household: household.to_string(),
                label,
                lat,
                lon,
            });
        }
        store.add_households_with_devices(&rows).await?;
        store.set_cluster_leader(&cluster, &rows[0].0.id).await?;
    }
    Ok(credentials)
}

fn parse_id<T>(r: Result<T, crate::domain::ParseError>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Invalid(e.to_string()))
}

/// A CSV row that could not be imported: its line number (1 = header) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

#[derive(Debug, Deserialize)]
struct CsvHousehold {
    id: String,
    cluster: String,
    label: String,
    address: String,
    lat: String,
    lon: String,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    contacts: String,
}

/// The CSV header `import-households` expects.
pub const CSV_HEADER: &str = "id,cluster,label,address,lat,lon,notes,contacts";

/// Reads households from CSV. Every bad row is reported (line and reason) and nothing is
/// imported unless all rows are good.
pub fn parse_households_csv(data: &[u8]) -> Result<Vec<NewHousehold>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(data);
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for record in reader.deserialize::<CsvHousehold>() {
        let (line, row) = match record {
            Ok(row) => (0, row),
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(RowError {
                    line,
                    reason: format!("{e} (expected columns: {CSV_HEADER})"),
                });
                continue;
            }
        };
        let line = if line == 0 {
            (rows.len() + errors.len() + 2) as u64
        } else {
            line
        };
        match household_from_csv(row) {
            Ok(h) if !seen.insert(h.id.clone()) => errors.push(RowError {
                line,
                reason: format!("household {} appears twice", h.id),
            }),
            Ok(h) => rows.push(h),
            Err(reason) => errors.push(RowError { line, reason }),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

fn household_from_csv(row: CsvHousehold) -> Result<NewHousehold, String> {
    let coord = |name: &str, v: &str, limit: f64| -> Result<f64, String> {
        match v.parse::<f64>() {
            Ok(x) if x.is_finite() && x.abs() <= limit => Ok(x),
            _ => Err(format!("{name} {v:?} is not a number within ±{limit}")),
        }
    };
    if row.label.is_empty() {
        return Err("label is empty".into());
    }
    if row.address.is_empty() {
        return Err("address is empty".into());
    }
    Ok(NewHousehold {
        id: HouseholdId::parse(&row.id).map_err(|e| e.to_string())?,
        cluster: ClusterId::parse(&row.cluster).map_err(|e| e.to_string())?,
        lat: coord("lat", &row.lat, 90.0)?,
        lon: coord("lon", &row.lon, 180.0)?,
        label: row.label,
        address: row.address,
        notes: row.notes,
        contacts: row.contacts,
    })
}

/// Imports parsed households with one device each (`d-{household}`); returns the credentials.
pub async fn import_households(
    store: &dyn Store,
    households: Vec<NewHousehold>,
) -> Result<Vec<Credential>, StoreError> {
    let mut rows = Vec::with_capacity(households.len());
    let mut credentials = Vec::with_capacity(households.len());
    for h in households {
        let device = parse_id(DeviceId::parse(&format!("d-{}", h.id)))?;
        let secret = new_secret();
        credentials.push(Credential {
            device: device.to_string(),
            password: secret.clone(),
            cluster: h.cluster.to_string(),
            household: h.id.to_string(),
            label: h.label.clone(),
            lat: h.lat,
            lon: h.lon,
        });
        rows.push((h, device, hash_secret(secret.as_bytes())));
    }
    store.add_households_with_devices(&rows).await?;
    Ok(credentials)
}

/// Writes credentials as a JSON array, readable only by the owner: they are device passwords.
pub fn write_credentials(path: &Path, credentials: &[Credential]) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(credentials).map_err(std::io::Error::other)?;
    std::fs::write(path, json)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_errors_name_the_line_and_import_nothing() {
        let csv = format!(
            "{CSV_HEADER}\n\
             h1,c1,一号,和平路1号,39.9,116.4,,\n\
             h2,c1,二号,和平路2号,north,116.4,,\n\
             h/3,c1,三号,和平路3号,39.9,116.4,,\n\
             h1,c1,一号,和平路1号,39.9,116.4,,\n\
             h5,c1,,和平路5号,39.9,116.4,,\n"
        );
        let errors = parse_households_csv(csv.as_bytes()).unwrap_err();
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5, 6], "{errors:?}");
        assert!(errors[0].reason.contains("lat"));
        assert!(errors[1].reason.contains("household id"));
        assert!(errors[2].reason.contains("twice"));
        assert!(errors[3].reason.contains("label"));
    }

    #[test]
    fn good_csv_parses() {
        let csv = format!("{CSV_HEADER}\nh1,c1,一号,和平路1号,39.9,116.4,独居老人,王 138\n");
        let rows = parse_households_csv(csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].notes, "独居老人");
    }
}
