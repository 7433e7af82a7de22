//! The tenwatch gateway: ingest, alert lifecycle, fan-out, storage and the HTTP/WebSocket API.
//!
//! # Layout
//! - [`domain`]: ids, presses, states; everything from outside is parsed here first.
//! - [`lifecycle`]: the alert and recipient state machines.
//! - [`clock`]: wall time advanced by tokio's clock, so deadlines follow paused time in tests.
//! - [`store`]: the [`store::Store`] traits, the decisions both backends share, and the two
//!   backends (`store/sqlite/`, `store/postgres/`) over one set of SQL (`store/sql/`).
//! - [`devices`]: device logins and presence for the broker's edge ([`tenwatch_broker`]);
//!   [`external_broker`]: the same logins and ACL as Mosquitto's files.
//! - [`ingest`]: the press path: uplink → durable store → cluster alert, feed, `down/ack`.
//! - [`broker_link`]: the link to the MQTT broker (in-process to the embedded router, or
//!   rumqttc to an external one): uplinks to the workers, acknowledgements, replicas' feed.
//! - [`downlink`]: what devices are told (cluster alert, `down/ack`, catch-up).
//! - [`escalation`]: rings 1 and 2, fired from deadlines stored with each alert.
//! - [`supervision`]: device supervision (online, late, offline with the reason), health,
//!   cluster coverage and the "needs attention" list; [`heartbeats`]: the beats that report
//!   nothing new, kept in memory and written in batches.
//! - [`push`]: Web Push to volunteers' phones (VAPID, retries, per-origin limits), off the
//!   press path.
//! - [`feed`]: the station feed broadcast behind the `/api/feed` WebSocket.
//! - [`cap`]: CAP 1.2 messages and their Atom feed for the alerts a station made public.
//! - [`stats`]: the figures of a period and device coverage per cluster; [`bulletin`]: the
//!   half-monthly 警情公示 of a zone from them, as a printable page and a PDF.
//! - [`accounts`]: operators and volunteers, argon2 passwords, sessions, the login limiter.
//! - [`http`]: every HTTP route, its state and its one error type, sign-in and the session
//!   extractors, the station feed WebSocket, the console's and the volunteer app's APIs and
//!   built pages; the only module that knows axum.
//! - [`sia`]: alarm panels in: a SIA DC-09 receiver whose Contact ID alarms take the press
//!   path and whose link tests and troubles are supervision.
//! - [`tiles`]: the offline base map: raster tiles from a local MBTiles file, read-only.
//! - [`seed`]: the demo neighbourhood and the CSV import of households.
//! - [`app`]: [`app::Application`] wires the parts into tasks with one shutdown signal.
//!
//! The `tenwatch` binary (`src/main.rs`) only parses the command line and calls into here.

pub mod accounts;
pub mod app;
pub mod broker_link;
pub mod bulletin;
pub mod cap;
pub mod cli;
pub mod clock;
pub mod devices;
pub mod domain;
pub mod downlink;
pub mod escalation;
pub mod external_broker;
pub mod feed;
pub mod heartbeats;
pub mod http;
pub mod identity;
pub mod ingest;
pub mod lifecycle;
pub mod metrics;
pub mod push;
pub mod push_address;
pub mod seed;
pub mod sia;
pub mod stats;
pub mod store;
pub mod supervision;
pub mod tiles;

#[cfg(test)]
mod fuzz_json;

pub use app::{Application, Config, Listeners};
