-- A press's identity survives a unit's counter starting again (issue 13, item 10), and a
-- household's presses on its open alert add to it (item 3):
-- - presses: keyed on (device, boot, seq); `boot` is the unit's power-up id, '' from a unit
--   that sends none (such a press repeats an earlier one only within the repeat window, so
--   the row is then overwritten by the new press it turned out to be);
-- - alerts: no longer UNIQUE (device, seq) (a unit's counter may start again, so a seq comes
--   back), the first press's boot, how many presses the household made on it and the latest.
--
-- SQLite drops a table constraint only by rebuilding the table. alerts is the parent of
-- presses, recipients, alert_events and more, and this runs in the migration's transaction,
-- where foreign keys cannot be switched off: they are deferred to the commit instead, the old
-- rows parked in a temporary table, the table dropped and made again under its own name, and
-- the rows put back with their ids, which settles every child row again before the commit
-- checks. The AUTOINCREMENT counter is kept, and every index is made again.
PRAGMA defer_foreign_keys = ON;

CREATE TEMP TABLE old_alerts AS SELECT * FROM alerts;
CREATE TEMP TABLE old_alerts_seq AS SELECT seq FROM sqlite_sequence WHERE name = 'alerts';
DROP TABLE alerts;

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
    ring INTEGER NOT NULL DEFAULT 0,
    -- when the next ring fires; NULL once someone is coming, the alert closed, or ring 2 fired
    next_ring_at_ms INTEGER,
    critical INTEGER NOT NULL DEFAULT 0,
    category TEXT,
    resolution_note TEXT,
    first_delivered_at_ms INTEGER,
    first_coming_at_ms INTEGER,
    first_on_scene_at_ms INTEGER,
    acknowledged_at_ms INTEGER,
    closed_at_ms INTEGER,
    -- the boot id of the press that raised it ('' none): a later ack carries it
    boot TEXT NOT NULL DEFAULT '',
    -- presses the household made on it (1: the one that raised it), and the latest's time
    presses INTEGER NOT NULL DEFAULT 1,
    last_press_at_ms INTEGER NOT NULL
);

INSERT INTO alerts (id, device, seq, household, cluster, zone, kind, state, raised_at_ms,
    device_ts_ms, notified_at_ms, updated_at_ms, ring, next_ring_at_ms, critical, category,
    resolution_note, first_delivered_at_ms, first_coming_at_ms, first_on_scene_at_ms,
    acknowledged_at_ms, closed_at_ms, last_press_at_ms)
SELECT id, device, seq, household, cluster, zone, kind, state, raised_at_ms,
    device_ts_ms, notified_at_ms, updated_at_ms, ring, next_ring_at_ms, critical, category,
    resolution_note, first_delivered_at_ms, first_coming_at_ms, first_on_scene_at_ms,
    acknowledged_at_ms, closed_at_ms, raised_at_ms
FROM temp.old_alerts ORDER BY id;

UPDATE sqlite_sequence SET seq = (SELECT seq FROM temp.old_alerts_seq)
WHERE name = 'alerts' AND seq < (SELECT seq FROM temp.old_alerts_seq);
DROP TABLE temp.old_alerts;
DROP TABLE temp.old_alerts_seq;

CREATE INDEX alerts_zone_raised ON alerts(zone, raised_at_ms);
CREATE INDEX alerts_device_raised ON alerts(device, raised_at_ms);
CREATE INDEX alerts_next_ring ON alerts(next_ring_at_ms) WHERE next_ring_at_ms IS NOT NULL;
-- A press looks for its household's open alert pressed within the merge window.
CREATE INDEX alerts_household_pressed ON alerts(household, last_press_at_ms);

-- presses has no children: made again and filled.
CREATE TABLE presses_new (
    device TEXT NOT NULL,
    -- the unit's power-up id, '' when it sends none
    boot TEXT NOT NULL DEFAULT '',
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    alert INTEGER REFERENCES alerts(id),
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (device, boot, seq)
);
INSERT INTO presses_new (device, boot, seq, kind, alert, at_ms)
SELECT device, '', seq, kind, alert, at_ms FROM presses;
DROP TABLE presses;
ALTER TABLE presses_new RENAME TO presses;
