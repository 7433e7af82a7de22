-- Registry: zones, clusters, households, devices; and the press path: presses, alerts, events.
-- Times are unix milliseconds (UTC).

CREATE TABLE zones (
    code TEXT PRIMARY KEY CHECK (length(code) = 8 AND code NOT GLOB '*[^0-9]*'),
    name TEXT NOT NULL
);

CREATE TABLE clusters (
    id TEXT PRIMARY KEY,
    zone TEXT NOT NULL REFERENCES zones(code),
    name TEXT NOT NULL,
    -- the cluster leader (十户长) is one of its households
    leader_household TEXT
);
CREATE INDEX clusters_zone ON clusters(zone);

CREATE TABLE households (
    id TEXT PRIMARY KEY,
    cluster TEXT NOT NULL REFERENCES clusters(id),
    -- what neighbours' units show, e.g. "和平路12号"
    label TEXT NOT NULL,
    address TEXT NOT NULL,
    lat REAL NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon REAL NOT NULL CHECK (lon BETWEEN -180 AND 180),
    -- residents' notes for responders: elderly living alone, medical needs
    notes TEXT NOT NULL DEFAULT '',
    -- contacts as free text ("name phone; name phone")
    contacts TEXT NOT NULL DEFAULT ''
);
CREATE INDEX households_cluster ON households(cluster);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    household TEXT NOT NULL REFERENCES households(id),
    -- hex SHA-256 of the device's random secret
    secret_hash TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    online INTEGER NOT NULL DEFAULT 0,
    -- the edge session that last connected; a disconnect of an older session is ignored
    session INTEGER,
    last_seen_ms INTEGER,
    disconnect_reason TEXT,
    last_heartbeat_ms INTEGER,
    battery INTEGER,
    tamper INTEGER,
    rssi INTEGER,
    firmware TEXT
);
CREATE INDEX devices_household ON devices(household);

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL REFERENCES devices(id),
    seq INTEGER NOT NULL,
    household TEXT NOT NULL REFERENCES households(id),
    cluster TEXT NOT NULL REFERENCES clusters(id),
    zone TEXT NOT NULL REFERENCES zones(code),
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    raised_at_ms INTEGER NOT NULL,
    device_ts_ms INTEGER,
    -- set once the cluster alert and station event went out; NULL means fan-out is owed
    notified_at_ms INTEGER,
    updated_at_ms INTEGER NOT NULL,
    UNIQUE (device, seq)
);
CREATE INDEX alerts_zone_raised ON alerts(zone, raised_at_ms);
CREATE INDEX alerts_device_raised ON alerts(device, raised_at_ms);

-- Every press a device made (dedup on device + seq), including cancels.
CREATE TABLE presses (
    device TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    alert INTEGER REFERENCES alerts(id),
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (device, seq)
);

CREATE TABLE alert_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert INTEGER NOT NULL REFERENCES alerts(id),
    at_ms INTEGER NOT NULL,
    -- who: "device:<id>", "gateway", "operator:<name>"
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alert_events_alert ON alert_events(alert, id);
