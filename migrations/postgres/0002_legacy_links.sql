-- Account links imported from the SSO plugin's configuration (`import-plugin-config`), keyed as
-- the plugin keyed them: by the username claim (preferred_username, else sub), which the identity
-- provider lets people change. A login consults one only when its subject has no link, and the
-- same transaction that finds it deletes it and writes the subject link (see Durable::claim_legacy_link).

CREATE TABLE legacy_links (
    protocol  TEXT    NOT NULL,
    provider  TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    user_id   TEXT    NOT NULL,
    user_key  TEXT    NOT NULL,
    linked_at BIGINT  NOT NULL,
    PRIMARY KEY (protocol, provider, name)
);
CREATE INDEX legacy_links_by_user ON legacy_links (user_key);
