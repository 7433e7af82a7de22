//! The station feed under attack, against a real gateway on 127.0.0.1: device presence goes
//! to the operators of the device's zone only, the feed ends when its session does (sign-out
//! or expiry), and a browser may open it from the gateway's own pages only.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tenwatch_tests::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

async fn feed_with(
    app: &TestApp,
    token: &str,
    origin: Option<&str>,
) -> Result<Feed, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{}/api/feed", app.http).into_client_request()?;
    let headers = request.headers_mut();
    headers.insert(
        "cookie",
        format!("tenwatch_session={token}")
            .parse()
            .expect("a header"),
    );
    if let Some(origin) = origin {
        headers.insert("origin", origin.parse().expect("a header"));
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

/// The next device presence event on a feed, past health and coverage reports.
async fn next_device_event(ws: &mut Feed) -> anyhow::Result<Value> {
    loop {
        let event = next_feed(ws).await?;
        if event["type"] == "device" {
            return Ok(event);
        }
    }
}

/// Waits for the feed to end; returns the close code if there was one.
async fn feed_closes(ws: &mut Feed) -> anyhow::Result<Option<u16>> {
    loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await {
            Err(_) => anyhow::bail!("the feed stayed open"),
            Ok(None) | Ok(Some(Err(_))) => return Ok(None),
            Ok(Some(Ok(Message::Close(frame)))) => return Ok(frame.map(|f| f.code.into())),
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_presence_reaches_only_the_operators_of_its_zone() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    // A second zone with one unit of its own, and its operator.
    let other_zone = "11010599";
    let other = {
        use tenwatch_gateway::domain::{ClusterId, HouseholdId, ZoneCode};
        use tenwatch_gateway::store::{NewCluster, NewHousehold};
        let store = tenwatch_gateway::store::open(&app.config.database_url).await?;
        let zone = ZoneCode::parse(other_zone)?;
        store.add_zone(&zone, "另一责任区").await?;
        let cluster = ClusterId::parse("other-c1")?;
        store
            .add_cluster(&NewCluster {
                id: cluster.clone(),
                zone,
                name: "另一组".into(),
                leader_household: None,
            })
            .await?;
        let household = NewHousehold {
            id: HouseholdId::parse("other-h1")?,
            cluster,
            label: "别处1号".into(),
            address: "别处1号".into(),
            lat: 39.9,
            lon: 116.4,
            notes: String::new(),
            contacts: String::new(),
        };
        let mut made =
            tenwatch_gateway::seed::import_households(store.as_ref(), vec![household]).await?;
        made.pop().ok_or_else(|| anyhow::anyhow!("no credential"))?
    };
    let theirs = app.operator("other-zone", other_zone).await?;
    let mut ours = open_feed(&app).await?;
    let mut their_feed = feed_with(&app, &theirs, None).await?;
    assert_eq!(next_feed(&mut their_feed).await?["type"], "snapshot");

    let _unit = TestDevice::connect(app.mqtt, &app.credentials[0]).await?;
    let seen = next_device_event(&mut ours).await?;
    assert_eq!(
        (seen["type"].as_str(), seen["device"].as_str()),
        (Some("device"), Some(app.credentials[0].device.as_str()))
    );
    // The feed is one ordered stream: the first device event the other operator sees must
    // be their own unit's, which came later.
    let _their_unit = TestDevice::connect(app.mqtt, &other).await?;
    let seen = next_device_event(&mut their_feed).await?;
    assert_eq!(
        seen["device"].as_str(),
        Some(other.device.as_str()),
        "{seen}"
    );
    assert_eq!(seen["zone"], other_zone);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_closes_when_its_session_is_signed_out() -> anyhow::Result<()> {
    let app = spawn_app(1).await?;
    let token = login(app.http, OPERATOR, PASSWORD).await?;
    let mut ws = feed_with(&app, &token, None).await?;
    assert_eq!(next_feed(&mut ws).await?["type"], "snapshot");
    let out = reqwest::Client::new()
        .delete(app.url("/api/session"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(out.status().as_u16(), 204);
    assert_eq!(feed_closes(&mut ws).await?, Some(4001));
    // The harness's own session, another one, is untouched.
    let _still = open_feed(&app).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_closes_when_its_session_expires() -> anyhow::Result<()> {
    let app = spawn_app_with(1, |c| {
        c.accounts.session_lifetime = Duration::from_secs(2);
    })
    .await?;
    let token = login(app.http, OPERATOR, PASSWORD).await?;
    let mut ws = feed_with(&app, &token, None).await?;
    assert_eq!(next_feed(&mut ws).await?["type"], "snapshot");
    // Nothing uses the session; an open feed does not keep it alive.
    assert_eq!(feed_closes(&mut ws).await?, Some(4001));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_is_opened_only_from_the_gateways_own_pages() -> anyhow::Result<()> {
    let app = spawn_app_with(1, |c| {
        c.http.trust.public_origin = Some("https://station.example.cn".into());
    })
    .await?;
    match feed_with(&app, &app.token, Some("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403);
        }
        other => panic!(
            "a feed from another site must be refused, got {:?}",
            other.map(|_| ())
        ),
    }
    let own = format!("http://{}", app.http);
    let mut ws = feed_with(&app, &app.token, Some(&own)).await?;
    assert_eq!(next_feed(&mut ws).await?["type"], "snapshot");
    let mut ws = feed_with(&app, &app.token, Some("https://station.example.cn")).await?;
    assert_eq!(next_feed(&mut ws).await?["type"], "snapshot");
    Ok(())
}
