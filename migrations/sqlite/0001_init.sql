-- The first schema of state.db: what src/store.rs kept in state.json (links, providers added
-- through the API) plus the sessions the proxy minted and app passwords.
-- Jellyfin user ids are kept as given (user_id) and compared by user_key: lowercase, no dashes.

CREATE TABLE links (
    protocol  TEXT    NOT NULL,
    provider  TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    user_id   TEXT    NOT NULL,
    user_key  TEXT    NOT NULL,
    linked_at INTEGER NOT NULL,
    PRIMARY KEY (protocol, provider, subject)
);
CREATE INDEX links_by_user ON links (user_key);

CREATE TABLE providers (
    protocol TEXT NOT NULL,
    name     TEXT NOT NULL,
    json     TEXT NOT NULL,
    PRIMARY KEY (protocol, name)
);

CREATE TABLE minted_sessions (
    user_key        TEXT    NOT NULL,
    device_id       TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    provider        TEXT    NOT NULL,
    protocol        TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    sid             TEXT,
    id_token        BLOB,
    refresh_token   BLOB,
    how             TEXT    NOT NULL,
    client          TEXT,
    device_name     TEXT,
    minted_at       INTEGER NOT NULL,
    last_validated  INTEGER,
    app_password_id TEXT,
    PRIMARY KEY (user_key, device_id)
);
CREATE INDEX minted_by_sid ON minted_sessions (provider, sid) WHERE sid IS NOT NULL;
CREATE INDEX minted_by_subject ON minted_sessions (protocol, provider, subject);
CREATE INDEX minted_by_age ON minted_sessions (provider, minted_at);

CREATE TABLE app_passwords (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    user_key     TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    hash         BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    last_device  TEXT
);
CREATE INDEX app_passwords_by_user ON app_passwords (user_key);
