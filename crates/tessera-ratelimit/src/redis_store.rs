//! The Redis [`RateStore`]: one atomic script per decision, shared by every
//! replica (feature `redis`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use siphasher::sip128::{Hasher128, SipHasher13};
use tessera_server::{RedisConnection, RedisStoreErrorKind};

use crate::gcra::Decision;
use crate::plan::Plan;
use crate::store::{RateStore, RateStoreError, Subject};

/// Default per-decision timeout.
pub const DEFAULT_RATE_REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// Default timeout of one connection attempt.
pub const DEFAULT_RATE_REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often [`RedisRateStore::connect_in_background`] tries a Redis that
/// did not answer at start-up again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// [`crate::decide`] in Lua, run atomically by Redis on one key.
///
/// KEYS[1]: the subject's key. ARGV: the caller's now (µs), interval (µs),
/// burst, cost, and `1` to decide on Redis's own clock (`TIME`) instead of
/// the caller's.
/// Reply: `{allowed (0/1), tat, remaining, retry_after (µs, -1: never), reset (µs), now}`.
/// Integers only; every value stays below 2^53, where Lua's doubles are exact
/// (microseconds since 1970 are about 2^51).
const DECIDE_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
if ARGV[5] == '1' then
  -- Redis before 7 replicates a script that reads TIME only by its effects.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local limit = interval * burst
local base = now
local stored = redis.call('GET', KEYS[1])
if stored then
  local tat = tonumber(stored)
  if tat > now then base = tat end
end
local nextt = base + interval * cost
local ahead = nextt - now
if ahead <= limit then
  redis.call('SET', KEYS[1], string.format('%d', nextt), 'PX', math.floor(ahead / 1000) + 1)
  return {1, nextt, math.floor((limit - ahead) / interval), 0, ahead, now}
end
local queued = base - now
local retry = -1
if cost <= burst then retry = ahead - limit end
local remaining = 0
if limit > queued then remaining = math.floor((limit - queued) / interval) end
return {0, base, remaining, retry, queued, now}
";

/// [`crate::refund`] transcribed: `KEYS[1]` moves back by `ARGV[2]` µs (the
/// cost times the interval), or goes when that is at or before now
/// (`ARGV[1]`, or Redis's `TIME` when `ARGV[3]` is `1`): a full burst. No
/// state, nothing to give back.
const REFUND_SCRIPT: &str = r"
if ARGV[3] == '1' and redis.replicate_commands then redis.replicate_commands() end
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local now = tonumber(ARGV[1])
if ARGV[3] == '1' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(stored) - tonumber(ARGV[2])
if tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1)
end
return 1
";

/// Why a connection could not be opened: permanent unless Redis was not
/// reached (it may be later).
fn open_error(e: &tessera_server::RedisStoreError) -> RateStoreError {
    if e.kind() == RedisStoreErrorKind::Connect {
        RateStoreError::new(e.to_string())
    } else {
        RateStoreError::permanent(e.to_string())
    }
}

/// Limits in Redis: every replica that shares the Redis shares the budgets.
///
/// One round trip per decision (`EVALSHA` of a short script, loaded on
/// `NOSCRIPT`), over one multiplexed connection that reconnects by itself:
/// to one Redis, or to a Redis Cluster (`redis+cluster://` URLs), the same
/// URLs as the nonce store's.
/// The script is [`crate::decide`] transcribed, and runs atomically, so
/// concurrent decisions on several replicas never overspend a budget.
///
/// Keys: `<prefix>:{<h>}:rl:<plan>:<digest>`, where `<digest>` is a keyed
/// hash of the subject (ids chosen by clients never appear in Redis) and
/// `{<h>}` a Redis Cluster hash tag (its first 3 hex digits), so a
/// decision touches one slot and subjects spread over 4096 tags, thus over
/// every primary of a cluster. Each key expires when its subject is back to a
/// full burst.
///
/// Decisions are made on Redis's clock (`TIME`), so that replicas share one
/// clock as they share one budget: a replica whose clock is ahead or behind
/// neither hands out a second burst nor holds a key back for longer than
/// its plan says. The arrival time a decision reports ([`Decision::tat`]) is
/// moved to the caller's clock, for the limiter's own memory of refusals.
/// [`RedisRateStore::with_caller_clock`] decides on the caller's `now`
/// instead.
#[derive(Clone)]
pub struct RedisRateStore {
    /// Set when the store is made, or, for a store from
    /// [`RedisRateStore::connect_in_background`], once Redis first answers.
    connection: Arc<OnceLock<RedisConnection>>,
    /// Why there is no connection yet: the latest attempt's error.
    unreached: Arc<Mutex<String>>,
    prefix: Arc<str>,
    timeout: Duration,
    script: Arc<redis::Script>,
    refund_script: Arc<redis::Script>,
    /// Fixed per prefix so every replica names a subject alike.
    hasher: SipHasher13,
    /// While Redis is known to be down (until this instant, µs since the
    /// store was made), decisions fail at once instead of waiting out the
    /// timeout; one decision per second tries Redis again.
    down_until: Arc<AtomicU64>,
    epoch: Instant,
    /// Decide on Redis's `TIME` (the default) rather than the caller's `now`.
    redis_clock: bool,
}

impl fmt::Debug for RedisRateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateStore")
            .field("redis", &self.connection.get().map(RedisConnection::target))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisRateStore {
    /// A store on `connection` with keys under `prefix`. The connection may
    /// be the one a [`tessera_server::RedisNonceStore`] uses, or one opened
    /// with [`RedisConnection::open`].
    pub fn new(connection: RedisConnection, prefix: &str) -> Self {
        let store = Self::unconnected(prefix, "");
        // A new cell: nothing else can have set it.
        let _ = store.connection.set(connection);
        store
    }

    /// A store whose connection comes later; until it does, decisions fail
    /// with `unreached` in their error.
    fn unconnected(prefix: &str, unreached: &str) -> Self {
        // Keyed by the prefix: the hash is an obfuscation of subject ids,
        // stable across replicas, not a secret.
        let mut seed = SipHasher13::new();
        std::hash::Hasher::write(&mut seed, prefix.as_bytes());
        let key = seed.finish128();
        RedisRateStore {
            connection: Arc::new(OnceLock::new()),
            unreached: Arc::new(Mutex::new(unreached.to_owned())),
            prefix: prefix.into(),
            timeout: DEFAULT_RATE_REDIS_TIMEOUT,
            script: Arc::new(redis::Script::new(DECIDE_SCRIPT)),
            refund_script: Arc::new(redis::Script::new(REFUND_SCRIPT)),
            hasher: SipHasher13::new_with_keys(key.h1, key.h2),
            down_until: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
            redis_clock: true,
        }
    }

    /// Connects to `url` with keys under `prefix`: `redis://host:port/db`
    /// (one Redis), `redis+cluster://host1:port1,host2:port2` (a Redis
    /// Cluster), or any other URL [`RedisConnection::open`] takes.
    ///
    /// # Errors
    /// When the URL is invalid, Redis (every primary, for a cluster) does
    /// not answer `PING`, or the trial decision of
    /// [`RedisRateStore::check`] fails (a user that may not run scripts or
    /// write keys under `prefix`); the message names the URL without its
    /// password.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RateStoreError> {
        Self::connect_with_timeout(url, prefix, DEFAULT_RATE_REDIS_TIMEOUT).await
    }

    /// [`RedisRateStore::connect`] with a per-decision `timeout` other than
    /// the default 100 ms: the connection's own bound on each command is
    /// set to match, so a timeout above one second takes effect too.
    ///
    /// # Errors
    /// As [`RedisRateStore::connect`].
    pub async fn connect_with_timeout(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, RateStoreError> {
        let connection = open_usable(url, prefix, timeout).await?;
        Ok(RedisRateStore::new(connection, prefix).with_timeout(timeout))
    }

    /// [`RedisRateStore::connect_with_timeout`] that also starts when Redis
    /// cannot be used yet (it does not answer, or answers with an error
    /// that may pass: a read-only replica, out of memory): the store is
    /// returned with the error of that first attempt, its decisions fail at
    /// once (the limiter's [`crate::FailureMode`] applies: a fail-open
    /// limiter admits) and a background task (on the current tokio runtime)
    /// tries again every second until a trial decision passes, from when on
    /// the store decides as any other. The task ends then, or when every
    /// clone of the store is dropped. A refusal found by a later attempt is
    /// logged as an error and tried again (permissions can be granted
    /// while the process runs).
    ///
    /// # Errors
    /// An invalid URL, or Redis answering but refusing (a wrong password, a
    /// user that may not run the scripts or their commands, or write keys
    /// under `prefix`): no attempt would succeed
    /// ([`RateStoreError::is_permanent`]).
    pub async fn connect_in_background(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<(Self, Option<RateStoreError>), RateStoreError> {
        let first = match open_usable(url, prefix, timeout).await {
            Ok(connection) => {
                return Ok((
                    RedisRateStore::new(connection, prefix).with_timeout(timeout),
                    None,
                ))
            }
            Err(e) if e.is_permanent() => return Err(e),
            Err(e) => e.message().to_owned(),
        };
        let store = Self::unconnected(prefix, &first).with_timeout(timeout);
        let first_error = RateStoreError::new(first.clone());
        let cell = Arc::downgrade(&store.connection);
        let reason = Arc::downgrade(&store.unreached);
        let (url, prefix) = (url.to_owned(), prefix.to_owned());
        tokio::spawn(async move {
            // Each new reason is logged once (a Redis that comes up but
            // refuses the password says so), not every second.
            let mut last = first;
            loop {
                tokio::time::sleep(RECONNECT_EVERY).await;
                // Every clone dropped: nobody would use the connection.
                let (Some(cell), Some(reason)) = (cell.upgrade(), reason.upgrade()) else {
                    return;
                };
                match open_usable(&url, &prefix, timeout).await {
                    Ok(connection) => {
                        let target = connection.target().to_owned();
                        let _ = cell.set(connection);
                        tracing::info!(redis = %target, "tessera: the rate limit store answers; rate limits are decided again");
                        return;
                    }
                    Err(e) => {
                        let now = e.message().to_owned();
                        if now != last {
                            if e.is_permanent() {
                                tracing::error!(error = %now, "tessera: the rate limit store refuses this configuration; rate limits are not applied until it is fixed (tried again every second)");
                            } else {
                                tracing::warn!(error = %now, "tessera: the rate limit store still cannot be used; trying again every second");
                            }
                            now.clone_into(
                                &mut reason.lock().unwrap_or_else(PoisonError::into_inner),
                            );
                            last = now;
                        }
                    }
                }
            }
        });
        Ok((store, Some(first_error)))
    }

    /// Sets the per-decision timeout (default 100 ms; with a connection
    /// from [`RedisRateStore::connect`], at most 1 s takes effect, the
    /// connection's own bound: use [`RedisRateStore::connect_with_timeout`]
    /// for a longer one).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Decides on the `now_micros` each caller passes instead of Redis's
    /// own clock: for tests on a simulated clock, or for a Redis shared by
    /// one replica only. Replicas that share budgets this way need their
    /// clocks synchronized (NTP): one ahead by the burst's duration hands
    /// out a second burst. (The trial of [`RedisRateStore::connect`] runs
    /// before this is set, on Redis's clock: its user needs `TIME` either
    /// way; [`RedisRateStore::new`] runs none.)
    #[must_use]
    pub fn with_caller_clock(mut self) -> Self {
        self.redis_clock = false;
        self
    }

    /// The Redis key that holds `subject`'s state under `plan`.
    pub fn key_for(&self, subject: Subject<'_>, plan: &Plan) -> String {
        let mut h = self.hasher;
        for part in [subject.kind, subject.id] {
            std::hash::Hasher::write(&mut h, part.as_bytes());
            std::hash::Hasher::write_u8(&mut h, 0xff);
        }
        let digest = h.finish128();
        let hex = format!("{:016x}{:016x}", digest.h1, digest.h2);
        format!("{}:{{{}}}:rl:{}:{hex}", self.prefix, &hex[..3], plan.name())
    }
}

impl RedisRateStore {
    /// A trial on a subject no client can name (the store hashes subjects,
    /// and its kind is one no limiter uses), under a plan of its own: one
    /// decision, then its refund, whose key is gone afterwards (or expires
    /// within a second). Shows that Redis answers and that its user may run
    /// the scripts and every command in them (`GET`, `SET`, `DEL`, `TIME`)
    /// on keys under the prefix: `PING` alone passes for a user that may do
    /// none of this, and a fail-open limiter on it would admit everything.
    /// On a Redis Cluster, every primary is tried (one key on each, from
    /// `CLUSTER SLOTS`): users and their permissions are set node by node.
    /// The trial does not mark the store down.
    ///
    /// # Errors
    /// The trial's error: [`RateStoreError::is_permanent`] when Redis
    /// refused it (`NOPERM`, `NOAUTH`, `WRONGPASS`, a command a script's
    /// user may not run).
    pub async fn check(&self) -> Result<(), RateStoreError> {
        let tags = match self.connection.get() {
            Some(connection) => connection
                .hash_tag_per_primary()
                .await
                .map_err(|e| redis_error("cannot read the cluster's slots", &e))?,
            None => None,
        };
        for tag in tags.unwrap_or_else(|| vec![SINGLE_REDIS_TAG]) {
            self.trial(tag).await?;
        }
        Ok(())
    }

    /// One decision and its refund on the reserved subject's key in hash
    /// tag `tag`, on a copy of the store that does not share its down mark.
    async fn trial(&self, tag: u16) -> Result<(), RateStoreError> {
        let trial = RedisRateStore {
            down_until: Arc::new(AtomicU64::new(0)),
            ..self.clone()
        };
        // A key of its own: a trial finding another's value there would be
        // refused and skip the `SET` it is to try.
        let key = format!(
            "{}:{{{tag:03x}}}:rl:check:{:016x}",
            self.prefix,
            rand::random::<u64>()
        );
        let now = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_micros(),
        )
        .unwrap_or(u64::MAX);
        let mut decide = self.script.prepare_invoke();
        decide
            .key(&key)
            .arg(now)
            .arg(TRIAL_INTERVAL_MICROS)
            .arg(1)
            .arg(1)
            .arg(u8::from(self.redis_clock));
        trial.run::<(i64, u64, u64, i64, u64, u64)>(decide).await?;
        let mut refund = self.refund_script.prepare_invoke();
        refund
            .key(&key)
            .arg(now)
            .arg(TRIAL_INTERVAL_MICROS)
            .arg(u8::from(self.redis_clock));
        trial.run::<i64>(refund).await.map(drop)
    }
}

/// The hash tag of the trial's key on a single Redis (any would do).
const SINGLE_REDIS_TAG: u16 = 0;

/// The trial plan's interval: its key lives about a second.
const TRIAL_INTERVAL_MICROS: u64 = 1_000_000;

/// A connection to `url` on which the start-up trial passed: both scripts
/// loaded (`SCRIPT LOAD`, on every primary of a cluster: a user that may
/// run a loaded script but not load one would fail once Redis restarts),
/// then [`RedisRateStore::check`].
async fn open_usable(
    url: &str,
    prefix: &str,
    timeout: Duration,
) -> Result<RedisConnection, RateStoreError> {
    // The connection's own bound on each command is at least the decision
    // timeout (so that it is the one that applies) and the connect timeout
    // (loading scripts into a distant Redis may take longer than one
    // decision).
    let mut connection = RedisConnection::open(
        url,
        timeout.max(DEFAULT_RATE_REDIS_CONNECT_TIMEOUT),
        DEFAULT_RATE_REDIS_CONNECT_TIMEOUT,
    )
    .await
    .map_err(|e| open_error(&e))?;
    let store = RedisRateStore::new(connection.clone(), prefix)
        .with_timeout(timeout.max(DEFAULT_RATE_REDIS_CONNECT_TIMEOUT));
    for script in [&store.script, &store.refund_script] {
        let loaded = tokio::time::timeout(
            DEFAULT_RATE_REDIS_CONNECT_TIMEOUT,
            script.load_async(&mut connection),
        )
        .await
        .map_err(|_| {
            RateStoreError::new(format!(
                "Redis did not load the scripts within {} s",
                DEFAULT_RATE_REDIS_CONNECT_TIMEOUT.as_secs()
            ))
        })?;
        loaded.map_err(|e| redis_error("cannot load the scripts", &e))?;
    }
    store.check().await?;
    Ok(connection)
}

/// A Redis error as a store error: permanent when Redis refused.
fn redis_error(what: &str, e: &redis::RedisError) -> RateStoreError {
    if tessera_server::is_redis_refusal(e) {
        RateStoreError::permanent(format!("Redis refused: {what}: {e}"))
    } else {
        RateStoreError::new(format!("Redis: {what}: {e}"))
    }
}

impl RedisRateStore {
    /// Skips Redis for a second: decisions fail at once (the limiter's
    /// failure mode applies) instead of each waiting out the timeout.
    fn mark_down(&self, now: u64) {
        self.down_until
            .store(now.saturating_add(1_000_000), Ordering::Release);
    }
}

impl RedisRateStore {
    /// Runs `invocation` under the timeout, unless Redis is known to be down;
    /// marks it down when the connection fails or the call times out.
    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, RateStoreError> {
        let elapsed = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        let down_until = self.down_until.load(Ordering::Acquire);
        if elapsed < down_until {
            return Err(RateStoreError::new(
                "Redis is down; retrying it at most once a second",
            ));
        }
        let Some(connection) = self.connection.get() else {
            return Err(RateStoreError::new(format!(
                "Redis cannot be used since start-up ({}); trying it again every second",
                self.unreached
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
            )));
        };
        let mut connection = connection.clone();
        match tokio::time::timeout(self.timeout, invocation.invoke_async::<T>(&mut connection))
            .await
        {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
                    self.mark_down(elapsed);
                }
                if tessera_server::is_redis_refusal(&e) {
                    Err(RateStoreError::permanent(format!("Redis refused: {e}")))
                } else {
                    Err(RateStoreError::new(format!("Redis: {e}")))
                }
            }
            Err(_) => {
                self.mark_down(elapsed);
                Err(RateStoreError::new(format!(
                    "Redis did not answer within {} ms",
                    self.timeout.as_millis()
                )))
            }
        }
    }
}

#[async_trait]
impl RateStore for RedisRateStore {
    async fn decide(
        &self,
        subject: Subject<'_>,
        plan: &Plan,
        cost: u32,
        now_micros: u64,
    ) -> Result<Decision, RateStoreError> {
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.key_for(subject, plan))
            .arg(now_micros)
            .arg(plan.rate().interval_micros().max(1))
            .arg(plan.burst())
            .arg(cost)
            .arg(u8::from(self.redis_clock));
        let (allowed, tat, remaining, retry, reset, decided_at) = self
            .run::<(i64, u64, u64, i64, u64, u64)>(invocation)
            .await?;
        Ok(Decision {
            allowed: allowed == 1,
            // The script's `tat` is at or after the time it decided at: the
            // same distance ahead of the caller's `now`.
            tat: now_micros.saturating_add(tat.saturating_sub(decided_at)),
            remaining,
            retry_after_micros: u64::try_from(retry).ok(),
            reset_micros: reset,
        })
    }

    async fn refund(
        &self,
        subject: Subject<'_>,
        plan: &Plan,
        cost: u32,
        now_micros: u64,
    ) -> Result<(), RateStoreError> {
        let mut invocation = self.refund_script.prepare_invoke();
        invocation
            .key(self.key_for(subject, plan))
            .arg(now_micros)
            .arg(
                plan.rate()
                    .interval_micros()
                    .max(1)
                    .saturating_mul(u64::from(cost)),
            )
            .arg(u8::from(self.redis_clock));
        self.run::<i64>(invocation).await.map(drop)
    }
}
