-- Device supervision and health: each device's supervised state and the evidence it rests
-- on, the history of every change, the problems that need someone's attention, and each
-- cluster's coverage (households reachable now) with its history.
-- Times are unix milliseconds (UTC).

-- 'never_seen', 'online' or 'offline'. 'late' is not stored: it is an online device whose
-- heartbeat is overdue, derived when read, so heartbeat jitter costs no writes.
ALTER TABLE devices ADD COLUMN sup_state TEXT NOT NULL DEFAULT 'never_seen';
-- why offline: clean_disconnect, keepalive_lost, connection_lost, heartbeat_missed, ...
ALTER TABLE devices ADD COLUMN sup_reason TEXT;
ALTER TABLE devices ADD COLUMN sup_since_ms INTEGER;
-- the last evidence of life (an accepted connection or a heartbeat); deadlines run from it
ALTER TABLE devices ADD COLUMN evidence_ms INTEGER;
-- the signal strength last written to the history (small moves are not history)
ALTER TABLE devices ADD COLUMN rssi_recorded INTEGER;

-- What the edge had said before this migration.
UPDATE devices SET
    sup_state = CASE WHEN online = 1 THEN 'online'
                     WHEN last_seen_ms IS NOT NULL THEN 'offline'
                     ELSE 'never_seen' END,
    sup_reason = CASE WHEN online = 1 THEN NULL ELSE disconnect_reason END,
    sup_since_ms = last_seen_ms,
    evidence_ms = COALESCE(last_heartbeat_ms, last_seen_ms);

-- The supervisor's one query: the oldest evidence among online devices.
CREATE INDEX devices_supervised ON devices(evidence_ms) WHERE sup_state = 'online';

-- Every change of a device's state or health, with its time: the device's history.
CREATE TABLE device_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL REFERENCES devices(id),
    at_ms INTEGER NOT NULL,
    -- online, offline, battery, tamper, firmware, rssi
    kind TEXT NOT NULL,
    -- the new state or value
    value TEXT NOT NULL DEFAULT '',
    -- the reason, or the value before
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX device_events_device ON device_events(device, id);

-- What needs attention: a device offline (one row per episode, however often it flaps), a
-- low battery, a tamper switch. Closed rows stay as history.
CREATE TABLE device_problems (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL REFERENCES devices(id),
    -- offline, low_battery, tamper
    kind TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    opened_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    -- offline: how many times the device went offline in this episode
    flaps INTEGER NOT NULL DEFAULT 1,
    -- offline: the device is back; the episode closes at this time if it stays online
    settle_at_ms INTEGER,
    closed_at_ms INTEGER
);
CREATE UNIQUE INDEX device_problems_open ON device_problems(device, kind)
    WHERE closed_at_ms IS NULL;
CREATE INDEX device_problems_settle ON device_problems(settle_at_ms)
    WHERE settle_at_ms IS NOT NULL AND closed_at_ms IS NULL;
CREATE INDEX device_problems_opened ON device_problems(opened_at_ms);

-- Each cluster's coverage as last reported, so that a change is reported once.
CREATE TABLE cluster_coverage (
    cluster TEXT PRIMARY KEY REFERENCES clusters(id),
    reachable INTEGER NOT NULL,
    households INTEGER NOT NULL,
    below INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE coverage_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster TEXT NOT NULL REFERENCES clusters(id),
    at_ms INTEGER NOT NULL,
    reachable INTEGER NOT NULL,
    households INTEGER NOT NULL,
    below INTEGER NOT NULL
);
CREATE INDEX coverage_events_cluster ON coverage_events(cluster, id);
