-- Web Push to patrol volunteers' phones: the gateway's VAPID key pair (made once, shared by
-- every gateway on this database), the volunteers' push subscriptions, what became of each
-- recipient's push, and patrol check-ins. Times are unix milliseconds (UTC).

-- One row: the VAPID key the browsers subscribed with. Changing it orphans every
-- subscription, so it is generated once and never replaced by the gateway.
CREATE TABLE vapid_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- the raw 32-byte P-256 private scalar, base64url without padding
    private_key TEXT NOT NULL,
    -- the uncompressed public point (65 bytes), base64url: the browser's applicationServerKey
    public_key TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

-- A browser's PushSubscription. The endpoint is the push service's URL for that browser: it
-- belongs to whoever registered it last (a shared phone changes hands).
CREATE TABLE push_subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    endpoint TEXT NOT NULL UNIQUE,
    -- the browser's ECDH public key and auth secret, base64url, for aes128gcm
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    user_agent TEXT NOT NULL DEFAULT '',
    created_at_ms INTEGER NOT NULL,
    -- the last push the service accepted, and the last failure
    last_ok_ms INTEGER,
    last_error TEXT
);
CREATE INDEX push_subscriptions_account ON push_subscriptions(account);

-- What became of the push to a volunteer recipient: accepted (by the push service),
-- no_subscription, expired (404/410: subscription removed), failed (after retries), and
-- when. Delivery to the phone itself is the recipient's state 'delivered', which the phone's
-- service worker reports.
ALTER TABLE recipients ADD COLUMN push TEXT;
ALTER TABLE recipients ADD COLUMN push_at_ms INTEGER;

-- Patrol check-ins (巡逻签到): where and when a volunteer on patrol was.
CREATE TABLE checkins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    lat REAL NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon REAL NOT NULL CHECK (lon BETWEEN -180 AND 180),
    note TEXT NOT NULL DEFAULT '',
    at_ms INTEGER NOT NULL
);
CREATE INDEX checkins_account ON checkins(account, at_ms);
