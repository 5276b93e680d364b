-- The change log and its notifications are written whatever the session's
-- replication role: ordinary triggers do not fire under
-- `session_replication_role = replica`, which logical replication's apply
-- workers and `pg_restore --disable-triggers` use, so a key revoked through
-- them would reach no running verifier until its cache entry expired.
ALTER TABLE tessera_keys ENABLE ALWAYS TRIGGER tessera_keys_changed;
ALTER TABLE tessera_keys ENABLE ALWAYS TRIGGER tessera_keys_truncated;
