-- The PostgreSQL twin of migrations/sqlite/0013: a unit's ring-0 recipient rows are found
-- through its cluster's alerts (`alerts_cluster_raised`) and the primary key, so the units'
-- index keeps only later rings, volunteers and stations.
DROP INDEX recipients_who;
CREATE INDEX recipients_who ON recipients(kind, who, notified_at_ms)
    WHERE kind <> 'unit' OR ring > 0;
