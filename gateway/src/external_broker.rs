//! What an external MQTT broker needs from the registry, as files for a small deployment on
//! Mosquitto: a password file (PBKDF2-SHA512, Mosquitto's `$7$` format) and an ACL file, made
//! by `tenwatch admin export-mosquitto` from the registry and the credentials file written when
//! the devices were created (the registry keeps only a hash of each secret). The same logins
//! and ACL over HTTP are [`crate::http::broker_auth`].
//!
//! The rules are the edge's (docs/protocol.md): client id = username = device id; a device
//! publishes only under `tw/d/{itself}/up/` and subscribes only to `tw/d/{itself}/down/#` and
//! `tw/c/{its cluster}/#`.

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;

use crate::devices::check_login;
use crate::domain::DeviceId;
use crate::seed::Credential;
use crate::store::Store;

/// Mosquitto's password and ACL files, ready to write.
#[derive(Debug)]
pub struct MosquittoFiles {
    pub passwords: String,
    pub acl: String,
    pub devices: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("device {0} of the credentials file is not in the registry")]
    Unknown(String),
    #[error("the password of device {0} in the credentials file does not match the registry")]
    WrongPassword(String),
    #[error("device {0} is disabled in the registry")]
    Disabled(String),
    #[error("the gateway's broker user name must be a plain name, not {0:?}")]
    GatewayUser(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Mosquitto 2's `$7$` entry: PBKDF2-SHA512 over the password with a random 12-byte salt.
/// 101 iterations is Mosquitto's own default: device secrets are 128-bit random tokens, so
/// more would only slow a reconnect storm.
pub fn mosquitto_hash(password: &str) -> String {
    const ITERATIONS: u32 = 101;
    let mut salt = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut salt);
    let mut hash = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), &salt, ITERATIONS, &mut hash);
    format!(
        "$7${ITERATIONS}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    )
}

/// The files for Mosquitto: every device of `credentials` (checked against the registry)
/// with its ACL, and the gateway's own user, which reads the uplink and writes the downlink.
pub async fn mosquitto_files(
    store: &dyn Store,
    credentials: &[Credential],
    gateway_user: &str,
    gateway_password: &str,
) -> Result<MosquittoFiles, ExportError> {
    if gateway_user.is_empty() || gateway_user.contains([':', ' ', '\n', '#', '+', '/']) {
        return Err(ExportError::GatewayUser(gateway_user.to_owned()));
    }
    let mut passwords = String::new();
    let mut acl = String::from(
        "# tenwatch: made by `tenwatch admin export-mosquitto`; do not edit by hand.\n\
         # Devices publish only their own uplink and read their own downlink and cluster.\n\n",
    );
    let _ = writeln!(
        passwords,
        "{gateway_user}:{}",
        mosquitto_hash(gateway_password)
    );
    let _ = write!(
        acl,
        "user {gateway_user}\ntopic read tw/d/+/up/#\ntopic write tw/d/+/down/#\n\
         topic write tw/c/#\ntopic readwrite tw/s/#\n\n"
    );
    for c in credentials {
        let id = DeviceId::parse(&c.device).map_err(|_| ExportError::Unknown(c.device.clone()))?;
        let cluster = match check_login(store, id.as_str(), c.password.as_bytes()).await {
            Ok(cluster) => cluster,
            Err(tenwatch_broker::AuthRefusal::NotAuthorized) => {
                return Err(ExportError::Disabled(c.device.clone()))
            }
            Err(_) => {
                return Err(match store.device_credential(&id).await? {
                    None => ExportError::Unknown(c.device.clone()),
                    Some(_) => ExportError::WrongPassword(c.device.clone()),
                })
            }
        };
        let d = id.as_str();
        let _ = writeln!(passwords, "{d}:{}", mosquitto_hash(&c.password));
        let _ = write!(
            acl,
            "user {d}\ntopic write tw/d/{d}/up/#\ntopic read tw/d/{d}/down/#\n\
             topic read tw/c/{}/#\n\n",
            cluster.as_str()
        );
    }
    Ok(MosquittoFiles {
        passwords,
        acl,
        devices: credentials.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_mosquittos_pbkdf2_format() {
        let entry = mosquitto_hash("secret");
        let parts: Vec<&str> = entry.split('$').collect();
        assert_eq!(parts[..3], ["", "7", "101"]);
        let salt = STANDARD.decode(parts[3]).unwrap();
        assert_eq!(salt.len(), 12);
        let mut want = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(b"secret", &salt, 101, &mut want);
        assert_eq!(STANDARD.decode(parts[4]).unwrap(), want);
        assert_ne!(mosquitto_hash("secret"), entry, "a fresh salt each time");
    }
}
