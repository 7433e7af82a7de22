-- A unit back online hears again the open alerts it is a recipient of (its cluster's, and the
-- rings it was summoned by): found from the unit's side, and only recent ones, through this
-- index instead of a scan of every recipient of every alert. The PostgreSQL twin of
-- migrations/sqlite/0007.
CREATE INDEX recipients_who ON recipients(kind, who, notified_at_ms);
