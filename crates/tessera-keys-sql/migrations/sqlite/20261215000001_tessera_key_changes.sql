-- Change propagation: every change to a key row (made by this store or by
-- hand) is logged with its key id, in the same transaction, by triggers.
-- Servers poll for rows past the last seq they saw and drop those keys from
-- their caches. Updates of last_used_at alone are not logged. SQLite has one
-- writer at a time, so seq order is commit order.
CREATE TABLE tessera_key_changes (
    seq    INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    key_id TEXT    NOT NULL,
    -- insert, update or delete
    op     TEXT    NOT NULL,
    at     INTEGER NOT NULL
);
CREATE INDEX tessera_key_changes_at ON tessera_key_changes (at);

-- Deleting a key sets `replaces` to NULL in its successor: without an index
-- each deleted row would scan the whole table.
CREATE INDEX tessera_keys_replaces ON tessera_keys (replaces);

CREATE TRIGGER tessera_keys_changed_insert AFTER INSERT ON tessera_keys
BEGIN
    INSERT INTO tessera_key_changes (key_id, op, at)
    VALUES (NEW.key_id, 'insert', CAST(strftime('%s', 'now') AS INTEGER));
END;

CREATE TRIGGER tessera_keys_changed_update
AFTER UPDATE OF key_id, owner, client, scopes, state, not_before, not_after, revoked_at,
    master_version, sealed_secret, attributes ON tessera_keys
BEGIN
    INSERT INTO tessera_key_changes (key_id, op, at)
    VALUES (OLD.key_id, 'update', CAST(strftime('%s', 'now') AS INTEGER));
    INSERT INTO tessera_key_changes (key_id, op, at)
    SELECT NEW.key_id, 'update', CAST(strftime('%s', 'now') AS INTEGER) WHERE NEW.key_id <> OLD.key_id;
END;

CREATE TRIGGER tessera_keys_changed_delete AFTER DELETE ON tessera_keys
BEGIN
    INSERT INTO tessera_key_changes (key_id, op, at)
    VALUES (OLD.key_id, 'delete', CAST(strftime('%s', 'now') AS INTEGER));
END;
