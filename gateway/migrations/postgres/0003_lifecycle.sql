-- The alert lifecycle: recipients with their own states, escalation rings with stored
-- deadlines, resolution, and the first-response times derived per alert. The PostgreSQL twin
-- of migrations/sqlite/0003.

ALTER TABLE alerts ADD COLUMN ring BIGINT NOT NULL DEFAULT 0;
-- when the next ring fires; NULL once someone is coming, the alert closed, or ring 2 fired
ALTER TABLE alerts ADD COLUMN next_ring_at_ms BIGINT;
ALTER TABLE alerts ADD COLUMN critical BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE alerts ADD COLUMN category TEXT;
ALTER TABLE alerts ADD COLUMN resolution_note TEXT;
ALTER TABLE alerts ADD COLUMN first_delivered_at_ms BIGINT;
ALTER TABLE alerts ADD COLUMN first_coming_at_ms BIGINT;
ALTER TABLE alerts ADD COLUMN first_on_scene_at_ms BIGINT;
ALTER TABLE alerts ADD COLUMN acknowledged_at_ms BIGINT;
ALTER TABLE alerts ADD COLUMN closed_at_ms BIGINT;
CREATE INDEX alerts_next_ring ON alerts(next_ring_at_ms) WHERE next_ring_at_ms IS NOT NULL;

CREATE TABLE recipients (
    alert BIGINT NOT NULL REFERENCES alerts(id),
    -- unit: a household's device; volunteer: an account name; station: a zone code
    kind TEXT COLLATE "C" NOT NULL CHECK (kind IN ('unit', 'volunteer', 'station')),
    who TEXT COLLATE "C" NOT NULL,
    -- what people see: the household's label, the volunteer's name, the zone
    label TEXT NOT NULL DEFAULT '',
    ring BIGINT NOT NULL,
    state TEXT NOT NULL,
    distance_m DOUBLE PRECISION,
    notified_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (alert, kind, who)
);
