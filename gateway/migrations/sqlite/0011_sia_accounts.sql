-- Alarm panels reporting over SIA DC-09 (issue 15): each panel account belongs to a household
-- and has a device row of its own (`sia-{account}`), so that its presses take the units' press
-- path (stored first, deduplicated on the device and the DC-09 sequence number, cancelled by
-- the device's cancel rule) and its link tests count as that device's heartbeats. The panel's
-- device never logs in over MQTT: its secret is random and never shown.
CREATE TABLE sia_accounts (
    -- the DC-09 account number, 3 to 16 hex digits, upper case
    account TEXT PRIMARY KEY,
    household TEXT NOT NULL REFERENCES households(id),
    device TEXT NOT NULL UNIQUE REFERENCES devices(id),
    -- the AES-128 key as 32 hex digits; NULL: the panel reports in the clear. Kept
    -- as it is: the receiver needs the key itself to decrypt.
    key_hex TEXT,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX sia_accounts_household ON sia_accounts(household);
