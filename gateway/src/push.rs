//! Web Push to patrol volunteers' phones: one encrypted (aes128gcm), VAPID-signed push per
//! subscription, sent off the press path.
//!
//! Callers [`Pusher::notify`] and go on: the job waits in a bounded queue and each send runs
//! in its own task, so a slow or silent push service never holds up the neighbours' units,
//! the station or another volunteer. Each request has a timeout; at most
//! [`PushConfig::per_origin`] requests are in flight to one push service; 5xx, 429 (honouring
//! `Retry-After`) and network failures are retried with backoff; a subscription answered 404
//! or 410 is removed. What became of each volunteer's push is stored on the recipient
//! (`accepted`, `no_subscription`, `expired`, `failed: …`); that the phone really showed it
//! comes back later from its service worker as the recipient state `delivered`.
//!
//! The VAPID key pair is made once and kept in the store (see [`crate::store::PushStore`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::{ECDSAP256PublicKeyLike, ES256KeyPair};
use serde::Serialize;
use tenwatch_broker::edge::{RateLimit, TokenBucket};
use tokio::sync::{mpsc, Semaphore};
use web_push::{
    ContentEncoding, PartialVapidSignatureBuilder, SubscriptionInfo, Urgency, VapidSignature,
    VapidSignatureBuilder, WebPushMessageBuilder,
};

use crate::clock::Clock;
use crate::domain::{AlertId, AlertState, NoticeId};
use crate::feed::{Feed, FeedEvent};
use crate::metrics::{inc, Metrics};
use crate::store::notices::{Notice, NoticeKind};
use crate::store::push::{PushSubscriptionRecord, VapidKeyPair};
use crate::store::{AlertSummary, Store, StoreResult};

/// How pushes are sent.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// The VAPID `sub` claim: a `mailto:` or `https:` contact for the push services.
    pub subject: String,
    /// How long a push service may hold a push for a phone that is off (`TTL`).
    pub ttl: Duration,
    /// Deadline of one request to a push service.
    pub timeout: Duration,
    /// Requests in flight to one push service (origin) at once.
    pub per_origin: usize,
    /// Tries per subscription, the first included.
    pub attempts: u32,
    /// The first retry's wait; doubled each time, and `Retry-After` wins when given.
    pub backoff: Duration,
    /// The longest wait between tries, whatever `Retry-After` says.
    pub max_wait: Duration,
    /// Accept subscriptions whose endpoint is on this machine (plain http too): for a local
    /// push-service emulator in tests, never in production (the gateway would POST to any
    /// local service a volunteer names).
    pub allow_loopback: bool,
    /// PEM certificates trusted for push services besides the public roots (`--push-ca-file`).
    pub extra_roots: Vec<u8>,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            subject: "mailto:admin@tenwatch.invalid".into(),
            ttl: Duration::from_secs(900),
            timeout: Duration::from_secs(10),
            per_origin: 16,
            attempts: 5,
            backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(120),
            allow_loopback: false,
            extra_roots: Vec::new(),
        }
    }
}

/// Refused push settings, said so that the operator knows what to change.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PushConfigError {
    #[error(
        "--vapid-subject must start with mailto: or https: (push services contact it); got {0:?}"
    )]
    Subject(String),
    #[error("--push-concurrency must be at least 1")]
    Concurrency,
}

pub fn validate(config: &PushConfig) -> Result<(), PushConfigError> {
    if !(config.subject.starts_with("mailto:") || config.subject.starts_with("https://")) {
        return Err(PushConfigError::Subject(config.subject.clone()));
    }
    if config.per_origin == 0 {
        return Err(PushConfigError::Concurrency);
    }
    Ok(())
}

/// Why a volunteer is pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushReason {
    /// Newly a recipient (a ring reached them, or the station dispatched them).
    Alert,
    /// The alert is over: the notification is replaced by "no need to come".
    Closed,
    /// Enough people are coming: the notification is replaced by "enough help is on the way"
    /// ([`crate::lifecycle::EnoughHelp`]).
    Enough,
}

/// A push to send: about an alert, or a notice to residents.
enum Job {
    Alert {
        /// Boxed: an alert's summary is several times a notice job's size.
        alert: Box<AlertSummary>,
        volunteer: String,
        distance_m: Option<f64>,
        reason: PushReason,
    },
    Notice {
        notice: Arc<Notice>,
        volunteer: String,
    },
}

impl Job {
    fn volunteer(&self) -> &str {
        match self {
            Job::Alert { volunteer, .. } | Job::Notice { volunteer, .. } => volunteer,
        }
    }

    /// What the logs name the push by (`A12`, `N3`).
    fn subject(&self) -> String {
        match self {
            Job::Alert { alert, .. } => alert.id.to_string(),
            Job::Notice { notice, .. } => NoticeId(notice.id).to_string(),
        }
    }
}

/// How one push travels, whatever it is about.
struct Envelope {
    payload: Vec<u8>,
    /// The `Topic` header: a push service holding an older push with the same topic for a
    /// phone that is off replaces it with this one.
    topic: String,
    /// An alert is `high` (the phone wakes at once); a notice `normal`, or `low` for a
    /// prevention tip: it may wait for the phone's next wake-up.
    urgency: Urgency,
}

/// Queues pushes; cheap to clone.
#[derive(Clone)]
pub struct Pusher {
    jobs: mpsc::Sender<Job>,
    public_key: Arc<str>,
    metrics: Arc<Metrics>,
    allow_loopback: bool,
    /// Each volunteer's registrations of new subscriptions ([`Pusher::may_register`]).
    registrations: Arc<Mutex<HashMap<i64, TokenBucket>>>,
}

/// New subscriptions a volunteer may register back to back (a few phones and browsers, each
/// re-registering now and then), then one every [`REGISTRATION_REFILL`]. Each subscription
/// is a connection opened on every dispatch: a volunteer must not make one alert open
/// hundreds of them.
const REGISTRATION_BURST: u32 = 20;
const REGISTRATION_REFILL: Duration = Duration::from_secs(180);

/// Takes the queued pushes and sends them; run it with [`PushWorker::run`].
pub struct PushWorker {
    jobs: mpsc::Receiver<Job>,
    sender: Arc<Sender>,
}

/// Pushes waiting to start; past this a push is dropped (and counted) rather than let the
/// press path wait.
const QUEUE: usize = 10_000;

/// A fresh P-256 key pair for VAPID.
pub fn generate_vapid_key() -> VapidKeyPair {
    let pair = ES256KeyPair::generate();
    VapidKeyPair {
        private_key: URL_SAFE_NO_PAD.encode(pair.to_bytes()),
        public_key: URL_SAFE_NO_PAD.encode(pair.public_key().public_key().to_bytes_uncompressed()),
    }
}

impl Pusher {
    /// Loads the gateway's VAPID key (making it on first start) and builds the queue.
    pub async fn new(
        store: Arc<dyn Store>,
        config: PushConfig,
        metrics: Arc<Metrics>,
        clock: Clock,
        feed: Feed,
    ) -> anyhow::Result<(Pusher, PushWorker)> {
        let key = store
            .vapid_key_or_insert(&generate_vapid_key(), clock.now_ms())
            .await?;
        // Loaded once; a key that does not load would fail every push: say so at start.
        let signer = VapidSignatureBuilder::from_base64_no_sub(&key.private_key)
            .map_err(|e| anyhow::anyhow!("the stored VAPID key does not load: {e}"))?;
        let mut client = reqwest::Client::builder();
        for root in reqwest::Certificate::from_pem_bundle(&config.extra_roots)
            .map_err(|e| anyhow::anyhow!("--push-ca-file does not read as PEM certificates: {e}"))?
        {
            client = client.add_root_certificate(root);
        }
        let client = client
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A push service answers; it never sends the gateway somewhere else (a redirect
            // would re-send the POST to an address no volunteer's subscription named).
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(POOL_IDLE)
            // Names resolve to public addresses only (see push_address).
            .dns_resolver(Arc::new(crate::push_address::PublicOnly {
                allow_loopback: config.allow_loopback,
            }))
            .build()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let pusher = Pusher {
            jobs: tx,
            public_key: key.public_key.clone().into(),
            metrics: metrics.clone(),
            allow_loopback: config.allow_loopback,
            registrations: Arc::default(),
        };
        let sender = Arc::new(Sender {
            store,
            client,
            signer,
            config,
            metrics,
            clock,
            feed,
            origins: Mutex::default(),
            signatures: Mutex::default(),
        });
        Ok((pusher, PushWorker { jobs: rx, sender }))
    }

    /// The browsers' `applicationServerKey` (base64url).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Whether volunteer `account` may register a subscription now; else how long until it
    /// may ([`REGISTRATION_BURST`], [`REGISTRATION_REFILL`]).
    pub fn may_register(&self, account: i64) -> Result<(), Duration> {
        let now = tokio::time::Instant::now();
        let mut all = self
            .registrations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = all.entry(account).or_insert_with(|| {
            TokenBucket::new(
                RateLimit {
                    burst: REGISTRATION_BURST,
                    refill_every: REGISTRATION_REFILL,
                },
                now,
            )
        });
        if bucket.try_take(now) {
            Ok(())
        } else {
            Err(REGISTRATION_REFILL)
        }
    }

    /// Whether endpoints on this machine are accepted (see [`PushConfig::allow_loopback`]).
    pub fn allows_loopback(&self) -> bool {
        self.allow_loopback
    }

    /// Queues a push to `volunteer` about `alert`; never waits.
    pub fn notify(
        &self,
        alert: &AlertSummary,
        volunteer: &str,
        distance_m: Option<f64>,
        reason: PushReason,
    ) {
        let job = Job::Alert {
            alert: Box::new(alert.clone()),
            volunteer: volunteer.to_owned(),
            distance_m,
            reason,
        };
        if let Err(e) = self.jobs.try_send(job) {
            inc(&self.metrics.pushes_dropped);
            tracing::error!(alert = %alert.id, volunteer, error = %e, "push queue full or closed: push dropped");
        }
    }

    /// Queues a push of `notice` to `volunteer`, with a lower urgency than an alert's;
    /// never waits.
    pub fn notify_notice(&self, notice: &Arc<Notice>, volunteer: &str) {
        let job = Job::Notice {
            notice: notice.clone(),
            volunteer: volunteer.to_owned(),
        };
        if let Err(e) = self.jobs.try_send(job) {
            inc(&self.metrics.pushes_dropped);
            tracing::error!(notice = notice.id, volunteer, error = %e, "push queue full or closed: push dropped");
        }
    }
}

impl PushWorker {
    /// Starts a task per job until the queue closes.
    pub async fn run(mut self) -> anyhow::Result<()> {
        while let Some(job) = self.jobs.recv().await {
            let sender = self.sender.clone();
            tokio::spawn(async move { sender.deliver(job).await });
        }
        Ok(())
    }
}

struct Sender {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    /// The VAPID private key, parsed once; cloned for each signature.
    signer: PartialVapidSignatureBuilder,
    config: PushConfig,
    metrics: Arc<Metrics>,
    clock: Clock,
    /// Tells the station what became of each volunteer's push.
    feed: Feed,
    /// What is kept of each push-service origin (`scheme://host:port`).
    origins: Mutex<HashMap<String, Arc<Origin>>>,
    /// The VAPID signature last made for each push-service origin, and when: one ES256
    /// signature serves every push to that service for [`VAPID_REUSE`].
    signatures: Mutex<HashMap<String, (tokio::time::Instant, VapidSignature)>>,
}

/// How long one VAPID signature is sent before a new one is made. Its JWT expires 12 hours
/// after it was made (web-push's default; RFC 8292 allows up to 24): reused for at most one
/// hour, a signature always has 11 hours left. Signing is most of a push's CPU otherwise
/// (an ES256 signature for every volunteer of every alert).
const VAPID_REUSE: Duration = Duration::from_secs(3600);

/// One push service (origin), as the sender uses it.
struct Origin {
    /// At most [`PushConfig::per_origin`] requests in flight.
    permits: Semaphore,
    /// Held by the one request sent while the origin is cold; the others wait for its end.
    opening: tokio::sync::Mutex<()>,
    /// When the service last answered (any status), if ever.
    answered: Mutex<Option<tokio::time::Instant>>,
}

/// How long after its last answer a push service is taken to still hold the connection it
/// answered on (reqwest keeps an idle connection [`POOL_IDLE`]; a service may close it sooner).
const WARM: Duration = Duration::from_secs(30);

/// The longest a push waits for the one that opens its service's connection.
const OPENING_WAIT: Duration = Duration::from_secs(1);

/// How long the client keeps an idle connection to a push service.
const POOL_IDLE: Duration = Duration::from_secs(90);

impl Origin {
    fn is_warm(&self) -> bool {
        let answered = *self.answered.lock().unwrap_or_else(|p| p.into_inner());
        answered.is_some_and(|at| at.elapsed() < WARM)
    }

    fn mark_answered(&self) {
        *self.answered.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(tokio::time::Instant::now());
    }
}

/// How one try ended.
#[derive(Debug)]
enum Try {
    Accepted,
    /// 404 / 410: the browser unsubscribed or the subscription expired.
    Gone(u16),
    /// Worth another try, after the service's `Retry-After` if it gave one.
    Again(String, Option<Duration>),
    /// Will not get better by trying again (400, 401, 403, 413, a bad subscription).
    Refused(String),
}

impl Sender {
    async fn deliver(&self, job: Job) {
        let outcome = match self.deliver_all(&job).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(subject = %job.subject(), volunteer = %job.volunteer(), error = %e, "push not sent");
                format!("failed: {e}")
            }
        };
        let now = self.clock.now_ms();
        let (alert, volunteer, reason) = match &job {
            Job::Alert {
                alert,
                volunteer,
                reason,
                ..
            } => (alert, volunteer, *reason),
            Job::Notice { notice, volunteer } => {
                // What the console counts of a notice: the volunteers whose push was accepted.
                if let Err(e) = self
                    .store
                    .notice_push_outcome(notice.id, volunteer, &outcome, now)
                    .await
                {
                    tracing::error!(notice = notice.id, error = %e, "notice push outcome not stored");
                }
                return;
            }
        };
        // What the station sees of a volunteer's push is the alert's own.
        if reason != PushReason::Alert {
            return;
        }
        match self
            .store
            .record_push_outcome(alert.id, volunteer, &outcome, now)
            .await
        {
            Ok(()) => self.feed.publish(&FeedEvent::Push {
                alert: alert.id,
                zone: alert.zone.as_str(),
                volunteer,
                outcome: &outcome,
                at_ms: now,
            }),
            Err(e) => tracing::error!(alert = %alert.id, error = %e, "push outcome not stored"),
        }
    }

    /// Sends to every subscription of the volunteer at once; the outcome for the recipient.
    async fn deliver_all(&self, job: &Job) -> StoreResult<String> {
        let subscriptions = self.store.push_subscriptions_of(job.volunteer()).await?;
        if subscriptions.is_empty() {
            inc(&self.metrics.pushes_no_subscription);
            return Ok("no_subscription".into());
        }
        let envelope = envelope(job);
        let sends = subscriptions
            .iter()
            .map(|sub| self.send_with_retries(sub, &envelope));
        let results = futures::future::join_all(sends).await;
        let outcome = if results.iter().any(|r| matches!(r, Try::Accepted)) {
            "accepted".to_owned()
        } else if results.iter().all(|r| matches!(r, Try::Gone(_))) {
            "expired".to_owned()
        } else {
            let why = results.iter().find_map(|r| match r {
                Try::Again(why, _) | Try::Refused(why) => Some(why.as_str()),
                _ => None,
            });
            format!("failed: {}", why.unwrap_or("unknown"))
        };
        Ok(outcome)
    }

    async fn send_with_retries(&self, sub: &PushSubscriptionRecord, envelope: &Envelope) -> Try {
        let mut wait = self.config.backoff;
        let mut attempt = 1;
        loop {
            let result = self.send_once(sub, envelope).await;
            let now = self.clock.now_ms();
            match &result {
                Try::Accepted => {
                    inc(&self.metrics.pushes_accepted);
                    let _ = self.store.push_sent(sub.id, None, now).await;
                    return result;
                }
                Try::Gone(status) => {
                    inc(&self.metrics.pushes_expired);
                    tracing::info!(endpoint = %sub.endpoint, status, "push subscription gone: removed");
                    if let Err(e) = self.store.forget_push_endpoint(&sub.endpoint).await {
                        tracing::error!(error = %e, "expired push subscription not removed");
                    }
                    return result;
                }
                Try::Refused(why) => {
                    inc(&self.metrics.pushes_failed);
                    tracing::warn!(endpoint = %sub.endpoint, why, "push refused");
                    let _ = self.store.push_sent(sub.id, Some(why), now).await;
                    return result;
                }
                Try::Again(why, retry_after) => {
                    if attempt >= self.config.attempts {
                        inc(&self.metrics.pushes_failed);
                        tracing::warn!(endpoint = %sub.endpoint, why, attempt, "push failed; giving up");
                        let _ = self.store.push_sent(sub.id, Some(why), now).await;
                        return result;
                    }
                    inc(&self.metrics.push_retries);
                    let pause = retry_after.unwrap_or(wait).min(self.config.max_wait);
                    tracing::info!(endpoint = %sub.endpoint, why, attempt, ?pause, "push will be retried");
                    tokio::time::sleep(pause).await;
                    wait = (wait * 2).min(self.config.max_wait);
                    attempt += 1;
                }
            }
        }
    }

    fn origin(&self, endpoint: &str) -> Arc<Origin> {
        let origin = origin_of(endpoint);
        let mut origins = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        origins
            .entry(origin)
            .or_insert_with(|| {
                Arc::new(Origin {
                    permits: Semaphore::new(self.config.per_origin),
                    opening: tokio::sync::Mutex::new(()),
                    answered: Mutex::new(None),
                })
            })
            .clone()
    }

    async fn send_once(&self, sub: &PushSubscriptionRecord, envelope: &Envelope) -> Try {
        let request = match self.build(sub, envelope) {
            Ok(r) => r,
            Err(why) => return Try::Refused(why),
        };
        let origin = self.origin(&sub.endpoint);
        let Ok(_permit) = origin.permits.acquire().await else {
            return Try::Refused("shutting down".into());
        };
        // A burst to a service not heard from lately (an alert's dozen volunteers) would open
        // a connection a push: each would race its own TLS handshake, and hyper's pool keeps
        // whichever HTTP/2 connection ends first. One push opens the connection; the others
        // wait for its answer (or its failure), at most [`OPENING_WAIT`], and then go as
        // streams of that connection. A service that holds the first push does not hold the
        // others longer than that.
        let _opening = if origin.is_warm() {
            None
        } else {
            match origin.opening.try_lock() {
                Ok(guard) => Some(guard),
                Err(_) => {
                    let _ = tokio::time::timeout(OPENING_WAIT, origin.opening.lock()).await;
                    None
                }
            }
        };
        inc(&self.metrics.pushes_sent);
        let response = self.client.execute(request).await;
        if response.is_ok() {
            origin.mark_answered();
        }
        let response = match response {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Try::Again("push service timed out".into(), None),
            Err(e) => return Try::Again(format!("push service unreachable: {e}"), None),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        match status {
            200..=299 => Try::Accepted,
            404 | 410 => Try::Gone(status),
            429 => Try::Again("429 too many requests".into(), retry_after),
            500..=599 => Try::Again(format!("{status} from the push service"), retry_after),
            _ => {
                // What the service said goes to the log, for whoever runs the gateway; the
                // station and the volunteer see only the status (a body may hold anything).
                let body = response.text().await.unwrap_or_default();
                let body: String = body.chars().take(200).collect();
                tracing::warn!(status, endpoint_origin = %origin_of(&sub.endpoint), %body,
                    "push refused");
                Try::Refused(format!("{status} from the push service"))
            }
        }
    }

    /// The VAPID signature for the subscription's push service: the one made for its origin
    /// within [`VAPID_REUSE`], else a new one (kept for the next pushes).
    fn vapid_signature(&self, info: &SubscriptionInfo) -> Result<VapidSignature, String> {
        let origin = origin_of(&info.endpoint);
        let now = tokio::time::Instant::now();
        let mut signatures = self.signatures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((made, signature)) = signatures.get(&origin) {
            if now.duration_since(*made) < VAPID_REUSE {
                return Ok(signature.clone());
            }
        }
        let mut builder = self.signer.clone().add_sub_info(info);
        builder.add_claim("sub", self.config.subject.as_str());
        let signature = builder
            .build()
            .map_err(|e| format!("VAPID signature: {e}"))?;
        signatures.insert(origin, (now, signature.clone()));
        Ok(signature)
    }

    /// The encrypted, signed request for one subscription.
    fn build(
        &self,
        sub: &PushSubscriptionRecord,
        envelope: &Envelope,
    ) -> Result<reqwest::Request, String> {
        // An address, which no resolver sees, is checked here, before anything is built.
        let endpoint = reqwest::Url::parse(&sub.endpoint).map_err(|e| format!("endpoint: {e}"))?;
        crate::push_address::check_endpoint(&endpoint, self.config.allow_loopback)
            .map_err(|why| format!("not sent: {why}"))?;
        let info = SubscriptionInfo::new(
            sub.endpoint.as_str(),
            sub.p256dh.as_str(),
            sub.auth.as_str(),
        );
        let signature = self.vapid_signature(&info)?;
        let mut message = WebPushMessageBuilder::new(&info);
        message.set_payload(ContentEncoding::Aes128Gcm, &envelope.payload);
        message.set_ttl(self.config.ttl.as_secs().min(u64::from(u32::MAX)) as u32);
        message.set_urgency(envelope.urgency);
        message.set_topic(envelope.topic.clone());
        message.set_vapid_signature(signature);
        let message = message
            .build()
            .map_err(|e| format!("subscription keys: {e}"))?;
        let built = web_push::request_builder::build_request::<Vec<u8>>(message);
        let url =
            reqwest::Url::parse(&built.uri().to_string()).map_err(|e| format!("endpoint: {e}"))?;
        let mut request = reqwest::Request::new(reqwest::Method::POST, url);
        for (name, value) in built.headers() {
            let name = reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes())
                .map_err(|e| e.to_string())?;
            let value = reqwest::header::HeaderValue::from_bytes(value.as_bytes())
                .map_err(|e| e.to_string())?;
            request.headers_mut().insert(name, value);
        }
        *request.body_mut() = Some(built.into_body().into());
        Ok(request)
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay seconds, or an HTTP date, read as the time left
/// until it at `now` (none if it has passed). Anything else is ignored: the own backoff holds.
fn parse_retry_after(v: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `scheme://host:port` of a push endpoint (empty if it does not parse): what the per-service
/// limit counts by, and all of an endpoint a log line needs.
fn origin_of(endpoint: &str) -> String {
    reqwest::Url::parse(endpoint)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// What the phone's service worker gets (JSON, encrypted): enough to show the notification
/// without asking the gateway, in Chinese and English.
#[derive(Debug, Serialize, PartialEq)]
pub struct PushPayload<'a> {
    pub alert: AlertId,
    /// The notification's tag: later pushes for the alert replace it.
    pub tag: String,
    /// The alert page in the volunteer app.
    pub url: String,
    pub kind: &'a str,
    pub state: AlertState,
    pub ring: u8,
    pub label: &'a str,
    pub address: &'a str,
    pub lat: f64,
    pub lon: f64,
    pub distance_m: Option<f64>,
    pub responders: u32,
    pub title: String,
    pub body: String,
    pub title_en: String,
    pub body_en: String,
    pub at_ms: i64,
}

fn kind_names(kind: &str) -> (&'static str, &'static str) {
    match kind {
        // The same words as the station console and the volunteer app.
        "medical" => ("急救", "Medical"),
        "fire" => ("火警", "Fire"),
        "intrusion" => ("入室警报", "Intrusion"),
        _ => ("求助", "Help"),
    }
}

/// What a push to a volunteer carries and how it travels.
fn envelope(job: &Job) -> Envelope {
    match job {
        Job::Alert {
            alert,
            distance_m,
            reason,
            ..
        } => Envelope {
            payload: payload(alert, *distance_m, *reason),
            // One topic per alert: a later push about it replaces an older one still held.
            topic: format!("tw-alert-{}", alert.id.0),
            urgency: Urgency::High,
        },
        Job::Notice { notice, .. } => Envelope {
            payload: notice_payload(notice),
            topic: format!("tw-notice-{}", notice.id),
            urgency: match notice.kind {
                NoticeKind::Prevention => Urgency::Low,
                _ => Urgency::Normal,
            },
        },
    }
}

/// A notice as the phone's service worker shows it (JSON, encrypted).
#[derive(Debug, Serialize, PartialEq)]
pub struct NoticePushPayload<'a> {
    pub notice: NoticeId,
    /// The notification's tag: one per notice.
    pub tag: String,
    pub url: &'static str,
    pub kind: NoticeKind,
    pub title: String,
    pub body: &'a str,
    pub title_en: String,
    pub body_en: &'a str,
    pub at_ms: i64,
}

fn notice_payload(n: &Notice) -> Vec<u8> {
    let (zh, en) = n.kind.names();
    let p = NoticePushPayload {
        notice: NoticeId(n.id),
        tag: format!("tw-notice-{}", n.id),
        url: "/app/",
        kind: n.kind,
        title: format!("{zh} · {}", n.title),
        body: &n.body,
        // The station writes in Chinese only: the English title names the kind.
        title_en: format!("{en} · {}", n.title),
        body_en: &n.body,
        at_ms: n.created_at_ms,
    };
    serde_json::to_vec(&p).unwrap_or_default()
}

fn payload(a: &AlertSummary, distance_m: Option<f64>, reason: PushReason) -> Vec<u8> {
    let (zh, en) = kind_names(&a.kind);
    let (title, title_en) = match reason {
        PushReason::Closed => (
            format!("已解除 · {}", a.label),
            format!("Over · {}", a.label),
        ),
        PushReason::Enough => (
            format!("人手已够 · {}", a.label),
            format!("Enough help · {}", a.label),
        ),
        PushReason::Alert => (format!("{zh} · {}", a.label), format!("{en} · {}", a.label)),
    };
    let (body, body_en) = if reason == PushReason::Closed {
        (
            "警情已处理,无需前往。".to_owned(),
            "This alert is closed: no need to come.".to_owned(),
        )
    } else if reason == PushReason::Enough {
        (
            format!("已有 {} 人赶去,您可不必前往。", a.responders),
            format!("{} coming, enough help: you need not come.", a.responders),
        )
    } else {
        let mut zh_parts = vec![a.address.clone()];
        let mut en_parts = vec![a.address.clone()];
        if let Some(d) = distance_m {
            zh_parts.push(format!("距您 {} 米", d.round()));
            en_parts.push(format!("{} m from you", d.round()));
        }
        zh_parts.push(if a.responders == 0 {
            "还没有人赶去".to_owned()
        } else {
            format!("{} 人正在赶来", a.responders)
        });
        en_parts.push(if a.responders == 0 {
            "nobody coming yet".to_owned()
        } else {
            format!("{} coming", a.responders)
        });
        (zh_parts.join(" · "), en_parts.join(" · "))
    };
    let p = PushPayload {
        alert: a.id,
        tag: format!("tw-alert-{}", a.id.0),
        url: format!("/app/#/alert/{}", a.id),
        kind: &a.kind,
        state: a.state,
        ring: a.ring,
        label: &a.label,
        address: &a.address,
        lat: a.lat,
        lon: a.lon,
        distance_m: distance_m.map(f64::round),
        responders: a.responders,
        title,
        body,
        title_en,
        body_en,
        at_ms: a.updated_at_ms,
    };
    // Plain data: serialising cannot fail.
    serde_json::to_vec(&p).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_and_give_their_public_key() {
        let key = generate_vapid_key();
        let loaded = VapidSignatureBuilder::from_base64_no_sub(&key.private_key).unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(loaded.get_public_key()),
            key.public_key
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(&key.public_key).unwrap().len(), 65);
        assert_ne!(generate_vapid_key().private_key, key.private_key);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:30 GMT", now),
            Some(Duration::from_secs(150))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date gone by: retry now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn subjects_must_be_contactable() {
        assert!(validate(&PushConfig::default()).is_ok());
        let bad = PushConfig {
            subject: "station".into(),
            ..PushConfig::default()
        };
        assert!(matches!(validate(&bad), Err(PushConfigError::Subject(_))));
    }
}
