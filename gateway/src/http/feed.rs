//! `GET /api/feed`: the station feed as a WebSocket. A snapshot of the open alerts of the
//! account's zones first, then every event for those zones (device events for operators only),
//! a ping every 20 s so dead connections are noticed, and `resync` when a client fell behind.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde_json::json;
use tokio::sync::broadcast;

use super::auth::Authenticated;
use super::AppState;
use crate::accounts::Principal;
use crate::feed::FeedItem;
use crate::store::AlertFilter;

/// How often the feed pings an idle station so that dead connections are noticed.
const FEED_PING: Duration = Duration::from_secs(20);

pub(super) async fn feed(
    State(s): State<AppState>,
    Authenticated(who): Authenticated,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| stream_feed(socket, s, who))
}

/// Whether a feed item is for this account: alerts of its zones; device events for operators.
fn for_whom(item: &FeedItem, who: &Principal) -> bool {
    match &item.zone {
        Some(_) if item.operators_only && !who.is_operator() => false,
        Some(zone) => who.zones.iter().any(|z| z.as_str() == zone.as_ref()),
        None => who.is_operator(),
    }
}

async fn stream_feed(mut socket: WebSocket, s: AppState, who: Principal) {
    // Subscribe before reading the snapshot so nothing falls between the two.
    let mut rx = s.feed.subscribe();
    let snapshot = s
        .store
        .list_alerts(&AlertFilter {
            open_only: true,
            zones: who.zones.clone(),
            limit: 1000,
        })
        .await;
    let hello = match snapshot {
        Ok(alerts) => json!({ "type": "snapshot", "alerts": alerts }),
        Err(e) => {
            tracing::error!(error = %e, "feed snapshot failed");
            json!({ "type": "resync" })
        }
    };
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut ping = tokio::time::interval(FEED_PING);
    ping.tick().await;
    loop {
        tokio::select! {
            event = rx.recv() => {
                let text: String = match event {
                    Ok(item) if for_whom(&item, &who) => item.json.to_string(),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "station feed client fell behind: resync");
                        json!({ "type": "resync", "missed": missed }).to_string()
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
        }
    }
}
