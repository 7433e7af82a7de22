-- A press's identity survives a unit's counter starting again (issue 13, item 10), and a
-- household's presses on its open alert add to it (item 3). The PostgreSQL twin of
-- migrations/sqlite/0008, which says why each column is there.
ALTER TABLE alerts DROP CONSTRAINT alerts_device_seq_key;
ALTER TABLE alerts ADD COLUMN boot TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN presses BIGINT NOT NULL DEFAULT 1;
ALTER TABLE alerts ADD COLUMN last_press_at_ms BIGINT;
UPDATE alerts SET last_press_at_ms = raised_at_ms;
ALTER TABLE alerts ALTER COLUMN last_press_at_ms SET NOT NULL;
CREATE INDEX alerts_household_pressed ON alerts(household, last_press_at_ms);

ALTER TABLE presses ADD COLUMN boot TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE presses DROP CONSTRAINT presses_pkey;
ALTER TABLE presses ADD PRIMARY KEY (device, boot, seq);
