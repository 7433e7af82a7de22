//! The push-service emulator itself, checked without the gateway: the `web-push` crate (the
//! sender the gateway uses) signs and encrypts, reqwest sends, and the emulator must accept
//! what a real push service accepts, refuse what it refuses, and answer as scripted.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use tenwatch_tests::push::{require_push_emulator, Behaviour, PushEmulator, Subscription};
use tenwatch_tests::DEADLINE;
use web_push::{
    ContentEncoding, PartialVapidSignatureBuilder, SubscriptionInfo, Urgency, VapidSignature,
    VapidSignatureBuilder, WebPushMessage, WebPushMessageBuilder,
};

/// A fresh VAPID key pair, from a SEC1 PEM as an operator would make with openssl.
fn vapid_key() -> anyhow::Result<PartialVapidSignatureBuilder> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = EcKey::generate(&group)?;
    let pem = key.private_key_to_pem()?;
    Ok(VapidSignatureBuilder::from_pem_no_sub(pem.as_slice())?)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A VAPID signature for pushes to `sub`, with `claims` added to web-push's own (`aud`,
/// `exp`, `sub`).
fn sign(
    sub: &Subscription,
    vapid: &PartialVapidSignatureBuilder,
    claims: &[(&'static str, serde_json::Value)],
) -> anyhow::Result<VapidSignature> {
    let info = SubscriptionInfo::new(
        sub.endpoint.as_str(),
        sub.p256dh.as_str(),
        sub.auth.as_str(),
    );
    let mut signature = vapid.clone().add_sub_info(&info);
    for (name, value) in claims {
        signature.add_claim(name, value.clone());
    }
    Ok(signature.build()?)
}

/// A push of `payload` to `sub`'s endpoint, encrypted to `keys_of`'s keys (normally `sub`).
fn message(
    sub: &Subscription,
    keys_of: &Subscription,
    signature: VapidSignature,
    payload: &[u8],
) -> anyhow::Result<WebPushMessage> {
    let info = SubscriptionInfo::new(
        sub.endpoint.as_str(),
        keys_of.p256dh.as_str(),
        keys_of.auth.as_str(),
    );
    let mut builder = WebPushMessageBuilder::new(&info);
    builder.set_ttl(60);
    builder.set_payload(ContentEncoding::Aes128Gcm, payload);
    builder.set_vapid_signature(signature);
    Ok(builder.build()?)
}

/// An ordinary signed push of `payload` to `sub`.
fn push(
    sub: &Subscription,
    vapid: &PartialVapidSignatureBuilder,
    payload: &[u8],
) -> anyhow::Result<WebPushMessage> {
    message(sub, sub, sign(sub, vapid, &[])?, payload)
}

/// The `k=` of a message's `Authorization: vapid` header: its public key, base64url.
fn k_of(message: &WebPushMessage) -> Option<String> {
    let headers = &message.payload.as_ref()?.crypto_headers;
    let (_, value) = headers.iter().find(|(name, _)| *name == "Authorization")?;
    Some(value.split("k=").nth(1)?.to_string())
}

/// Sends a web-push message with reqwest, as the gateway does: web-push only builds it.
async fn send(client: &reqwest::Client, message: WebPushMessage) -> reqwest::Result<Response> {
    let request = web_push::request_builder::build_request::<Vec<u8>>(message);
    let mut builder = client.post(request.uri().to_string());
    for (name, value) in request.headers() {
        // reqwest sets Content-Length from the body itself.
        if name != "content-length" {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
    }
    let response = builder.body(request.into_body()).send().await?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    Ok(Response {
        status: response.status().as_u16(),
        location: header("location"),
        retry_after: header("retry-after"),
    })
}

/// What a sender reads from the push service's answer.
#[derive(Debug)]
struct Response {
    status: u16,
    location: Option<String>,
    retry_after: Option<String>,
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(DEADLINE).build()?)
}

#[tokio::test]
async fn a_signed_push_is_accepted_and_decrypts_to_what_was_sent() -> anyhow::Result<()> {
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let sub = emulator.subscribe().await?;
    let vapid = vapid_key()?;
    let http = client()?;
    let payload = r#"{"alert":"A-17","title":"邻居按下了求助按钮"}"#;

    let mut first = push(&sub, &vapid, payload.as_bytes())?;
    first.urgency = Some(Urgency::High);
    first.topic = Some("zone-7".into());
    let k = k_of(&first);
    let answer = send(&http, first).await?;
    assert_eq!(answer.status, 201, "{answer:?}");
    let location = answer.location.unwrap_or_default();
    assert!(location.starts_with(emulator.base_url()), "{location}");

    // web-push 0.11 leaves the port out of aud; a sender that keeps it is accepted too.
    let with_port = sign(&sub, &vapid, &[("aud", emulator.base_url().into())])?;
    let answer = send(&http, message(&sub, &sub, with_port, b"second")?).await?;
    assert_eq!(answer.status, 201);

    let got = emulator.wait_for_messages(&sub.id, 2, DEADLINE).await?;
    assert_eq!(got[0].payload.as_deref(), Some(payload));
    assert_eq!(got[0].ttl, 60);
    assert_eq!(got[0].urgency.as_deref(), Some("high"));
    assert_eq!(got[0].topic.as_deref(), Some("zone-7"));
    assert_eq!(Some(&got[0].vapid_public_key), k.as_ref());
    assert_eq!(got[0].jwt_claims.aud, "http://127.0.0.1");
    assert!(!got[0].aud_includes_port);
    assert!(got[0].jwt_claims.sub.starts_with("mailto:"));
    assert!(got[0].jwt_claims.exp > unix_now());
    assert_eq!(got[1].payload.as_deref(), Some("second"));
    assert!(got[1].aud_includes_port);
    Ok(())
}

#[tokio::test]
async fn a_bad_vapid_token_is_refused_with_a_reason() -> anyhow::Result<()> {
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let sub = emulator.subscribe().await?;
    let (vapid, other) = (vapid_key()?, vapid_key()?);
    let http = client()?;

    // Signed with one key, naming another in k=.
    let mut forged = sign(&sub, &vapid, &[])?;
    forged.auth_k = other.get_public_key();
    let now = unix_now();
    let cases = [
        (forged, "signature"),
        (sign(&sub, &vapid, &[("exp", (now - 10).into())])?, "past"),
        (
            sign(&sub, &vapid, &[("exp", (now + 25 * 3600).into())])?,
            "24 hours",
        ),
        (
            sign(&sub, &vapid, &[("aud", "https://push.example.net".into())])?,
            "origin",
        ),
    ];
    let reasons: Vec<_> = cases.iter().map(|(_, reason)| *reason).collect();
    for (signature, reason) in cases {
        let answer = send(&http, message(&sub, &sub, signature, b"x")?).await?;
        assert_eq!(answer.status, 401, "{reason}");
    }
    let seen = emulator.messages(&sub.id).await?;
    assert!(seen.messages.is_empty());
    assert_eq!(seen.rejections.len(), reasons.len());
    for (rejection, reason) in seen.rejections.iter().zip(reasons) {
        assert!(rejection.reason.contains(reason), "{rejection:?}");
    }

    // A subscription made with an applicationServerKey takes pushes signed by that key only.
    let key = k_of(&push(&sub, &vapid, b"x")?).unwrap_or_default();
    let restricted = emulator.subscribe_restricted(&key).await?;
    let answer = send(&http, push(&restricted, &other, b"x")?).await?;
    assert_eq!(answer.status, 403);
    let answer = send(&http, push(&restricted, &vapid, b"x")?).await?;
    assert_eq!(answer.status, 201);
    Ok(())
}

#[tokio::test]
async fn a_body_it_cannot_decrypt_or_take_is_refused() -> anyhow::Result<()> {
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let (sub, someone_else) = (emulator.subscribe().await?, emulator.subscribe().await?);
    let vapid = vapid_key()?;
    let http = client()?;

    let misaddressed = message(&sub, &someone_else, sign(&sub, &vapid, &[])?, b"not yours")?;
    assert_eq!(send(&http, misaddressed).await?.status, 400);

    // Over RFC 8030's 4096 bytes (web-push itself refuses to encrypt that much).
    let oversized = http
        .post(&sub.endpoint)
        .header("TTL", "60")
        .header("Content-Encoding", "aes128gcm")
        .body(vec![0u8; 4097])
        .send()
        .await?;
    assert_eq!(oversized.status().as_u16(), 413);

    let seen = emulator.messages(&sub.id).await?;
    assert!(seen.messages.is_empty());
    let statuses: Vec<_> = seen.rejections.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 413]);
    Ok(())
}

#[tokio::test]
async fn gone_and_not_found_answer_every_push_after() -> anyhow::Result<()> {
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let (gone, missing) = (emulator.subscribe().await?, emulator.subscribe().await?);
    let vapid = vapid_key()?;
    let http = client()?;
    emulator.behave(&gone.id, Behaviour::Gone).await?;
    emulator.behave(&missing.id, Behaviour::NotFound).await?;

    for _ in 0..2 {
        assert_eq!(send(&http, push(&gone, &vapid, b"x")?).await?.status, 410);
        assert_eq!(
            send(&http, push(&missing, &vapid, b"x")?).await?.status,
            404
        );
    }
    assert!(emulator.messages(&gone.id).await?.messages.is_empty());
    Ok(())
}

#[tokio::test]
async fn rate_limits_and_errors_last_count_pushes_then_pass() -> anyhow::Result<()> {
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let sub = emulator.subscribe().await?;
    let vapid = vapid_key()?;
    let http = client()?;

    let limit = Behaviour::RateLimit {
        retry_after: 7,
        count: 2,
    };
    emulator.behave(&sub.id, limit).await?;
    for _ in 0..2 {
        let answer = send(&http, push(&sub, &vapid, b"x")?).await?;
        assert_eq!(answer.status, 429);
        assert_eq!(answer.retry_after.as_deref(), Some("7"));
    }
    let answer = send(&http, push(&sub, &vapid, b"after")?).await?;
    assert_eq!(answer.status, 201);

    let error = Behaviour::Error {
        status: 503,
        count: 1,
        retry_after: None,
    };
    emulator.behave(&sub.id, error).await?;
    let answer = send(&http, push(&sub, &vapid, b"x")?).await?;
    assert_eq!((answer.status, answer.retry_after), (503, None));
    let answer = send(&http, push(&sub, &vapid, b"again")?).await?;
    assert_eq!(answer.status, 201);

    let seen = emulator.messages(&sub.id).await?;
    let statuses: Vec<_> = seen.attempts.iter().map(|a| a.status).collect();
    let expected = [429, 429, 201, 503, 201].map(Some);
    assert_eq!(statuses, expected);
    let payloads: Vec<_> = seen.messages.iter().map(|m| m.payload.as_deref()).collect();
    assert_eq!(payloads, [Some("after"), Some("again")]);
    Ok(())
}

#[tokio::test]
async fn a_hung_subscription_never_answers_and_holds_up_no_other() -> anyhow::Result<()> {
    if !require_push_emulator() {
        return Ok(());
    }
    let emulator = PushEmulator::start().await?;
    let (hung, other) = (emulator.subscribe().await?, emulator.subscribe().await?);
    let vapid = vapid_key()?;
    emulator.behave(&hung.id, Behaviour::Hang).await?;

    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let lost = push(&hung, &vapid, b"lost")?;
    let started = Instant::now();
    let waiting = tokio::spawn(async move { send(&patient, lost).await });

    // Only once the hung push is in the emulator does the other one prove anything.
    let deadline = Instant::now() + DEADLINE;
    while emulator.messages(&hung.id).await?.attempts.is_empty() {
        assert!(Instant::now() < deadline, "the hung push never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answer = send(&client()?, push(&other, &vapid, b"x")?).await?;
    assert_eq!(answer.status, 201);
    assert!(!waiting.is_finished(), "the hung push was answered");

    let outcome = waiting.await?;
    assert!(
        outcome.as_ref().is_err_and(|e| e.is_timeout()),
        "{outcome:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));

    // Once told to, it answers again; the hung push was never taken.
    emulator.behave(&hung.id, Behaviour::Ok).await?;
    let answer = send(&client()?, push(&hung, &vapid, b"x")?).await?;
    assert_eq!(answer.status, 201);
    let seen = emulator.messages(&hung.id).await?;
    assert_eq!(seen.messages.len(), 1);
    let statuses: Vec<_> = seen.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [None, Some(201)]);
    Ok(())
}
