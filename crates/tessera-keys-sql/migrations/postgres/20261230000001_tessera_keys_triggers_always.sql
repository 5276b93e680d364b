-- The change log and its notifications are written whatever the session's
-- replication role: ordinary triggers do not fire under
-- `session_replication_role = replica`, which logical replication's apply
-- workers use, so a key revoked through them would reach no running
-- verifier until its cache entry expired.
ALTER TABLE tessera_keys ENABLE ALWAYS TRIGGER tessera_keys_changed;
ALTER TABLE tessera_keys ENABLE ALWAYS TRIGGER tessera_keys_truncated;
-- Those workers run with an empty search_path: the functions find the log
-- table in the schema the migrations ran in, whoever calls them.
ALTER FUNCTION tessera_keys_changed() SET search_path FROM CURRENT;
ALTER FUNCTION tessera_keys_truncated() SET search_path FROM CURRENT;
