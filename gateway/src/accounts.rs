//! Accounts of people: station operators (monitors and admins, with the zones they may see) and
//! patrol volunteers (with their zone); their passwords, sign-in sessions and the login limiter.
//!
//! [`Accounts`] is the service the HTTP layer ([`crate::http::auth`]) and the CLI call; storage sits
//! behind [`AccountStore`]. Passwords are hashed with Argon2id on the blocking pool, a bounded
//! number at a time (each hash takes ~19 MiB and tens of milliseconds of one core). A login
//! with an unknown name verifies against a dummy hash, so that the answer and its timing say
//! nothing about which of name and password was wrong.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::domain::ZoneCode;
pub use crate::identity::{AccountKind, AccountName, InvalidIdentity, Principal, Role};
pub use crate::store::accounts::{AccountRecord, AccountStore, NewAccount, OnDutyVolunteer};
use crate::store::StoreError;

/// Why an account could not be made or a sign-in could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A name, password, role or zone list breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Argon2 failed or the blocking pool is gone: an internal error.
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl From<InvalidIdentity> for AccountError {
    fn from(e: InvalidIdentity) -> Self {
        AccountError::Invalid(e.0)
    }
}

/// Shortest password accepted for a new account, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in characters: more is no safer and only costs hashing time.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The password policy for new passwords.
pub fn check_password_policy(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(AccountError::Invalid(format!(
            "the password is too short: {n} characters, at least {MIN_PASSWORD_CHARS} are needed"
        )));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(AccountError::Invalid(format!(
            "the password is too long: {n} characters, at most {MAX_PASSWORD_CHARS} are allowed"
        )));
    }
    Ok(())
}

// --- passwords ---

/// Hashes a password with Argon2id (the crate's default parameters) on the blocking pool.
pub async fn hash_password(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let salt =
            SaltString::encode_b64(&salt).map_err(|e| AccountError::Hashing(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Hashing(e.to_string()))
    })
    .await
    .map_err(|e| AccountError::Hashing(e.to_string()))?
}

/// Checks a password against a stored PHC string on the blocking pool. The parameters come
/// from the string, so hashes made with older parameters keep working.
pub async fn verify_password(password: String, phc: String) -> Result<bool, AccountError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&phc).map_err(|e| AccountError::Hashing(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| AccountError::Hashing(e.to_string()))?
}

/// Verified when the name is unknown, so that an unknown name costs what a wrong password
/// costs. Made with `Argon2::default()`; a test checks that its parameters still are the
/// default ones. Its password is irrelevant: the result of this verification is ignored.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$ZFGqykPYCH+4v5xYYlJOAw$zeDbXZ8LfdkvCCeVCTiLIB8ISf0CjMaGtdLtoy72w1c";

// --- sessions ---

/// A session token: 32 random bytes as 64 hex characters. Only its SHA-256 is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    /// Accepts only what [`generate`](Self::generate) makes, so junk never reaches the store.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the store keeps: hex SHA-256 of the token.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// Tokens are secrets: never in logs.
impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// A session just opened by [`Accounts::login`].
#[derive(Debug, Clone)]
pub struct Session {
    pub token: SessionToken,
    pub principal: Principal,
    pub expires_at_ms: i64,
}

/// Session times follow the gateway's clock (a manual one in tests).
pub use crate::clock::Clock;

// --- login limiter ---

/// Login limits. Wrong passwords are counted per (name, client address), with a backoff that
/// doubles, so that someone guessing from one place slows down only themselves: the rightful
/// user at another address is never kept out. A looser bucket per address bounds how many
/// names one address may try (and the Argon2 work it may cause).
#[derive(Debug, Clone)]
pub struct LimiterConfig {
    /// Wrong passwords one address may give for one name before it has to wait.
    pub name_burst: u32,
    /// The first wait after those; each further wrong password doubles it ...
    pub name_every: Duration,
    /// ... up to this.
    pub name_backoff_max: Duration,
    /// Attempts one address may make at once, any names (a station's operators may share
    /// one address).
    pub peer_burst: u32,
    /// Then one more attempt per this interval.
    pub peer_every: Duration,
    /// Entries kept per map; beyond it the oldest is forgotten, so a spray of names or
    /// addresses cannot grow memory without bound.
    pub max_entries: usize,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            name_burst: 5,
            name_every: Duration::from_secs(10),
            name_backoff_max: Duration::from_secs(15 * 60),
            peer_burst: 20,
            peer_every: Duration::from_secs(3),
            max_entries: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// One map of token buckets. Guarded by a std `Mutex`: it is never held across an `.await`.
struct Buckets<K> {
    burst: f64,
    every: Duration,
    max_entries: usize,
    map: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(burst: u32, every: Duration, max_entries: usize) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            every: every.max(Duration::from_millis(1)),
            max_entries: max_entries.max(1),
            map: HashMap::new(),
        }
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        let gained =
            now.saturating_duration_since(b.updated).as_secs_f64() / self.every.as_secs_f64();
        (b.tokens + gained).min(self.burst)
    }

    /// How long until `key` may try again; zero if it may now.
    fn wait(&self, key: &K, now: Instant) -> Duration {
        let Some(b) = self.map.get(key) else {
            return Duration::ZERO;
        };
        let tokens = self.refilled(*b, now);
        if tokens >= 1.0 {
            Duration::ZERO
        } else {
            self.every.mul_f64(1.0 - tokens)
        }
    }

    fn take(&mut self, key: &K, now: Instant) {
        let tokens = match self.map.get(key) {
            Some(b) => self.refilled(*b, now),
            None => {
                self.make_room(now);
                self.burst
            }
        };
        self.map.insert(
            key.clone(),
            Bucket {
                tokens: (tokens - 1.0).max(0.0),
                updated: now,
            },
        );
    }

    fn make_room(&mut self, now: Instant) {
        if self.map.len() < self.max_entries {
            return;
        }
        // A full bucket is the same as no bucket: drop those first.
        let burst = self.burst;
        let every = self.every;
        self.map.retain(|_, b| {
            let gained =
                now.saturating_duration_since(b.updated).as_secs_f64() / every.as_secs_f64();
            b.tokens + gained < burst
        });
        forget_oldest(&mut self.map, self.max_entries, |b| b.updated);
    }
}

/// Removes the oldest entries until the map has room for one more.
fn forget_oldest<K: Hash + Eq + Clone, V>(
    map: &mut HashMap<K, V>,
    max_entries: usize,
    updated: impl Fn(&V) -> Instant,
) {
    while map.len() >= max_entries {
        let oldest = map
            .iter()
            .min_by_key(|(_, v)| updated(v))
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => map.remove(&k),
            None => break,
        };
    }
}

/// Wrong passwords of one name from one address.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// No attempt before this.
    until: Instant,
    updated: Instant,
}

/// Wrong passwords per (name, address), each past the burst doubling the wait.
struct Backoff {
    burst: u32,
    first: Duration,
    max: Duration,
    max_entries: usize,
    map: HashMap<(String, IpAddr), Failures>,
}

impl Backoff {
    fn wait(&self, key: &(String, IpAddr), now: Instant) -> Duration {
        self.map
            .get(key)
            .map_or(Duration::ZERO, |f| f.until.saturating_duration_since(now))
    }

    fn failed(&mut self, key: (String, IpAddr), now: Instant) {
        if !self.map.contains_key(&key) {
            // Entries whose wait is over and that are old are worth least: forget those first.
            let max = self.max;
            self.map
                .retain(|_, f| f.until > now || now.saturating_duration_since(f.updated) < max);
            forget_oldest(&mut self.map, self.max_entries, |f| f.updated);
        }
        let f = self.map.entry(key).or_insert(Failures {
            count: 0,
            until: now,
            updated: now,
        });
        f.count = f.count.saturating_add(1);
        f.updated = now;
        if f.count >= self.burst {
            let doublings = (f.count - self.burst).min(20);
            let wait = self.first.saturating_mul(1 << doublings).min(self.max);
            f.until = now + wait;
        }
    }
}

/// Limits login attempts per (name, address) with backoff (guessing one account's password
/// from one place) and per address (spraying many names, and burning CPU on Argon2). No
/// limit is per name alone: that would let anyone keep the rightful user out.
pub struct LoginLimiter {
    failures: Mutex<Backoff>,
    peers: Mutex<Buckets<IpAddr>>,
}

/// The key of a login name: names are unique regardless of case, so are their limits.
fn name_key(name: &str) -> String {
    name.chars()
        .take(AccountName::MAX_CHARS)
        .collect::<String>()
        .to_lowercase()
}

/// The key of a peer: IPv6 hosts usually hold a whole /64, so one bucket per /64.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves buckets that are still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An unknown client address (a caller that has none) shares one key.
const UNKNOWN_PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

impl LoginLimiter {
    pub fn new(config: &LimiterConfig) -> Self {
        Self {
            failures: Mutex::new(Backoff {
                burst: config.name_burst.max(1),
                first: config.name_every.max(Duration::from_millis(1)),
                max: config.name_backoff_max.max(config.name_every),
                max_entries: config.max_entries.max(1),
                map: HashMap::new(),
            }),
            peers: Mutex::new(Buckets::new(
                config.peer_burst,
                config.peer_every,
                config.max_entries,
            )),
        }
    }

    fn key(name: &str, peer: Option<IpAddr>) -> (String, IpAddr) {
        (name_key(name), peer_key(peer.unwrap_or(UNKNOWN_PEER)))
    }

    /// Takes one attempt for `name` from `peer`, or says how long to wait; a refused attempt
    /// takes nothing.
    pub fn try_attempt(&self, name: &str, peer: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let key = Self::key(name, peer);
        let failures = lock(&self.failures);
        let mut peers = lock(&self.peers);
        let wait = failures.wait(&key, now).max(peers.wait(&key.1, now));
        if !wait.is_zero() {
            return Err(wait);
        }
        peers.take(&key.1, now);
        Ok(())
    }

    /// A wrong password (or unknown name) for `name` from `peer`: past the burst, that pair
    /// waits, twice as long each time.
    pub fn failed(&self, name: &str, peer: Option<IpAddr>) {
        lock(&self.failures).failed(Self::key(name, peer), Instant::now());
    }

    /// A correct password clears that name's failures from that address, so its owner is
    /// never slowed down by their own earlier typos. The address's bucket stays: it bounds
    /// hashing work per address.
    pub fn succeeded(&self, name: &str, peer: Option<IpAddr>) {
        lock(&self.failures).map.remove(&Self::key(name, peer));
    }
}

// --- the service ---

/// Settings of [`Accounts`].
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// How long a session lasts without being used; each use extends it by as much.
    pub session_lifetime: Duration,
    pub limits: LimiterConfig,
    /// Adds `Secure` to the session cookie; set it when the console is served over HTTPS.
    pub secure_cookie: bool,
    pub clock: Clock,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            session_lifetime: Duration::from_secs(12 * 3600),
            limits: LimiterConfig::default(),
            secure_cookie: false,
            clock: Clock::system(),
        }
    }
}

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown name, wrong password or disabled account: deliberately one case.
    #[error("wrong name or password")]
    WrongCredentials,
    #[error("too many login attempts: retry in {} s", .retry_after.as_secs())]
    Limited { retry_after: Duration },
    #[error(transparent)]
    Internal(#[from] AccountError),
}

/// Sign-outs kept for feeds that have not looked yet; one that falls further behind checks
/// its session in the store instead.
const ENDED_SESSIONS: usize = 64;

/// How often a long-lived connection (the station feed) checks that its session is still
/// open, at most: a sign-out on another replica or an expiry is noticed within this.
const SESSION_RECHECK: Duration = Duration::from_secs(30);

/// Accounts and sessions: login, logout, and who a session token belongs to. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn AccountStore>,
    /// The token hashes of sessions signed out here, so that open feeds close at once.
    ended: tokio::sync::broadcast::Sender<String>,
    limiter: LoginLimiter,
    /// Bounds concurrent Argon2 work: each verification holds ~19 MiB on a blocking thread.
    hashing: Semaphore,
    config: AccountsConfig,
}

impl Accounts {
    pub fn new(store: Arc<dyn AccountStore>, config: AccountsConfig) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            inner: Arc::new(Inner {
                store,
                ended: tokio::sync::broadcast::channel(ENDED_SESSIONS).0,
                limiter: LoginLimiter::new(&config.limits),
                hashing: Semaphore::new(cores),
                config,
            }),
        }
    }

    pub fn store(&self) -> &dyn AccountStore {
        self.inner.store.as_ref()
    }

    pub fn config(&self) -> &AccountsConfig {
        &self.inner.config
    }

    fn lifetime_ms(&self) -> i64 {
        self.inner.config.session_lifetime.as_millis() as i64
    }

    /// Checks name and password and opens a session. `peer` is the client's address (behind a
    /// trusted reverse proxy, the address it forwarded), for the limits; `None` when unknown:
    /// every unknown caller then shares one address's limits.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<Session, LoginError> {
        self.inner
            .limiter
            .try_attempt(name, peer)
            .map_err(|retry_after| LoginError::Limited { retry_after })?;
        let record = match AccountName::parse(name) {
            Ok(name) => self
                .store()
                .account_by_name(&name)
                .await
                .map_err(AccountError::from)?,
            Err(_) => None,
        };
        let phc = record
            .as_ref()
            .map_or(DUMMY_HASH, |r| r.password_hash.as_str())
            .to_owned();
        let password_ok = {
            let _permit = self
                .inner
                .hashing
                .acquire()
                .await
                .map_err(|e| AccountError::Hashing(e.to_string()))?;
            // An over-long password is verified too (truncated), so that it costs the same.
            let candidate: String = password.chars().take(MAX_PASSWORD_CHARS + 1).collect();
            verify_password(candidate, phc).await?
        };
        let record = match record {
            Some(r) if password_ok && !r.disabled => r,
            _ => {
                self.inner.limiter.failed(name, peer);
                return Err(LoginError::WrongCredentials);
            }
        };
        self.inner.limiter.succeeded(name, peer);
        let token = SessionToken::generate();
        let now = self.inner.config.clock.now_ms();
        let expires_at_ms = now + self.lifetime_ms();
        self.store()
            .create_session(
                &token.hash(),
                record.principal.account_id,
                now,
                expires_at_ms,
            )
            .await
            .map_err(AccountError::from)?;
        Ok(Session {
            token,
            principal: record.principal,
            expires_at_ms,
        })
    }

    /// The account a session token belongs to, if the session is open; using it extends it.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let Some(token) = SessionToken::parse(token) else {
            return Ok(None);
        };
        self.store()
            .session_principal(
                &token.hash(),
                self.inner.config.clock.now_ms(),
                self.lifetime_ms(),
            )
            .await
    }

    /// Whether a session is still open, without extending it (a feed that stays open is not
    /// a use of its session: an unattended console signs out when its session expires).
    pub async fn still_open(&self, token: &str) -> Result<bool, StoreError> {
        let Some(token) = SessionToken::parse(token) else {
            return Ok(false);
        };
        self.store()
            .session_open(&token.hash(), self.inner.config.clock.now_ms())
            .await
    }

    /// How often a long-lived connection should ask [`still_open`](Self::still_open): a
    /// quarter of the session lifetime, at most [`SESSION_RECHECK`].
    pub fn session_recheck(&self) -> Duration {
        (self.inner.config.session_lifetime / 4).clamp(Duration::from_millis(100), SESSION_RECHECK)
    }

    /// The token hashes ([`SessionToken::hash`]) of sessions signed out from now on.
    pub fn ended_sessions(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.inner.ended.subscribe()
    }

    /// Ends a session; an unknown or malformed token is not an error.
    pub async fn logout(&self, token: &str) -> Result<(), StoreError> {
        let Some(token) = SessionToken::parse(token) else {
            return Ok(());
        };
        let hash = token.hash();
        self.store().delete_session(&hash).await?;
        // Nobody listening is fine: no feed is open.
        let _ = self.inner.ended.send(hash);
        Ok(())
    }
}

// --- creating accounts (CLI) ---

fn sorted_unique(zones: &[ZoneCode]) -> Vec<ZoneCode> {
    let mut zones = zones.to_vec();
    zones.sort();
    zones.dedup();
    zones
}

/// Creates a station operator who may see `zones` (at least one). Returns the new account.
pub async fn create_operator(
    store: &dyn AccountStore,
    name: &str,
    password: &str,
    role: Role,
    zones: &[ZoneCode],
    display_name: &str,
) -> Result<Principal, AccountError> {
    let name = AccountName::parse(name)?;
    check_password_policy(password)?;
    let zones = sorted_unique(zones);
    if zones.is_empty() {
        return Err(AccountError::Invalid(
            "an operator needs at least one zone (--zone CODE, repeatable)".into(),
        ));
    }
    let password_hash = hash_password(password.to_owned()).await?;
    let account = NewAccount {
        name,
        kind: AccountKind::Operator,
        role: Some(role),
        display_name: display_name.to_owned(),
        phone: String::new(),
        password_hash,
        zones,
    };
    create(store, account).await
}

/// Creates a patrol volunteer of one zone. Returns the new account.
pub async fn create_volunteer(
    store: &dyn AccountStore,
    name: &str,
    password: &str,
    zone: &ZoneCode,
    display_name: &str,
    phone: &str,
) -> Result<Principal, AccountError> {
    let name = AccountName::parse(name)?;
    check_password_policy(password)?;
    let password_hash = hash_password(password.to_owned()).await?;
    let account = NewAccount {
        name,
        kind: AccountKind::Volunteer,
        role: None,
        display_name: display_name.to_owned(),
        phone: phone.trim().to_owned(),
        password_hash,
        zones: vec![zone.clone()],
    };
    create(store, account).await
}

async fn create(store: &dyn AccountStore, account: NewAccount) -> Result<Principal, AccountError> {
    let now = crate::domain::now_ms();
    let account_id = store.create_account(&account, now).await?;
    Ok(Principal {
        account_id,
        name: account.name.as_str().to_owned(),
        display_name: account.display_name,
        kind: account.kind,
        role: account.role,
        zones: account.zones,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(AccountName::parse("wang.jing").is_ok());
        assert!(AccountName::parse("王警官").is_ok());
        assert!(AccountName::parse(&"名".repeat(64)).is_ok());
        for bad in ["", " wang", "wang ", "wa\nng", "\t", &"x".repeat(65)] {
            assert!(AccountName::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn kinds_and_roles_by_name() {
        for kind in [AccountKind::Operator, AccountKind::Volunteer] {
            assert_eq!(kind.as_str().parse::<AccountKind>().unwrap(), kind);
        }
        for role in [Role::Monitor, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert_eq!(
            "Operator".parse::<AccountKind>().unwrap_err().to_string(),
            r#"account kind must be "operator" or "volunteer", not "Operator""#
        );
        assert_eq!(
            "root".parse::<Role>().unwrap_err().to_string(),
            r#"role must be "monitor" or "admin", not "root""#
        );
    }

    #[test]
    fn password_policy_says_what_is_wrong() {
        let e = check_password_policy("short").unwrap_err().to_string();
        assert!(e.contains("at least 8"), "{e}");
        assert!(check_password_policy("长城长城长城长城").is_ok());
        assert!(check_password_policy(&"x".repeat(257)).is_err());
    }

    #[test]
    fn may_see_only_own_zones() {
        let z1 = ZoneCode::parse("11010501").unwrap();
        let z2 = ZoneCode::parse("11010502").unwrap();
        let p = Principal {
            account_id: 1,
            name: "m".into(),
            display_name: String::new(),
            kind: AccountKind::Operator,
            role: Some(Role::Monitor),
            zones: vec![z1.clone()],
        };
        assert!(p.may_see(&z1));
        assert!(!p.may_see(&z2));
        assert!(!p.is_admin());
        assert_eq!(p.actor(), "operator:m");
    }

    #[test]
    fn tokens_are_random_hex_and_only_hashes_are_kept() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_ne!(a, b);
        assert_eq!(SessionToken::parse(a.as_str()), Some(a.clone()));
        assert_eq!(a.hash().len(), 64);
        assert_ne!(a.hash(), a.as_str());
        assert!(SessionToken::parse("nope").is_none());
        assert!(SessionToken::parse(&"G".repeat(64)).is_none());
        assert_eq!(format!("{a:?}"), "SessionToken(<redacted>)");
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), h.clone())
            .await
            .unwrap());
        assert!(!verify_password("wrong horse".into(), h).await.unwrap());
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let params = argon2::Params::try_from(&dummy).unwrap();
        let default = argon2::Params::default();
        assert_eq!(dummy.algorithm, argon2::Algorithm::default().ident());
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (default.m_cost(), default.t_cost(), default.p_cost())
        );
    }

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(&LimiterConfig {
            name_burst: 5,
            name_every: Duration::from_secs(10),
            name_backoff_max: Duration::from_secs(60),
            peer_burst: 100,
            peer_every: Duration::from_secs(1),
            max_entries: 3,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn wrong_passwords_back_off_per_name_and_address() {
        let l = limiter();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let elsewhere: IpAddr = "198.51.100.7".parse().unwrap();
        for _ in 0..5 {
            l.try_attempt("wang", Some(ip)).unwrap();
            l.failed("wang", Some(ip));
        }
        assert_eq!(
            l.try_attempt("Wang", Some(ip)).unwrap_err(),
            Duration::from_secs(10)
        );
        // The rightful user elsewhere, and other names from here, are not slowed down.
        l.try_attempt("wang", Some(elsewhere)).unwrap();
        l.try_attempt("li", Some(ip)).unwrap();
        // Each further wrong password doubles the wait, up to the most.
        tokio::time::advance(Duration::from_secs(10)).await;
        l.try_attempt("wang", Some(ip)).unwrap();
        l.failed("wang", Some(ip));
        assert_eq!(
            l.try_attempt("wang", Some(ip)).unwrap_err(),
            Duration::from_secs(20)
        );
        for _ in 0..5 {
            l.failed("wang", Some(ip));
        }
        assert_eq!(
            l.try_attempt("wang", Some(ip)).unwrap_err(),
            Duration::from_secs(60)
        );
        // A correct password clears the pair.
        l.succeeded("wang", Some(ip));
        l.try_attempt("wang", Some(ip)).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn one_address_spraying_names_is_limited() {
        let l = LoginLimiter::new(&LimiterConfig {
            peer_burst: 8,
            ..LimiterConfig::default()
        });
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        for i in 0..8 {
            l.try_attempt(
                &format!("n{i}"),
                Some(if i % 2 == 0 { ip } else { same_64 }),
            )
            .unwrap();
        }
        assert!(l.try_attempt("fresh", Some(ip)).is_err());
        // The refused attempt took nothing from "fresh" elsewhere.
        l.try_attempt("fresh", Some("192.0.2.9".parse().unwrap()))
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_maps_stay_bounded() {
        let l = limiter();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..100 {
            l.failed(&format!("n{i}"), Some(ip));
            l.try_attempt("x", Some(std::net::Ipv4Addr::from(i as u32).into()))
                .unwrap();
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(lock(&l.failures).map.len() <= 3);
        assert!(lock(&l.peers).map.len() <= 3);
        // The newest survive.
        assert!(lock(&l.failures).map.contains_key(&("n99".to_owned(), ip)));
    }
}
