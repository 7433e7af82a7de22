//! `GET /api/feed`: the station feed as a WebSocket. A snapshot of the open alerts of the
//! account's zones first, then every event for those zones (device events for operators only),
//! a ping every 20 s so dead connections are noticed, and `resync` when a client fell behind.
//!
//! A browser may open it only from the gateway's own pages (the `Origin` check of
//! [`super::guard`]): the cookie would otherwise let any site's page read the feed. The feed
//! closes (code 4001) when its session ends: at once on a sign-out on this gateway, and
//! within [`crate::accounts::Accounts::session_recheck`] on expiry or a sign-out elsewhere.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::broadcast;

use super::auth::{session_token, Authenticated};
use super::{ApiError, AppState};
use crate::accounts::{Principal, SessionToken};
use crate::feed::FeedItem;
use crate::store::{AlertFilter, ListWindow};

/// How often the feed pings an idle station so that dead connections are noticed.
const FEED_PING: Duration = Duration::from_secs(20);

/// The close code of a feed whose session ended (application codes are 4000–4999).
const SESSION_ENDED: u16 = 4001;

/// The station feed: a WebSocket of the alerts and device events of the account's zones as
/// they happen (device events for operators only). Same-origin browsers only.
#[utoipa::path(get, path = "/api/feed", tag = "console",
    responses(
        (status = 101, description = "the WebSocket: one JSON event a message"),
        (status = 401, description = "no session", body = super::error::ErrorBody),
        (status = 403, description = "a page of another origin", body = super::error::ErrorBody),
    ))]
pub(super) async fn feed(
    State(s): State<AppState>,
    Authenticated(who): Authenticated,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(why) = super::guard::check_origin(&s.trust, &headers) {
        tracing::warn!(account = %who.name, "station feed refused: {why}");
        return ApiError::Forbidden(why).into_response();
    }
    // Authenticated found one, so there is a token.
    let token = session_token(&headers).unwrap_or_default().to_owned();
    ws.on_upgrade(move |socket| stream_feed(socket, s, who, token))
}

/// Whether a feed item is for this account: events of its zones; device events for
/// operators only. An event without a zone goes to nobody.
fn for_whom(item: &FeedItem, who: &Principal) -> bool {
    match &item.zone {
        Some(_) if item.operators_only && !who.is_operator() => false,
        Some(zone) => who.zones.iter().any(|z| z.as_str() == zone.as_ref()),
        None => false,
    }
}

/// Says goodbye to a feed whose session ended.
async fn close_ended(mut socket: WebSocket, why: &str) {
    let frame = CloseFrame {
        code: SESSION_ENDED,
        reason: why.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

async fn stream_feed(mut socket: WebSocket, s: AppState, who: Principal, token: String) {
    // Before the snapshot, so that a sign-out from now on is heard.
    let mut ended = s.accounts.ended_sessions();
    let token_hash = SessionToken::parse(&token).map(|t| t.hash());
    // Subscribe before reading the snapshot so nothing falls between the two.
    let mut rx = s.feed.subscribe();
    let snapshot = s
        .store
        .list_alerts(&AlertFilter {
            open_only: true,
            zones: who.zones.clone(),
            window: ListWindow {
                limit: 1000,
                ..ListWindow::default()
            },
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
    let mut recheck = tokio::time::interval(s.accounts.session_recheck());
    recheck.tick().await;
    loop {
        tokio::select! {
            signed_out = ended.recv() => match signed_out {
                Ok(hash) if Some(&hash) == token_hash.as_ref() => {
                    return close_ended(socket, "signed out").await;
                }
                Ok(_) | Err(broadcast::error::RecvError::Closed) => {}
                // Missed some: ask the store now.
                Err(broadcast::error::RecvError::Lagged(_)) => recheck.reset_immediately(),
            },
            _ = recheck.tick() => match s.accounts.still_open(&token).await {
                Ok(true) => {}
                Ok(false) => return close_ended(socket, "session ended").await,
                // Not known now: the next check decides.
                Err(e) => tracing::warn!(error = %e, "feed session check failed"),
            },
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
