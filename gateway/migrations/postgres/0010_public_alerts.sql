-- A station may make an alert public: its CAP 1.2 messages then appear in the public Atom
-- feed (/cap/feed.atom) and as documents (/cap/alerts/{id}.xml). The moment it was made
-- public is the first message's `sent`, so it is written once and never moved. The
-- PostgreSQL twin of migrations/sqlite/0010.
ALTER TABLE alerts ADD COLUMN public_at_ms BIGINT;

-- The feed reads the public alerts, newest first; most alerts never are.
CREATE INDEX alerts_public ON alerts(public_at_ms) WHERE public_at_ms IS NOT NULL;
