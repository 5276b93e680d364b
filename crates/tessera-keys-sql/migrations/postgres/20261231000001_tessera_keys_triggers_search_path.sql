-- Logical replication's apply workers run with an empty search_path (and,
-- up to PostgreSQL 15, as the subscription's owner, so "$user" names
-- another schema): the change functions name their log table through a
-- search_path pinned to the schema the migrations ran in, resolved now,
-- after pg_catalog: a role that may create objects in that schema must
-- not shadow the built-ins they call (lower, now, pg_notify, ||).
DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION tessera_keys_changed() SET search_path = pg_catalog, %I, pg_temp',
        current_schema()
    );
    EXECUTE format(
        'ALTER FUNCTION tessera_keys_truncated() SET search_path = pg_catalog, %I, pg_temp',
        current_schema()
    );
END
$$;
