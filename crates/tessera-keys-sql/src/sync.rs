//! Change propagation and database health: how a revoke, rotate, rewrap or
//! issue made by any process reaches this one's caches, and what happens
//! while the database is unreachable.
//!
//! * Every change to a key row is logged in `tessera_key_changes` by a
//!   trigger (so changes made by hand count too), in the same transaction.
//! * A poller reads the rows past the last seq it saw, every
//!   `change_poll_interval` (750 ms by default), and drops those keys from the
//!   verified-key and negative caches (everything, when too much changed,
//!   when it lost track, or when the log no longer holds the last row it
//!   saw: a database restored from a backup, or the log emptied by hand,
//!   whose new changes would reuse seqs the poller has already passed). On
//!   SQLite this is how other processes' changes arrive.
//! * On PostgreSQL the trigger also sends `NOTIFY tessera_keys, '<key id>'`
//!   at commit; a listener task drops the key at once. The poller remains as
//!   the safety net, runs at once after the listener (re)connects, and runs
//!   every 250 ms while the listener is down.
//! * Every successful poll confirms the cached keys. A cached key is served
//!   only while its confirmation (the later of its own read and the last
//!   successful poll) is at most `max_staleness` old; past that it is read
//!   again, and refused while the database cannot answer.
//! * A poller that fell behind (its last successful poll more than two
//!   intervals old while the database is thought reachable: a paused
//!   process, a starved runtime, a failing or slow log read) is woken and
//!   waited for (at most `lookup_timeout`) before a resolve answers from a
//!   cache, so that the bound holds for the requests found on resuming.
//!   Only a poll begun after the resolve arrived counts; without one in
//!   time the resolve reads the key's row instead of trusting the caches.
//! * On SQLite, each poll first checks that the database file is still the
//!   one opened: a file moved over it (a backup restored that way) is never
//!   seen by the open connections, so the store then drops every cached key
//!   and counts the database as down (every key refused) until reopened.
//! * A look-up or poll that finds the database unreachable marks it down:
//!   uncached keys are then refused at once (`store_unavailable`), with no
//!   query and no pool timeout, until a poll (every 250 ms while down)
//!   succeeds.
//!
//! The tasks hold the store only weakly and stop when it is closed or its
//! last clone is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use tessera_core::KeyId;
use tokio::sync::{watch, Notify};

use crate::db::{dual, Pool};
use crate::store::Inner;

/// The NOTIFY channel the PostgreSQL trigger announces changes on.
pub(crate) const CHANNEL: &str = "tessera_keys";
/// Change rows read per poll query; more than this in one go drops the whole cache.
const CHANGE_BATCH: usize = 1_000;
/// How often the poller runs while the database is down or (PostgreSQL) the
/// listener is not connected.
const FAST_POLL: Duration = Duration::from_millis(250);
/// Change rows older than this are deleted (by any server, at most hourly).
const CHANGE_RETENTION_SECS: i64 = 86_400;
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// How many changed keys `Inner::changed` holds at most (for 10 s each).
pub(crate) const CHANGES_REMEMBERED: u64 = 100_000;
/// Up to how many `Inner::changed` surely keeps: its count lags behind its
/// inserts, and at capacity it may evict or refuse entries. Past this,
/// every change counts as a change of every key for the reads in flight.
const CHANGES_REMEMBERED_SURELY: u64 = CHANGES_REMEMBERED / 2;

/// Whether a database error means "cannot reach the database" (as opposed to
/// a bad query or a constraint).
pub(crate) fn is_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // PostgreSQL: 08 connection exception, 57P operator intervention
            // (admin shutdown, crash shutdown, cannot connect now).
            c.starts_with("08") || c.starts_with("57P")
        }),
        _ => false,
    }
}

/// What the poller and listener know about the database.
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    /// `now_ms` at the start of the last successful poll.
    pub(crate) last_ok_ms: AtomicU64,
    /// The last change-log row seen (`None` while the log was empty).
    /// Only the poller reads and writes it.
    pub(crate) seen: Mutex<Option<LoggedChange>>,
    /// The database is known to be unreachable.
    pub(crate) down: AtomicBool,
    /// The PostgreSQL listener is connected.
    pub(crate) listening: AtomicBool,
    /// Woken after every poll, successful or not.
    pub(crate) polled: Notify,
    /// `now_ms` at the start of the last poll, successful or not.
    pub(crate) attempt_ms: AtomicU64,
    /// The last poll failed.
    pub(crate) attempt_failed: AtomicBool,
    /// SQLite: the database file's identity when the poller started.
    pub(crate) file: std::sync::OnceLock<Option<FileIdentity>>,
}

/// A file's device and inode number: a file moved over the database's path
/// (a backup restored that way) has another, while the open connections
/// keep reading the old, unlinked one.
pub(crate) type FileIdentity = (u64, u64);

/// The identity of a SQLite store's database file, `None` for PostgreSQL,
/// for a file that is gone, and off Unix.
fn sqlite_file_identity(pool: &Pool) -> Option<FileIdentity> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Pool::Sqlite(pool) = pool else {
            return None;
        };
        let options = pool.connect_options();
        std::fs::metadata(options.get_filename())
            .ok()
            .map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = pool;
        None
    }
}

/// One row of the change log. The poller keeps the last one it saw and
/// expects it back, unchanged, at the head of its next read: a log restored
/// from a backup or emptied by hand no longer holds it (or holds another
/// row under its seq), and the changes made since then reuse seqs the
/// poller has already passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoggedChange {
    seq: i64,
    key_id: String,
    op: String,
    at: i64,
}

/// A change whose key id is not text (a key row's id edited into a blob,
/// logged by the trigger as it was) is read by its bytes: no cached key has
/// that id, and one such row must not stop every poll.
impl<'r, R> sqlx::FromRow<'r, R> for LoggedChange
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(LoggedChange {
            seq: row.try_get("seq")?,
            key_id: crate::db::text_of(row, "key_id")?.0,
            op: row.try_get("op")?,
            at: row.try_get("at")?,
        })
    }
}

/// The background tasks' shared handles.
pub(crate) struct Tasks {
    /// `true` once the store is closed; dropped with the store.
    pub(crate) shutdown: watch::Sender<bool>,
    /// Wakes the poller at once.
    pub(crate) wake: Arc<Notify>,
}

impl Tasks {
    pub(crate) fn new() -> Tasks {
        Tasks {
            shutdown: watch::channel(false).0,
            wake: Arc::new(Notify::new()),
        }
    }
}

impl Inner {
    /// Milliseconds since the store was opened, never less than the wall
    /// clock says: `Instant` (CLOCK_MONOTONIC) stands still while the
    /// machine or its VM is suspended, and a store that slept through
    /// revocations must count that time as passed (its poll is then
    /// overdue, spec §5.7), not answer from its cache as if no time had.
    pub(crate) fn now_ms(&self) -> u64 {
        let monotonic = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let wall = std::time::SystemTime::now()
            .duration_since(self.origin_wall)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        elapsed_ms(monotonic, wall, &self.wall_lead_ms)
    }

    /// Whether a key read at `read_ms` is still confirmed recently enough to serve.
    pub(crate) fn is_fresh_at(&self, read_ms: u64, now_ms: u64) -> bool {
        let confirmed = read_ms.max(self.sync.last_ok_ms.load(Ordering::SeqCst));
        let max = u64::try_from(self.options.max_staleness.as_millis()).unwrap_or(u64::MAX);
        now_ms.saturating_sub(confirmed) <= max
    }

    pub(crate) fn mark_down(&self) {
        if !self.sync.down.swap(true, Ordering::SeqCst) {
            tracing::warn!("tessera-keys-sql: the key database is unreachable; uncached keys get store_unavailable, cached keys are served for at most max_staleness");
            // Probe soon (the poller runs every 250 ms while down).
            self.tasks.wake.notify_one();
        }
    }

    pub(crate) fn is_down(&self) -> bool {
        self.sync.down.load(Ordering::SeqCst)
    }

    /// Whether the poller has fallen behind while the database is thought
    /// reachable: its last successful poll began more than two intervals
    /// ago (the process was paused or frozen, the runtime starved, or the
    /// poll itself is slow). Changes made since then may not have reached
    /// the caches yet, so they cannot vouch for a key until a poll runs.
    pub(crate) fn poll_overdue(&self, now_ms: u64) -> bool {
        !self.is_down()
            && !self.within_poll_bound(self.sync.last_ok_ms.load(Ordering::SeqCst), now_ms)
    }

    /// Whether something read from the database at `read_ms` (a poll's
    /// start, or a key's row) is at most two poll intervals old: as current
    /// as the revocation bound needs. While polls are overdue, a row read
    /// this recently still vouches for its key, so that failing polls cost
    /// one read per key per two intervals, not one per request.
    pub(crate) fn within_poll_bound(&self, read_ms: u64, now_ms: u64) -> bool {
        let interval = poll_interval(&self.options);
        let bound_ms = u64::try_from(interval.as_millis().saturating_mul(2)).unwrap_or(u64::MAX);
        now_ms.saturating_sub(read_ms) <= bound_ms
    }

    /// Wakes the poller and waits (at most `lookup_timeout`) for a poll
    /// that began at or after `arrived`, the time the caller found the
    /// poller behind: a poll that read the log before then (one that was
    /// in flight when the process stalled) does not count. True when such
    /// a poll succeeded: the caches are then as current as the bound
    /// promises. False when none did in time, when one failed (a poll that
    /// failed moments ago is not repeated for each request), or when the
    /// database is marked down; the caller then must not answer from the
    /// caches, unless the outage rules (down, `max_staleness`) apply.
    pub(crate) async fn await_poll(&self, arrived: u64) -> bool {
        self.counters.overdue_polls.fetch_add(1, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + self.options.lookup_timeout;
        let fast_poll_ms = u64::try_from(FAST_POLL.as_millis()).unwrap_or(u64::MAX);
        loop {
            let polled = self.sync.polled.notified();
            tokio::pin!(polled);
            // Registered before the state is read and the poller woken, so
            // that a poll ending in between is not missed.
            polled.as_mut().enable();
            if self.sync.last_ok_ms.load(Ordering::SeqCst) >= arrived {
                return true;
            }
            if self.is_down() {
                return false;
            }
            if self.sync.attempt_failed.load(Ordering::SeqCst)
                && self.sync.attempt_ms.load(Ordering::SeqCst)
                    >= arrived.saturating_sub(fast_poll_ms)
            {
                return false;
            }
            self.tasks.wake.notify_one();
            if tokio::time::timeout_at(deadline, polled).await.is_err() {
                return false;
            }
        }
    }

    /// Drops `key_ids` from both caches (a change seen from another process,
    /// or announced by NOTIFY), and keeps reads made before it uncached.
    pub(crate) fn forget<'a>(&self, changes: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (op, id) in changes {
            if op == "truncate" {
                // Every row went at once (PostgreSQL's statement trigger).
                self.forget_all();
                continue;
            }
            // Every operation, `insert` included, drops the key: SQLite's
            // `INSERT OR REPLACE` (and `REPLACE`) deletes the old row without
            // firing the delete trigger, so a row replaced by hand, revoked
            // or not, is logged as an insert of a key id that may be cached.
            // For a new key id this costs nothing: it is in no cache but
            // perhaps the negative one, which this clears too.
            if let Ok(id) = KeyId::new(id) {
                self.forget_key(id);
            }
        }
    }

    /// Drops one key from both caches, and keeps a read of it that started
    /// before now out of the cache.
    pub(crate) fn forget_key(&self, id: KeyId) {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        // Record the change before evicting: `verified` checks it again
        // after inserting, so a read from before the change cannot stay.
        self.changed.insert(id.clone(), epoch);
        if self.changed.entry_count() > CHANGES_REMEMBERED_SURELY {
            // So many keys changed in the last seconds that `changed` may
            // soon drop (or refuse to admit) some of them before their time:
            // no read that began before this change is cached, whichever
            // key it is of.
            self.all_changed.fetch_max(epoch, Ordering::SeqCst);
        }
        self.cache.remove(&id);
        self.negative.invalidate(&id);
        self.reads.invalidate(&id);
    }

    /// Whether no change of `key_id` (nor of everything) was seen after
    /// `epoch`, the epoch at which a read of it started.
    pub(crate) fn unchanged_since(&self, key_id: &KeyId, epoch: u64) -> bool {
        self.all_changed.load(Ordering::SeqCst) <= epoch
            && self.changed.get(key_id).is_none_or(|e| e <= epoch)
    }

    /// Drops every cached key and negative entry.
    pub(crate) fn forget_all(&self) {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.all_changed.fetch_max(epoch, Ordering::SeqCst);
        self.cache.clear();
        self.negative.invalidate_all();
        self.reads.invalidate_all();
        self.counters
            .full_invalidations
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Reads the change log past the last row seen and drops those keys.
    /// On success the cached keys count as confirmed as of the start of the
    /// call, and the database as reachable.
    pub(crate) async fn reconcile(&self) -> Result<(), sqlx::Error> {
        let started = self.now_ms();
        self.sync.attempt_ms.store(started, Ordering::SeqCst);
        self.check_file()?;
        let lost_track = started.saturating_sub(self.sync.last_ok_ms.load(Ordering::SeqCst))
            > u64::try_from(self.options.max_staleness.as_millis()).unwrap_or(u64::MAX);
        // Lost track: everything is dropped once the log has been read (a
        // failure before then leaves `last_ok_ms` behind, so the next poll
        // is lost track too).
        let mut forget_all = lost_track;
        loop {
            let seen = self.seen().clone();
            let rows = self
                .read_changes(seen.as_ref().map_or(0, |row| row.seq))
                .await?;
            // The read starts at the row last seen, which must come back
            // first and unchanged (pruning always keeps the newest row).
            let new = match &seen {
                None => &rows[..],
                Some(seen) if rows.first() == Some(seen) => &rows[1..],
                Some(_) => {
                    tracing::warn!("tessera-keys-sql: the key change log no longer holds the last change this server saw (a database restored from a backup, or the log emptied by hand); dropping every cached key");
                    self.counters.log_resets.fetch_add(1, Ordering::Relaxed);
                    // Dropping everything (below, after this read) covers
                    // every change up to now; polling goes on from the
                    // newest row the log holds now.
                    forget_all = true;
                    let newest = last_change(&self.pool).await?;
                    *self.seen() = newest;
                    break;
                }
            };
            if new.len() > CHANGE_BATCH {
                // Dropped now, before `seen` moves past these rows: a failure
                // reading the next page must not leave them unapplied.
                self.forget_all();
            } else if !forget_all && !new.is_empty() {
                self.forget(new.iter().map(|row| (row.op.as_str(), row.key_id.as_str())));
                self.counters
                    .remote_invalidations
                    .fetch_add(new.len() as u64, Ordering::Relaxed);
            }
            if let Some(last) = new.last() {
                *self.seen() = Some(last.clone());
            }
            if new.len() <= CHANGE_BATCH {
                break;
            }
        }
        if forget_all {
            self.forget_all();
        }
        self.sync.last_ok_ms.fetch_max(started, Ordering::SeqCst);
        if self.sync.down.swap(false, Ordering::SeqCst) {
            tracing::info!("tessera-keys-sql: the key database is reachable again");
        }
        self.counters.reconciles.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// SQLite: fails (as unreachable, so the store is marked down) once the
    /// database file is no longer the one the store opened. The pooled
    /// connections go on reading the old file, which no other process
    /// writes any more: no change made since would ever reach this store,
    /// so it drops every cached key and refuses every key until it is
    /// opened again (restore in place with `sqlite3 FILE ".restore BACKUP"`,
    /// which open stores notice, or stop the verifiers first).
    fn check_file(&self) -> Result<(), sqlx::Error> {
        let Some(Some(opened)) = self.sync.file.get() else {
            return Ok(());
        };
        if sqlite_file_identity(&self.pool) == Some(*opened) {
            return Ok(());
        }
        if self.counters.file_replaced.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::error!("tessera-keys-sql: the SQLite key database file was replaced or removed under this open store (a backup restored by moving a file over it?); this process can no longer see key changes, so it refuses every key until it is restarted (restore in place with sqlite3 .restore, or stop the verifiers first)");
        }
        // Down first, then the caches emptied (every time: a look-up that
        // began before the mark may have cached a key from the old file).
        self.mark_down();
        self.forget_all();
        Err(sqlx::Error::Io(std::io::Error::other(
            "the SQLite key database file was replaced under the open store; restart this process",
        )))
    }

    /// The last change-log row seen. Never held across an await.
    fn seen(&self) -> std::sync::MutexGuard<'_, Option<LoggedChange>> {
        self.sync
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The change-log rows from seq `from` on (`from` itself included): at
    /// most the row seen, a batch, and one more.
    async fn read_changes(&self, from: i64) -> Result<Vec<LoggedChange>, sqlx::Error> {
        let query = async {
            dual!(&self.pool, |p, d| {
                sqlx::query_as::<_, LoggedChange>(
                    "SELECT seq, key_id, op, at FROM tessera_key_changes WHERE seq >= $1 ORDER BY seq LIMIT $2",
                )
                .bind(from)
                .bind(CHANGE_BATCH as i64 + 2)
                .fetch_all(p)
                .await
            })
        };
        tokio::time::timeout(self.options.lookup_timeout, query)
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    async fn prune_changes(&self) -> Result<u64, sqlx::Error> {
        dual!(&self.pool, |p, d| {
            // The newest old row stays, however old: a poller finds its
            // place in the log by the last row it read (see `LoggedChange`),
            // which is then never deleted unless the poller is a whole
            // retention behind (and past `max_staleness`, so it drops its
            // cache anyway).
            sqlx::query(d.pick(
                "DELETE FROM tessera_key_changes WHERE at < CAST(strftime('%s', 'now') AS INTEGER) - $1 \
                 AND seq < (SELECT MAX(seq) FROM tessera_key_changes WHERE at < CAST(strftime('%s', 'now') AS INTEGER) - $1)",
                "DELETE FROM tessera_key_changes WHERE at < extract(epoch FROM now())::bigint - $1 \
                 AND seq < (SELECT MAX(seq) FROM tessera_key_changes WHERE at < extract(epoch FROM now())::bigint - $1)",
            ))
            .bind(CHANGE_RETENTION_SECS)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
    }
}

/// The newest row of the change log (`None` when it is empty).
pub(crate) async fn last_change(pool: &Pool) -> Result<Option<LoggedChange>, sqlx::Error> {
    dual!(pool, |p, d| {
        sqlx::query_as::<_, LoggedChange>(
            "SELECT seq, key_id, op, at FROM tessera_key_changes ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(p)
        .await
    })
}

/// Starts the poller (both drivers) and, on PostgreSQL with notifications
/// on, the listener.
pub(crate) fn spawn(inner: &Arc<Inner>, listen: Option<sqlx::postgres::PgConnectOptions>) {
    let _ = inner.sync.file.set(sqlite_file_identity(&inner.pool));
    tokio::spawn(poll_task(
        Arc::downgrade(inner),
        inner.tasks.shutdown.subscribe(),
        Arc::clone(&inner.tasks.wake),
        poll_interval(&inner.options),
    ));
    if let Some(options) = listen {
        tokio::spawn(listen_task(
            Arc::downgrade(inner),
            inner.tasks.shutdown.subscribe(),
            Arc::clone(&inner.tasks.wake),
            options,
        ));
    }
}

/// The poller's period while the database is reachable.
fn poll_interval(options: &crate::SqlKeyStoreOptions) -> Duration {
    options.change_poll_interval.max(Duration::from_millis(10))
}

async fn poll_task(
    inner: Weak<Inner>,
    mut shutdown: watch::Receiver<bool>,
    wake: Arc<Notify>,
    interval: Duration,
) {
    let mut last_prune: Option<std::time::Instant> = None;
    let mut failures = 0u32;
    loop {
        let wait = match inner.upgrade() {
            None => return,
            Some(i) if i.is_down() || (i.listens && !i.sync.listening.load(Ordering::SeqCst)) => {
                interval.min(FAST_POLL)
            }
            Some(_) => interval,
        };
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        let Some(i) = inner.upgrade() else { return };
        let outcome = i.reconcile().await;
        i.sync
            .attempt_failed
            .store(outcome.is_err(), Ordering::SeqCst);
        match outcome {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                if is_unreachable(&e) {
                    i.mark_down();
                } else if failures == 1 {
                    tracing::warn!(error = %e, "tessera-keys-sql: reading the key change log failed");
                }
            }
        }
        // Resolves waiting for an overdue poll go on (`Inner::await_poll`).
        i.sync.polled.notify_waiters();
        if !i.is_down() && last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(std::time::Instant::now());
            // Bounded: a prune waiting for the write lock (SQLite's busy
            // timeout) must not hold the next polls back.
            match tokio::time::timeout(i.options.lookup_timeout, i.prune_changes()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "tessera-keys-sql: pruning the key change log failed");
                }
                Err(_) => {
                    tracing::debug!("tessera-keys-sql: pruning the key change log timed out; retried at the next prune");
                }
            }
        }
    }
}

async fn listen_task(
    inner: Weak<Inner>,
    mut shutdown: watch::Receiver<bool>,
    wake: Arc<Notify>,
    options: sqlx::postgres::PgConnectOptions,
) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(options);
    loop {
        let connect = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            _ = shutdown.changed() => return,
            r = connect => r,
        };
        match connected {
            Err(e) => {
                if let Some(i) = inner.upgrade() {
                    if is_unreachable(&e) {
                        i.mark_down();
                    }
                } else {
                    return;
                }
            }
            Ok(mut listener) => {
                match inner.upgrade() {
                    Some(i) => i.sync.listening.store(true, Ordering::SeqCst),
                    None => return,
                }
                // Changes made while nobody listened: read them now.
                wake.notify_one();
                loop {
                    let received = tokio::select! {
                        _ = shutdown.changed() => return,
                        r = listener.try_recv() => r,
                    };
                    let Some(i) = inner.upgrade() else { return };
                    match received {
                        Ok(Some(n)) => {
                            i.counters.notifications.fetch_add(1, Ordering::Relaxed);
                            // OP:KEY_ID (anything else: treat it as an update).
                            let payload = n.payload();
                            i.forget([payload.split_once(':').unwrap_or(("update", payload))]);
                        }
                        // Lost and already reconnected: catch up.
                        Ok(None) => wake.notify_one(),
                        Err(e) => {
                            i.sync.listening.store(false, Ordering::SeqCst);
                            if is_unreachable(&e) {
                                i.mark_down();
                            }
                            break;
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(FAST_POLL) => {}
        }
    }
}

/// The monotonic milliseconds elapsed plus the largest lead the wall clock
/// has ever had over them (`lead`): a suspend or a wall clock set forward
/// moves time on at once, and a wall clock set back afterwards neither
/// turns it back nor stops it (time goes on at the monotonic rate).
fn elapsed_ms(monotonic: u64, wall: u64, lead: &AtomicU64) -> u64 {
    let ahead = wall.saturating_sub(monotonic);
    let lead = lead.fetch_max(ahead, Ordering::SeqCst).max(ahead);
    monotonic.saturating_add(lead)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use tessera_core::KeyId;

    use super::{elapsed_ms, CHANGES_REMEMBERED, CHANGES_REMEMBERED_SURELY};

    #[test]
    fn time_asleep_counts_and_a_clock_set_back_does_not_turn_it_back() {
        let lead = std::sync::atomic::AtomicU64::new(0);
        assert_eq!(elapsed_ms(1_000, 1_000, &lead), 1_000);
        // Suspended for an hour: the monotonic clock stood still.
        assert_eq!(elapsed_ms(1_500, 3_601_500, &lead), 3_601_500);
        // The wall clock set back: no time is taken back, and time goes on.
        assert_eq!(elapsed_ms(1_600, 500, &lead), 3_601_600);
        assert_eq!(elapsed_ms(61_600, 60_500, &lead), 3_661_600);
    }
    use crate::db::Pool;
    use crate::{
        IssueRequest, MasterKey, MasterKeyring, SchemaPolicy, SqlKeyStore, SqlKeyStoreOptions,
    };

    async fn sqlite_store() -> (tempfile::TempDir, SqlKeyStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("keys.db").display());
        let ring =
            MasterKeyring::new([MasterKey::new(1, [7; 32]).expect("master key")]).expect("keyring");
        let options = SqlKeyStoreOptions::default().with_schema(SchemaPolicy::Migrate);
        let store = SqlKeyStore::open(&url, ring, options).await.expect("open");
        (dir, store)
    }

    #[tokio::test]
    async fn pruning_keeps_the_newest_change_however_old() {
        let (_dir, store) = sqlite_store().await;
        for owner in ["alice", "bob", "carol"] {
            store
                .issue(IssueRequest::new(owner, "t"))
                .await
                .expect("issue");
        }
        let i = &*store.inner;
        let Pool::Sqlite(pool) = &i.pool else {
            unreachable!("a SQLite store")
        };
        let age = |sql: &'static str| async move {
            sqlx::query(sql).execute(pool).await.expect("age the log");
        };
        let left = || async {
            sqlx::query_scalar::<_, i64>("SELECT seq FROM tessera_key_changes ORDER BY seq")
                .fetch_all(pool)
                .await
                .expect("read")
        };
        // Two old rows and a recent one: the newest old row stays (a poller
        // may have read up to it), the recent one too.
        age("UPDATE tessera_key_changes SET at = 0 WHERE seq <= 2").await;
        assert_eq!(i.prune_changes().await.expect("prune"), 1);
        assert_eq!(left().await, vec![2, 3]);
        // All old: the newest stays however old.
        age("UPDATE tessera_key_changes SET at = 0").await;
        assert_eq!(i.prune_changes().await.expect("prune"), 1);
        assert_eq!(left().await, vec![3], "the newest row stays");
        // The poller still finds its place by it.
        i.reconcile().await.expect("reconcile");
        assert_eq!(store.stats().log_resets, 0);
        store.close().await;
    }

    #[tokio::test]
    async fn a_storm_of_changes_keeps_every_read_in_flight_out_of_the_cache() {
        let (_dir, store) = sqlite_store().await;
        let i = &*store.inner;
        let reader = KeyId::new("a-key-read-before-the-storm").expect("id");
        let read_began = i.epoch.load(Ordering::SeqCst);

        // Changes of other keys: they say nothing about the key being
        // read, as long as `changed` surely remembers each of them.
        let mut changed = 0;
        while i.all_changed.load(Ordering::SeqCst) == 0 && changed <= CHANGES_REMEMBERED {
            assert!(i.unchanged_since(&reader, read_began));
            i.forget_key(KeyId::new(format!("k{changed}")).expect("id"));
            changed += 1;
        }
        // Past that, a change may push another out unseen (or not be
        // admitted): it counts against every read that began before it,
        // and this must start before `changed` can be full.
        assert!(
            changed > CHANGES_REMEMBERED_SURELY && changed < CHANGES_REMEMBERED,
            "the storm counted against every read after {changed} changes"
        );
        assert!(
            !i.unchanged_since(&reader, read_began),
            "a read that began before a storm of {changed} changes must not be cached"
        );
        let read_after = i.epoch.load(Ordering::SeqCst);
        assert!(
            i.unchanged_since(&reader, read_after),
            "a read that begins after the last change may be cached"
        );
        store.close().await;
    }
}
