-- tessera-keys-sql schema, PostgreSQL. Times are Unix seconds.
-- The sealed secret is bound (AES-256-GCM associated data) to key_id, owner,
-- client, scopes, not_before, not_after, attributes and master_version:
-- editing any of them makes the key fail closed. state, revoked_at,
-- revoke_reason, last_used_at, created_at and replaces are plain columns.
CREATE TABLE tessera_keys (
    key_id         TEXT    NOT NULL PRIMARY KEY,
    owner          TEXT    NOT NULL,
    client         TEXT,
    -- canonical JSON array of the scopes, sorted (TEXT, not JSONB: the
    -- exact text is what was sealed against)
    scopes         TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('active', 'revoked')),
    not_before     BIGINT,
    not_after      BIGINT,
    created_at     BIGINT  NOT NULL,
    revoked_at     BIGINT,
    revoke_reason  TEXT,
    last_used_at   BIGINT,
    master_version BIGINT  NOT NULL,
    -- 0x01 || 12-byte nonce || ciphertext || 16-byte tag
    sealed_secret  BYTEA   NOT NULL,
    -- canonical JSON object (keys sorted, no whitespace)
    attributes     TEXT,
    replaces       TEXT REFERENCES tessera_keys (key_id) ON DELETE SET NULL
);
CREATE INDEX tessera_keys_owner ON tessera_keys (owner, state);
CREATE INDEX tessera_keys_master_version ON tessera_keys (master_version);

CREATE TABLE tessera_key_audit (
    id      BIGSERIAL NOT NULL PRIMARY KEY,
    at      BIGINT    NOT NULL,
    actor   TEXT      NOT NULL,
    action  TEXT      NOT NULL,
    key_id  TEXT,
    owner   TEXT,
    detail  TEXT
);
CREATE INDEX tessera_key_audit_key ON tessera_key_audit (key_id);
CREATE INDEX tessera_key_audit_owner ON tessera_key_audit (owner);

-- One sealed known value per master key version (checked at start-up).
CREATE TABLE tessera_master_canary (
    master_version BIGINT NOT NULL PRIMARY KEY,
    sealed         BYTEA  NOT NULL,
    created_at     BIGINT NOT NULL
);

-- Bumped by every issue, rotate, revoke and rewrap (for change polling and
-- LISTEN/NOTIFY reconciliation).
CREATE TABLE tessera_change_counter (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    value BIGINT  NOT NULL
);
INSERT INTO tessera_change_counter (id, value) VALUES (1, 0);
