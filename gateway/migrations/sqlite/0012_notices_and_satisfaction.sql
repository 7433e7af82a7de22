-- Notices to residents and what residents think (issue 15).
--
-- A notice is written by an operator for a zone or for chosen clusters of it. Each unit it is
-- meant for has a row in notice_units, written with the notice: the units online hear it on
-- their cluster topic, a unit that was away gets it on its own down/notice when it is back,
-- and every unit's `delivered` receipt lands on its row. A unit without a row is not told,
-- and its receipt is refused. On-duty volunteers of the zone are pushed it; notice_volunteers
-- keeps what became of each push.
CREATE TABLE notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    zone TEXT NOT NULL REFERENCES zones(code),
    -- the clusters chosen, comma-separated; '' for the whole zone
    clusters TEXT NOT NULL DEFAULT '',
    -- prevention, wanted, weather, fire, other
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    -- the operator's account name
    author TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX notices_zone ON notices(zone, id);

CREATE TABLE notice_units (
    notice INTEGER NOT NULL REFERENCES notices(id),
    device TEXT NOT NULL REFERENCES devices(id),
    household TEXT NOT NULL REFERENCES households(id),
    -- the unit's first `delivered` receipt; NULL: owed to it
    delivered_at_ms INTEGER,
    PRIMARY KEY (notice, device)
);
-- What a unit back online is owed.
CREATE INDEX notice_units_owed ON notice_units(device, delivered_at_ms);

CREATE TABLE notice_volunteers (
    notice INTEGER NOT NULL REFERENCES notices(id),
    -- the volunteer's account name
    volunteer TEXT NOT NULL,
    -- what became of the push: accepted, no_subscription, expired, failed: …; NULL: not yet
    push TEXT,
    push_at_ms INTEGER,
    PRIMARY KEY (notice, volunteer)
);

-- "Satisfied / not satisfied" from the presser's household once its alert is resolved: one
-- answer per alert, the first kept.
CREATE TABLE alert_satisfaction (
    alert INTEGER PRIMARY KEY REFERENCES alerts(id),
    -- the unit that answered (one of the household's)
    device TEXT NOT NULL,
    satisfied INTEGER NOT NULL,
    answered_at_ms INTEGER NOT NULL
);
