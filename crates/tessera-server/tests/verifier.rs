//! The verifier without HTTP: streamed bodies, step order, store failures,
//! derived keys and builder validation.

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream;
use http::Method;
use http_body::Frame;
use http_body_util::StreamBody;
use support::{key_store, Spec, T0};
use tessera_core::{
    sign, BodyDigest, ErrorCode, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_server::{
    BuildError, DerivedKeyStore, KeyIssuer, KeyRequest, KeyStore, KeyStoreError, ManualClock,
    MemoryNonceStore, NonceOutcome, NonceRecord, NonceStore, NonceStoreError, ResolvedKey,
    Verifier,
};

const HOST: &str = "api.example.com";

fn verifier() -> Verifier {
    Verifier::builder(key_store())
        .nonce_store(MemoryNonceStore::builder().remembers_since(T0).build())
        .clock(ManualClock::new(T0))
        .authority(HOST)
        .body_limit(1024)
        .build()
        .expect("verifier")
}

/// A verifier of the test keys for `HOST` at `T0`, with `nonces`.
fn verifier_with_nonces(nonces: impl NonceStore + 'static) -> Verifier {
    Verifier::builder(key_store())
        .nonce_store(nonces)
        .authority(HOST)
        .clock(ManualClock::new(T0))
        .build()
        .expect("verifier")
}

fn chunked(
    chunks: Vec<&'static [u8]>,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>>> {
    StreamBody::new(stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c)))),
    ))
}

#[tokio::test]
async fn streamed_body_is_hashed_and_returned() {
    let request = Spec::new(Method::POST, HOST)
        .body(b"hello, streamed world")
        .signed();
    let (parts, _) = request.into_parts();
    let body = chunked(vec![b"hello, ", b"streamed", b" world"]);
    let (identity, bytes) = verifier().verify(&parts, body).await.expect("verified");
    assert_eq!(&bytes[..], b"hello, streamed world");
    assert_eq!(identity.owner(), "alice");
    assert_eq!(identity.created(), T0);
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_refused_without_content_length() {
    static CHUNK: [u8; 600] = [b'a'; 600];
    let request = Spec::new(Method::POST, HOST).body(&[b'a'; 1200]).signed();
    let (parts, _) = request.into_parts();
    assert!(!parts.headers.contains_key("content-length"));
    let err = verifier()
        .verify(&parts, chunked(vec![&CHUNK, &CHUNK]))
        .await
        .expect_err("too large");
    assert_eq!(err.code(), ErrorCode::BodyTooLarge);
    assert_eq!(err.status(), 413);
}

#[tokio::test]
async fn declared_length_over_the_limit_is_refused_before_reading() {
    let mut request = Spec::new(Method::POST, HOST).body(b"{}").signed();
    request
        .headers_mut()
        .insert("content-length", http::HeaderValue::from_static("999999"));
    let (parts, body) = request.into_parts();
    let err = verifier()
        .verify_bytes(&parts, Bytes::from(body.clone()))
        .await
        .expect_err("too large");
    assert_eq!(err.code(), ErrorCode::BodyTooLarge);
}

/// The code `v` refuses `request` with (its body in memory), if any.
async fn refusal(v: &Verifier, request: http::Request<Vec<u8>>) -> Option<ErrorCode> {
    let (parts, body) = request.into_parts();
    v.verify_bytes(&parts, Bytes::from(body))
        .await
        .map_err(|r| r.code())
        .err()
}

#[tokio::test]
async fn earlier_steps_win_over_later_ones() {
    let v = verifier();
    let big = vec![b'x'; 4096];
    // Unknown key (step 3) beats clock skew (4), authority (5) and body (7).
    let request = Spec::new(Method::POST, "evil.example")
        .key("nobody")
        .created(T0 - 5000)
        .body(&big)
        .signed();
    assert_eq!(refusal(&v, request).await, Some(ErrorCode::UnknownKey));
    // Clock skew (4) beats authority (5) and body (7).
    let request = Spec::new(Method::POST, "evil.example")
        .created(T0 - 5000)
        .body(&big)
        .signed();
    assert_eq!(refusal(&v, request).await, Some(ErrorCode::ClockSkew));
    // Authority (5) beats body (7).
    let request = Spec::new(Method::POST, "evil.example").body(&big).signed();
    assert_eq!(
        refusal(&v, request).await,
        Some(ErrorCode::AuthorityMismatch)
    );
    // The MAC (6) beats the body (7): a body over the limit is not looked
    // at when the MAC does not verify.
    let mut request = Spec::new(Method::POST, HOST).body(&big).signed();
    *request.method_mut() = Method::PUT;
    assert_eq!(refusal(&v, request).await, Some(ErrorCode::BadSignature));
    // With a valid MAC, the same body is refused for its size.
    let request = Spec::new(Method::POST, HOST).body(&big).signed();
    assert_eq!(refusal(&v, request).await, Some(ErrorCode::BodyTooLarge));
}

/// A body that records whether anyone asked it for a frame.
struct Untouched(Arc<std::sync::atomic::AtomicBool>);

impl http_body::Body for Untouched {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
    }
}

/// Verifies a POST signed over `x` whose body never ends, its method
/// changed after signing when `tamper_method` (so the MAC fails), with
/// `announced` as its `Content-Length`: the code, and whether the body was
/// asked for a frame.
async fn streamed(
    v: &Verifier,
    tamper_method: bool,
    announced: Option<u32>,
) -> (Option<ErrorCode>, bool) {
    let mut request = Spec::new(Method::POST, HOST).body(b"x").signed();
    if tamper_method {
        *request.method_mut() = Method::PUT;
    }
    let (mut parts, _) = request.into_parts();
    if let Some(length) = announced {
        parts.headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(length),
        );
    }
    let polled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refused = v
        .verify(&parts, Untouched(Arc::clone(&polled)))
        .await
        .map_err(|r| r.code())
        .err();
    (refused, polled.load(std::sync::atomic::Ordering::SeqCst))
}

#[tokio::test]
async fn a_streamed_body_is_not_read_unless_the_mac_verifies() {
    let v = verifier();
    // The MAC fails (the method was changed): the body is never polled,
    // also when it announces more than the limit.
    assert_eq!(
        streamed(&v, true, None).await,
        (Some(ErrorCode::BadSignature), false)
    );
    assert_eq!(
        streamed(&v, true, Some(1_000_000)).await,
        (Some(ErrorCode::BadSignature), false)
    );
    // With the MAC intact, the announced length is refused, still unread.
    assert_eq!(
        streamed(&v, false, Some(1_000_000)).await,
        (Some(ErrorCode::BodyTooLarge), false)
    );
    // With the MAC intact and no announced length, the body is read (and,
    // since this one never ends, it runs into the limit).
    assert_eq!(
        streamed(&v, false, None).await,
        (Some(ErrorCode::BodyTooLarge), true)
    );
}

#[derive(Debug)]
struct FailingKeys;

#[async_trait]
impl KeyStore for FailingKeys {
    async fn resolve(&self, _: &KeyId) -> Result<Option<ResolvedKey>, KeyStoreError> {
        Err(KeyStoreError::new("database down"))
    }
}

#[derive(Debug, Default)]
struct FailingNonces(std::sync::atomic::AtomicUsize);

#[async_trait]
impl NonceStore for FailingNonces {
    async fn record(&self, _: NonceRecord<'_>) -> Result<NonceOutcome, NonceStoreError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(NonceStoreError::unavailable(std::io::Error::other(
            "connection refused",
        )))
    }
}

#[tokio::test]
async fn store_failures_fail_closed() {
    let request = Spec::new(Method::GET, HOST).signed();
    let (parts, body) = request.into_parts();

    let v = Verifier::builder(FailingKeys)
        .nonce_store(MemoryNonceStore::builder().remembers_since(T0).build())
        .authority(HOST)
        .clock(ManualClock::new(T0))
        .build()
        .expect("v");
    let err = v
        .verify_bytes(&parts, Bytes::from(body.clone()))
        .await
        .expect_err("key store down");
    assert_eq!(
        (err.code(), err.status().as_u16()),
        (ErrorCode::StoreUnavailable, 503)
    );

    let nonces = Arc::new(FailingNonces::default());
    let v = verifier_with_nonces(Arc::clone(&nonces));
    let err = v
        .verify_bytes(&parts, Bytes::from(body.clone()))
        .await
        .expect_err("nonce store down");
    assert_eq!(
        (err.code(), err.status().as_u16()),
        (ErrorCode::StoreUnavailable, 503)
    );
    // A bad MAC never reaches the nonce store.
    let mut tampered = Spec::new(Method::GET, HOST).signed();
    *tampered.method_mut() = Method::HEAD;
    let (parts, body) = tampered.into_parts();
    let err = v
        .verify_bytes(&parts, Bytes::from(body.clone()))
        .await
        .expect_err("bad mac");
    assert_eq!(err.code(), ErrorCode::BadSignature);
    assert_eq!(nonces.0.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// The memory store, with a log of the calls the verifier makes.
#[derive(Debug)]
struct LoggedNonces {
    store: MemoryNonceStore,
    calls: std::sync::Mutex<Vec<String>>,
}

impl LoggedNonces {
    fn log(&self, call: &str, key_id: &KeyId, nonce: &Nonce) {
        let line = format!("{call} {key_id} {}", nonce.as_str());
        self.calls.lock().expect("log").push(line);
    }
}

#[async_trait]
impl NonceStore for LoggedNonces {
    async fn record(&self, record: NonceRecord<'_>) -> Result<NonceOutcome, NonceStoreError> {
        self.log("record", record.key_id, record.nonce);
        self.store.record(record).await
    }

    fn prefetch(&self, key_id: &KeyId, nonce: &Nonce) {
        self.log("prefetch", key_id, nonce);
        self.store.prefetch(key_id, nonce);
    }
}

#[tokio::test]
async fn the_nonce_store_gets_a_hint_after_step_5_and_a_record_only_after_the_mac() {
    let nonces = Arc::new(LoggedNonces {
        store: MemoryNonceStore::builder().remembers_since(T0).build(),
        calls: std::sync::Mutex::new(Vec::new()),
    });
    // Handed over as an `Arc`, so the hint also goes through its forwarding.
    let v = verifier_with_nonces(Arc::clone(&nonces));
    let pair = |request: &http::Request<Vec<u8>>| {
        let parsed = tessera_core::ParsedSignature::from_fields(request.headers()).expect("parsed");
        format!("{} {}", parsed.key_id(), parsed.nonce().as_str())
    };

    let good = Spec::new(Method::GET, HOST).signed();
    let good_pair = pair(&good);
    let (parts, body) = good.into_parts();
    v.verify_bytes(&parts, Bytes::from(body))
        .await
        .expect("verified");
    let mut tampered = Spec::new(Method::GET, HOST).signed();
    let tampered_pair = pair(&tampered);
    *tampered.method_mut() = Method::HEAD;
    let (parts, body) = tampered.into_parts();
    let err = v
        .verify_bytes(&parts, Bytes::from(body))
        .await
        .expect_err("bad mac");
    assert_eq!(err.code(), ErrorCode::BadSignature);
    // Refused before step 5 passes: no hint at all.
    for (spec, code) in [
        (
            Spec::new(Method::GET, HOST).key("nobody"),
            ErrorCode::UnknownKey,
        ),
        (
            Spec::new(Method::GET, HOST).created(T0 - 3_600),
            ErrorCode::ClockSkew,
        ),
        (
            Spec::new(Method::GET, "other.example.com"),
            ErrorCode::AuthorityMismatch,
        ),
    ] {
        let (parts, body) = spec.signed().into_parts();
        let err = v
            .verify_bytes(&parts, Bytes::from(body))
            .await
            .expect_err("refused before the MAC");
        assert_eq!(err.code(), code);
    }

    assert_eq!(
        *nonces.calls.lock().expect("log"),
        [
            format!("prefetch {good_pair}"),
            format!("record {good_pair}"),
            // A hint only: the pair of a request whose MAC fails is never recorded.
            format!("prefetch {tampered_pair}"),
        ]
    );
    assert_eq!(nonces.store.len(), 1);
}

#[tokio::test]
async fn derived_keys_verify_and_carry_their_metadata() {
    let clock = ManualClock::new(T0);
    let store = Arc::new(
        DerivedKeyStore::new(SecretKey::from_bytes(&[42; 32]).expect("master")).expect("store"),
    );
    let issued = KeyIssuer::derived(Arc::clone(&store))
        .with_clock(clock.clone())
        .issue(
            &KeyRequest::new("erin")
                .with_client("android")
                .with_scopes(["orders:read"])
                .with_lifetime(std::time::Duration::from_secs(3600)),
        )
        .expect("issued");
    let v = Verifier::builder(Arc::clone(&store))
        .nonce_store(MemoryNonceStore::builder().remembers_since(T0).build())
        .clock(clock.clone())
        .authority(HOST)
        .build()
        .expect("v");
    let key = SigningKey::new(issued.key_id().clone(), issued.expose_secret());
    let signed = |created: u64, key: &SigningKey| {
        let nonce = Nonce::generate(&mut rand::rng());
        let (mut parts, ()) = http::Request::get(format!("https://{HOST}/v1/orders"))
            .body(())
            .expect("req")
            .into_parts();
        let options = SignOptions::new(created, &nonce);
        sign(
            key,
            &RequestView::from_parts(&parts).expect("view"),
            &BodyDigest::EMPTY,
            &options,
        )
        .expect("sign")
        .apply_to(&mut parts.headers)
        .expect("apply");
        parts
    };
    let identity = v
        .verify_bytes(&signed(T0, &key), bytes::Bytes::new())
        .await
        .expect("verified");
    assert_eq!(identity.owner(), "erin");
    assert_eq!(identity.client(), Some("android"));
    assert!(identity.has_scope("orders:read"));

    // Claiming more scope in the key id changes the derived secret.
    let forged_id =
        KeyId::new(issued.key_id().as_str().replace("orders:read", "admin")).expect("id");
    let forged = SigningKey::new(forged_id, issued.expose_secret());
    let err = v
        .verify_bytes(&signed(T0, &forged), bytes::Bytes::new())
        .await
        .expect_err("forged");
    assert_eq!(err.code(), ErrorCode::BadSignature);

    // Expiry from the key id, then revocation list.
    clock.set(T0 + 3601);
    let err = v
        .verify_bytes(&signed(T0 + 3601, &key), bytes::Bytes::new())
        .await
        .expect_err("expired");
    assert_eq!(err.code(), ErrorCode::KeyExpired);
    clock.set(T0 + 10);
    store.revoke(issued.key_id().clone());
    let err = v
        .verify_bytes(&signed(T0 + 10, &key), bytes::Bytes::new())
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), ErrorCode::KeyRevoked);
}

#[test]
fn builder_validation() {
    let base = || Verifier::builder(key_store());
    assert_eq!(base().build().err(), Some(BuildError::NoAuthority));
    assert_eq!(
        base().authority(HOST).fixed_authority(HOST).build().err(),
        Some(BuildError::ConflictingAuthorities)
    );
    assert!(matches!(
        base().authority("user@host").build(),
        Err(BuildError::InvalidAuthority { .. })
    ));
    assert!(matches!(
        base().authority(HOST).require_components(["host"]).build(),
        Err(BuildError::InvalidComponent { .. })
    ));
    // The underlying refusal is the source, with its code; names are never
    // lowercased for the caller.
    let uppercase = base()
        .authority(HOST)
        .require_components(["Content-Type"])
        .build()
        .expect_err("refused");
    assert_eq!(uppercase.code(), Some(ErrorCode::MalformedSignature));
    assert!(
        uppercase.to_string().contains("content-type"),
        "{uppercase}"
    );
    let source = std::error::Error::source(&uppercase).expect("a source");
    assert!(
        source.to_string().contains("malformed_signature"),
        "{source}"
    );
    let bad_authority = base().authority("user@host").build().expect_err("refused");
    assert!(std::error::Error::source(&bad_authority).is_some());
    assert!(bad_authority.code().is_some());
    assert_eq!(
        base().authority(HOST).window(301).build().err(),
        Some(BuildError::InvalidWindow(301))
    );
    assert_eq!(
        base().authority(HOST).dangerous_window(3601).build().err(),
        Some(BuildError::InvalidWindow(3601))
    );
    // A zero window accepts only `created` equal to now (spec §11.1).
    assert_eq!(
        base()
            .authority(HOST)
            .window(0)
            .build()
            .map(|v| v.window())
            .ok(),
        Some(0)
    );
    assert!(base().authority(HOST).dangerous_window(900).build().is_ok());
    assert_eq!(
        base().authority(HOST).realm("a\"b").build().err(),
        Some(BuildError::InvalidRealm)
    );
    let v = base()
        .authority("API.Example.com:443")
        .build()
        .expect("normalized");
    assert_eq!(
        (v.window(), v.body_limit(), v.realm()),
        (300, 1024 * 1024, "tessera")
    );
}

#[tokio::test]
async fn served_authority_is_normalized_on_both_sides() {
    let v = Verifier::builder(key_store())
        .nonce_store(MemoryNonceStore::builder().remembers_since(T0).build())
        .clock(ManualClock::new(T0))
        .authority("API.EXAMPLE.COM:443")
        .build()
        .expect("v");
    let mut request = Spec::new(Method::GET, HOST).signed();
    request.headers_mut().insert(
        http::header::HOST,
        http::HeaderValue::from_static("Api.Example.Com:443"),
    );
    // The signed URI is absolute; drop it so the Host header is used.
    *request.uri_mut() = support::PATH.parse().expect("origin-form");
    let (parts, body) = request.into_parts();
    v.verify_bytes(&parts, Bytes::from(body.clone()))
        .await
        .expect("verified");
}

#[tokio::test]
async fn wider_window_gets_a_nonce_store_that_remembers_long_enough() {
    let clock = ManualClock::new(T0);
    let v = Verifier::builder(key_store())
        .clock(clock.clone())
        .authority(HOST)
        .dangerous_window(3600)
        .build()
        .expect("v");
    // The default store vouches from its memory point (spec §14.1).
    let start = clock.advance(1 + tessera_core::MAX_AHEAD_SECS);
    let created = start + tessera_core::MAX_AHEAD_SECS;
    let request = Spec::new(Method::GET, HOST).created(created).signed();
    let (parts, body) = request.into_parts();
    v.verify_bytes(&parts, Bytes::from(body.clone()))
        .await
        .expect("accepted at the future edge");
    // The last second of the window: still remembered.
    clock.set(created + 3600);
    let err = v
        .verify_bytes(&parts, Bytes::from(body.clone()))
        .await
        .expect_err("replay");
    assert_eq!(err.code(), ErrorCode::Replayed);
}

/// `ready_at` is the memory point of the verifier's store: before it a
/// request signed now gets `store_reset`, from it on it is accepted. A
/// store with no point of its own (`0`) is ready at once.
#[tokio::test]
async fn ready_at_is_when_a_request_signed_now_is_accepted() {
    let clock = ManualClock::new(T0);
    let v = Verifier::builder(key_store())
        .clock(clock.clone())
        .authority(HOST)
        .build()
        .expect("v");
    assert_eq!(v.ready_at(), T0 + 1 + tessera_core::MAX_AHEAD_SECS);
    assert!(!v.is_ready());
    let send = |created: u64| {
        let (parts, body) = Spec::new(Method::GET, HOST)
            .created(created)
            .signed()
            .into_parts();
        let v = v.clone();
        async move { v.verify_bytes(&parts, Bytes::from(body)).await }
    };
    let early = send(T0).await.expect_err("before the point");
    assert_eq!(early.code(), ErrorCode::StoreReset);
    clock.set(v.ready_at() - 1);
    assert!(!v.is_ready());
    clock.set(v.ready_at());
    assert!(v.is_ready());
    send(v.ready_at()).await.expect("accepted once ready");

    // A store that learns its point elsewhere (here: one told it is 0).
    let clock = ManualClock::new(T0);
    let v = Verifier::builder(key_store())
        .clock(clock.clone())
        .authority(HOST)
        .nonce_store(MemoryNonceStore::builder().remembers_since(0).build())
        .build()
        .expect("v");
    assert_eq!(v.ready_at(), 0);
    assert!(v.is_ready());
}

/// A minimal `tracing` subscriber recording WARN and ERROR event messages.
#[derive(Clone, Default)]
struct Warnings(Arc<std::sync::Mutex<Vec<String>>>);

impl Warnings {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    *self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        self.0.lock().expect("lock").push(message);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn default_nonce_store_warns_that_replay_protection_is_per_process() {
    let warnings = Warnings::default();
    // tracing caches each callsite's interest for the whole process. While a
    // single dispatcher is registered, the thread that first reaches a
    // callsite decides it from its own default, so a sibling test building a
    // verifier on a thread without a subscriber could cache "never" for this
    // warning and the capture would see nothing. With a second live
    // dispatcher, registering it rebuilds every callsite against both, and
    // later registrations consult all of them.
    let _anchor = tracing::Dispatch::new(warnings.clone());
    tracing::subscriber::with_default(warnings.clone(), || {
        Verifier::builder(key_store())
            .authority(HOST)
            .build()
            .expect("default store");
        let logged = warnings.take();
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert!(logged[0].contains("per process"), "{logged:?}");
        assert!(logged[0].contains("RedisNonceStore"), "{logged:?}");

        // An explicit store (even an in-memory one) is a deliberate choice.
        Verifier::builder(key_store())
            .authority(HOST)
            .nonce_store(tessera_server::MemoryNonceStore::new())
            .build()
            .expect("explicit store");
        assert_eq!(warnings.take(), Vec::<String>::new());
    });
}

#[tokio::test]
async fn key_expiring_during_a_slow_upload_is_refused_before_the_nonce_is_recorded() {
    use futures_util::StreamExt;
    let keys = key_store();
    keys.insert(
        support::key_id("short"),
        &support::secret(99),
        tessera_server::KeyMetadata::new("erin").with_not_after(T0 + 10),
    );
    let clock = ManualClock::new(T0);
    let v = Verifier::builder(keys)
        .nonce_store(MemoryNonceStore::builder().remembers_since(T0).build())
        .clock(clock.clone())
        .authority(HOST)
        .build()
        .expect("verifier");
    let request = Spec::new(Method::POST, HOST)
        .key("short")
        .body(b"slow body")
        .signed();
    let (parts, _) = request.into_parts();
    // The body arrives 11 s later: still inside the 300 s window, but the
    // key's not_after has passed.
    let slow_clock = clock.clone();
    let slow = StreamBody::new(
        stream::iter([&b"slow "[..], &b"body"[..]]).map(move |chunk| {
            slow_clock.advance(11);
            Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(chunk)))
        }),
    );
    let err = v
        .verify(&parts, slow)
        .await
        .expect_err("expired mid-upload");
    assert_eq!(err.code(), ErrorCode::KeyExpired);

    // The nonce was not recorded: the same request, on time, is accepted.
    clock.set(T0);
    v.verify(&parts, chunked(vec![b"slow ", b"body"]))
        .await
        .expect("nonce still fresh");
}

/// The test key store, counting `verified` calls.
#[derive(Debug, Default)]
struct CountingKeys(std::sync::atomic::AtomicUsize);

#[async_trait]
impl KeyStore for CountingKeys {
    async fn resolve(&self, key_id: &KeyId) -> Result<Option<ResolvedKey>, KeyStoreError> {
        key_store().resolve(key_id).await
    }

    fn verified(&self, _: &KeyId, _: &ResolvedKey) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `KeyStore::verified` runs once the MAC has verified, whatever follows
/// (a body that does not match its digest included), and never for a
/// request whose MAC does not verify, in `verify_bytes` and `verify` alike.
#[tokio::test]
async fn the_key_store_hears_of_every_valid_mac_and_only_of_those() {
    use std::sync::atomic::Ordering::SeqCst;

    let keys = Arc::new(CountingKeys::default());
    let v = Verifier::builder(Arc::clone(&keys))
        .nonce_store(MemoryNonceStore::builder().remembers_since(T0).build())
        .clock(ManualClock::new(T0))
        .authority(HOST)
        .build()
        .expect("verifier");
    let post = || {
        Spec::new(Method::POST, HOST)
            .body(b"signed body")
            .signed()
            .into_parts()
            .0
    };
    let count = || keys.0.load(SeqCst);

    // A valid MAC over another body: digest_mismatch, but the key is real.
    let r = v.verify_bytes(&post(), Bytes::from_static(b"other")).await;
    assert_eq!(
        r.map(drop).map_err(|e| e.code()),
        Err(ErrorCode::DigestMismatch)
    );
    assert_eq!(count(), 1);
    let r = v
        .verify(
            &post(),
            http_body_util::Full::new(Bytes::from_static(b"other")),
        )
        .await;
    assert_eq!(
        r.map(drop).map_err(|e| e.code()),
        Err(ErrorCode::DigestMismatch)
    );
    assert_eq!(count(), 2);
    // A MAC that does not verify (the signature of another request).
    let mut forged = post();
    let other = post();
    forged
        .headers
        .insert("signature", other.headers["signature"].clone());
    let r = v
        .verify_bytes(&forged, Bytes::from_static(b"signed body"))
        .await;
    assert_eq!(
        r.map(drop).map_err(|e| e.code()),
        Err(ErrorCode::BadSignature)
    );
    assert_eq!(count(), 2);
    // Accepted.
    assert!(v
        .verify_bytes(&post(), Bytes::from_static(b"signed body"))
        .await
        .is_ok());
    assert_eq!(count(), 3);
}
