//! The Redis nonce store (feature `redis`): one store shared by every
//! verifier instance. See [`RedisNonceStore`] for the design.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::RedisError;
use sha2::{Digest, Sha256};
use tessera_core::{Clock, KeyId, Nonce, SystemClock};

use super::redis_cluster;
use super::redis_connection::{open_single, RedisConnection};
use super::redis_down_slots::{self, DownSlots};
use super::redis_node_probe::WatchLink;
use super::redis_settings::{judge, setting_query, value_in, Allowed, Settings, SETTINGS};
use super::redis_trial;
use super::{NonceOutcome, NonceRecord, NonceStore, NonceStoreError, NonceStoreErrorKind};

/// The default key prefix of [`RedisNonceStore`].
pub const DEFAULT_REDIS_PREFIX: &str = "tessera";
/// The default per-check timeout of [`RedisNonceStore`]: 250 ms.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// The default timeout of one connection attempt of [`RedisNonceStore`]: 2 s.
pub const DEFAULT_REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest accepted key prefix, bytes.
const MAX_PREFIX_LEN: usize = 64;
/// How often a probe watching a dead cluster primary reads the cluster's
/// map again, to notice a failover.
const MAP_REREAD: Duration = Duration::from_secs(1);
/// How often the background probe pings a Redis that is known to be down.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How often a connected store reads its Redis's eviction and persistence
/// settings again: a Redis restarted with other settings, a failover to a
/// server configured otherwise, or a `CONFIG SET` must not go unnoticed
/// for long (a restart is noticed sooner: the probe that sees Redis back
/// reads them before the store uses it again).
const SETTINGS_RECHECK: Duration = Duration::from_secs(10);
/// The longest one re-read of the settings may take.
const RECHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Writes the epoch of every tag that has none (`SET NX`, pipelined):
/// `since` (see [`StartUpEpoch`]), so that a Redis found empty at start-up
/// refuses what may have been recorded before it lost its data, while the
/// first checks of a new deployment, made after this second, need no retry.
async fn write_missing_epochs(
    connection: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    since: u64,
) -> Result<(), RedisError> {
    let mut pipe = redis::pipe();
    for tag in 0..TAGS {
        pipe.cmd("SET")
            .arg(epoch_key_of_tag(prefix, tag))
            .arg(since)
            .arg("NX")
            .ignore();
    }
    pipe.query_async::<()>(connection).await
}

/// How far apart the clocks of verifier instances sharing the store may be
/// (spec §15.1), in seconds. Each instance reads its own clock: a pair is
/// kept this much longer than `retain_until` (spec §14, item 3), since an
/// instance behind the recorder still accepts the signature after
/// `retain_until` on the recorder's clock; and an epoch is dated this much
/// later (spec §14.1), since an instance ahead of the writer may have
/// recorded pairs dated that much further ahead.
const CLOCK_MARGIN_SECS: u64 = 1;
/// [`CLOCK_MARGIN_SECS`] in milliseconds, for the pairs' `PX`.
const CLOCK_MARGIN_MS: u64 = CLOCK_MARGIN_SECS * 1000;

/// Whole seconds in `d`, rounded up.
fn whole_seconds_up(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

/// The epoch a verifier writes at start-up (spec §14.1): the memory point of
/// the second after the clock reading taken just before the writes, so that
/// writes landing up to a second later are covered (checked afterwards),
/// plus the clock margin between instances.
pub(super) struct StartUpEpoch {
    /// The clock's reading before the writes were sent.
    read: u64,
    /// The epoch written where one is missing.
    pub(super) since: u64,
}

impl StartUpEpoch {
    pub(super) fn read(clock: &dyn Clock) -> Self {
        let read = clock.now_unix();
        StartUpEpoch {
            read,
            since: tessera_core::memory_point(read.saturating_add(1 + CLOCK_MARGIN_SECS)),
        }
    }

    /// An error when the writes finished more than a second after the
    /// reading: an epoch may then be dated too early for when it landed.
    pub(super) fn written_in_time(
        &self,
        clock: &dyn Clock,
        target: &str,
    ) -> Result<(), RedisStoreError> {
        if clock.now_unix() > self.read.saturating_add(1) {
            return Err(RedisStoreError::new(
                RedisStoreErrorKind::Connect,
                format!(
                    "cannot connect to Redis at {target}: writing the epoch keys took more than a \
                     second, so they may be dated too early (spec §14.1); connect again"
                ),
            ));
        }
        Ok(())
    }
}

/// Hex digits of SHA-256(key id) in the hash tag: 4096 tags, so at most
/// 4096 epoch keys (spec §14).
const TAG_HEX: usize = 3;
/// The number of tags: 16^[`TAG_HEX`].
pub(super) const TAGS: u32 = 1 << (4 * TAG_HEX);

/// The epoch key of tag number `tag` (0 to [`TAGS`] - 1).
pub(super) fn epoch_key_of_tag(prefix: &str, tag: u32) -> String {
    format!("{prefix}:{{{tag:03x}}}:since")
}

/// One check, atomically: the tag's epoch (written now if Redis lost it),
/// then `SET NX PX` unless the signature predates the epoch.
/// KEYS: nonce key, epoch key. ARGV: ttl ms, created, the memory point of now.
/// Reply: `{1, since}` fresh, `{0, since}` replayed, `{2, since}` forgotten.
pub(super) const CHECK_SCRIPT: &str = r"
local since = redis.call('GET', KEYS[2])
if not since then
  since = ARGV[3]
  redis.call('SET', KEYS[2], since)
end
since = tonumber(since)
if tonumber(ARGV[2]) < since then
  return {2, since}
end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return {1, since}
end
return {0, since}
";

/// Configures a [`RedisNonceStore`]; see [`RedisNonceStore::builder`].
#[must_use]
pub struct RedisNonceStoreBuilder {
    target: Target,
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    clock: Arc<dyn Clock>,
    allowed: Allowed,
}

/// Where a [`RedisNonceStoreBuilder`] connects.
enum Target {
    /// One endpoint, or a `redis+cluster://` URL (resolved at connection).
    Url(String),
    /// The seed nodes of a Redis Cluster.
    Cluster(Vec<String>),
}

impl Target {
    /// How errors and logs name the target (passwords replaced by `***`).
    fn redacted(&self) -> String {
        match self {
            Target::Url(url) => match redis_cluster::cluster_url_nodes(url) {
                Some(Ok(nodes)) => redis_cluster::cluster_target(&nodes),
                Some(Err(_)) => "<invalid Redis Cluster URL>".to_owned(),
                None => redact_url(url),
            },
            Target::Cluster(nodes) => redis_cluster::cluster_target(nodes),
        }
    }
}

impl fmt::Debug for RedisNonceStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisNonceStoreBuilder")
            .field("target", &self.target.redacted())
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("allow_evicting_policy", &self.allowed.evicting_policy)
            .field("allow_lossy_persistence", &self.allowed.lossy_persistence)
            .finish()
    }
}

impl RedisNonceStoreBuilder {
    /// The key prefix (default `tessera`): 1 to 64 printable ASCII
    /// characters without spaces or braces (braces would change the Redis
    /// Cluster hash tag).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The clock that dates the epoch keys written at connection (default:
    /// the system clock; give the verifier's clock when it is another one).
    /// See [`RedisNonceStore`], "The check".
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long one check may take before it fails as unavailable (default
    /// 250 ms). This bounds the latency the store can add to a request,
    /// including while Redis is down or reconnecting.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long one connection attempt may take (default 2 s), at start-up
    /// and for every reconnection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects even when Redis reports a `maxmemory-policy` other than
    /// `noeviction` (default: false, the connection is refused with
    /// [`RedisStoreErrorKind::EvictionPolicy`]). Any eviction policy may drop
    /// a live nonce under memory pressure, and a replay of it is then
    /// accepted without a sign; allow it only where Redis can never reach
    /// its `maxmemory`. When allowed, a warning is still logged at every
    /// connection.
    pub fn allow_evicting_policy(mut self, allow: bool) -> Self {
        self.allowed.evicting_policy = allow;
        self
    }

    /// Connects even when Redis persists in a way that a restart can bring
    /// back the epoch keys without the last pairs recorded (default: false,
    /// the connection is refused with [`RedisStoreErrorKind::Persistence`]):
    /// RDB snapshots (`save` not empty; on by default in Redis), or an
    /// append-only file with `appendfsync` other than `always`. After such
    /// a restart a replay of a lost pair is accepted once. Persistence off
    /// (`save ""`, `appendonly no`, `rdb-del-sync-files yes`: a restart
    /// loses the epoch keys too, and the store refuses what was signed
    /// before it) and `appendonly yes` with `appendfsync always` pass. When allowed, a warning is still
    /// logged at every connection.
    pub fn allow_lossy_persistence(mut self, allow: bool) -> Self {
        self.allowed.lossy_persistence = allow;
        self
    }

    /// Connects to Redis, checks it answers `PING` (with a cluster: every
    /// primary), checks its eviction policy and persistence, writes the
    /// missing epoch keys, tries every command the store sends later (see
    /// [Permissions](RedisNonceStore#permissions)), and returns the store.
    ///
    /// # Errors
    /// When the URL or the prefix is invalid, when Redis cannot be reached or
    /// refuses the credentials within the connect timeout, when its user
    /// may not run one of the store's commands
    /// ([`RedisStoreErrorKind::Refused`]), or when Redis
    /// (any primary of a cluster) reports an eviction policy other than
    /// `noeviction` and [`RedisNonceStoreBuilder::allow_evicting_policy`] was
    /// not set, or persistence that can lose the last writes (RDB snapshots,
    /// `appendfsync` other than `always`) and
    /// [`RedisNonceStoreBuilder::allow_lossy_persistence`] was not set. The error names the URL with its password replaced by `***`.
    pub async fn connect(self) -> Result<RedisNonceStore, RedisStoreError> {
        validate_prefix(&self.prefix)?;
        let (connection, target, password, since) = match &self.target {
            Target::Cluster(nodes) => self.connect_cluster(nodes).await?,
            Target::Url(url) => match redis_cluster::cluster_url_nodes(url) {
                Some(nodes) => self.connect_cluster(&nodes?).await?,
                None => self.connect_single(url).await?,
            },
        };
        let script = redis::Script::new(CHECK_SCRIPT);
        redis_trial::run(
            &connection,
            &self.prefix,
            &target,
            password.as_deref(),
            since,
            self.connect_timeout,
        )
        .await?;
        // Requests signed from now on are created at `since` or later only
        // once that second has come. A clock that has not moved after a
        // little over a second (a manual clock, in tests) is not waited for
        // any longer.
        let waited = std::time::Instant::now();
        let first = self.clock.now_unix();
        let longest = Duration::from_millis(
            (1 + CLOCK_MARGIN_SECS + tessera_core::MAX_AHEAD_SECS + 1) * 1000 + 100,
        );
        while self.clock.now_unix() < since && waited.elapsed() < longest {
            if waited.elapsed() > Duration::from_millis(1100) && self.clock.now_unix() == first {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tracing::info!(redis = %target, prefix = %self.prefix, "tessera: Redis nonce store connected");
        let health = Health {
            slots: connection.is_cluster().then(DownSlots::new),
            ..Health::default()
        };
        let store = RedisNonceStore {
            connection,
            health: Arc::new(health),
            target,
            prefix: self.prefix,
            timeout: self.timeout,
            password,
            script: Arc::new(script),
            allowed: self.allowed,
            clock: self.clock,
        };
        if let Some(slots) = &store.health.slots {
            // The map the client starts from: the nodes a probe asks for
            // the map at once, should one of them fall silent, and the first
            // owners a probe suspects (the client routes by it until a node
            // redirects it).
            let map = read_map(&store.connection, &[], self.connect_timeout).await;
            if map.is_empty() {
                // Nodes named without a host (`cluster-preferred-endpoint-type
                // unknown-endpoint`): no primary can be asked or held as a
                // whole; each slot waits one timeout, then is held alone.
                tracing::warn!(redis = %store.target, "tessera: the Redis Cluster's map (CLUSTER SLOTS) names no primary by address; a primary that falls silent fails its slots one by one, each after a check waited the timeout");
            }
            slots.remember(map);
        }
        store.watch_settings();
        Ok(store)
    }

    /// [`RedisNonceStoreBuilder::connect`] to a Redis Cluster.
    async fn connect_cluster(
        &self,
        nodes: &[String],
    ) -> Result<(RedisConnection, String, Option<String>, u64), RedisStoreError> {
        let target = redis_cluster::cluster_target(nodes);
        let password = redis_cluster::cluster_password(nodes);
        let mut connection = redis_cluster::open(
            nodes,
            &target,
            password.as_deref(),
            self.timeout,
            self.connect_timeout,
        )
        .await?;
        redis_cluster::check_settings(&mut connection, &target, self.allowed).await?;
        let started = StartUpEpoch::read(self.clock.as_ref());
        redis_cluster::prepare_nonce_keys(
            &mut connection,
            &target,
            password.as_deref(),
            &self.prefix,
            started.since,
            self.connect_timeout.saturating_mul(2),
        )
        .await?;
        started.written_in_time(self.clock.as_ref(), &target)?;
        let since = started.since;
        Ok((
            RedisConnection::cluster(connection, target.clone(), nodes, self.timeout),
            target,
            password,
            since,
        ))
    }

    /// [`RedisNonceStoreBuilder::connect`] to one endpoint.
    async fn connect_single(
        &self,
        url: &str,
    ) -> Result<(RedisConnection, String, Option<String>, u64), RedisStoreError> {
        let target = redact_url(url);
        let password = url_password(url);
        let (manager, mut probe) = open_single(
            url,
            &target,
            password.as_deref(),
            self.timeout,
            self.connect_timeout,
        )
        .await?;
        // Start-up work goes over the probe, whose response timeout is the
        // connect timeout: writing 4096 epoch keys may take longer than
        // one check's timeout on a distant Redis.
        check_settings(&mut probe, &target, self.allowed).await?;
        let started = StartUpEpoch::read(self.clock.as_ref());
        write_missing_epochs(&mut probe, &self.prefix, started.since)
            .await
            .map_err(|e| {
                super::redis_connection::start_up_failed(
                    &e,
                    format!(
                        "cannot connect to Redis at {target}: cannot write the epoch keys: {}",
                        scrub_secret(&e.to_string(), password.as_deref())
                    ),
                )
            })?;
        started.written_in_time(self.clock.as_ref(), &target)?;
        let since = started.since;
        drop(probe);
        Ok((
            RedisConnection::single(manager, target.clone()),
            target,
            password,
            since,
        ))
    }
}

/// A [`NonceStore`] in Redis, shared by any number of verifier instances
/// (feature `redis`; `redis-tls` for `rediss://`).
///
/// One script call (`EVALSHA`, one round trip) per check over one
/// multiplexed connection that reconnects by itself. Cloning is cheap and shares the connection.
///
/// # Why the `redis` crate
///
/// The `redis` crate (redis-rs) is the most widely used Redis client for
/// Rust and is actively maintained. Its [`ConnectionManager`](redis::aio::ConnectionManager) is exactly what
/// a nonce store needs: one multiplexed connection that any number of tasks
/// use concurrently (commands are pipelined on the socket, so there is no
/// pool to size), and that reconnects by itself when Redis goes away. `fred`
/// offers the same with a larger API surface, and `deadpool-redis` pools
/// non-multiplexed connections, which costs more sockets for the same
/// throughput; neither is clearly better for one command per check.
///
/// # The check
///
/// Each check is one round trip, a Lua script that Redis runs atomically on
/// two keys of one hash slot:
///
/// ```text
/// <prefix>:{<tag>}:since              the epoch: the Unix second from which this tag remembers
/// <prefix>:{<tag>}:nonce:<pair>       the pair, SET 1 NX PX <ttl ms>
/// ```
///
/// * `<pair>` is the hex SHA-256 of `key id LF nonce` (64 characters; spec
///   §14: neither contains LF, so the encoding is unambiguous). Key names
///   therefore have a fixed length whatever the client sends, and key ids
///   and nonces never appear in the Redis key space.
/// * `<tag>` is the first 3 hex digits of SHA-256 of the key id, in braces:
///   a Redis Cluster hash tag, so the epoch and the pairs it vouches for live
///   in the same slot (on the same shard) and the script may touch both.
///   There are 4096 tags, so at most 4096 epoch keys; the tag is a hash, so
///   a client cannot aim its key id's pairs at a slot of its choosing.
/// * `<prefix>` (default `tessera`) separates deployments sharing a Redis.
///
/// The script reads the epoch and, when it is missing (a Redis restarted
/// without persistence, `FLUSHALL`, a failover to an empty replica), writes
/// the memory point of the verifier's current second, plus the per-call
/// timeout rounded up (the script may run that much later), plus a second
/// (the clocks of instances sharing the store may differ that much), as
/// the new epoch ([`tessera_core::memory_point`]: the next second, plus
/// [`tessera_core::MAX_AHEAD_SECS`]): the pairs recorded before the loss may
/// have been created in this very second (`created` has a resolution of one
/// second) or dated up to that many seconds ahead. A signature created before
/// the epoch is answered
/// [`NonceOutcome::Forgotten`] and nothing is recorded: the pair may have
/// been recorded before Redis lost it. Otherwise it runs `SET NX PX`: `OK`
/// means [`NonceOutcome::Fresh`], nil means [`NonceOutcome::Replayed`].
/// An error or no answer within the per-call timeout (default 250 ms) is an
/// error of kind [`NonceStoreErrorKind::Unavailable`] (or
/// [`NonceStoreErrorKind::Full`] for Redis's `OOM` error), which the
/// verifier turns into `store_unavailable` (503). The store never answers
/// `Fresh` without Redis having recorded the pair.
///
/// [`RedisNonceStoreBuilder::connect`] writes the epoch of every tag that
/// has none (4096 pipelined `SET NX`, once), dated the memory point of the
/// second after the builder's clock's current one (the writes must finish
/// within that second, or connecting fails), plus the one-second clock
/// margin, and returns once that second has come (at most about 5 s), so
/// a new deployment's first requests need no retry.
///
/// # Failures and recovery
///
/// With one endpoint (a cluster differs; see "Redis Cluster" below):
///
/// * The first check that finds Redis down (connection refused or lost) or
///   silent (no answer within the timeout) fails closed as it happens: after
///   the connection manager's reconnect attempts (about a quarter of a second
///   when Redis refuses connections), or after the timeout. It also marks the
///   store **down**.
/// * While the store is down, every check fails closed at once, without
///   touching the network (microseconds, not the reconnect attempts), so a
///   verifier under load holds no connection per request waiting for Redis.
/// * Recovery needs nothing from the application: one background task pings
///   Redis every 100 ms through the same connection manager (which
///   reconnects) and clears the mark on the first `PONG`, so service resumes
///   within about 100 ms of Redis answering again.
/// * Start-up is different on purpose: [`RedisNonceStoreBuilder::connect`]
///   fails with a [`RedisStoreError`] naming the URL (password shown as
///   `***`) when Redis is unreachable or refuses the credentials, so a
///   misconfiguration is noticed at deployment rather than as 503s.
/// * Passwords never appear in `Debug` output, errors or logs.
///
/// # Operating Redis for it
///
/// * Set `maxmemory-policy noeviction`. Every nonce key has a TTL, so any
///   eviction policy (`allkeys-*` and `volatile-*` alike) may drop a live
///   nonce under memory pressure, and a replay of it would be accepted. With
///   `noeviction` a full Redis refuses the `SET` (`OOM`) and the verifier
///   fails closed. [`RedisNonceStoreBuilder::connect`] reads the policy
///   (of every primary, with a cluster) and refuses any other one with
///   [`RedisStoreErrorKind::EvictionPolicy`], unless
///   [`RedisNonceStoreBuilder::allow_evicting_policy`] says otherwise; where
///   `CONFIG` is disabled (managed Redis) it cannot tell, and logs a
///   warning asking you to check.
/// * Run it without persistence (`save ""`, `appendonly no`,
///   `rdb-del-sync-files yes`), or with
///   `appendonly yes` and `appendfsync always`. Without persistence a Redis
///   that restarts loses the epoch keys with the pairs, so requests signed
///   before the loss are refused with `store_reset` (503; the client signs
///   again) instead of being accepted a second time. Persistence that can
///   lose the last writes is worse than none: RDB snapshots (`save` rules,
///   on by default in Redis) or an append-only file synced once a second
///   bring the epoch keys back without the pairs recorded after them, and a
///   replay of such a pair is then accepted once. [`RedisNonceStoreBuilder::connect`]
///   reads `save`, `appendonly` and `appendfsync` (of every primary, with a
///   cluster) and refuses such a Redis with
///   [`RedisStoreErrorKind::Persistence`] unless
///   [`RedisNonceStoreBuilder::allow_lossy_persistence`] says otherwise
///   (a warning when `CONFIG` is disabled); without persistence it also
///   needs no RDB file written for replication on either side, which a
///   restart would load: `rdb-del-sync-files yes` (deleted once used), or
///   `repl-diskless-sync yes` (Redis 7's default) with `repl-diskless-load
///   swapdb` (with its default, `disabled`, or `on-empty-db` a replica
///   that holds data keeps the file of its last full resync, and a
///   failover promotes replicas).
///   The settings are read from the primaries at connection: keep them in
///   `redis.conf` (a `CONFIG SET` not written back is lost at the next
///   restart) and on the replicas that may be promoted. An RDB file left in
///   Redis's directory (a `BGSAVE` by hand) is loaded at the next start as
///   well: remove it. `no-appendfsync-on-rewrite yes` weakens `appendfsync
///   always` against a power loss during a rewrite (not against a crash of
///   Redis). A failover to a replica that has the epoch keys but missed
///   the last writes (Redis replicates asynchronously) can still forget
///   those last pairs; `WAIT` or `min-replicas-to-write` narrow that.
/// * The bound on entries is Redis's `maxmemory` (an entry takes about 200
///   bytes: 2 GB per 10 million live nonces); there is no per-key-id cap as in
///   [`MemoryNonceStore`](crate::MemoryNonceStore).
///
/// # Permissions
///
/// A Redis user of the store's own needs, on keys under its prefix
/// (`~<prefix>:*`; the default prefix is `tessera`), and no channels:
///
/// ```text
/// ACL SETUSER tessera-nonces on >PASSWORD resetkeys ~tessera:* resetchannels -@all +evalsha +eval +script|load +get +set +exists +ping
/// ```
///
/// plus `+cluster|slots` on a Redis Cluster (set on every node: users are
/// per node), and `+config|get` for the eviction and persistence checks
/// above (without it they cannot tell, and log a warning). The check
/// script runs its `GET` and `SET` as that user. [`RedisNonceStoreBuilder::connect`]
/// tries every one of these commands once (`SCRIPT LOAD`, so that a user
/// who may only run a script already cached is found out before Redis next
/// restarts, then the check script on a key of its own; on every primary of
/// a cluster) and refuses a user that may not run one
/// with [`RedisStoreErrorKind::Refused`], naming what it needs, rather than
/// fail every check afterwards.
///
/// # Redis Cluster
///
/// [`RedisNonceStore::cluster_builder`] (or a `redis+cluster://h1:p1,h2:p2`
/// URL) connects through the `redis` crate's cluster client instead: every
/// key of one check carries the same hash tag, so each script call touches
/// one slot and runs on the primary that owns it; the client follows
/// `MOVED`/`ASK` redirections and reloads the script on `NOSCRIPT` (it sends
/// `SCRIPT LOAD` to every node). The guarantees are the same, per slot:
///
/// * At connection every primary must answer `PING`, and the epoch key of
///   every tag that has none is written (`SET NX`) on the primary owning
///   its slot, so each shard vouches for exactly the tags it holds. A
///   primary that later comes back empty (restarted without persistence,
///   failover to an empty replica) has lost its epoch keys with its pairs,
///   and the check script refuses, for those tags only, what was signed
///   before the loss, exactly as with one Redis.
/// * A primary that is down or silent fails closed the checks whose slot
///   it owns; checks of the other slots go on. There is no store-wide
///   "down" mark as with one endpoint, since that would refuse every slot
///   for one node: the first check that times out (or loses its
///   connection) marks down its slot and every slot of every primary that
///   a map seen since connection named for it (the client routes by a map
///   of its own, which a silent node never makes it change, so it may be
///   sending them all to a node that is silent), and a background probe
///   asks those nodes and the one the cluster's map names now, over
///   connections of its own (asked through the cluster client, a node it
///   holds no connection to would make the `redis` crate reconnect every
///   node and hold every check meanwhile; the settings re-check asks each
///   primary the same way). A node that does not answer a `PING` keeps
///   every slot any map gave it failing at once until it answers one
///   (asked every 100 ms over one connection; a silent node is watched
///   before one that refuses connections). If all answer, the client sends
///   the slot to a node it learnt from a redirect: every slot is asked
///   `PING` through the client, routed by slot (one such sweep at a time),
///   and those that do not answer fail at once with that slot, until a
///   `GET` sent as the checks are answers (each is asked once more at once,
///   and let go as soon as it answers: on a loaded machine a healthy
///   primary may miss the timeout for one of 16,383 pings sent together). A slot stays marked while any probe
///   holds it; `recorded` (the read before admission) answers nothing for
///   it at once too. The checks sent before the mark wait their timeout.
/// * A watched primary that is dead (its connection refused or dropped)
///   and whose slots the cluster's map gives to another (a failover) is
///   let go within about a second (the probe reads the map again every
///   second), and the checks go through again: the client, whose connection
///   to the dead node is broken, learns the new primary from the `MOVED` a
///   node answers. A primary that is only silent (paused, its connection
///   open) keeps its slots refused until it answers, even after a failover:
///   the client would go on sending it their checks, since the `redis`
///   crate does not refresh its map on a timer, and a node that wakes may
///   answer a check `Fresh` just before it learns it was replaced and drops
///   what it wrote (a nonce then accepted twice). A host that vanished
///   without closing its connections (powered off, cut off by a firewall)
///   counts as silent until the kernel gives those connections up (many
///   minutes), and its slots are refused that long: restart the verifiers
///   if that happens. After a dead primary is let go, the client may still
///   name it in its map: restarted at the same address with its data (an
///   append-only file), it could answer checks before it learns it was
///   replaced; restart old primaries empty, or as replicas.
/// * What the marks cannot see: a primary that falls silent and is failed
///   over before any check of this verifier to it times out (no traffic to
///   its slots meanwhile) is never marked, so the first check the client
///   sends it afterwards waits its timeout, and if the old primary wakes
///   within it, it may answer `Fresh` for a nonce its heir already
///   accepted through another verifier. The same holds for a second silent
///   node while slots held for a first are released when the first answers,
///   and for a second silent candidate of one probe (only the first is
///   watched). Each needs a node silent for longer than
///   `cluster-node-timeout`, then awake within one check's timeout, and the
///   same nonce sent to two verifiers in that time: as with the asynchronous
///   replication above, run primaries that cannot hang unnoticed (a
///   watchdog that restarts a Redis which stops answering) where that
///   matters.
/// * Once the cluster declares a slot range uncovered (`CLUSTERDOWN`, after
///   `cluster-node-timeout`; with the default
///   `cluster-require-full-coverage yes`, every slot), the checks fail
///   closed on Redis's error reply.
/// * Resharding is handled by Redis and the client: a check whose two keys
///   are split by a slot migration in progress gets `ASK` or `TRYAGAIN`,
///   which the client retries within the timeout, or fails closed.
///
/// # No local cache
///
/// A local first-level cache could only ever short-circuit to `Replayed`
/// (answering `Fresh` from local memory would let a request be accepted on
/// two instances). Honest traffic never repeats a nonce, so such a cache
/// would save nothing on the normal path: every accepted request still needs
/// its `SET NX`. It would only spare Redis the replays, which are already
/// authenticated (the store is consulted after the MAC check) and cost one
/// cheap command each. It is therefore not implemented.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tessera_server::{RedisNonceStore, Verifier};
/// # let keys = tessera_server::MemoryKeyStore::new();
///
/// let nonces = RedisNonceStore::builder("redis://:secret@redis.internal:6379/0")
///     .prefix("shop-api")
///     .timeout(Duration::from_millis(250))
///     .connect()
///     .await?;
/// let verifier = Verifier::builder(keys)
///     .nonce_store(nonces)
///     .authority("api.example.com")
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisNonceStore {
    connection: RedisConnection,
    /// Shared by all clones: whether Redis is known to be down.
    health: Arc<Health>,
    /// The URL with the password redacted.
    target: String,
    prefix: String,
    timeout: Duration,
    /// Scrubbed from error messages, should the client crate ever echo it.
    password: Option<String>,
    /// [`CHECK_SCRIPT`], sent by SHA-1 (`EVALSHA`) and loaded on `NOSCRIPT`.
    script: Arc<redis::Script>,
    /// What the application accepted at start-up, for the re-checks.
    allowed: Allowed,
    /// The builder's clock, for epochs written after start-up.
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for RedisNonceStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisNonceStore")
            .field("url", &self.target)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisNonceStore {
    /// A builder for a store at `url`: `redis://host:port/db`,
    /// `redis://:password@host/db`, `redis://user:password@host/db`,
    /// `rediss://...` for TLS (feature `redis-tls`; append `#insecure` to
    /// skip certificate verification in tests only), or
    /// `redis+unix:///path/to/socket`.
    ///
    /// A `redis+cluster://[user:password@]host1:port1,host2:port2` URL
    /// (`rediss+cluster://` for TLS) is the same as
    /// [`RedisNonceStore::cluster_builder`] with those nodes.
    pub fn builder(url: impl Into<String>) -> RedisNonceStoreBuilder {
        RedisNonceStoreBuilder {
            target: Target::Url(url.into()),
            prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
            connect_timeout: DEFAULT_REDIS_CONNECT_TIMEOUT,
            clock: Arc::new(SystemClock::new()),
            allowed: Allowed::default(),
        }
    }

    /// A builder for a store in a Redis Cluster, given some of its nodes
    /// (`redis://host:port/`, with the password if any; the client learns
    /// the others from them). Same builder methods, same check script, same
    /// timeouts and failure modes as [`RedisNonceStore::builder`]; see
    /// "Redis Cluster" in [`RedisNonceStore`].
    pub fn cluster_builder(
        nodes: impl IntoIterator<Item = impl Into<String>>,
    ) -> RedisNonceStoreBuilder {
        RedisNonceStoreBuilder {
            target: Target::Cluster(nodes.into_iter().map(Into::into).collect()),
            prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
            connect_timeout: DEFAULT_REDIS_CONNECT_TIMEOUT,
            clock: Arc::new(SystemClock::new()),
            allowed: Allowed::default(),
        }
    }

    /// Connects with the defaults: prefix `tessera`, 250 ms per check.
    ///
    /// # Errors
    /// See [`RedisNonceStoreBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Self, RedisStoreError> {
        Self::builder(url).connect().await
    }

    /// The Redis key that records `nonce` under `key_id`:
    /// `<prefix>:{<hex of SHA-256(key id)[..8]>}:nonce:<hex SHA-256(key id LF nonce)>`.
    pub fn key_for(&self, key_id: &KeyId, nonce: &Nonce) -> String {
        redis_key(&self.prefix, key_id, nonce)
    }

    /// The URL this store connects to, password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.target
    }

    /// The key that holds the Unix second from which the tag of `key_id`
    /// remembers its pairs: `<prefix>:{<tag>}:since`.
    pub fn epoch_key_for(&self, key_id: &KeyId) -> String {
        let mut key = String::with_capacity(self.prefix.len() + TAG_HEX + 10);
        key.push_str(&self.prefix);
        key.push_str(":{");
        key.push_str(&tag(key_id));
        key.push_str("}:since");
        key
    }

    async fn check(&self, record: &NonceRecord<'_>) -> Result<NonceOutcome, NonceStoreError> {
        if self.health.unsafe_settings.load(Ordering::Acquire) {
            // Its settings changed since start-up to ones that can lose live
            // pairs (logged when noticed): every check is refused until they
            // are put back, as start-up would have refused this Redis.
            return Err(NonceStoreError::new(
                NonceStoreErrorKind::Unavailable,
                format!(
                    "redis nonce store ({}): refusing Redis: its eviction or persistence settings \
                     now let replays through (see the error log)",
                    self.target
                ),
            ));
        }
        if self.health.down.load(Ordering::Acquire) {
            // Known to be down: refuse at once rather than hold the request
            // through the connection's reconnect attempts; a background probe
            // notices when Redis is back.
            self.probe_in_background();
            return Err(NonceStoreError::new(
                NonceStoreErrorKind::Unavailable,
                format!(
                    "redis nonce store ({}): down, reconnecting in the background",
                    self.target
                ),
            ));
        }
        let epoch_key = self.epoch_key_for(record.key_id);
        // With a cluster, the slot of both keys (they share the tag).
        let slot = self
            .health
            .slots
            .as_ref()
            .map(|slots| (slots, redis_cluster::key_slot(epoch_key.as_bytes())));
        if let Some((slots, slot)) = slot {
            if slots.is_down(slot) {
                // Its primary is known to be down: refuse at once rather
                // than wait the timeout; its probe notices when it is back.
                return Err(NonceStoreError::new(
                    NonceStoreErrorKind::Unavailable,
                    format!(
                        "redis nonce store ({}): the primary of hash slot {slot} is down, \
                         probed in the background",
                        self.target
                    ),
                ));
            }
        }
        // What a probe needs should this check find the slot's primary
        // silent: the slot, and a key in it.
        let slot = slot.map(|(_, slot)| (slot, epoch_key.clone()));
        let mut connection = self.connection.clone();
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg(self.script.get_hash())
            .arg(2)
            .arg(redis_key(&self.prefix, record.key_id, record.nonce))
            .arg(&epoch_key)
            .arg(record.ttl_millis().saturating_add(CLOCK_MARGIN_MS))
            .arg(record.created)
            // The script may run up to the call's timeout after `now` was
            // read: an epoch it writes is dated from the latest second it
            // can run in, on the clock of any instance (spec §14.1).
            .arg(tessera_core::memory_point(record.now.saturating_add(
                whole_seconds_up(self.timeout).saturating_add(CLOCK_MARGIN_SECS),
            )));
        let reply = tokio::time::timeout(self.timeout, async {
            match evalsha.query_async::<(i64, u64)>(&mut connection).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    // A restarted or newly promoted primary: the script is
                    // loaded on the slot's primary alone (the `redis`
                    // crate's own load goes to every node, replicas and
                    // nodes it is reconnecting to included, and waits for
                    // all), then sent again.
                    let load = redis::cmd("SCRIPT")
                        .arg("LOAD")
                        .arg(CHECK_SCRIPT)
                        .to_owned();
                    let slot = redis_cluster::key_slot(epoch_key.as_bytes());
                    connection.on_primary_of(slot, load).await?;
                    evalsha.query_async::<(i64, u64)>(&mut connection).await
                }
                answered => answered,
            }
        })
        .await;
        match reply {
            Ok(Ok((1, _))) => Ok(NonceOutcome::Fresh),
            Ok(Ok((0, _))) => Ok(NonceOutcome::Replayed),
            Ok(Ok((2, since))) => Ok(NonceOutcome::Forgotten { since }),
            Ok(Ok((other, _))) => Err(NonceStoreError::new(
                NonceStoreErrorKind::Unavailable,
                format!("redis nonce store: unexpected reply {other} from the check script"),
            )),
            Ok(Err(e)) if e.is_timeout() => Err(self.went_down(self.timed_out(), slot)),
            Ok(Err(e)) => {
                // A connection that failed marks Redis down; an error reply
                // (OOM, a read-only replica...) comes from a Redis that is up.
                let connection_lost =
                    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal();
                let kind = if e.code() == Some("OOM") {
                    NonceStoreErrorKind::Full
                } else {
                    NonceStoreErrorKind::Unavailable
                };
                let detail = scrub_secret(&e.to_string(), self.password.as_deref());
                let error = NonceStoreError::new(
                    kind,
                    format!("redis nonce store ({}): {detail}", self.target),
                );
                if connection_lost {
                    Err(self.went_down(error, slot))
                } else {
                    Err(error)
                }
            }
            Err(_) => Err(self.went_down(self.timed_out(), slot)),
        }
    }

    /// Marks Redis down (later checks fail at once) and starts the probe.
    /// With a cluster, only the primary of the check's `slot`: one primary
    /// down must not refuse the slots of the others.
    fn went_down(&self, error: NonceStoreError, slot: Option<(u16, String)>) -> NonceStoreError {
        if self.connection.is_cluster() {
            if let Some((slot, key)) = slot {
                self.primary_went_down(slot, key);
            }
            return error;
        }
        if !self.health.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(redis = %self.target, "tessera: Redis nonce store down; refusing checks at once until a background probe reaches it");
        }
        self.probe_in_background();
        error
    }

    /// Starts one task (at most one per store) that pings Redis every
    /// [`PROBE_INTERVAL`] until it answers, then clears the down mark. The
    /// ping goes through the same connection manager, so it also drives the
    /// reconnection.
    fn probe_in_background(&self) {
        if self.health.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let health = Arc::downgrade(&self.health);
        let mut connection = self.connection.clone();
        let (timeout, target) = (self.timeout, self.target.clone());
        let recheck = Rechecker::of(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                let Some(health) = Weak::upgrade(&health) else {
                    return; // The store is gone.
                };
                let ping = redis::cmd("PING").to_owned();
                let answer =
                    tokio::time::timeout(timeout, ping.query_async::<String>(&mut connection))
                        .await;
                if matches!(answer, Ok(Ok(ref pong)) if pong == "PONG") {
                    // Back, perhaps restarted with other settings: read
                    // before it is used again.
                    recheck.run(&health).await;
                    health.down.store(false, Ordering::Release);
                    health.probing.store(false, Ordering::Release);
                    tracing::info!(redis = %target, "tessera: Redis nonce store reachable again");
                    return;
                }
            }
        });
    }

    /// With a cluster: marks `slot` down and starts its probe (at most one
    /// per slot, none for a slot already marked). The probe reads the
    /// cluster's map (asking every node it knows at once) and sends `PING`
    /// to the slot's primary itself. If that node does not answer either,
    /// every slot it owns is marked and the node is watched, by this probe
    /// alone (another probe that finds it watched hands its mark over and
    /// ends): `PING` to it every [`PROBE_INTERVAL`] until it answers. If it
    /// answers (the client's map was stale, or the delay has passed), or
    /// the map cannot be read, only `slot` stays marked, until a read of
    /// `key` (a key in `slot`, sent as the checks are) is answered by the
    /// slot's owner. Then the settings are read again (a node back may have
    /// restarted with others) and every mark of the probe is cleared.
    fn primary_went_down(&self, slot: u16, key: String) {
        let Some(slots) = &self.health.slots else {
            return;
        };
        if !slots.start_probe(slot) {
            return;
        }
        let health = Arc::downgrade(&self.health);
        let connection = self.connection.clone();
        let (timeout, target) = (self.timeout, self.target.clone());
        let recheck = Rechecker::of(self);
        tokio::spawn(async move {
            let known = match Weak::upgrade(&health) {
                Some(health) => health
                    .slots
                    .as_ref()
                    .map(DownSlots::nodes)
                    .unwrap_or_default(),
                None => return, // The store is gone.
            };
            let map = read_map(&connection, &known, timeout).await;
            // The client sends this slot's checks where its own map says,
            // which may be any map seen since connection (it changes its
            // map only when a node redirects it, which a silent node does
            // not): every node any of them named for the slot is asked, and
            // the one the map just read names.
            let Some(health_now) = Weak::upgrade(&health) else {
                return;
            };
            let Some(slots) = &health_now.slots else {
                return;
            };
            let mut owners = slots.owners_seen(slot);
            if let Some(owner) = redis_down_slots::owner_of(&map, slot) {
                owners.retain(|seen| seen != owner);
                owners.push(owner.clone());
            }
            drop(health_now);
            if owners.is_empty() {
                let first = Weak::upgrade(&health)
                    .and_then(|health| {
                        health
                            .slots
                            .as_ref()
                            .map(DownSlots::first_warning_this_second)
                    })
                    .unwrap_or(false);
                if first {
                    tracing::warn!(redis = %target, slot, "tessera: the Redis Cluster's map (CLUSTER SLOTS) could not be read or names no primary for this slot; only this slot's checks are refused at once until its owner answers (at most one such line a second)");
                }
            }
            // Per candidate: `Some(true)` answered, `Some(false)` refused
            // the connection (dead: it answers nothing), `None` silent.
            let asked = futures_util::future::join_all(owners.iter().map(|owner| async {
                match tokio::time::timeout(timeout, connection.ping_node(owner)).await {
                    Ok(Ok(())) => Some(true),
                    Ok(Err(e)) if e.is_connection_refusal() => Some(false),
                    _ => None,
                }
            }))
            .await;
            let answers: Vec<bool> = asked.iter().map(|a| *a == Some(true)).collect();
            // A silent node is the one to watch (it may wake and answer); a
            // dead one only if none is silent.
            let mut order: Vec<usize> = (0..owners.len()).filter(|i| asked[*i].is_none()).collect();
            order.extend((0..owners.len()).filter(|i| asked[*i] == Some(false)));
            let Some(health_now) = Weak::upgrade(&health) else {
                return;
            };
            let Some(slots) = &health_now.slots else {
                return;
            };
            let mut watched = None;
            for owner in order.iter().map(|i| &owners[*i]) {
                if watched.is_some() {
                    break;
                }
                // Every slot the client may send to it, by any map seen.
                let mut ranges = slots.ranges_seen(owner);
                ranges.extend(redis_down_slots::ranges_of(&map, owner));
                if !slots.watch(slot, owner, &ranges) {
                    return; // Another probe watches that node, and now holds this probe's slots.
                }
                let marked: usize = ranges
                    .iter()
                    .map(|(first, last)| usize::from(last.saturating_sub(*first)) + 1)
                    .sum();
                tracing::warn!(redis = %target, slot, node = %format!("{}:{}", owner.0, owner.1), slots = marked, "tessera: a Redis Cluster primary does not answer; refusing the checks of its slots at once until a background probe reaches it");
                watched = Some(owner.clone());
            }
            if !map.is_empty() {
                slots.remember(map.clone());
                // A node that answers redirects a check of a slot it no
                // longer owns: what older maps gave it need not be held.
                for (owner, answered) in owners.iter().zip(&answers) {
                    if *answered {
                        slots.forget_seen(owner, &map);
                    }
                }
            }
            if watched.is_none() && slots.start_sweep() {
                // Every node a map named answers, yet this slot's check
                // timed out: the client sends it to a node it learnt from a
                // redirect, which no map read here names. Which other slots
                // it sends there is found the same way: every other slot,
                // held or not (this probe's suspicions go next), is asked
                // `PING` through the client, routed by slot (one such sweep
                // at a time, whatever the number of probes); those that do
                // not answer are held with this one.
                let asked: Vec<u16> = (0..redis_down_slots::SLOT_COUNT)
                    .filter(|other| *other != slot)
                    .collect();
                let routed = futures_util::future::join_all(asked.iter().map(|other| {
                    tokio::time::timeout(timeout, connection.ping_primary_of(*other))
                }))
                .await;
                let silent = redis_down_slots::runs(
                    asked
                        .iter()
                        .zip(routed)
                        .filter(|(_, answer)| !matches!(answer, Ok(Ok(()))))
                        .map(|(other, _)| *other),
                );
                slots.hold(slot, &silent);
                // The nodes suspected at the start all answered: their slots
                // go before the second look below.
                slots.clear_suspected(slot);
                // Held at once, then asked again: on a loaded machine one of
                // 16,383 pings sent together may miss the timeout (or meet a
                // passing error) on a primary that answers; each slot that
                // answers now is let go as soon as it does, and those the
                // client sends to a silent node stay held.
                let connection = &connection;
                futures_util::future::join_all(
                    silent.iter().flat_map(|(first, last)| *first..=*last).map(
                        |other| async move {
                            let answer =
                                tokio::time::timeout(timeout, connection.ping_primary_of(other))
                                    .await;
                            if matches!(answer, Ok(Ok(()))) {
                                slots.let_go(slot, other);
                            }
                        },
                    ),
                )
                .await;
                slots.end_sweep();
            }
            slots.clear_suspected(slot);
            drop(health_now);
            let mut link = watched.clone().map(WatchLink::new);
            let mut map_read = std::time::Instant::now();
            // Whether the watched node's last `PING` failed on its
            // connection (refused, reset), not by silence.
            let mut dead = false;
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                let Some(health) = Weak::upgrade(&health) else {
                    return; // The store is gone.
                };
                if let (Some(node), true) = (&watched, dead && map_read.elapsed() >= MAP_REREAD) {
                    map_read = std::time::Instant::now();
                    // A dead node failed over: its slots have another
                    // primary, and the checks, let through, make the client
                    // learn it (its connection to the dead node is broken,
                    // and a node asked answers MOVED). Not a node that is
                    // only silent: the client would go on sending it the
                    // checks, which it could answer `Fresh` when it wakes,
                    // just before it learns it was replaced and drops what
                    // it wrote; its marks stay until it answers.
                    let known = health
                        .slots
                        .as_ref()
                        .map(DownSlots::nodes)
                        .unwrap_or_default();
                    let map = read_map(&connection, &known, timeout).await;
                    // Every slot it owned has another primary, not only
                    // this probe's: its marks all go at once.
                    let moved =
                        !map.is_empty() && redis_down_slots::ranges_of(&map, node).is_empty();
                    if moved {
                        recheck.run(&health).await;
                        if let Some(slots) = &health.slots {
                            slots.forget_seen(node, &map);
                            slots.remember(map);
                            slots.finish(slot, watched.as_ref());
                        }
                        tracing::info!(redis = %target, slot, "tessera: the slots of the Redis Cluster primary that did not answer have another primary now");
                        return;
                    }
                }
                let ping = async {
                    match (&mut link, connection.node_probe()) {
                        (Some(link), Some(probe)) => link.ping(probe).await,
                        _ => connection.owner_answers(&key).await,
                    }
                };
                let answer = tokio::time::timeout(timeout, ping).await;
                // Dead: the probe's connection of its own (`NodeProbe`)
                // refused. Not a connection reset once made: a silent node
                // whose accept queue overflows may reset those.
                dead = matches!(&answer, Ok(Err(e)) if e.is_connection_refusal());
                if matches!(answer, Ok(Ok(()))) {
                    // Back, perhaps restarted with other settings: read
                    // before it is used again.
                    recheck.run(&health).await;
                    if let Some(slots) = &health.slots {
                        slots.finish(slot, watched.as_ref());
                    }
                    if watched.is_some() {
                        tracing::info!(redis = %target, slot, "tessera: the Redis Cluster primary of this slot answers again");
                    }
                    return;
                }
            }
        });
    }

    /// Starts the task that reads the settings again every
    /// [`SETTINGS_RECHECK`] for as long as the store lives.
    fn watch_settings(&self) {
        let health = Arc::downgrade(&self.health);
        let recheck = Rechecker::of(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SETTINGS_RECHECK).await;
                let Some(health) = Weak::upgrade(&health) else {
                    return; // The store is gone.
                };
                recheck.run(&health).await;
            }
        });
    }

    fn timed_out(&self) -> NonceStoreError {
        NonceStoreError::new(
            NonceStoreErrorKind::Unavailable,
            format!(
                "redis nonce store ({}): no answer within {} ms",
                self.target,
                self.timeout.as_millis()
            ),
        )
    }
}

#[async_trait]
impl NonceStore for RedisNonceStore {
    async fn record(&self, record: NonceRecord<'_>) -> Result<NonceOutcome, NonceStoreError> {
        self.check(&record).await
    }

    /// `EXISTS` on the pair's key, within the store's timeout; `None` while
    /// Redis is known to be down, refused for its settings, or on any error.
    async fn recorded(&self, key_id: &KeyId, nonce: &Nonce) -> Option<bool> {
        if self.health.down.load(Ordering::Acquire)
            || self.health.unsafe_settings.load(Ordering::Acquire)
        {
            return None;
        }
        if let Some(slots) = &self.health.slots {
            let tag_key = self.epoch_key_for(key_id);
            if slots.is_down(redis_cluster::key_slot(tag_key.as_bytes())) {
                return None;
            }
        }
        let mut connection = self.connection.clone();
        let exists = redis::cmd("EXISTS")
            .arg(redis_key(&self.prefix, key_id, nonce))
            .to_owned();
        match tokio::time::timeout(self.timeout, exists.query_async::<u64>(&mut connection)).await {
            Ok(Ok(count)) => Some(count > 0),
            _ => None,
        }
    }
}

/// Why [`RedisNonceStore::connect`] failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisStoreErrorKind {
    /// The URL did not parse, or names a scheme that is not enabled (for
    /// example `rediss://` without the `redis-tls` feature).
    InvalidUrl,
    /// The key prefix is empty, too long, or contains spaces, braces or
    /// non-printable characters.
    InvalidPrefix,
    /// Redis could not be reached or did not answer in time: it may later.
    Connect,
    /// Redis answered but refused: a wrong or missing password, a user
    /// without the permission to run the store's commands. No retry helps
    /// until the configuration or Redis's users change.
    Refused,
    /// Redis (or a primary of the cluster) may evict live nonces: its
    /// `maxmemory-policy` is not `noeviction` (see
    /// [`RedisNonceStoreBuilder::allow_evicting_policy`]).
    EvictionPolicy,
    /// Redis (or a primary of the cluster) persists in a way that a restart
    /// can restore the epoch keys without the last pairs: RDB snapshots, or
    /// an append-only file not synced on every write (see
    /// [`RedisNonceStoreBuilder::allow_lossy_persistence`]).
    Persistence,
}

/// The cluster's map, asked of the `known` nodes at once, else (none of them
/// answers, or none is known) of the seed nodes; empty when no map could be
/// read.
async fn read_map(
    connection: &RedisConnection,
    known: &[redis_down_slots::Node],
    timeout: Duration,
) -> Vec<redis_down_slots::Range> {
    for nodes in [known, &[]] {
        if let Ok(Ok(map)) = tokio::time::timeout(timeout, connection.cluster_map(nodes)).await {
            if !map.is_empty() {
                return map;
            }
        }
    }
    Vec::new()
}

/// Whether Redis is known to be down, shared by a store's clones.
#[derive(Debug, Default)]
struct Health {
    down: AtomicBool,
    probing: AtomicBool,
    /// The settings read last can lose live pairs (and were not allowed).
    unsafe_settings: AtomicBool,
    /// Held by a re-check of the settings: the probe's and the periodic
    /// one never interleave (an older verdict would overwrite a newer one).
    recheck: tokio::sync::Mutex<()>,
    /// A cluster's slots whose primary is known to be down (the store-wide
    /// `down` mark is for one Redis only).
    slots: Option<DownSlots>,
}

/// Raises the epoch key `KEYS[1]` to at least `ARGV[1]` (never lowers one
/// that another instance has already moved further). One key per call:
/// the epochs lie in different hash slots, and a Redis in cluster mode
/// (one shard reached through a `redis://` URL) refuses a script whose keys
/// do not share a slot.
pub(super) const RAISE_EPOCH_SCRIPT: &str = r"
local since = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if current < since then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
";

/// Epoch keys per pipeline of [`RAISE_EPOCH_SCRIPT`] calls: each pipeline
/// stays well within one check's response timeout.
const RAISE_BATCH: u32 = 128;

/// What a settings re-check needs, shared by the probe and the periodic task.
#[derive(Clone)]
struct Rechecker {
    connection: RedisConnection,
    allowed: Allowed,
    target: String,
    prefix: String,
    clock: Arc<dyn Clock>,
}

impl Rechecker {
    fn of(store: &RedisNonceStore) -> Self {
        Rechecker {
            connection: store.connection.clone(),
            allowed: store.allowed,
            target: store.target.clone(),
            prefix: store.prefix.clone(),
            clock: Arc::clone(&store.clock),
        }
    }

    async fn run(&self, health: &Health) {
        recheck_settings(
            health,
            &self.connection,
            self.allowed,
            &self.target,
            &self.prefix,
            self.clock.as_ref(),
        )
        .await;
    }
}

/// Reads the eviction and persistence settings again and sets or clears
/// `health.unsafe_settings`, logging each change of verdict once. The
/// start-up warnings (settings allowed by configuration, or unreadable) are
/// not repeated. Settings that cannot be read leave the verdict as it is
/// (being down is handled by the down mark).
///
/// When unacceptable settings are put back, Redis may meanwhile have
/// restarted from what they wrote (a snapshot: the epoch keys without the
/// pairs recorded after it), so the store then moves every epoch forward
/// to now (one endpoint): whatever was signed before is refused with
/// `store_reset` and signed again, as after a restart that lost
/// everything.
async fn recheck_settings(
    health: &Health,
    connection: &RedisConnection,
    allowed: Allowed,
    target: &str,
    prefix: &str,
    clock: &dyn Clock,
) {
    use tracing::instrument::WithSubscriber;
    let _one_at_a_time = health.recheck.lock().await;
    let primaries = health
        .slots
        .as_ref()
        .map(DownSlots::nodes)
        .unwrap_or_default();
    // Bounded, so that a hung read cannot hold the probe back for long
    // (the probe clears the down mark only after its own re-check).
    let read = tokio::time::timeout(
        RECHECK_TIMEOUT,
        connection
            .recheck_settings(target, allowed, &primaries)
            .with_subscriber(tracing::subscriber::NoSubscriber::default()),
    )
    .await;
    let Ok(Some(verdict)) = read else {
        return;
    };
    match verdict {
        Err(e)
            if matches!(
                e.kind(),
                RedisStoreErrorKind::EvictionPolicy | RedisStoreErrorKind::Persistence
            ) =>
        {
            if !health.unsafe_settings.swap(true, Ordering::AcqRel) {
                tracing::error!(redis = %target, error = %e, "tessera: the Redis nonce store's settings changed since start-up; refusing every check (store_unavailable) until they are put back");
            }
        }
        Err(_) => {}
        Ok(()) => {
            if !health.unsafe_settings.load(Ordering::Acquire) {
                return;
            }
            if connection.is_cluster() {
                tracing::warn!(redis = %target, "tessera: the Redis Cluster nonce store's settings are acceptable again; a primary that restarted from a snapshot meanwhile may have lost pairs its epochs still vouch for: flush the cluster's nonce keys if one did");
            } else {
                let since = StartUpEpoch::read(clock).since;
                let mut connection = connection.clone();
                for first in (0..TAGS).step_by(RAISE_BATCH as usize) {
                    let mut pipe = redis::pipe();
                    for tag in first..(first + RAISE_BATCH).min(TAGS) {
                        pipe.cmd("EVAL")
                            .arg(RAISE_EPOCH_SCRIPT)
                            .arg(1)
                            .arg(epoch_key_of_tag(prefix, tag))
                            .arg(since)
                            .ignore();
                    }
                    if let Err(e) = pipe.query_async::<()>(&mut connection).await {
                        // Still refusing: the next re-check tries again.
                        tracing::warn!(redis = %target, error = %e, "tessera: could not move the Redis nonce store's epochs forward; still refusing checks");
                        return;
                    }
                }
            }
            health.unsafe_settings.store(false, Ordering::Release);
            tracing::info!(redis = %target, "tessera: the Redis nonce store's settings are acceptable again (its epochs moved to now: what was signed before is refused with store_reset)");
        }
    }
}

/// [`RedisNonceStore::connect`] failed. The message names the URL with its
/// password replaced by `***`.
#[derive(Debug, Clone)]
pub struct RedisStoreError {
    kind: RedisStoreErrorKind,
    message: String,
}

impl RedisStoreError {
    /// An error of `kind`; `message` must not hold a secret.
    pub(super) fn new(kind: RedisStoreErrorKind, message: String) -> Self {
        RedisStoreError { kind, message }
    }

    /// What went wrong.
    pub fn kind(&self) -> RedisStoreErrorKind {
        self.kind
    }
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RedisStoreError {}

/// The hash tag of `key_id`: the first [`TAG_HEX`] lowercase hex digits of
/// SHA-256(key id).
fn tag(key_id: &KeyId) -> String {
    let mut tag = hex::encode(&Sha256::digest(key_id.as_str().as_bytes())[..2]);
    tag.truncate(TAG_HEX);
    tag
}

fn redis_key(prefix: &str, key_id: &KeyId, nonce: &Nonce) -> String {
    let mut pair = Sha256::new();
    pair.update(key_id.as_str().as_bytes());
    pair.update(b"\n");
    pair.update(nonce.as_str().as_bytes());
    let pair = pair.finalize();
    let mut key = String::with_capacity(prefix.len() + TAG_HEX + 64 + 10);
    key.push_str(prefix);
    key.push_str(":{");
    key.push_str(&tag(key_id));
    key.push_str("}:nonce:");
    key.push_str(&hex::encode(pair));
    key
}

fn validate_prefix(prefix: &str) -> Result<(), RedisStoreError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
    if ok {
        Ok(())
    } else {
        Err(RedisStoreError {
            kind: RedisStoreErrorKind::InvalidPrefix,
            message: format!(
                "invalid Redis key prefix {prefix:?}: use 1 to {MAX_PREFIX_LEN} printable ASCII characters without spaces or braces"
            ),
        })
    }
}

/// The URL with every password replaced by `***` ([`crate::redact_url`]).
/// Unparseable URLs are not echoed at all: they may be a secret themselves.
pub(super) fn redact_url(raw: &str) -> String {
    if url::Url::parse(raw).is_err() {
        return "<unparseable Redis URL>".to_owned();
    }
    crate::redact_url(raw)
}

pub(super) fn url_password(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw).ok()?;
    if let Some(p) = url.password() {
        return Some(p.to_owned());
    }
    url.query_pairs()
        .find(|(k, _)| k == "pass" || k == "password")
        .map(|(_, v)| v.into_owned())
}

pub(super) fn scrub_secret(message: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => message.replace(s, "***"),
        _ => message.to_owned(),
    }
}

/// Reads the eviction policy and persistence settings of one endpoint and
/// judges them (see [`redis_settings`](super::redis_settings)): refused
/// unless allowed, a warning when they cannot be read.
pub(super) async fn check_settings<C: redis::aio::ConnectionLike>(
    connection: &mut C,
    target: &str,
    allowed: Allowed,
) -> Result<(), RedisStoreError> {
    // Unreadable (`CONFIG` disabled on managed Redis): judged as unknown.
    let settings = read_settings(connection).await.unwrap_or_default();
    judge(target, None, &settings, allowed)
}

/// One endpoint's eviction and persistence settings, or the error that
/// kept them from being read.
pub(super) async fn read_settings<C: redis::aio::ConnectionLike>(
    connection: &mut C,
) -> Result<Settings, RedisError> {
    let mut pipe = redis::pipe();
    for name in SETTINGS {
        pipe.add_command(setting_query(name));
    }
    let replies: Vec<Vec<String>> = pipe.query_async(connection).await?;
    let mut settings = Settings::default();
    for (name, reply) in SETTINGS.iter().zip(&replies) {
        settings.set(name, value_in(reply));
    }
    Ok(settings)
}

/// rustls needs a process-wide crypto provider; install ring unless the
/// application already chose one.
#[cfg(feature = "redis-tls")]
pub(super) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only if another thread installed one meanwhile: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout() {
        let key_id = KeyId::new("phone-1").expect("key id");
        let nonce = Nonce::new("AAAAAAAAAAAAAAAAAAAAAA").expect("nonce");
        let key = redis_key("tessera", &key_id, &nonce);
        let tag = &hex::encode(Sha256::digest(b"phone-1"))[..3];
        let pair = hex::encode(Sha256::digest(b"phone-1\nAAAAAAAAAAAAAAAAAAAAAA"));
        assert_eq!(key, format!("tessera:{{{tag}}}:nonce:{pair}"));
        // Same nonce, other key id: other key.
        let other = redis_key("tessera", &KeyId::new("phone-2").expect("id"), &nonce);
        assert_ne!(key, other);
    }

    #[test]
    fn prefixes() {
        for good in ["tessera", "shop-api:prod", "a"] {
            assert!(validate_prefix(good).is_ok(), "{good}");
        }
        let long = "x".repeat(65);
        for bad in ["", "a{b", "a}b", "a b", "é", long.as_str()] {
            let e = validate_prefix(bad).expect_err(bad);
            assert_eq!(e.kind(), RedisStoreErrorKind::InvalidPrefix);
        }
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://:hunter2@127.0.0.1:6379/2"),
            "redis://:***@127.0.0.1:6379/2"
        );
        assert_eq!(
            redact_url("rediss://app:hunter2@redis.internal/0"),
            "rediss://app:***@redis.internal/0"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
        let unix = redact_url("redis+unix:///run/redis.sock?db=1&pass=hunter2");
        assert!(!unix.contains("hunter2"), "{unix}");
        assert!(unix.contains("db=1"), "{unix}");
        assert_eq!(redact_url("::hunter2::"), "<unparseable Redis URL>");
        // A password written without its `:` (read as a user name).
        assert_eq!(
            redact_url("redis://hunter2@127.0.0.1:6379/0"),
            "redis://***@127.0.0.1:6379/0"
        );
        assert_eq!(
            url_password("redis://:hunter2@h/").as_deref(),
            Some("hunter2")
        );
        assert_eq!(
            scrub_secret("auth hunter2 failed", Some("hunter2")),
            "auth *** failed"
        );
    }

    #[test]
    fn builder_debug_hides_the_password() {
        let b = RedisNonceStore::builder("redis://:hunter2@127.0.0.1/");
        let shown = format!("{b:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[tokio::test]
    async fn bad_configuration_is_reported_before_connecting() {
        let e = RedisNonceStore::builder("redis://127.0.0.1:1/")
            .prefix("a{b}")
            .connect()
            .await
            .expect_err("prefix");
        assert_eq!(e.kind(), RedisStoreErrorKind::InvalidPrefix);
        let e = RedisNonceStore::connect("ftp://:hunter2@host/")
            .await
            .expect_err("scheme");
        assert_eq!(e.kind(), RedisStoreErrorKind::InvalidUrl);
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("ftp://:***@host/"), "{e}");
    }
}
