-- Change propagation: every change to a key row (made by this store or by
-- hand) is logged with its key id and announced with NOTIFY tessera_keys
-- (payload: OP:KEY_ID, OP being insert, update or delete; delivered at commit), by a trigger. Servers LISTEN,
-- and also poll for rows past the last seq they saw (a safety net, and after
-- a reconnect). Updates of last_used_at alone are not logged.
--
-- The trigger takes a transaction-scoped advisory lock before it draws a
-- seq, so seq order is commit order: a poller that has seen seq N has seen
-- every change before it. (The store takes the same lock when it begins a
-- write transaction, so its transactions always lock in the same order.)
CREATE TABLE tessera_key_changes (
    seq    BIGSERIAL NOT NULL PRIMARY KEY,
    key_id TEXT      NOT NULL,
    -- insert, update or delete
    op     TEXT      NOT NULL,
    at     BIGINT    NOT NULL
);
CREATE INDEX tessera_key_changes_at ON tessera_key_changes (at);

-- Deleting a key sets `replaces` to NULL in its successor: without an index
-- each deleted row would scan the whole table.
CREATE INDEX tessera_keys_replaces ON tessera_keys (replaces);

CREATE FUNCTION tessera_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7322, 1);
    IF TG_OP = 'UPDATE' OR TG_OP = 'DELETE' THEN
        INSERT INTO tessera_key_changes (key_id, op, at)
        VALUES (OLD.key_id, lower(TG_OP), extract(epoch FROM now())::bigint);
        PERFORM pg_notify('tessera_keys', lower(TG_OP) || ':' || OLD.key_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.key_id IS DISTINCT FROM OLD.key_id) THEN
        INSERT INTO tessera_key_changes (key_id, op, at)
        VALUES (NEW.key_id, lower(TG_OP), extract(epoch FROM now())::bigint);
        PERFORM pg_notify('tessera_keys', lower(TG_OP) || ':' || NEW.key_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tessera_keys_changed
AFTER INSERT OR DELETE OR UPDATE OF key_id, owner, client, scopes, state, not_before, not_after,
    revoked_at, master_version, sealed_secret, attributes
ON tessera_keys FOR EACH ROW EXECUTE FUNCTION tessera_keys_changed();
