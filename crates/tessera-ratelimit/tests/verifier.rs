//! The limiter inside a real verifier: over HTTP on loopback through the
//! tower layer, and through `verify_bytes` for the exact sequences.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::FutureExt;
use tessera_core::{
    sign, BodyDigest, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_ratelimit::{
    FailureMode, KeyBy, MemoryRateStore, Plan, RateLimiter, RateStore, RateStoreError, Route,
    Subject,
};
use tessera_server::{
    ErrorCode, KeyMetadata, ManualClock, MemoryKeyStore, MemoryNonceStore, Verifier,
    VerifySignatureLayer,
};

const T0: u64 = 1_700_000_000;
const HOST: &str = "api.example.com";

fn plan(name: &str, rate: &str, burst: u32) -> Plan {
    Plan::new(name, rate.parse().expect("rate"), burst).expect("plan")
}

struct Setup {
    verifier: Verifier,
    clock: ManualClock,
    keys: Arc<MemoryKeyStore>,
}

fn secret(name: &str) -> SecretKey {
    let mut bytes = [0u8; 32];
    bytes[..name.len().min(32)].copy_from_slice(&name.as_bytes()[..name.len().min(32)]);
    SecretKey::from_bytes(&bytes).expect("secret")
}

/// A verifier on a manual clock at T0 whose admission is the limiter `make`
/// builds (given the same clock), with at most `nonce_cap` live nonces per key.
fn setup(make: impl FnOnce(ManualClock) -> RateLimiter, nonce_cap: usize) -> Setup {
    let clock = ManualClock::new(T0);
    let keys = Arc::new(MemoryKeyStore::new());
    for (name, owner, scopes) in [
        ("alice-phone", "alice", &["read", "write"][..]),
        ("alice-laptop", "alice", &["read"][..]),
        ("bob-phone", "bob", &["read"][..]),
    ] {
        keys.insert(
            KeyId::new(name).expect("id"),
            &secret(name),
            KeyMetadata::new(owner).with_scopes(scopes.iter().copied()),
        );
    }
    let verifier = Verifier::builder(Arc::clone(&keys))
        .clock(clock.clone())
        .nonce_store(
            MemoryNonceStore::builder()
                .remembers_since(T0)
                .per_key_capacity(nonce_cap)
                .build(),
        )
        .authority(HOST)
        .admission(make(clock.clone()))
        .build()
        .expect("verifier");
    Setup {
        verifier,
        clock,
        keys,
    }
}

fn signed(key: &str, method: &str, path: &str, created: u64) -> http::request::Parts {
    let (parts, ()) = http::Request::builder()
        .method(method)
        .uri(format!("https://{HOST}{path}"))
        .body(())
        .expect("request")
        .into_parts();
    sign_parts(parts, key, &BodyDigest::EMPTY, created)
}

/// `parts` with the signature of `key` for a body of `digest`, fresh nonce.
fn sign_parts(
    mut parts: http::request::Parts,
    key: &str,
    digest: &BodyDigest,
    created: u64,
) -> http::request::Parts {
    let key = SigningKey::new(KeyId::new(key).expect("id"), &secret(key));
    let nonce = Nonce::generate(&mut rand::rng());
    sign(
        &key,
        &RequestView::from_parts(&parts).expect("view"),
        digest,
        &SignOptions::new(created, &nonce),
    )
    .expect("sign")
    .apply_to(&mut parts.headers)
    .expect("apply");
    parts
}

fn verify(s: &Setup, parts: &http::request::Parts) -> Result<(), tessera_server::Rejection> {
    s.verifier
        .verify_bytes(parts, Bytes::new())
        .now_or_never()
        .expect("in-memory stores answer at once")
        .map(|_| ())
}

fn now(s: &Setup) -> u64 {
    tessera_server::Clock::now_unix(&s.clock)
}

/// Serves `app` on a loopback port, in the background.
async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

/// A verifier whose limiter gives every key `rate` with bursts of `burst`
/// (the default plan, in memory), with at most `nonce_cap` live nonces per key.
fn with_default_plan(rate: &str, burst: u32, nonce_cap: usize) -> Setup {
    setup(
        |clock| {
            RateLimiter::builder(MemoryRateStore::default())
                .default_plan(plan("default", rate, burst))
                .clock(clock)
                .build()
        },
        nonce_cap,
    )
}

/// A verifier whose limiter gives every key 3 requests a minute (burst 3).
fn three_a_minute() -> Setup {
    with_default_plan("3/m", 3, 1_000)
}

/// Replayed copies of a captured request spend nothing from the key's budget
/// (spec §12.5): the charge of a request refused at the nonce step is given
/// back, so whoever holds a captured request cannot drain the key.
#[test]
fn replayed_copies_spend_nothing_from_the_budget() {
    let s = three_a_minute();
    let captured = signed("alice-phone", "GET", "/v1/me", now(&s));
    assert!(verify(&s, &captured).is_ok());
    for _ in 0..20 {
        let r = verify(&s, &captured).expect_err("a replay");
        assert_eq!(r.code(), ErrorCode::Replayed, "{r:?}");
    }
    // The owner's two remaining requests still pass; the third is over the plan.
    for _ in 0..2 {
        assert!(verify(&s, &signed("alice-phone", "GET", "/v1/me", now(&s))).is_ok());
    }
    let r = verify(&s, &signed("alice-phone", "GET", "/v1/me", now(&s))).expect_err("limited");
    assert_eq!(r.code(), ErrorCode::RateLimited);
}

/// A rate store that counts what it is asked.
#[derive(Debug, Default)]
struct Counting {
    inner: MemoryRateStore,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    decisions: std::sync::atomic::AtomicU64,
    refunds: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl RateStore for Counting {
    async fn decide(
        &self,
        subject: Subject<'_>,
        plan: &Plan,
        cost: u32,
        now: u64,
    ) -> Result<tessera_ratelimit::Decision, RateStoreError> {
        self.counts
            .decisions
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.decide(subject, plan, cost, now).await
    }

    async fn refund(
        &self,
        subject: Subject<'_>,
        plan: &Plan,
        cost: u32,
        now: u64,
    ) -> Result<(), RateStoreError> {
        self.counts
            .refunds
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.refund(subject, plan, cost, now).await
    }
}

/// Copies of a request already recorded never reach the budget at all: a
/// charge given back after the nonce step still holds the budget while the
/// stores answer (a round trip each with Redis), and a flood of copies
/// would keep it spent. So the verifier asks the nonce store first whether
/// the pair is recorded, and the limiter sees only the original.
#[test]
fn replayed_copies_are_never_charged() {
    let store = Counting::default();
    let counts = Arc::clone(&store.counts);
    let limiter = RateLimiter::builder(store)
        .default_plan(plan("default", "3/m", 3))
        .build();
    let s = setup(|_| limiter, 1_000);
    let captured = signed("alice-phone", "GET", "/v1/me", now(&s));
    assert!(verify(&s, &captured).is_ok());
    for _ in 0..20 {
        let r = verify(&s, &captured).expect_err("a replay");
        assert_eq!(r.code(), ErrorCode::Replayed, "{r:?}");
    }
    let asked = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(asked(&counts.decisions), 1, "only the original was charged");
    assert_eq!(asked(&counts.refunds), 0, "nothing to give back");
}

/// A key that floods is answered 429 rate_limited, never 503: refused
/// requests record no nonce, so a small per-key nonce cap is never reached.
#[test]
fn a_flooding_key_gets_rate_limited_never_store_unavailable() {
    // At most 100 live nonces per key: without the limiter, request 101 would be a 503.
    let s = with_default_plan("20/s", 20, 100);
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..2_000 {
        match verify(&s, &signed("alice-phone", "GET", "/v1/me", now(&s))) {
            Ok(()) => ok += 1,
            Err(r) => {
                assert_eq!(r.code(), ErrorCode::RateLimited, "{r:?}");
                assert_eq!(r.status(), 429);
                limited += 1;
            }
        }
    }
    assert_eq!((ok, limited), (20, 1_980));
    // Another key is unaffected.
    assert!(verify(&s, &signed("bob-phone", "GET", "/v1/me", now(&s))).is_ok());
    let _ = &s.keys;
}

/// A refused request consumed no nonce: the same bytes are accepted once the
/// budget allows, and only then become a replay.
#[test]
fn a_refused_request_is_not_a_replay_later() {
    let s = with_default_plan("1/s", 1, 1_000);
    // The limiter and the verifier share the manual clock's time.
    assert!(verify(&s, &signed("alice-phone", "GET", "/v1/me", T0)).is_ok());
    let second = signed("alice-phone", "GET", "/v1/me", T0);
    assert_eq!(
        verify(&s, &second).map_err(|r| r.code()),
        Err(ErrorCode::RateLimited)
    );
    s.clock.advance(1);
    assert!(
        verify(&s, &second).is_ok(),
        "refused before, so never recorded"
    );
    s.clock.advance(1);
    assert_eq!(
        verify(&s, &second).map_err(|r| r.code()),
        Err(ErrorCode::Replayed)
    );
}

/// Routes with costs and scopes, owner-wide budgets, and a key's own plan.
#[test]
fn routes_costs_owners_and_key_plans() {
    let s = setup(
        |clock| {
            RateLimiter::builder(MemoryRateStore::default())
                .route(Route::new("/v1/export", plan("export", "10/m", 10)).cost(10))
                .route(
                    Route::new("/v1/orders", plan("writes", "10/s", 2))
                        .method(http::Method::POST)
                        .scope("write"),
                )
                .default_plan(plan("reads", "100/s", 3))
                .key_by(KeyBy::Owner)
                .clock(clock)
                .build()
        },
        1_000,
    );
    // One export spends the whole export budget.
    assert!(verify(&s, &signed("alice-phone", "GET", "/v1/export", T0)).is_ok());
    let r = verify(&s, &signed("alice-laptop", "GET", "/v1/export", T0)).expect_err("owner-wide");
    assert_eq!(r.code(), ErrorCode::RateLimited);
    // Writes: 2 at once for alice's owner budget.
    assert!(verify(&s, &signed("alice-phone", "POST", "/v1/orders", T0)).is_ok());
    assert!(verify(&s, &signed("alice-phone", "POST", "/v1/orders", T0)).is_ok());
    assert!(verify(&s, &signed("alice-phone", "POST", "/v1/orders", T0)).is_err());
    // Reads: 3 for alice across both keys; bob has his own.
    for key in ["alice-phone", "alice-laptop", "alice-phone"] {
        assert!(verify(&s, &signed(key, "GET", "/v1/me", T0)).is_ok());
    }
    assert!(verify(&s, &signed("alice-laptop", "GET", "/v1/me", T0)).is_err());
    assert!(verify(&s, &signed("bob-phone", "GET", "/v1/me", T0)).is_ok());

    // bob's key carries its own plan: 1 request, then refused.
    s.keys.insert(
        KeyId::new("bob-phone").expect("id"),
        &secret("bob-phone"),
        KeyMetadata::new("carol")
            .with_attributes(serde_json::json!({"rate_limit": {"rate": "1/m", "burst": 1}})),
    );
    assert!(verify(&s, &signed("bob-phone", "GET", "/v1/me", T0)).is_ok());
    let r = verify(&s, &signed("bob-phone", "GET", "/v1/me", T0)).expect_err("own plan");
    assert!(
        r.error().detail().contains("\"key\""),
        "{}",
        r.error().detail()
    );
}

/// A route covers the spellings an upstream may route to the same handler:
/// the method and the path in any ASCII case, `HEAD` for a `GET` route, and
/// the prefix without its trailing slash. Otherwise `post /V1/Orders` would
/// reach the handler of `POST /v1/orders/` without spending from its plan.
#[test]
fn a_route_covers_every_spelling_of_its_method_and_prefix() {
    let s = setup(
        |clock| {
            RateLimiter::builder(MemoryRateStore::default())
                .route(
                    Route::new("/v1/orders/", plan("writes", "1/m", 3)).method(http::Method::POST),
                )
                .route(Route::new("/v1/export", plan("export", "1/m", 2)).method(http::Method::GET))
                .default_plan(plan("reads", "100/s", 100))
                .clock(clock)
                .build()
        },
        1_000,
    );
    let refused_by = |method: &str, path: &str| {
        let r = verify(&s, &signed("alice-phone", method, path, T0)).expect_err("refused");
        assert_eq!(r.code(), ErrorCode::RateLimited);
        r.error().detail().to_owned()
    };
    for (method, path) in [
        ("POST", "/v1/orders/1"),
        ("post", "/V1/Orders/2"),
        ("Post", "/v1/orders.json"),
    ] {
        assert!(
            verify(&s, &signed("alice-phone", method, path, T0)).is_ok(),
            "{method} {path}"
        );
    }
    assert!(refused_by("POST", "/v1/orders/3").contains("\"writes\""));
    assert!(refused_by("pOsT", "/V1/ORDERS/4").contains("\"writes\""));
    assert!(refused_by("POST", "/v1/orders").contains("\"writes\""));
    // A format suffix before a trailing slash (Rails removes the slash).
    assert!(refused_by("POST", "/v1/orders.json/").contains("\"writes\""));
    // HEAD is answered by the GET handler.
    assert!(verify(&s, &signed("alice-phone", "HEAD", "/v1/export", T0)).is_ok());
    assert!(verify(&s, &signed("alice-phone", "get", "/v1/EXPORT", T0)).is_ok());
    assert!(refused_by("GET", "/v1/export").contains("\"export\""));
    // Other methods and paths spend from the default plan.
    assert!(verify(&s, &signed("alice-phone", "DELETE", "/v1/orders/5", T0)).is_ok());
    assert!(verify(&s, &signed("alice-phone", "GET", "/v1/ordersx", T0)).is_ok());
}

/// An owner's plan (a customer tier) applies to its keys that have no plan
/// of their own, each key with its own budget by default; a key's own plan
/// and a route still come first; other owners get the default.
#[test]
fn owner_plans_sit_between_key_plans_and_the_default() {
    let s = setup(
        |clock| {
            RateLimiter::builder(MemoryRateStore::default())
                .route(Route::new("/v1/export", plan("export", "10/m", 1)))
                .owner_plan("alice", plan("gold", "100/s", 4))
                .default_plan(plan("free", "1/s", 1))
                .clock(clock)
                .build()
        },
        1_000,
    );
    let refused_by = |key: &str, path: &str| {
        let r = verify(&s, &signed(key, "GET", path, T0)).expect_err("refused");
        assert_eq!(r.code(), ErrorCode::RateLimited);
        r.error().detail().to_owned()
    };
    // alice's keys: 4 each (gold, per key).
    for key in ["alice-phone", "alice-laptop"] {
        for _ in 0..4 {
            assert!(verify(&s, &signed(key, "GET", "/v1/me", T0)).is_ok());
        }
        assert!(refused_by(key, "/v1/me").contains("\"gold\""));
    }
    // bob: the default plan, 1.
    assert!(verify(&s, &signed("bob-phone", "GET", "/v1/me", T0)).is_ok());
    assert!(refused_by("bob-phone", "/v1/me").contains("\"free\""));
    // The route wins over the owner's plan.
    assert!(verify(&s, &signed("alice-phone", "GET", "/v1/export", T0)).is_ok());
    assert!(refused_by("alice-phone", "/v1/export").contains("\"export\""));
    // A key's own plan wins over its owner's.
    s.keys.insert(
        KeyId::new("alice-tablet").expect("id"),
        &secret("alice-tablet"),
        KeyMetadata::new("alice").with_attributes(serde_json::json!({"rate_limit": "1/m"})),
    );
    assert!(verify(&s, &signed("alice-tablet", "GET", "/v1/me", T0)).is_ok());
    assert!(refused_by("alice-tablet", "/v1/me").contains("\"key\""));
}

#[derive(Debug)]
struct DownStore;

#[async_trait::async_trait]
impl RateStore for DownStore {
    async fn decide(
        &self,
        _: Subject<'_>,
        _: &Plan,
        _: u32,
        _: u64,
    ) -> Result<tessera_ratelimit::Decision, RateStoreError> {
        Err(RateStoreError::new("down"))
    }

    async fn refund(&self, _: Subject<'_>, _: &Plan, _: u32, _: u64) -> Result<(), RateStoreError> {
        Err(RateStoreError::new("down"))
    }
}

#[test]
fn store_failure_is_open_by_default_and_closed_when_asked() {
    let open = RateLimiter::builder(DownStore)
        .default_plan(plan("default", "1/s", 1))
        .build();
    let s = setup(|_| open.clone(), 1_000);
    let request = signed("alice-phone", "GET", "/v1/me", T0);
    assert!(verify(&s, &request).is_ok());
    assert_eq!(open.stats().store_errors(), 1);
    // A replay: refused before it reaches the limiter (no decision, no
    // refund), so the store is not asked at all.
    let r = verify(&s, &request).expect_err("a replay");
    assert_eq!(r.code(), ErrorCode::Replayed);
    assert_eq!(open.stats().store_errors(), 1);
    let closed = RateLimiter::builder(DownStore)
        .default_plan(plan("default", "1/s", 1))
        .on_store_failure(FailureMode::Closed)
        .build();
    let s = setup(|_| closed, 1_000);
    let r = verify(&s, &signed("alice-phone", "GET", "/v1/me", T0)).expect_err("closed");
    // An outage, not the client's rate: a client must not back off as if throttled.
    assert_eq!(r.code(), ErrorCode::StoreUnavailable);
    assert_eq!(r.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    let detail = r.error().detail();
    assert!(detail.contains("rate-limit store"), "{detail}");
}

/// Over real HTTP: the allowed responses carry RateLimit-Policy and
/// RateLimit, the refusal is a 429 problem with a usable Retry-After.
#[tokio::test]
async fn over_http_429_with_retry_after_and_ratelimit_headers() {
    let s = with_default_plan("1/m", 2, 1_000);
    let app = Router::new()
        .route("/v1/me", get(|| async { "ok" }))
        .layer(VerifySignatureLayer::new(s.verifier.clone()));
    let addr = serve(app).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let send = |parts: http::request::Parts| {
        let client = client.clone();
        async move {
            let mut request = client
                .get(format!("http://{addr}/v1/me"))
                .header("host", HOST);
            for (name, value) in &parts.headers {
                request = request.header(name.as_str(), value.as_bytes());
            }
            request.send().await.expect("send")
        }
    };
    let first = send(signed("alice-phone", "GET", "/v1/me", T0)).await;
    assert_eq!(first.status(), 200);
    // Burst 2 at 1/m: two at once, then one a minute: at most 2 in any 120 s.
    assert_eq!(first.headers()["ratelimit-policy"], "\"default\";q=2;w=120");
    assert_eq!(first.headers()["ratelimit"], "\"default\";r=1;t=60");
    assert_eq!(
        send(signed("alice-phone", "GET", "/v1/me", T0))
            .await
            .status(),
        200
    );
    let limited = send(signed("alice-phone", "GET", "/v1/me", T0)).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "60");
    assert_eq!(
        limited.headers()["content-type"],
        "application/problem+json"
    );
    assert!(limited.headers().contains_key("ratelimit"));
    let body: serde_json::Value = limited.json().await.expect("problem");
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["status"], 429);
}

#[cfg(feature = "redis")]
#[path = "../../tessera-server/tests/support/redis_server.rs"]
mod redis_server;

/// Two verifiers (two replicas) sharing one Redis share the budget: across
/// both, the request past it gets 429. Then Redis stops: by default the
/// limiter fails open (requests pass, the failures are counted), a
/// fail-closed one answers 429; when Redis is back the limits apply again,
/// without a restart.
#[cfg(feature = "redis")]
#[tokio::test]
async fn replicas_share_a_redis_budget_and_survive_redis_restarts() {
    use std::time::{Duration, Instant};
    use tessera_ratelimit::RedisRateStore;

    let Some(mut redis) = redis_server::RedisServer::spawn(
        "replicas_share_a_redis_budget_and_survive_redis_restarts",
    ) else {
        return;
    };
    let prefix = format!("tessera-rl-{}", std::process::id());
    let limiter = |mode: FailureMode, store: RedisRateStore| {
        move |clock: ManualClock| {
            RateLimiter::builder(store)
                .default_plan(plan("default", "1/m", 3))
                .on_store_failure(mode)
                .clock(clock)
                .build()
        }
    };
    let url = redis.url();
    let connect = || RedisRateStore::connect(&url, &prefix);
    let a = setup(
        limiter(FailureMode::Open, connect().await.expect("a")),
        1_000,
    );
    let b = setup(
        limiter(FailureMode::Open, connect().await.expect("b")),
        1_000,
    );
    let closed = setup(
        limiter(FailureMode::Closed, connect().await.expect("c")),
        1_000,
    );
    let mut verdicts = Vec::new();
    for replica in [&a, &b, &a, &b] {
        verdicts.push(
            verify_async(replica, &signed("alice-phone", "GET", "/v1/me", T0))
                .await
                .map_err(|r| r.code()),
        );
    }
    assert_eq!(
        verdicts,
        [Ok(()), Ok(()), Ok(()), Err(ErrorCode::RateLimited)],
        "the fourth request, on either replica, is past the shared budget of 3"
    );

    redis.stop();
    let started = Instant::now();
    for _ in 0..20 {
        assert!(verify_async(&b, &signed("bob-phone", "GET", "/v1/me", T0))
            .await
            .is_ok());
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "failing open must not wait out a timeout per request: {:?}",
        started.elapsed()
    );
    let r = verify_async(&closed, &signed("bob-phone", "GET", "/v1/me", T0))
        .await
        .expect_err("fail closed");
    // An outage, not the client's rate (spec §12.5).
    assert_eq!(r.code(), ErrorCode::StoreUnavailable);

    redis.start();
    // Recovers by itself: within a few seconds the shared budget applies again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let verdict = verify_async(&a, &signed("alice-phone", "GET", "/v1/me", T0)).await;
        if verdict
            .as_ref()
            .is_err_and(|r| r.code() == ErrorCode::RateLimited)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "limits did not come back after Redis restarted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(feature = "redis")]
async fn verify_async(
    s: &Setup,
    parts: &http::request::Parts,
) -> Result<(), tessera_server::Rejection> {
    s.verifier
        .verify_bytes(parts, Bytes::new())
        .await
        .map(|_| ())
}

/// The optional shield before verification: by client address, over real
/// HTTP, it answers 429 before the verifier runs (the first requests reach
/// the verifier and get its 401); by claimed key id likewise.
#[tokio::test]
async fn limits_before_verification_by_client_ip_and_claimed_key_id() {
    use std::net::SocketAddr;
    use tessera_ratelimit::{Claimed, LimitBeforeVerifyLayer};

    for by in [Claimed::ClientIp, Claimed::KeyId] {
        let s = setup(
            |clock| {
                RateLimiter::builder(MemoryRateStore::default())
                    .clock(clock)
                    .build()
            },
            1_000,
        );
        let app = Router::new()
            .route("/v1/me", get(|| async { "ok" }))
            .layer(VerifySignatureLayer::new(s.verifier.clone()))
            .layer(LimitBeforeVerifyLayer::new(
                MemoryRateStore::default(),
                plan("flood", "2/m", 2),
                by,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("serve")
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let r = client
                .get(format!("http://{addr}/v1/me"))
                .header(
                    "signature-input",
                    r#"tessera=("@method");created=1;keyid="made-up";nonce="AAAAAAAAAAAAAAAAAAAAAA";tag="tessera-v1""#,
                )
                .header("signature", "tessera=:AAAA:")
                .send()
                .await
                .expect("send");
            statuses.push(r.status().as_u16());
        }
        assert_eq!(
            statuses,
            [400, 400, 429],
            "{by:?}: two reach the verifier, the third is shed"
        );
    }
}

/// A captured request's head resent with other bodies is refused at the
/// body (`digest_mismatch`, step 7), before the limiter is asked: twenty
/// such copies spend nothing from the key's budget.
#[test]
fn a_captured_head_resent_with_other_bodies_spends_nothing() {
    let s = three_a_minute();
    let captured = signed("alice-phone", "GET", "/v1/me", now(&s));
    for i in 0..20 {
        let r = s
            .verifier
            .verify_bytes(&captured, Bytes::from(format!("body {i}")))
            .now_or_never()
            .expect("in-memory stores answer at once")
            .expect_err("another body");
        assert_eq!(r.code(), ErrorCode::DigestMismatch, "{r:?}");
    }
    for _ in 0..3 {
        assert!(verify(&s, &signed("alice-phone", "GET", "/v1/me", now(&s))).is_ok());
    }
    let r = verify(&s, &signed("alice-phone", "GET", "/v1/me", now(&s))).expect_err("limited");
    assert_eq!(r.code(), ErrorCode::RateLimited);
}

/// `parts` signed by `key` for a POST of `body` to `path`.
fn signed_post(key: &str, path: &str, body: &[u8], created: u64) -> http::request::Parts {
    let (parts, ()) = http::Request::builder()
        .method("POST")
        .uri(format!("https://{HOST}{path}"))
        .header("content-length", body.len())
        .body(())
        .expect("request")
        .into_parts();
    sign_parts(parts, key, &BodyDigest::of(body), created)
}

/// `verify_bytes` of a POST to `/v1/notes` that `key` signed for `body`,
/// with `sent` as the body received.
fn post_bytes(
    s: &Setup,
    key: &str,
    body: &[u8],
    sent: &[u8],
) -> Result<(), tessera_server::Rejection> {
    s.verifier
        .verify_bytes(
            &signed_post(key, "/v1/notes", body, now(s)),
            Bytes::copy_from_slice(sent),
        )
        .now_or_never()
        .expect("in-memory stores answer at once")
        .map(|_| ())
}

/// Once a key has been refused, its next requests are refused before their
/// bodies are read (spec §12.5), whatever the body: a body that does not
/// match its digest gets `rate_limited` too, as it does through `verify`.
/// When the budget is back the key's requests are decided after the body
/// again, and another key is never held back by this one.
#[test]
fn a_refused_key_is_refused_before_its_next_bodies() {
    let s = three_a_minute();
    let post = |key: &str, body: &[u8], sent: &[u8]| post_bytes(&s, key, body, sent);
    // Before any refusal, a wrong body is refused at the body.
    let r = post("alice-phone", b"signed", b"other").expect_err("wrong body");
    assert_eq!(r.code(), ErrorCode::DigestMismatch);
    for _ in 0..3 {
        assert!(post("alice-phone", b"note", b"note").is_ok());
    }
    let r = post("alice-phone", b"note", b"note").expect_err("over the plan");
    assert_eq!(r.code(), ErrorCode::RateLimited);
    // Held from now on: refused before the body, so a wrong body or one
    // over the body limit is `rate_limited` as well.
    let r = post("alice-phone", b"signed", b"other").expect_err("held");
    assert_eq!(r.code(), ErrorCode::RateLimited, "{r:?}");
    let response = r.clone().into_http_response::<Bytes>();
    assert_eq!(response.headers()["retry-after"], "20");
    let huge = vec![b'x'; tessera_server::DEFAULT_BODY_LIMIT + 1];
    let r = post("alice-phone", &huge, &huge).expect_err("held");
    assert_eq!(r.code(), ErrorCode::RateLimited, "{r:?}");
    // Another key of the same owner has its own budget (keyed by key id).
    assert!(post("alice-laptop", b"note", b"note").is_ok());

    // 20 s later one request's worth is back: decided after the body again.
    s.clock.advance(20);
    let r = post("alice-phone", b"signed", b"other").expect_err("wrong body");
    assert_eq!(r.code(), ErrorCode::DigestMismatch, "{r:?}");
    assert!(post("alice-phone", b"note", b"note").is_ok());
}

/// Over HTTP through the tower layer: a key that was refused gets its next
/// `429` as soon as its head arrives, without the server waiting for a byte
/// of its body, while a key within its budget is still waited for (its body
/// is read, then decided).
#[tokio::test]
async fn over_http_a_refused_key_is_answered_before_its_body_arrives() {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let s = with_default_plan("1/m", 1, 1_000);
    let app = Router::new()
        .route("/v1/notes", axum::routing::post(|| async { "ok" }))
        .layer(VerifySignatureLayer::new(s.verifier.clone()));
    let addr = serve(app).await;

    let body = vec![b'n'; 64 * 1024];
    // Sends the signed head and the first `sent` bytes of the body, then
    // reads the status line, if one comes within `wait`.
    let post = |key: &'static str, sent: usize, wait: Duration| {
        let parts = signed_post(key, "/v1/notes", &body, T0);
        let body = body.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let mut head = format!("POST /v1/notes HTTP/1.1\r\nhost: {HOST}\r\n");
            for (name, value) in &parts.headers {
                head.push_str(&format!("{name}: {}\r\n", value.to_str().expect("ascii")));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await.expect("head");
            stream.write_all(&body[..sent]).await.expect("body");
            let mut answer = [0u8; 12];
            let read = tokio::time::timeout(wait, stream.read_exact(&mut answer)).await;
            read.ok().map(|r| {
                r.expect("status line");
                String::from_utf8_lossy(&answer[9..12]).into_owned()
            })
        }
    };
    let whole = body.len();
    let long = Duration::from_secs(10);
    assert_eq!(
        post("alice-phone", whole, long).await.as_deref(),
        Some("200")
    );
    // Over the plan: decided after its body, which it sent whole.
    assert_eq!(
        post("alice-phone", whole, long).await.as_deref(),
        Some("429")
    );
    // Held: answered without a byte of its body.
    assert_eq!(post("alice-phone", 0, long).await.as_deref(), Some("429"));
    // Within its budget, a key's request waits for the body it announced.
    assert_eq!(
        post("bob-phone", 1024, Duration::from_millis(500)).await,
        None,
        "the server answered before the body it has to hash"
    );
}

/// With budgets per owner, a refusal holds the owner: the next request of
/// any of its keys is refused before its body, counted as such, while
/// another owner is not affected.
#[test]
fn a_held_owner_is_refused_before_the_bodies_of_all_its_keys() {
    let mut kept = None;
    let s = setup(
        |clock| {
            let limiter = RateLimiter::builder(MemoryRateStore::default())
                .default_plan(plan("default", "2/m", 2))
                .key_by(KeyBy::Owner)
                .clock(clock)
                .build();
            kept = Some(limiter.clone());
            limiter
        },
        1_000,
    );
    let limiter = kept.expect("limiter");
    assert!(post_bytes(&s, "alice-phone", b"a", b"a").is_ok());
    assert!(post_bytes(&s, "alice-laptop", b"b", b"b").is_ok());
    let r = post_bytes(&s, "alice-phone", b"c", b"c").expect_err("over alice's plan");
    assert_eq!(r.code(), ErrorCode::RateLimited);
    assert_eq!(
        limiter.stats().limited_before_body(),
        0,
        "decided after its body"
    );
    let r = post_bytes(&s, "alice-laptop", b"signed", b"other").expect_err("held");
    assert_eq!(r.code(), ErrorCode::RateLimited, "{r:?}");
    assert_eq!(limiter.stats().limited_before_body(), 1);
    assert_eq!(limiter.stats().limited(), 2);
    assert!(post_bytes(&s, "bob-phone", b"d", b"d").is_ok());
    // Through `verify` (a streamed body) the same request gets the same code.
    let parts = signed_post("alice-laptop", "/v1/notes", b"signed", now(&s));
    let r = s
        .verifier
        .verify(
            &parts,
            http_body_util::Full::new(Bytes::from_static(b"other")),
        )
        .now_or_never()
        .expect("in-memory stores answer at once")
        .expect_err("held");
    assert_eq!(r.code(), ErrorCode::RateLimited, "{r:?}");
    assert_eq!(limiter.stats().limited_before_body(), 2);
}
