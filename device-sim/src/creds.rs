//! The credentials file: which devices to simulate, their passwords and their clusters.
//!
//! A JSON array of objects with at least `device`, `password`, `cluster`, `household`
//! (unknown fields such as `lat`/`lon` are ignored; `label` is used in printed lines).
//! An object `{"devices": [...]}` is accepted too.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::proto::{ClusterId, DeviceId, StringOrNumber};

/// A device password; kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(p: impl Into<String>) -> Self {
        Password(p.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// One simulated device.
#[derive(Clone, Debug)]
pub struct Credential {
    pub device: DeviceId,
    pub password: Password,
    pub cluster: ClusterId,
    pub household: String,
    /// Household label (address) printed by neighbours; falls back to `household`.
    pub label: Option<String>,
}

impl Credential {
    pub fn display_label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.household)
    }
}

#[derive(Deserialize)]
struct RawCredential {
    device: DeviceId,
    password: String,
    cluster: ClusterId,
    household: StringOrNumber,
    #[serde(default)]
    label: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawFile {
    List(Vec<RawCredential>),
    Wrapped { devices: Vec<RawCredential> },
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read credentials file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials file {path} is not a JSON array of {{device, password, cluster, household}} objects: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("credentials file {path} lists device {device} twice")]
    Duplicate { path: String, device: String },
    #[error("credentials file {path} lists no devices")]
    Empty { path: String },
}

/// Parses a credentials document; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Credential>, CredentialsError> {
    let raw: RawFile = serde_json::from_str(text).map_err(|source| CredentialsError::Parse {
        path: origin.to_owned(),
        source,
    })?;
    let list = match raw {
        RawFile::List(l) | RawFile::Wrapped { devices: l } => l,
    };
    if list.is_empty() {
        return Err(CredentialsError::Empty {
            path: origin.to_owned(),
        });
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for r in list {
        if !seen.insert(r.device.clone()) {
            return Err(CredentialsError::Duplicate {
                path: origin.to_owned(),
                device: r.device.to_string(),
            });
        }
        out.push(Credential {
            device: r.device,
            password: Password(r.password),
            cluster: r.cluster,
            household: r.household.0,
            label: r.label.filter(|l| !l.is_empty()),
        });
    }
    Ok(out)
}

/// Reads and parses a credentials file.
pub fn load(path: &Path) -> Result<Vec<Credential>, CredentialsError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
        path: origin.clone(),
        source,
    })?;
    parse(&text, &origin)
}

/// Cluster membership of the simulated devices, by index into the credential list.
#[derive(Clone, Debug, Default)]
pub struct Clusters {
    /// For each device index, the indexes of the other simulated devices of its cluster.
    neighbours: Vec<Vec<u32>>,
    /// Number of distinct clusters.
    count: usize,
}

impl Clusters {
    pub fn new(creds: &[Credential]) -> Self {
        let mut by_cluster: BTreeMap<&ClusterId, Vec<u32>> = BTreeMap::new();
        for (i, c) in creds.iter().enumerate() {
            by_cluster.entry(&c.cluster).or_default().push(i as u32);
        }
        let neighbours = creds
            .iter()
            .enumerate()
            .map(|(i, c)| {
                by_cluster
                    .get(&c.cluster)
                    .map(|members| {
                        members
                            .iter()
                            .copied()
                            .filter(|&m| m as usize != i)
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        Clusters {
            neighbours,
            count: by_cluster.len(),
        }
    }

    pub fn neighbours(&self, device: usize) -> &[u32] {
        self.neighbours
            .get(device)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn count(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_array_ignoring_unknown_fields() {
        let text = r#"[
          {"device":"d1","password":"p1","cluster":"c1","household":"h1","label":"和平路12号","lat":39.9,"lon":116.4},
          {"device":"d2","password":"p2","cluster":"c1","household":7},
          {"device":"d3","password":"p3","cluster":"c2","household":"h3","label":""}
        ]"#;
        let creds = parse(text, "test").expect("parses");
        assert_eq!(creds.len(), 3);
        assert_eq!(creds[0].display_label(), "和平路12号");
        assert_eq!(creds[1].household, "7");
        assert_eq!(creds[2].display_label(), "h3");
        assert!(!format!("{:?}", creds[0]).contains("p1"));
        let clusters = Clusters::new(&creds);
        assert_eq!(clusters.count(), 2);
        assert_eq!(clusters.neighbours(0), &[1]);
        assert_eq!(clusters.neighbours(2), &[] as &[u32]);
    }

    #[test]
    fn accepts_wrapped_form() {
        let text = r#"{"devices":[{"device":"d1","password":"p","cluster":"c","household":"h"}]}"#;
        assert_eq!(parse(text, "t").expect("parses").len(), 1);
    }

    #[test]
    fn refuses_bad_files_with_reasons() {
        assert!(matches!(
            parse("[]", "t"),
            Err(CredentialsError::Empty { .. })
        ));
        assert!(matches!(
            parse(r#"[{"device":"d1","password":"p"}]"#, "t"),
            Err(CredentialsError::Parse { .. })
        ));
        assert!(matches!(
            parse(
                r#"[{"device":"a/b","password":"p","cluster":"c","household":"h"}]"#,
                "t"
            ),
            Err(CredentialsError::Parse { .. })
        ));
        let dup = r#"[{"device":"d","password":"p","cluster":"c","household":"h"},
                      {"device":"d","password":"p","cluster":"c","household":"h"}]"#;
        assert!(matches!(
            parse(dup, "t"),
            Err(CredentialsError::Duplicate { .. })
        ));
    }
}
