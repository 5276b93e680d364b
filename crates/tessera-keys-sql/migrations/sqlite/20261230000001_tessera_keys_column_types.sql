-- SQLite stores any value in any column: a hand edit that writes text into
-- an integer column (`last_used_at = 'never'`) would make every read of the
-- table fail as a whole, `keys list` and `keys rewrap` included (a master
-- key rotation blocked by a bookkeeping column). PostgreSQL refuses such a
-- write by its types; these triggers refuse it here, naming the table.
CREATE TRIGGER tessera_keys_types_on_insert
BEFORE INSERT ON tessera_keys
WHEN typeof(NEW.not_before) NOT IN ('integer', 'null')
  OR typeof(NEW.not_after) NOT IN ('integer', 'null')
  OR typeof(NEW.created_at) <> 'integer'
  OR typeof(NEW.revoked_at) NOT IN ('integer', 'null')
  OR typeof(NEW.last_used_at) NOT IN ('integer', 'null')
  OR typeof(NEW.master_version) <> 'integer'
  OR typeof(NEW.sealed_secret) <> 'blob'
BEGIN
    SELECT RAISE(ABORT, 'tessera_keys: not_before, not_after, created_at, revoked_at, last_used_at and master_version hold integers (Unix seconds, a version) or NULL, sealed_secret a blob');
END;

CREATE TRIGGER tessera_keys_types_on_update
BEFORE UPDATE ON tessera_keys
WHEN typeof(NEW.not_before) NOT IN ('integer', 'null')
  OR typeof(NEW.not_after) NOT IN ('integer', 'null')
  OR typeof(NEW.created_at) <> 'integer'
  OR typeof(NEW.revoked_at) NOT IN ('integer', 'null')
  OR typeof(NEW.last_used_at) NOT IN ('integer', 'null')
  OR typeof(NEW.master_version) <> 'integer'
  OR typeof(NEW.sealed_secret) <> 'blob'
BEGIN
    SELECT RAISE(ABORT, 'tessera_keys: not_before, not_after, created_at, revoked_at, last_used_at and master_version hold integers (Unix seconds, a version) or NULL, sealed_secret a blob');
END;
