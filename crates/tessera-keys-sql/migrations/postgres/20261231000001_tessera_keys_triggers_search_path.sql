-- Logical replication's apply workers run with an empty search_path (and,
-- up to PostgreSQL 15, as the subscription's owner, so "$user" names
-- another schema): the change functions name their log table through a
-- search_path pinned to the schema the migrations ran in, resolved now.
DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION tessera_keys_changed() SET search_path = %I, pg_catalog, pg_temp',
        current_schema()
    );
    EXECUTE format(
        'ALTER FUNCTION tessera_keys_truncated() SET search_path = %I, pg_catalog, pg_temp',
        current_schema()
    );
END
$$;
