-- The column type triggers again, with two changes:
-- * an update is checked on the columns it changes only: a row holding a
--   mistyped value from before the triggers (or from a hand edit with them
--   dropped) can still be revoked, or have any other column changed; a
--   trigger that checked every column refused the revoke of such a key and,
--   with it, `keys revoke --owner` for every key of its owner;
-- * the text columns are checked too: a key id stored as a blob is logged
--   as a blob in the change log and named by no cached key, and an owner
--   stored as a blob hides the key from the owner's commands.
-- IF EXISTS: a database whose triggers were dropped by hand migrates too.
DROP TRIGGER IF EXISTS tessera_keys_types_on_insert;
DROP TRIGGER IF EXISTS tessera_keys_types_on_update;

CREATE TRIGGER tessera_keys_types_on_insert
BEFORE INSERT ON tessera_keys
WHEN typeof(NEW.key_id) <> 'text'
  OR typeof(NEW.owner) <> 'text'
  OR typeof(NEW.client) NOT IN ('text', 'null')
  OR typeof(NEW.scopes) <> 'text'
  OR typeof(NEW.state) <> 'text'
  OR typeof(NEW.not_before) NOT IN ('integer', 'null')
  OR typeof(NEW.not_after) NOT IN ('integer', 'null')
  OR typeof(NEW.created_at) <> 'integer'
  OR typeof(NEW.revoked_at) NOT IN ('integer', 'null')
  OR typeof(NEW.revoke_reason) NOT IN ('text', 'null')
  OR typeof(NEW.last_used_at) NOT IN ('integer', 'null')
  OR typeof(NEW.master_version) <> 'integer'
  OR typeof(NEW.sealed_secret) <> 'blob'
  OR typeof(NEW.attributes) NOT IN ('text', 'null')
  OR typeof(NEW.replaces) NOT IN ('text', 'null')
BEGIN
    SELECT RAISE(ABORT, 'tessera_keys: key_id, owner, scopes and state hold text; client, revoke_reason, attributes and replaces text or NULL; not_before, not_after, revoked_at and last_used_at integers or NULL; created_at and master_version integers; sealed_secret a blob');
END;

CREATE TRIGGER tessera_keys_types_on_update
BEFORE UPDATE ON tessera_keys
WHEN (NEW.key_id IS NOT OLD.key_id AND typeof(NEW.key_id) <> 'text')
  OR (NEW.owner IS NOT OLD.owner AND typeof(NEW.owner) <> 'text')
  OR (NEW.client IS NOT OLD.client AND typeof(NEW.client) NOT IN ('text', 'null'))
  OR (NEW.scopes IS NOT OLD.scopes AND typeof(NEW.scopes) <> 'text')
  OR (NEW.state IS NOT OLD.state AND typeof(NEW.state) <> 'text')
  OR (NEW.not_before IS NOT OLD.not_before AND typeof(NEW.not_before) NOT IN ('integer', 'null'))
  OR (NEW.not_after IS NOT OLD.not_after AND typeof(NEW.not_after) NOT IN ('integer', 'null'))
  OR (NEW.created_at IS NOT OLD.created_at AND typeof(NEW.created_at) <> 'integer')
  OR (NEW.revoked_at IS NOT OLD.revoked_at AND typeof(NEW.revoked_at) NOT IN ('integer', 'null'))
  OR (NEW.revoke_reason IS NOT OLD.revoke_reason AND typeof(NEW.revoke_reason) NOT IN ('text', 'null'))
  OR (NEW.last_used_at IS NOT OLD.last_used_at AND typeof(NEW.last_used_at) NOT IN ('integer', 'null'))
  OR (NEW.master_version IS NOT OLD.master_version AND typeof(NEW.master_version) <> 'integer')
  OR (NEW.sealed_secret IS NOT OLD.sealed_secret AND typeof(NEW.sealed_secret) <> 'blob')
  OR (NEW.attributes IS NOT OLD.attributes AND typeof(NEW.attributes) NOT IN ('text', 'null'))
  OR (NEW.replaces IS NOT OLD.replaces AND typeof(NEW.replaces) NOT IN ('text', 'null'))
BEGIN
    SELECT RAISE(ABORT, 'tessera_keys: key_id, owner, scopes and state hold text; client, revoke_reason, attributes and replaces text or NULL; not_before, not_after, revoked_at and last_used_at integers or NULL; created_at and master_version integers; sealed_secret a blob');
END;
