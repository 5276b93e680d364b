-- TRUNCATE fires no row trigger, so without this a `TRUNCATE tessera_keys`
-- (by hand, or a restore script) would reach no verifier's cache: replicas
-- would keep accepting every cached key until cache_ttl. A statement
-- trigger logs one change with op `truncate` (and key id `*`), which every
-- store treats as "every key changed" (it drops its whole cache), and
-- notifies listeners the same way.
CREATE FUNCTION tessera_keys_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7322, 1);
    INSERT INTO tessera_key_changes (key_id, op, at)
    VALUES ('*', 'truncate', extract(epoch FROM now())::bigint);
    PERFORM pg_notify('tessera_keys', 'truncate:*');
    RETURN NULL;
END;
$$;

CREATE TRIGGER tessera_keys_truncated
AFTER TRUNCATE ON tessera_keys FOR EACH STATEMENT EXECUTE FUNCTION tessera_keys_truncated();
