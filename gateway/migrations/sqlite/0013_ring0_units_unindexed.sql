-- The units of a cluster are told of their neighbours' alerts (ring 0) by the alert's cluster,
-- not by an index entry each: `recipients_who` no longer holds them. Its nine entries a press
-- landed on nine leaves scattered over the index (one per unit), the largest share of what a
-- press wrote to disk: at 2,000 presses/s, 96 to 107 kB a press with the entries, 53 to 55 kB
-- without (docs/bench/press-cost/). A unit back online finds its cluster's open alerts
-- through `alerts_cluster_raised` and its own recipient row by the primary key; the index
-- keeps the units reached by later rings (another cluster's), the volunteers and the stations.
-- Queries that use it say `(kind <> 'unit' OR ring > 0)` word for word, as SQLite asks of a
-- partial index.
DROP INDEX recipients_who;
CREATE INDEX recipients_who ON recipients(kind, who, notified_at_ms)
    WHERE kind <> 'unit' OR ring > 0;
