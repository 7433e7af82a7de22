-- The alert lifecycle: recipients with their own states, escalation rings with stored
-- deadlines, resolution, and the first-response times derived per alert.

ALTER TABLE alerts ADD COLUMN ring INTEGER NOT NULL DEFAULT 0;
-- when the next ring fires; NULL once someone is coming, the alert closed, or ring 2 fired
ALTER TABLE alerts ADD COLUMN next_ring_at_ms INTEGER;
ALTER TABLE alerts ADD COLUMN critical INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN category TEXT;
ALTER TABLE alerts ADD COLUMN resolution_note TEXT;
ALTER TABLE alerts ADD COLUMN first_delivered_at_ms INTEGER;
ALTER TABLE alerts ADD COLUMN first_coming_at_ms INTEGER;
ALTER TABLE alerts ADD COLUMN first_on_scene_at_ms INTEGER;
ALTER TABLE alerts ADD COLUMN acknowledged_at_ms INTEGER;
ALTER TABLE alerts ADD COLUMN closed_at_ms INTEGER;
CREATE INDEX alerts_next_ring ON alerts(next_ring_at_ms) WHERE next_ring_at_ms IS NOT NULL;

CREATE TABLE recipients (
    alert INTEGER NOT NULL REFERENCES alerts(id),
    -- unit: a household's device; volunteer: an account name; station: a zone code
    kind TEXT NOT NULL CHECK (kind IN ('unit', 'volunteer', 'station')),
    who TEXT NOT NULL,
    -- what people see: the household's label, the volunteer's name, the zone
    label TEXT NOT NULL DEFAULT '',
    ring INTEGER NOT NULL,
    state TEXT NOT NULL,
    distance_m REAL,
    notified_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (alert, kind, who)
);
