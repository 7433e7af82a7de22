//! `tenwatch admin …`: zones, clusters, households, devices and their secrets, operators and
//! volunteers, the CSV import, and Mosquitto's files for an external broker.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::StoreArgs;
use crate::accounts::{self, Role};
use crate::domain::{ClusterId, DeviceId, HouseholdId, ZoneCode};
use crate::seed::{self, write_credentials};
use crate::store::{NewCluster, NewHousehold};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create a demo zone with N clusters of ten households and write device credentials.
    SeedDemo {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, default_value_t = 10)]
        clusters: usize,
        /// Where to write the devices' credentials (JSON).
        #[arg(long)]
        credentials_out: PathBuf,
    },
    /// Add a zone (8-digit code: district, street, community, area).
    AddZone {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
    },
    /// Add a cluster of neighbouring households.
    AddCluster {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        id: String,
        #[arg(long)]
        zone: String,
        #[arg(long)]
        name: String,
    },
    /// Add a household.
    AddHousehold {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        id: String,
        #[arg(long)]
        cluster: String,
        /// What neighbours' units show, e.g. "和平路12号".
        #[arg(long)]
        label: String,
        #[arg(long)]
        address: String,
        #[arg(long, allow_hyphen_values = true)]
        lat: f64,
        #[arg(long, allow_hyphen_values = true)]
        lon: f64,
        /// Notes for responders (elderly living alone, medical needs).
        #[arg(long, default_value = "")]
        notes: String,
        #[arg(long, default_value = "")]
        contacts: String,
        /// Make this household the cluster leader (十户长).
        #[arg(long)]
        leader: bool,
    },
    /// Add a device to a household; prints its password once.
    AddDevice {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        id: String,
        #[arg(long)]
        household: String,
    },
    /// Create a station operator (monitor or admin) who sees the given zones.
    CreateOperator {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[arg(long, value_parser = ["monitor", "admin"], default_value = "monitor")]
        role: String,
        /// A zone the operator may see (repeatable).
        #[arg(long = "zone", required = true)]
        zones: Vec<String>,
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// Create a patrol volunteer of one zone.
    CreateVolunteer {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[arg(long)]
        zone: String,
        #[arg(long, default_value = "")]
        display_name: String,
        #[arg(long, default_value = "")]
        phone: String,
    },
    /// Import households from CSV (id,cluster,label,address,lat,lon,notes,contacts), one device each.
    ImportHouseholds {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        credentials_out: PathBuf,
    },
    /// Write Mosquitto's password and ACL files for the devices of a credentials file (as
    /// written by seed-demo or import-households; each is checked against the registry), and
    /// for the gateway's own broker user.
    ExportMosquitto {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        credentials: PathBuf,
        #[arg(long)]
        password_file: PathBuf,
        #[arg(long)]
        acl_file: PathBuf,
        /// The gateway's user on the broker (give `tenwatch serve --mqtt-url` the same).
        #[arg(long, default_value = "tenwatch-gateway")]
        gateway_user: String,
        #[arg(long)]
        gateway_password: Option<String>,
        /// Read the gateway's broker password from this environment variable instead.
        #[arg(long)]
        gateway_password_env: Option<String>,
    },
    /// List devices (id, household, cluster, zone, enabled, state, last seen).
    ListDevices {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this zone's.
        #[arg(long)]
        zone: Option<String>,
    },
    /// Refuse a device's logins from its next one on (a lost or stolen unit).
    DisableDevice {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        id: String,
    },
    /// Let a disabled device log in again.
    EnableDevice {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        id: String,
    },
    /// Give a device a new password (printed once); the old one stops working at once.
    RotateDeviceSecret {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        id: String,
    },
    /// Remove a device that never raised or received an alert (else: disable it).
    DeleteDevice {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        id: String,
    },
    /// List operators and volunteers (name, kind, role, zones, disabled).
    ListAccounts {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Stop an account signing in; its open sessions end at once.
    DisableAccount {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        name: String,
    },
    /// Let a disabled account sign in again.
    EnableAccount {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        name: String,
    },
    /// Set a new password for an account; its open sessions end.
    ResetPassword {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Remove an account that never responded to an alert nor checked in (else: disable it).
    DeleteAccount {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        name: String,
    },
    /// Register an alarm panel's SIA DC-09 account for a household: its alarms become the
    /// household's presses, its link tests the heartbeats of its own device `sia-{ACCOUNT}`.
    AddSiaAccount {
        #[command(flatten)]
        store: StoreArgs,
        /// The panel's account number (3 to 16 hex digits).
        #[arg(long)]
        account: String,
        #[arg(long)]
        household: String,
        /// The panel's AES-128 key, 32 hex digits: its messages must then be encrypted.
        /// Prefer --key-env so it stays out of the shell history.
        #[arg(long, conflicts_with = "key_env")]
        key: Option<String>,
        /// Read the key from this environment variable.
        #[arg(long)]
        key_env: Option<String>,
    },
    /// List the alarm panels' SIA accounts (account, household, device, encrypted or not).
    ListSiaAccounts {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// What an admin command that changes one row says: "`what` `done`", or "no such `what`".
fn report(found: bool, what: std::fmt::Arguments<'_>, done: &str) -> anyhow::Result<()> {
    if !found {
        bail!("no such {what}");
    }
    println!("{what} {done}");
    Ok(())
}

/// An account's password, given on the command line or (better) through the environment.
#[derive(Args)]
pub struct PasswordArgs {
    /// The password; prefer --password-env so it stays out of the shell history.
    #[arg(long, conflicts_with = "password_env")]
    password: Option<String>,
    /// Read the password from this environment variable.
    #[arg(long)]
    password_env: Option<String>,
}

impl PasswordArgs {
    fn read(self) -> anyhow::Result<String> {
        password_from(self.password, self.password_env)
    }
}

fn password_from(password: Option<String>, env: Option<String>) -> anyhow::Result<String> {
    match (password, env) {
        (Some(p), _) => Ok(p),
        (None, Some(var)) => std::env::var(&var)
            .with_context(|| format!("the environment variable {var} holds no password")),
        (None, None) => bail!("give --password or --password-env VAR"),
    }
}

/// Which of a pair of commands sharing one arm was given.
enum CmdKind {
    Enable,
    Disable,
    Other,
}

pub async fn admin(cmd: AdminCommand) -> anyhow::Result<()> {
    let cmd_kind = match &cmd {
        AdminCommand::EnableDevice { .. } | AdminCommand::EnableAccount { .. } => CmdKind::Enable,
        AdminCommand::DisableDevice { .. } | AdminCommand::DisableAccount { .. } => {
            CmdKind::Disable
        }
        _ => CmdKind::Other,
    };
    match cmd {
        AdminCommand::SeedDemo {
            store,
            clusters,
            credentials_out,
        } => {
            let s = store.open().await?;
            let credentials = seed::seed_demo(s.as_ref(), clusters).await?;
            write_credentials(&credentials_out, &credentials)
                .with_context(|| format!("writing {}", credentials_out.display()))?;
            println!(
                "created zone {} with {clusters} clusters and {} devices; credentials in {}",
                seed::DEMO_ZONE,
                credentials.len(),
                credentials_out.display()
            );
        }
        AdminCommand::CreateOperator {
            store,
            name,
            password,
            role,
            zones,
            display_name,
        } => {
            let password = password.read()?;
            let zones = zones
                .iter()
                .map(|z| ZoneCode::parse(z))
                .collect::<Result<Vec<_>, _>>()?;
            let role = role.parse::<Role>()?;
            let s = store.open().await?;
            let who = accounts::create_operator(
                s.as_ref(),
                &name,
                &password,
                role,
                &zones,
                &display_name,
            )
            .await?;
            println!(
                "created operator {} ({role}) for zones {:?}",
                who.name,
                zones.iter().map(|z| z.as_str()).collect::<Vec<_>>()
            );
        }
        AdminCommand::CreateVolunteer {
            store,
            name,
            password,
            zone,
            display_name,
            phone,
        } => {
            let password = password.read()?;
            let zone = ZoneCode::parse(&zone)?;
            let s = store.open().await?;
            let who = accounts::create_volunteer(
                s.as_ref(),
                &name,
                &password,
                &zone,
                &display_name,
                &phone,
            )
            .await?;
            println!("created volunteer {} in zone {zone}", who.name);
        }
        AdminCommand::AddZone { store, code, name } => {
            let zone = ZoneCode::parse(&code)?;
            store.open().await?.add_zone(&zone, &name).await?;
            println!("added zone {zone}");
        }
        AdminCommand::AddCluster {
            store,
            id,
            zone,
            name,
        } => {
            let cluster = NewCluster {
                id: ClusterId::parse(&id)?,
                zone: ZoneCode::parse(&zone)?,
                name,
                leader_household: None,
            };
            store.open().await?.add_cluster(&cluster).await?;
            println!("added cluster {id}");
        }
        AdminCommand::AddHousehold {
            store,
            id,
            cluster,
            label,
            address,
            lat,
            lon,
            notes,
            contacts,
            leader,
        } => {
            let household = NewHousehold {
                id: HouseholdId::parse(&id)?,
                cluster: ClusterId::parse(&cluster)?,
                label,
                address,
                lat,
                lon,
                notes,
                contacts,
            };
            let s = store.open().await?;
            s.add_household(&household).await?;
            if leader {
                s.set_cluster_leader(&household.cluster, &household.id)
                    .await?;
            }
            println!("added household {id}");
        }
        AdminCommand::AddDevice {
            store,
            id,
            household,
        } => {
            let device = DeviceId::parse(&id)?;
            let secret = crate::devices::new_secret();
            let hash = crate::devices::hash_secret(secret.as_bytes());
            store
                .open()
                .await?
                .add_device(&device, &HouseholdId::parse(&household)?, &hash)
                .await?;
            println!("added device {device}; its password (shown once): {secret}");
        }
        AdminCommand::ImportHouseholds {
            store,
            file,
            credentials_out,
        } => {
            let data =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let households = match seed::parse_households_csv(&data) {
                Ok(rows) => rows,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{}: {e}", file.display());
                    }
                    bail!("{} bad rows: nothing imported", errors.len());
                }
            };
            let s = store.open().await?;
            let credentials = seed::import_households(s.as_ref(), households).await?;
            write_credentials(&credentials_out, &credentials)
                .with_context(|| format!("writing {}", credentials_out.display()))?;
            println!(
                "imported {} households with one device each; credentials in {}",
                credentials.len(),
                credentials_out.display()
            );
        }
        AdminCommand::AddSiaAccount {
            store,
            account,
            household,
            key,
            key_env,
        } => {
            use crate::store::sia::{SiaAccount, SiaAccountId, SiaKey};
            let account = SiaAccountId::parse(&account)?;
            let key = match (key, key_env) {
                (Some(k), _) => Some(k),
                (None, Some(var)) => Some(
                    std::env::var(&var)
                        .with_context(|| format!("the environment variable {var} holds no key"))?,
                ),
                (None, None) => None,
            };
            let key = key.as_deref().map(SiaKey::parse_hex).transpose()?;
            let registered = SiaAccount {
                device: account.device()?,
                household: HouseholdId::parse(&household)?,
                key,
                account,
            };
            // The panel's device never logs in over MQTT: a secret nobody is shown.
            let hash = crate::devices::hash_secret(crate::devices::new_secret().as_bytes());
            store
                .open()
                .await?
                .add_sia_account(&registered, &hash, crate::domain::now_ms())
                .await?;
            println!(
                "added SIA account {} for household {} (device {}, {})",
                registered.account,
                registered.household,
                registered.device,
                if registered.key.is_some() {
                    "encrypted: AES-128"
                } else {
                    "in the clear"
                }
            );
        }
        AdminCommand::ListSiaAccounts { store } => {
            let accounts = store.open().await?.list_sia_accounts().await?;
            println!("account\thousehold\tdevice\tencrypted");
            for a in &accounts {
                println!(
                    "{}\t{}\t{}\t{}",
                    a.account,
                    a.household,
                    a.device,
                    a.key.is_some()
                );
            }
            eprintln!("{} SIA account(s)", accounts.len());
        }
        AdminCommand::ListDevices { store, zone } => {
            let zone = zone.as_deref().map(ZoneCode::parse).transpose()?;
            let devices = store.open().await?.list_devices(zone.as_ref()).await?;
            println!("device\thousehold\tcluster\tzone\tenabled\tstate\tlast seen (UTC)\tlabel");
            for d in &devices {
                let seen = d
                    .last_seen_ms
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{seen}\t{}",
                    d.id, d.household, d.cluster, d.zone, d.enabled, d.state, d.label
                );
            }
            eprintln!("{} device(s)", devices.len());
        }
        AdminCommand::DisableDevice { store, id } | AdminCommand::EnableDevice { store, id } => {
            let enable = matches!(cmd_kind, CmdKind::Enable);
            let device = DeviceId::parse(&id)?;
            let changed = store
                .open()
                .await?
                .set_device_enabled(&device, enable)
                .await?;
            report(
                changed,
                format_args!("device {device}"),
                if enable {
                    "enabled"
                } else {
                    "disabled: its next login is refused"
                },
            )?;
        }
        AdminCommand::RotateDeviceSecret { store, id } => {
            let device = DeviceId::parse(&id)?;
            let secret = crate::devices::new_secret();
            let hash = crate::devices::hash_secret(secret.as_bytes());
            let changed = store
                .open()
                .await?
                .set_device_secret(&device, &hash)
                .await?;
            report(
                changed,
                format_args!("device {device}"),
                &format!("has a new password (shown once): {secret}"),
            )?;
        }
        AdminCommand::DeleteDevice { store, id } => {
            let device = DeviceId::parse(&id)?;
            let deleted = store.open().await?.delete_device(&device).await?;
            report(deleted, format_args!("device {device}"), "removed")?;
        }
        AdminCommand::ListAccounts { store } => {
            let accounts = store.open().await?.list_accounts().await?;
            println!("name\tkind\trole\tzones\tdisabled\tdisplay name");
            for (a, disabled) in &accounts {
                let zones: Vec<&str> = a.zones.iter().map(|z| z.as_str()).collect();
                println!(
                    "{}\t{}\t{}\t{}\t{disabled}\t{}",
                    a.name,
                    a.kind.as_str(),
                    a.role.map(|r| r.as_str()).unwrap_or("-"),
                    zones.join(","),
                    a.display_name
                );
            }
            eprintln!("{} account(s)", accounts.len());
        }
        AdminCommand::DisableAccount { store, name }
        | AdminCommand::EnableAccount { store, name } => {
            let disable = matches!(cmd_kind, CmdKind::Disable);
            let name = accounts::AccountName::parse(&name)?;
            let changed = store
                .open()
                .await?
                .set_account_disabled(&name, disable)
                .await?;
            report(
                changed,
                format_args!("account {name}"),
                if disable {
                    "disabled: its sessions ended"
                } else {
                    "enabled"
                },
            )?;
        }
        AdminCommand::ResetPassword {
            store,
            name,
            password,
        } => {
            let password = password.read()?;
            accounts::check_password_policy(&password)?;
            let name = accounts::AccountName::parse(&name)?;
            let hash = accounts::hash_password(password).await?;
            let changed = store.open().await?.set_password_hash(&name, &hash).await?;
            report(
                changed,
                format_args!("account {name}"),
                "has a new password; its sessions ended",
            )?;
        }
        AdminCommand::DeleteAccount { store, name } => {
            let name = accounts::AccountName::parse(&name)?;
            let deleted = store.open().await?.delete_account(&name).await?;
            report(deleted, format_args!("account {name}"), "removed")?;
        }
        AdminCommand::ExportMosquitto {
            store,
            credentials,
            password_file,
            acl_file,
            gateway_user,
            gateway_password,
            gateway_password_env,
        } => {
            let gateway_password = password_from(gateway_password, gateway_password_env)?;
            let text = std::fs::read_to_string(&credentials)
                .with_context(|| format!("reading {}", credentials.display()))?;
            let creds: Vec<seed::Credential> = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a credentials file", credentials.display()))?;
            let s = store.open().await?;
            let files = crate::external_broker::mosquitto_files(
                s.as_ref(),
                &creds,
                &gateway_user,
                &gateway_password,
            )
            .await?;
            write_private(&password_file, &files.passwords)?;
            write_private(&acl_file, &files.acl)?;
            println!(
                "wrote {} devices and the gateway user {gateway_user} to {} and {}",
                files.devices,
                password_file.display(),
                acl_file.display()
            );
        }
    }
    Ok(())
}

/// Writes a file only its owner may read (it holds password hashes or ACLs).
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
