-- The station looks back: closed alerts searched by cluster, and one device's presence and
-- battery over a window. Both read what is already stored; these indexes let them walk a
-- range instead of scanning.

-- A cluster's alerts by time (the zone's and a household's have their indexes already).
-- One entry per alert, written with the alert and never moved: its columns do not change.
CREATE INDEX alerts_cluster_raised ON alerts(cluster, raised_at_ms);

-- A device's changes of one kind by time: its presence changes (online, offline) or its
-- battery levels, apart from the signal and firmware lines between them.
CREATE INDEX device_events_kind ON device_events(device, kind, at_ms);
