//! The limiter a verifier consults after the MAC check: which plan applies
//! to a request, whose budget it spends, and the answer with its headers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use tessera_core::Refusal;
use tessera_server::route::{method_covers, prefix_covers};
use tessera_server::{Admission, AdmissionRequest, Admitted, KeyMetadata, Rejection};

use crate::gcra::{decide, Decision};
use crate::held::Held;
use crate::plan::{Plan, Rate};
use crate::store::{RateStore, Subject};

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-10).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The attribute of a key's metadata that carries its own plan, overriding
/// the default: `{"rate_limit": {"rate": "100/s", "burst": 200}}` or
/// `{"rate_limit": "100/s"}` (burst = the rate's count).
pub const PLAN_ATTRIBUTE: &str = "rate_limit";

/// Microseconds since the Unix epoch; the limiter's only source of time.
pub trait MicroClock: fmt::Debug + Send + Sync {
    /// Now, in microseconds since 1970.
    fn now_micros(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemMicroClock;

impl MicroClock for SystemMicroClock {
    fn now_micros(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

/// A tessera clock (whole seconds; a `ManualClock` in tests) as a
/// microsecond clock.
impl MicroClock for tessera_core::ManualClock {
    fn now_micros(&self) -> u64 {
        tessera_core::Clock::now_unix(self).saturating_mul(1_000_000)
    }
}

/// A function that names the budget a verified key spends.
pub type SubjectFn = dyn Fn(&tessera_core::KeyId, &KeyMetadata) -> Option<String> + Send + Sync;

/// Whose budget a request spends.
#[non_exhaustive]
#[derive(Clone)]
pub enum KeyBy {
    /// Each key id has its own budget (the default): one device cannot use
    /// up another's.
    KeyId,
    /// All keys of an owner share one budget: twenty keys cannot route
    /// around a limit.
    Owner,
    /// A function of the verified key (for example an attribute such as a
    /// tenant id); `None` falls back to the key id.
    Custom(Arc<SubjectFn>),
}

impl fmt::Debug for KeyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyBy::KeyId => "KeyId",
            KeyBy::Owner => "Owner",
            KeyBy::Custom(_) => "Custom(..)",
        })
    }
}

/// What the limiter does when its store cannot answer.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Admit the request (the default): a rate limit protects capacity, and
    /// the signature, key and replay checks still ran, so an outage of the
    /// limit store costs only the limits, never the security. Logged at
    /// `warn` and counted ([`RateLimiterStats::store_errors`]).
    #[default]
    Open,
    /// Refuse with `store_unavailable` (503) and `Retry-After: 1`: the
    /// server cannot count the request, which is not the client's rate.
    Closed,
}

/// A route's plan: requests whose method matches (any when `None`) and whose
/// path starts with `path_prefix`, and, when `scope` is set, whose key has
/// that scope, spend `cost` from `plan`.
///
/// A limit is a restriction, so a route also covers the spellings that many
/// upstream frameworks route to the same handler: the method and the path
/// prefix compare without regard to ASCII case (`get /V1/Export` spends
/// from the plan of `GET /v1/export`), a `GET` route covers `HEAD`, a
/// prefix ending in `/` covers the path without that slash, and a format
/// suffix on the last segment is ignored, also before a trailing slash
/// (`/v1/orders.json` and `/v1/orders.json/` are under `/v1/orders/`).
/// The rule is [`tessera_server::route`]'s, the same one a gateway's scope
/// rules use.
#[derive(Debug, Clone)]
pub struct Route {
    method: Option<Method>,
    path_prefix: String,
    scope: Option<String>,
    plan: Plan,
    cost: u32,
}

impl Route {
    /// Requests under `path_prefix` spend from `plan`, cost 1.
    pub fn new(path_prefix: impl Into<String>, plan: Plan) -> Self {
        Route {
            method: None,
            path_prefix: path_prefix.into(),
            scope: None,
            plan,
            cost: 1,
        }
    }

    /// Only requests with this method.
    #[must_use]
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Only keys that have `scope`.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Each request costs `cost` (an expensive export counts as 10); at least 1.
    #[must_use]
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost.max(1);
        self
    }

    fn matches(&self, request: &AdmissionRequest<'_>) -> bool {
        self.method
            .as_ref()
            .is_none_or(|m| method_covers(m, request.method))
            && prefix_covers(&self.path_prefix, request.path)
            && self
                .scope
                .as_deref()
                .is_none_or(|s| request.metadata.has_scope(s))
    }
}

/// The counter of decisions in the `metrics` facade, labelled `outcome`.
pub const DECISIONS_METRIC: &str = "tessera_rate_limit_decisions_total";

/// Counters of what the limiter decided.
#[derive(Debug, Default)]
pub struct RateLimiterStats {
    allowed: AtomicU64,
    limited: AtomicU64,
    limited_before_body: AtomicU64,
    store_errors: AtomicU64,
}

impl RateLimiterStats {
    /// Requests admitted.
    pub fn allowed(&self) -> u64 {
        self.allowed.load(Ordering::Relaxed)
    }
    /// Requests refused with `rate_limited`, before or after their bodies.
    pub fn limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }
    /// Of [`RateLimiterStats::limited`], those refused before their bodies
    /// were read: their subject had been refused already and was still
    /// over its budget ([`Admission::refuse_before_body`]).
    pub fn limited_before_body(&self) -> u64 {
        self.limited_before_body.load(Ordering::Relaxed)
    }
    /// Decisions the store could not make (handled by the [`FailureMode`]).
    pub fn store_errors(&self) -> u64 {
        self.store_errors.load(Ordering::Relaxed)
    }
}

/// Limits authenticated requests by key, owner or route; plug it into a
/// verifier with `VerifierBuilder::admission`, so that it runs after the MAC
/// check and before the nonce is recorded.
///
/// For each request: the first [`Route`] that matches gives the plan and
/// cost; otherwise the key's own plan (its metadata attribute
/// [`PLAN_ATTRIBUTE`]), else its owner's plan
/// ([`RateLimiterBuilder::owner_plan`]), else the default plan, cost 1. No
/// plan: admitted without a limit. The budget spent is the [`KeyBy`]
/// subject's.
///
/// A subject it refuses is remembered in this process (up to 65,536 of
/// them) with the arrival time the refusal found, and its next requests
/// are refused as soon as their MAC verifies, before their bodies are read,
/// while [`decide`] still refuses them on that time
/// ([`Admission::refuse_before_body`], spec §12.5): no store is asked and
/// nothing is charged. An admitted request or a refund forgets the subject.
///
/// Every decision is counted in [`RateLimiter::stats`] and, through the
/// `metrics` facade (a no-op unless the application installs a recorder,
/// such as a Prometheus exporter), in the counter
/// `tessera_rate_limit_decisions_total` with the label `outcome`:
/// `allowed`, `limited`, or `store_error` (the store could not answer; the
/// [`FailureMode`] decided). A store error is also logged at `warn`.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn RateStore>,
    routes: Vec<Route>,
    owner_plans: HashMap<String, Plan>,
    default_plan: Option<Plan>,
    key_by: KeyBy,
    failure: FailureMode,
    clock: Arc<dyn MicroClock>,
    stats: RateLimiterStats,
    /// Subjects refused and still over their budget, so that their next
    /// requests are refused before their bodies are read.
    held: Held,
    /// A failing store fails every decision: one log line a second.
    store_logs: tessera_server::LogThrottle,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("RateLimiter")
            .field("store", &i.store)
            .field("routes", &i.routes)
            .field("default_plan", &i.default_plan)
            .field("key_by", &i.key_by)
            .field("failure", &i.failure)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter on `store` with the default plan [`default_plan`] (100
    /// requests/s per key, bursts of 200: under the in-memory nonce store's
    /// per-key capacity of about 330/s, so a key that floods is answered
    /// `rate_limited`, never `store_unavailable`).
    pub fn builder(store: impl RateStore + 'static) -> RateLimiterBuilder {
        RateLimiterBuilder {
            store: Arc::new(store),
            routes: Vec::new(),
            owner_plans: HashMap::new(),
            default_plan: Some(default_plan()),
            key_by: KeyBy::KeyId,
            failure: FailureMode::Open,
            clock: Arc::new(SystemMicroClock),
        }
    }

    /// What the limiter decided so far.
    pub fn stats(&self) -> &RateLimiterStats {
        &self.inner.stats
    }

    fn plan_for<'a>(&'a self, request: &AdmissionRequest<'_>) -> Option<(Cow<'a, Plan>, u32)> {
        let i = &self.inner;
        if let Some(route) = i.routes.iter().find(|r| r.matches(request)) {
            return Some((Cow::Borrowed(&route.plan), route.cost));
        }
        if let Some(plan) = key_plan(request.metadata) {
            return Some((Cow::Owned(plan), 1));
        }
        i.owner_plans
            .get(request.metadata.owner.as_str())
            .or(i.default_plan.as_ref())
            .map(|plan| (Cow::Borrowed(plan), 1))
    }

    fn subject_id<'r>(&self, request: &AdmissionRequest<'r>) -> (&'static str, Cow<'r, str>) {
        match &self.inner.key_by {
            KeyBy::KeyId => ("key", Cow::Borrowed(request.key_id.as_str())),
            KeyBy::Owner => ("owner", Cow::Borrowed(request.metadata.owner.as_str())),
            KeyBy::Custom(f) => match f(request.key_id, request.metadata) {
                Some(id) => ("custom", Cow::Owned(id)),
                None => ("key", Cow::Borrowed(request.key_id.as_str())),
            },
        }
    }
}

/// The key's own plan from its metadata attributes, if it has a valid one.
///
/// An invalid plan is not silently dropped: the default applies and a
/// warning says why (at most once a minute, so a busy key does not flood
/// the log). `tessera keys issue` refuses such a plan up front.
fn key_plan(metadata: &KeyMetadata) -> Option<Plan> {
    let value = metadata.attributes.as_ref()?.get(PLAN_ATTRIBUTE)?;
    match parse_key_plan(value) {
        Ok(plan) => Some(plan),
        Err(why) => {
            static LAST_WARNED: AtomicU64 = AtomicU64::new(0);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let last = LAST_WARNED.load(Ordering::Relaxed);
            if now >= last.saturating_add(60)
                && LAST_WARNED
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(owner = %metadata.owner, error = %why, "tessera: a key's rate_limit attribute is not a valid plan; the default applies");
            }
            None
        }
    }
}

/// A key's own plan from the value of its [`PLAN_ATTRIBUTE`] attribute:
/// `"100/s"` (burst = the count) or `{"rate": "100/s", "burst": 200}`.
///
/// # Errors
/// What is wrong with the value, in words a key's issuer can act on.
pub fn parse_key_plan(value: &serde_json::Value) -> Result<Plan, String> {
    let (rate, burst) = match value {
        serde_json::Value::String(rate) => (rate.parse::<Rate>().map_err(|e| e.to_string())?, None),
        serde_json::Value::Object(o) => {
            if let Some(unknown) = o.keys().find(|k| !matches!(k.as_str(), "rate" | "burst")) {
                return Err(format!(
                    "unknown field {unknown:?} in {PLAN_ATTRIBUTE} (expected \"rate\" and optionally \"burst\")"
                ));
            }
            let rate = o
                .get("rate")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| format!("{PLAN_ATTRIBUTE}.rate is missing or not a string such as \"100/s\""))?
                .parse::<Rate>()
                .map_err(|e| e.to_string())?;
            let burst = match o.get("burst") {
                None => None,
                Some(b) => Some(
                    b.as_u64()
                        .and_then(|b| u32::try_from(b).ok())
                        .ok_or_else(|| format!("{PLAN_ATTRIBUTE}.burst {b} is not a whole number from 1 to {}", u32::MAX))?,
                ),
            };
            (rate, burst)
        }
        other => {
            return Err(format!(
                "{PLAN_ATTRIBUTE} is {other}: expected a rate such as \"100/s\" or {{\"rate\": \"100/s\", \"burst\": 200}}"
            ))
        }
    };
    Plan::new("key", rate, burst.unwrap_or(rate.count())).map_err(|e| e.to_string())
}

/// The plan a [`RateLimiter`] starts with: `"default"`, 100 requests per
/// second, bursts of 200.
pub fn default_plan() -> Plan {
    let rate = Rate::new(100, std::time::Duration::from_secs(1));
    // 100/s and a burst of 200 are valid, so neither step fails.
    rate.and_then(|rate| Plan::new("default", rate, 200))
        .unwrap_or_else(|_| unreachable!("the default plan is valid"))
}

/// Configures a [`RateLimiter`].
///
/// ```
/// use http::Method;
/// use tessera_ratelimit::{MemoryRateStore, Plan, RateLimiter, Route};
///
/// let writes = Plan::new("writes", "10/s".parse()?, 20)?;
/// let gold = Plan::new("gold", "1000/m".parse()?, 100)?;
/// let limiter = RateLimiter::builder(MemoryRateStore::default())
///     .route(Route::new("/v1/orders", writes).method(Method::POST)) // first match wins
///     .owner_plan("acme", gold)                                    // all of acme's keys
///     .default_plan(Plan::new("default", "100/s".parse()?, 200)?)  // everything else
///     .build();
/// # let _ = limiter;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RateLimiterBuilder {
    store: Arc<dyn RateStore>,
    routes: Vec<Route>,
    owner_plans: HashMap<String, Plan>,
    default_plan: Option<Plan>,
    key_by: KeyBy,
    failure: FailureMode,
    clock: Arc<dyn MicroClock>,
}

impl fmt::Debug for RateLimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiterBuilder")
            .field("routes", &self.routes)
            .field("owner_plans", &self.owner_plans.len())
            .field("default_plan", &self.default_plan)
            .finish_non_exhaustive()
    }
}

impl RateLimiterBuilder {
    /// The plan of every key of `owner` that has no plan of its own (a
    /// customer's tier, say), in place of the default plan. Routes still
    /// come first. Whose budget it is stays the [`KeyBy`] choice: with
    /// [`KeyBy::Owner`] the owner's keys share one budget of this plan;
    /// with the default [`KeyBy::KeyId`] each key has a budget of its own.
    #[must_use]
    pub fn owner_plan(mut self, owner: impl Into<String>, plan: Plan) -> Self {
        self.owner_plans.insert(owner.into(), plan);
        self
    }

    /// The plan for requests no route matches (and whose key has no plan of
    /// its own), replacing [`default_plan`].
    #[must_use]
    pub fn default_plan(mut self, plan: Plan) -> Self {
        self.default_plan = Some(plan);
        self
    }

    /// No default plan: only routes and keys' own plans limit requests.
    #[must_use]
    pub fn without_default_plan(mut self) -> Self {
        self.default_plan = None;
        self
    }

    /// Adds a route plan; the first matching route wins.
    #[must_use]
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Whose budget requests spend (default: the key id's).
    #[must_use]
    pub fn key_by(mut self, key_by: KeyBy) -> Self {
        self.key_by = key_by;
        self
    }

    /// What happens when the store cannot answer (default: [`FailureMode::Open`]).
    #[must_use]
    pub fn on_store_failure(mut self, mode: FailureMode) -> Self {
        self.failure = mode;
        self
    }

    /// The clock (default: the system clock, microseconds).
    #[must_use]
    pub fn clock(mut self, clock: impl MicroClock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the limiter.
    pub fn build(self) -> RateLimiter {
        RateLimiter {
            inner: Arc::new(Inner {
                store: self.store,
                routes: self.routes,
                owner_plans: self.owner_plans,
                default_plan: self.default_plan,
                key_by: self.key_by,
                failure: self.failure,
                clock: self.clock,
                stats: RateLimiterStats::default(),
                held: Held::new(),
                store_logs: tessera_server::LogThrottle::new(),
            }),
        }
    }
}

/// Whole seconds, rounded up, for header values.
fn ceil_secs(micros: u64) -> u64 {
    micros.div_ceil(1_000_000)
}

/// `RateLimit-Policy` and `RateLimit` for `plan` after `decision`, counted
/// in requests of `cost` (a route whose requests cost 10 advertises a
/// tenth of the burst, and as many left).
fn headers(plan: &Plan, cost: u32, decision: &Decision) -> [(HeaderName, HeaderValue); 2] {
    let cost = u64::from(cost.max(1));
    let mut state = String::with_capacity(plan.name().len() + 32);
    state.push('"');
    state.push_str(plan.name());
    state.push_str("\";r=");
    state.push_str(itoa::Buffer::new().format(decision.remaining / cost));
    state.push_str(";t=");
    state.push_str(itoa::Buffer::new().format(ceil_secs(decision.reset_micros)));
    // Plan names are tokens and the numbers digits: always valid values
    // (the fallback, an empty value, is never reached).
    let value = |bytes: Bytes| {
        HeaderValue::from_maybe_shared(bytes).unwrap_or_else(|_| HeaderValue::from_static(""))
    };
    [
        (RATELIMIT_POLICY, value(plan.policy_field_for_cost(cost))),
        (RATELIMIT, value(Bytes::from(state))),
    ]
}

#[async_trait]
impl Admission for RateLimiter {
    async fn admit(&self, request: AdmissionRequest<'_>) -> Result<Admitted, Rejection> {
        let i = &*self.inner;
        let Some((plan, cost)) = self.plan_for(&request) else {
            return Ok(Admitted::plain());
        };
        let (kind, id) = self.subject_id(&request);
        let subject = Subject { kind, id: &id };
        let plan: &Plan = &plan;
        let now = i.clock.now_micros();
        // Read before the store decides: a refusal decided while a refund
        // was under way is not remembered (it may predate the refund).
        let held = i.held.key(plan, subject);
        let generation = i.held.generation(held);
        let decision = match i.store.decide(subject, plan, cost, now).await {
            Ok(decision) => decision,
            Err(e) => {
                i.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(DECISIONS_METRIC, "outcome" => "store_error").increment(1);
                if let Some(left_out) = i.store_logs.admit() {
                    tracing::warn!(key_id = %request.key_id, plan = plan.name(), error = %e, mode = ?i.failure, left_out, "tessera: rate limit store failed (left_out: such failures not logged since the previous line)");
                }
                return match i.failure {
                    FailureMode::Open => Ok(Admitted::plain()),
                    // An outage, not the client's rate: `store_unavailable`
                    // (503), so that a client does not back off as if throttled.
                    FailureMode::Closed => {
                        Err(Rejection::new(Refusal::RateLimitStoreUnavailable.into())
                            .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1")))
                    }
                };
            }
        };
        if decision.allowed {
            i.stats.allowed.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(DECISIONS_METRIC, "outcome" => "allowed").increment(1);
            // Not over its budget (any more): nothing to refuse early.
            i.held.forget(held);
            return Ok(Admitted::with_headers(headers(plan, cost, &decision)));
        }
        // A refusal leaves `tat` where it was (`decision.tat`): remembered,
        // so that the subject's next requests are refused before their
        // bodies while it stays over its budget.
        i.held.hold(held, plan, decision.tat, now, generation);
        i.stats.limited.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(DECISIONS_METRIC, "outcome" => "limited").increment(1);
        tracing::debug!(key_id = %request.key_id, plan = plan.name(), "tessera: rate limited");
        let retry = decision.retry_after_micros.unwrap_or(decision.reset_micros);
        Err(limited(plan, cost, retry, Some(&decision)))
    }

    /// Refuses, before its body is read, a request whose subject this
    /// limiter refused earlier and which [`decide`] still refuses on the
    /// arrival time that refusal reported (spec §12.5). Charges nothing and
    /// asks no store: while no subject is held, it costs one atomic load.
    fn refuse_before_body(&self, request: AdmissionRequest<'_>) -> Result<(), Rejection> {
        let i = &*self.inner;
        if i.held.is_empty() {
            return Ok(());
        }
        let now = i.clock.now_micros();
        if i.held.is_clear(now) {
            // Everything held has passed: emptied, and nothing to refuse.
            i.held.clear_if_passed(now);
            return Ok(());
        }
        let Some((plan, cost)) = self.plan_for(&request) else {
            return Ok(());
        };
        let (kind, id) = self.subject_id(&request);
        let subject = Subject { kind, id: &id };
        let plan: &Plan = &plan;
        let held = i.held.key(plan, subject);
        let Some(tat) = i.held.get(held, now) else {
            return Ok(());
        };
        let decision = decide(Some(tat), now, plan, cost);
        if decision.allowed {
            // Enough budget back for this cost: `admit` decides, after the body.
            return Ok(());
        }
        i.stats.limited.fetch_add(1, Ordering::Relaxed);
        i.stats.limited_before_body.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(DECISIONS_METRIC, "outcome" => "limited").increment(1);
        tracing::debug!(key_id = %request.key_id, plan = plan.name(), "tessera: rate limited before the body was read");
        let retry = decision.retry_after_micros.unwrap_or(decision.reset_micros);
        Err(limited(plan, cost, retry, Some(&decision)))
    }

    async fn refund(&self, request: AdmissionRequest<'_>) {
        let i = &*self.inner;
        let Some((plan, cost)) = self.plan_for(&request) else {
            return;
        };
        let (kind, id) = self.subject_id(&request);
        let subject = Subject { kind, id: &id };
        let plan: &Plan = &plan;
        // Its budget grows back: nothing may be refused early on what a
        // refusal decided before the refund landed said (the guard forgets
        // the subject again when the refund ends, or is cancelled).
        let _refunding = i.held.refunding(i.held.key(plan, subject));
        if let Err(e) = i
            .store
            .refund(subject, plan, cost, i.clock.now_micros())
            .await
        {
            // Not a decision, so not counted as one; at debug level: while the
            // store is down, `admit` has already warned (failing open, it
            // charged nothing, and this refund has nothing to give back).
            tracing::debug!(key_id = %request.key_id, plan = plan.name(), error = %e, "tessera: rate limit store could not give back the charge of a request refused at the nonce step");
        }
    }
}

/// The `rate_limited` refusal with `Retry-After` (whole seconds, at least 1)
/// and, when known, the `RateLimit` fields.
fn limited(plan: &Plan, cost: u32, retry_micros: u64, decision: Option<&Decision>) -> Rejection {
    let retry_after = ceil_secs(retry_micros).max(1);
    let mut rejection = Rejection::new(
        Refusal::RateLimited {
            policy: plan.name().to_owned(),
            retry_after,
        }
        .into(),
    )
    .with_header(http::header::RETRY_AFTER, HeaderValue::from(retry_after));
    if let Some(decision) = decision {
        for (name, value) in headers(plan, cost, decision) {
            rejection = rejection.with_header(name, value);
        }
    }
    rejection
}
