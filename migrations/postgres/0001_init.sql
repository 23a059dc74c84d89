-- The first PostgreSQL schema, the same as migrations/sqlite/0001_init.sql in PostgreSQL types:
-- links, providers added through the API, the sessions the proxy minted and app passwords.
-- Jellyfin user ids are kept as given (user_id) and compared by user_key: lowercase, no dashes.

CREATE TABLE links (
    protocol  TEXT    NOT NULL,
    provider  TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    user_id   TEXT    NOT NULL,
    user_key  TEXT    NOT NULL,
    linked_at BIGINT  NOT NULL,
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
    id_token        BYTEA,
    refresh_token   BYTEA,
    how             TEXT    NOT NULL,
    client          TEXT,
    device_name     TEXT,
    minted_at       BIGINT  NOT NULL,
    last_validated  BIGINT,
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
    hash         BYTEA   NOT NULL,
    created_at   BIGINT  NOT NULL,
    last_used_at BIGINT,
    last_device  TEXT
);
CREATE INDEX app_passwords_by_user ON app_passwords (user_key);

-- Every proxy sharing this database hears of a change of providers through
-- NOTIFY jsp_changes, 'providers' (sent by the proxy that made it, in the same transaction).
