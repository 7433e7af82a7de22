-- Accounts of people (operators at the station, patrol volunteers), the zones each may see,
-- volunteers' duty state and last position, and sign-in sessions.
-- Times are unix milliseconds (UTC).

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- the login name; case-insensitive so that "Wang" and "wang" cannot both exist
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    kind TEXT NOT NULL CHECK (kind IN ('operator', 'volunteer')),
    -- operators: 'monitor' or 'admin'; volunteers have none
    role TEXT CHECK (
        (kind = 'operator' AND role IN ('monitor', 'admin'))
        OR (kind = 'volunteer' AND role IS NULL)
    ),
    display_name TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    -- Argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash)
    password_hash TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);

-- The zones an account may see: several for an operator, exactly one for a volunteer.
CREATE TABLE account_zones (
    account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    zone TEXT NOT NULL REFERENCES zones(code),
    PRIMARY KEY (account, zone)
);
CREATE INDEX account_zones_zone ON account_zones(zone, account);

CREATE TRIGGER account_zones_one_per_volunteer
BEFORE INSERT ON account_zones
WHEN (SELECT kind FROM accounts WHERE id = NEW.account) = 'volunteer'
    AND EXISTS (SELECT 1 FROM account_zones WHERE account = NEW.account)
BEGIN
    SELECT RAISE(ABORT, 'a volunteer belongs to exactly one zone');
END;

-- What the alert lifecycle needs of a volunteer: on duty or not, and where last seen.
-- The position is cleared when the volunteer goes off duty: it is only kept while it is used.
CREATE TABLE volunteers (
    account INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    on_duty INTEGER NOT NULL DEFAULT 0,
    duty_changed_at_ms INTEGER,
    lat REAL CHECK (lat IS NULL OR lat BETWEEN -90 AND 90),
    lon REAL CHECK (lon IS NULL OR lon BETWEEN -180 AND 180),
    position_at_ms INTEGER
);
CREATE INDEX volunteers_on_duty ON volunteers(on_duty) WHERE on_duty = 1;

-- A session is known only by the SHA-256 of its token: a copy of the database signs nobody in.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at_ms INTEGER NOT NULL,
    -- sliding: moved forward as the session is used
    expires_at_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
CREATE INDEX sessions_account ON sessions(account);
CREATE INDEX sessions_expires ON sessions(expires_at_ms);
