//! # tessera-ratelimit
//!
//! Rate limits for requests that tessera-v1 has authenticated: each key,
//! owner or route gets its own budget, so one abusive client is stopped
//! without stopping everyone, which a shared API key cannot do.
//!
//! Where it sits: `tessera-core` checks signatures, `tessera-server`
//! verifies requests (keys, nonces, the tower layer); this crate decides,
//! for a verified identity, whether its budget allows the request. It is a
//! crate of its own because it brings its own state stores (memory, Redis).
//!
//! The algorithm is GCRA ([`decide`]): a burst, then a sustained rate, with
//! one timestamp of state per limited subject and no timers. The same pure
//! function backs the in-memory store ([`MemoryRateStore`]) and is
//! transcribed into the Redis store's script, and both are held to the same
//! tests. A request the verifier refuses at the nonce step after the
//! limiter admitted it (a replayed copy, a nonce store outage) is given its
//! charge back ([`refund`]), so replaying a captured request cannot drain
//! its key's budget.
//!
//! ## Example
//!
//! ```
//! use tessera_ratelimit::{MemoryRateStore, Plan, Rate, Subject};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Writes: 10 per second sustained, bursts of 20.
//! let writes = Plan::new("writes", "10/s".parse::<Rate>()?, 20)?;
//! let store = MemoryRateStore::default();
//! let key = Subject::new("key", "user-42-phone");
//! let t0 = 1_700_000_000_000_000; // microseconds
//! for _ in 0..20 {
//!     assert!(store.decide_now(key, &writes, 1, t0)?.allowed);
//! }
//! let refused = store.decide_now(key, &writes, 1, t0)?;
//! assert!(!refused.allowed);
//! assert_eq!(refused.retry_after_micros, Some(100_000)); // one interval
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod before;
mod gcra;
mod held;
mod limiter;
mod memory;
mod plan;
#[cfg(feature = "redis")]
mod redis_store;
mod store;
mod subject_key;

pub use before::{Claimed, LimitBeforeVerify, LimitBeforeVerifyLayer};
pub use gcra::{decide, refund, Decision};
pub use limiter::{
    default_plan, parse_key_plan, FailureMode, KeyBy, MicroClock, RateLimiter, RateLimiterBuilder,
    RateLimiterStats, Route, SubjectFn, SystemMicroClock, DECISIONS_METRIC, PLAN_ATTRIBUTE,
    RATELIMIT, RATELIMIT_POLICY,
};
pub use memory::{MemoryRateStore, DEFAULT_MEMORY_CAPACITY};
pub use plan::{Plan, PlanError, Rate};
#[cfg(feature = "redis")]
pub use redis_store::{
    RedisRateStore, DEFAULT_RATE_REDIS_CONNECT_TIMEOUT, DEFAULT_RATE_REDIS_TIMEOUT,
};
pub use store::{RateStore, RateStoreError, Subject};
