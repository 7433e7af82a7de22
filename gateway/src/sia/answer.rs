//! One DC-09 message in, one answer out. The checks run in this order, each refusal logged
//! with its reason:
//!
//! 1. the frame: length, CRC, header (damaged or garbage: NAK);
//! 2. the account: registered (unknown: NAK);
//! 3. the message type: `ADM-CID` or `NULL` (any other, `SIA-DCS` say: DUH);
//! 4. encryption as the account requires, and the data decrypting with its key (NAK);
//! 5. the timestamp, required when encrypted, within the window (NAK with the receiver's time);
//! 6. the data: Contact ID this receiver reads (otherwise DUH);
//! 7. the event, acted on: a press or cancel is answered ACK only once stored (a store that
//!    fails gets no answer, so the panel repeats); a repeat of a stored one is ACKed again
//!    and not counted twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::cid::{self, Cid, PanelEvent};
use super::frame::{self, DataError, Frame};
use super::SiaSettings;
use crate::clock::Clock;
use crate::domain::{DeviceId, Heartbeat, Press, PressKind};
use crate::ingest::{Ingest, Taken};
use crate::store::sia::{SiaAccount, SiaAccountId};
use crate::store::Store;

/// What a message got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ack,
    Nak,
    Duh,
    /// No answer: the store failed, the panel repeats.
    Silent,
}

/// The answer to send and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub verdict: Verdict,
    pub bytes: Option<Vec<u8>>,
}

impl Reply {
    fn nak(now: DateTime<Utc>) -> Self {
        Self {
            verdict: Verdict::Nak,
            bytes: Some(frame::nak(now)),
        }
    }
    fn silent() -> Self {
        Self {
            verdict: Verdict::Silent,
            bytes: None,
        }
    }
}

/// Why a message is not acted on.
enum Refusal {
    /// NAK, with the reason for the log.
    Nak(String),
    /// DUH, with the reason for the log.
    Duh(String),
    /// The store failed: no answer.
    Store(crate::store::StoreError),
}

/// A message that passed every check.
struct Checked {
    account: SiaAccount,
    /// The Contact ID event; `None` for a NULL (link test).
    cid: Option<Cid>,
    /// The message's timestamp, if it has one (unix ms).
    at_ms: Option<i64>,
}

/// The receiver's logic, shared by its TCP and UDP sockets.
pub struct Receiver {
    store: Arc<dyn Store>,
    ingest: Ingest,
    settings: SiaSettings,
    clock: Clock,
    /// Each panel's tamper switch as last reported: a link test carries none, and must not
    /// close what a tamper report opened. Read from the store the first time a panel is seen.
    tamper: Mutex<HashMap<DeviceId, bool>>,
}

impl Receiver {
    pub fn new(store: Arc<dyn Store>, ingest: Ingest, settings: SiaSettings, clock: Clock) -> Self {
        Self {
            store,
            ingest,
            settings,
            clock,
            tamper: Mutex::default(),
        }
    }

    pub fn settings(&self) -> &SiaSettings {
        &self.settings
    }

    /// Answers one message (`raw`: the bytes between `<LF>` and `<CR>`); `peer` is for the log.
    pub async fn answer(&self, raw: &[u8], peer: &str) -> Reply {
        let now = DateTime::from_timestamp_millis(self.clock.now_ms()).unwrap_or_default();
        let frame = match frame::parse(raw) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "SIA message refused (NAK)");
                return Reply::nak(now);
            }
        };
        let refused = |verdict: Verdict, why: &dyn std::fmt::Display| {
            tracing::warn!(%peer, account = frame.account, seq = frame.seq, reason = %why,
                "SIA message refused ({verdict:?})");
            let bytes = match verdict {
                Verdict::Duh => frame::duh(&frame),
                _ => frame::nak(now),
            };
            Reply {
                verdict,
                bytes: Some(bytes),
            }
        };
        let checked = match self.check(&frame, now).await {
            Ok(c) => c,
            Err(Refusal::Nak(why)) => return refused(Verdict::Nak, &why),
            Err(Refusal::Duh(why)) => return refused(Verdict::Duh, &why),
            Err(Refusal::Store(e)) => {
                tracing::error!(%peer, account = frame.account, error = %e,
                    "SIA account not read: no answer, the panel repeats");
                return Reply::silent();
            }
        };
        let seq: u64 = frame.seq.parse().unwrap_or(0);
        if let Some(c) = &checked.cid {
            tracing::info!(%peer, account = %checked.account.account, seq, qualifier = c.qualifier,
                event = c.event, partition = c.partition, zone = c.zone, "SIA Contact ID event");
        }
        let event = checked.cid.as_ref().map_or(PanelEvent::Test, cid::map);
        match self.act(&checked.account, event, seq, checked.at_ms).await {
            Taken::Stored => Reply {
                verdict: Verdict::Ack,
                bytes: Some(frame::ack(
                    &frame,
                    checked.account.key.as_ref(),
                    now,
                    super::crypt::pad_char,
                )),
            },
            Taken::UnknownDevice => refused(
                Verdict::Nak,
                &"the account's device is gone from the registry",
            ),
            Taken::NotStored => Reply::silent(),
        }
    }

    /// Steps 2 to 6: the account, the message type, encryption, the timestamp, the data.
    async fn check(&self, frame: &Frame<'_>, now: DateTime<Utc>) -> Result<Checked, Refusal> {
        let nak = |why: &str| Refusal::Nak(why.to_owned());
        let id = SiaAccountId::parse(frame.account)
            .map_err(|_| nak("account is not 3 to 16 hex digits"))?;
        let account = self
            .store
            .sia_account(&id)
            .await
            .map_err(Refusal::Store)?
            .ok_or_else(|| {
                nak("unknown account: register it with tenwatch admin add-sia-account")
            })?;
        if !matches!(frame.token, "ADM-CID" | "NULL") {
            return Err(Refusal::Duh(format!(
                "message type {} is not handled (only ADM-CID and NULL)",
                frame.token
            )));
        }
        match (frame.encrypted, &account.key) {
            (false, Some(_)) => {
                return Err(nak("the account has a key: its messages must be encrypted"))
            }
            (true, None) => return Err(nak("encrypted, but the account has no key")),
            _ => {}
        }
        let data = frame::data(frame, account.key.as_ref()).map_err(|e| match e {
            DataError::Syntax(_) => Refusal::Duh(e.to_string()),
            DataError::Decrypt(_) | DataError::Account { .. } => Refusal::Nak(e.to_string()),
        })?;
        let at_ms = match data.timestamp.as_deref() {
            None if frame.encrypted => return Err(nak("an encrypted message without a timestamp")),
            None => None,
            Some(t) => {
                let at = frame::parse_timestamp(t).ok_or_else(|| {
                    Refusal::Nak(format!("timestamp {t:?} is not HH:MM:SS,MM-DD-YYYY"))
                })?;
                if let Some(why) = outside_window(&self.settings, at, now) {
                    return Err(Refusal::Nak(why));
                }
                Some(at.timestamp_millis())
            }
        };
        let cid = match frame.token {
            "NULL" => None,
            _ => Some(Cid::parse(&data.event).map_err(|why| Refusal::Duh(why.to_owned()))?),
        };
        Ok(Checked {
            account,
            cid,
            at_ms,
        })
    }

    /// The event, done: a press or cancel on the press path, anything else supervision.
    async fn act(
        &self,
        account: &SiaAccount,
        event: PanelEvent,
        seq: u64,
        ts_ms: Option<i64>,
    ) -> Taken {
        let device = &account.device;
        let press = |kind| Press {
            seq,
            // No boot id: a panel's sequence number repeats an earlier one only within the
            // press repeat window, as an older unit's does (its numbers wrap at 9999).
            boot: None,
            kind,
            device_ts_ms: ts_ms,
        };
        let policy = self.ingest.supervision_policy();
        let mut battery = None;
        let tamper = match event {
            PanelEvent::Press(kind) => return self.ingest.panel_press(device, &press(kind)).await,
            PanelEvent::Cancel => {
                return self
                    .ingest
                    .panel_press(device, &press(PressKind::Cancel))
                    .await
            }
            PanelEvent::NotMapped => return Taken::Stored,
            PanelEvent::Tamper(open) => {
                self.set_tamper(device, open);
                open
            }
            PanelEvent::BatteryLow(low) => {
                // A panel says only "low" or "restored": recorded as just under the low
                // threshold, or full.
                battery = Some(if low {
                    policy.battery_low.saturating_sub(1)
                } else {
                    100
                });
                self.tamper_of(device).await
            }
            PanelEvent::Test => self.tamper_of(device).await,
        };
        let hb = Heartbeat {
            seq,
            battery,
            tamper,
            rssi: None,
            firmware: None,
        };
        match self.ingest.panel_heartbeat(device, &hb).await {
            Ok(()) => Taken::Stored,
            Err(e) => {
                tracing::error!(%device, error = %e, "panel report not stored: no answer, the panel repeats");
                Taken::NotStored
            }
        }
    }

    fn tamper_map(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, bool>> {
        self.tamper.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_tamper(&self, device: &DeviceId, open: bool) {
        self.tamper_map().insert(device.clone(), open);
    }

    /// The panel's tamper switch as last reported (from the store, the first time).
    async fn tamper_of(&self, device: &DeviceId) -> bool {
        if let Some(t) = self.tamper_map().get(device) {
            return *t;
        }
        let policy = self.ingest.supervision_policy();
        let stored = match self
            .store
            .device_health(device, &policy, self.clock.now_ms())
            .await
        {
            Ok(Some(d)) => d.health.tamper,
            _ => false,
        };
        *self.tamper_map().entry(device.clone()).or_insert(stored)
    }
}

/// Why `at` is outside the window around `now` the settings allow, if it is.
fn outside_window(settings: &SiaSettings, at: DateTime<Utc>, now: DateTime<Utc>) -> Option<String> {
    let behind = (now - at).to_std().unwrap_or_default();
    let ahead = (at - now).to_std().unwrap_or_default();
    if behind > settings.max_behind {
        Some(format!(
            "timestamp {}s behind the receiver's clock (at most {}s): stale or replayed",
            behind.as_secs(),
            settings.max_behind.as_secs()
        ))
    } else if ahead > settings.max_ahead {
        Some(format!(
            "timestamp {}s ahead of the receiver's clock (at most {}s): set the panel's clock",
            ahead.as_secs(),
            settings.max_ahead.as_secs()
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timestamp_window_is_40_s_behind_and_20_s_ahead() {
        let settings = SiaSettings::default();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let at = |s: i64| now + chrono::Duration::seconds(s);
        for ok in [-40, -39, 0, 19, 20] {
            assert_eq!(outside_window(&settings, at(ok), now), None, "{ok} s");
        }
        let behind = outside_window(&settings, at(-41), now).unwrap_or_default();
        assert!(
            behind.contains("41s behind") && behind.contains("replayed"),
            "{behind}"
        );
        let ahead = outside_window(&settings, at(21), now).unwrap_or_default();
        assert!(
            ahead.contains("21s ahead") && ahead.contains("clock"),
            "{ahead}"
        );
    }
}
