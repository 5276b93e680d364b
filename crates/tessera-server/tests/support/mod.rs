//! Shared fixtures: a real axum server on 127.0.0.1:0 and requests signed
//! with tessera-core.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use http::{HeaderMap, Method, StatusCode};
use tessera_core::{
    sign, BodyDigest, Component, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_server::{
    KeyMetadata, ManualClock, MemoryKeyStore, MemoryNonceStore, RequireScopeLayer,
    VerifiedIdentity, Verifier, VerifierBuilder, VerifySignatureLayer,
};

/// The server's (manual) time in every test.
pub const T0: u64 = 1_700_000_000;
/// The public authority the tests sign for besides the loopback address.
pub const PUBLIC: &str = "api.example.com";
pub const PATH: &str = "/v1/users/123/orders?limit=50&cursor=abc%2Fdef";

/// A clock for a shared nonce store whose epochs, written at connection,
/// are `T0`: the memory point (spec §14.1) of the second after
/// `T0 - 3 - MAX_AHEAD_SECS`, plus the one-second clock margin between
/// instances (the start-up writes may land a second after the clock was
/// read).
pub fn store_clock() -> ManualClock {
    ManualClock::new(T0 - 3 - tessera_core::MAX_AHEAD_SECS)
}

pub fn key_id(s: &str) -> KeyId {
    KeyId::new(s).expect("valid key id")
}

pub fn secret(byte: u8) -> SecretKey {
    SecretKey::from_bytes(&[byte; 32]).expect("valid secret")
}

/// The keys every harness knows.
pub fn signing_key(name: &str) -> SigningKey {
    let byte = match name {
        "alice" => 1,
        "admin" => 2,
        "revoked" => 3,
        "expired" => 4,
        "future" => 5,
        _ => 99,
    };
    SigningKey::new(key_id(name), &secret(byte))
}

pub fn key_store() -> Arc<MemoryKeyStore> {
    let keys = Arc::new(MemoryKeyStore::new());
    let meta = |owner: &str| {
        KeyMetadata::new(owner)
            .with_client("test-app")
            .with_scopes(["read", "write"])
    };
    keys.insert(key_id("alice"), &secret(1), meta("alice"));
    keys.insert(
        key_id("admin"),
        &secret(2),
        meta("root").with_scopes(["admin"]),
    );
    keys.insert(key_id("revoked"), &secret(3), meta("bob"));
    keys.revoke(&key_id("revoked"));
    keys.insert(
        key_id("expired"),
        &secret(4),
        meta("carol").with_not_after(T0 - 1),
    );
    keys.insert(
        key_id("future"),
        &secret(5),
        meta("dave").with_not_before(T0 + 100),
    );
    keys
}

pub struct Harness {
    pub addr: SocketAddr,
    /// `127.0.0.1:<port>`, a served authority.
    pub local: String,
    pub clock: ManualClock,
    pub keys: Arc<MemoryKeyStore>,
    pub verifier: Verifier,
    client: reqwest::Client,
}

// `Extension` rather than the `VerifiedIdentity` extractor, so the tests
// also build without the `axum` feature (the crate docs test the extractor).
async fn echo(
    axum::Extension(identity): axum::Extension<VerifiedIdentity>,
    method: Method,
    body: String,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "method": method.as_str(),
        "owner": identity.owner(),
        "client": identity.client(),
        "key_id": identity.key_id().as_str(),
        "body": body,
    }))
}

impl Harness {
    /// A server whose verifier serves `127.0.0.1:<port>` and `api.example.com`
    /// (unless `configure` sets a fixed authority), with a manual clock at T0.
    pub async fn start(
        configure: impl FnOnce(VerifierBuilder, &str) -> VerifierBuilder,
    ) -> Harness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let local = format!("127.0.0.1:{}", addr.port());
        let clock = ManualClock::new(T0);
        let keys = key_store();
        // Remembers from T0, when the tests' requests are signed; a test of
        // the store's start gives its own store.
        let builder = Verifier::builder(Arc::clone(&keys))
            .nonce_store(MemoryNonceStore::builder().remembers_since(T0).build())
            .clock(clock.clone())
            .body_limit(4096)
            .realm("tessera-test");
        let verifier = configure(builder, &local).build().expect("verifier");
        let admin = Router::new()
            .route("/admin", post(echo))
            .route_layer(RequireScopeLayer::new("admin"));
        let app = Router::new()
            .route(
                "/v1/users/{id}/orders",
                get(echo).post(echo).put(echo).delete(echo),
            )
            .merge(admin)
            .layer(VerifySignatureLayer::new(verifier.clone()));
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("server");
        });
        Harness {
            addr,
            local,
            clock,
            keys,
            verifier,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        }
    }

    /// The usual configuration: both authorities served.
    pub async fn standard() -> Harness {
        Harness::start(|b, local| b.authority(local).authority(PUBLIC)).await
    }

    /// Sends `request` to this server, keeping its headers (and its URI's
    /// authority as `Host`, unless a `host` header is set).
    pub async fn send(&self, request: &http::Request<Vec<u8>>) -> Reply {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let url = format!("http://{}{}", self.addr, path);
        let mut headers = request.headers().clone();
        if !headers.contains_key(http::header::HOST) {
            let authority = request.uri().authority().expect("absolute uri").as_str();
            headers.insert(http::header::HOST, authority.parse().expect("host"));
        }
        let response = self
            .client
            .request(request.method().clone(), url)
            .headers(headers)
            .body(request.body().clone())
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Reply {
            status,
            headers,
            json,
        }
    }
}

impl Harness {
    /// Sends `request` as raw HTTP/1.1 over a fresh TCP connection, with
    /// `target` on the request line and exactly these `Host` lines, so that
    /// requests no HTTP client would send can be tested.
    pub async fn send_raw(
        &self,
        request: &http::Request<Vec<u8>>,
        target: &str,
        hosts: &[&str],
    ) -> Reply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut head = format!("{} {target} HTTP/1.1\r\n", request.method());
        for host in hosts {
            head.push_str(&format!("Host: {host}\r\n"));
        }
        for (name, value) in request.headers() {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().expect("ascii")));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            request.body().len()
        ));
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(request.body()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(&raw).expect("an HTTP response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("incomplete response"),
        };
        let status = StatusCode::from_u16(response.code.expect("status")).expect("status");
        let mut map = HeaderMap::new();
        for h in response.headers.iter() {
            map.append(
                http::HeaderName::from_bytes(h.name.as_bytes()).expect("name"),
                http::HeaderValue::from_bytes(h.value).expect("value"),
            );
        }
        let json = serde_json::from_slice(&raw[head_len..]).unwrap_or(serde_json::Value::Null);
        Reply {
            status,
            headers: map,
            json,
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: serde_json::Value,
}

impl Reply {
    /// Asserts a problem response with `status` and `code`, and the
    /// problem+json shape (plus the challenge header on 401).
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.json);
        assert_eq!(self.json["code"], code, "code; body: {}", self.json);
        assert_eq!(self.json["type"], format!("urn:tessera:error:{code}"));
        assert_eq!(self.json["status"], status);
        assert!(self.json["title"].is_string());
        assert!(self.json["detail"].is_string());
        assert_eq!(self.headers["content-type"], "application/problem+json");
        if status == 401 {
            assert_eq!(
                self.headers["www-authenticate"],
                format!("Tessera realm=\"tessera-test\", error=\"{code}\"").as_str()
            );
        } else {
            assert!(!self.headers.contains_key("www-authenticate"));
        }
    }

    #[track_caller]
    pub fn assert_ok(&self) {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.json);
    }
}

/// What to sign.
pub struct Spec<'a> {
    pub method: Method,
    pub authority: &'a str,
    pub path: &'a str,
    pub headers: Vec<(&'static str, &'a str)>,
    pub body: Vec<u8>,
    pub key: SigningKey,
    pub created: u64,
    pub extra: Vec<Component>,
}

impl<'a> Spec<'a> {
    pub fn new(method: Method, authority: &'a str) -> Self {
        Spec {
            method,
            authority,
            path: PATH,
            headers: vec![
                ("content-type", "application/json"),
                ("user-agent", "tessera-test/1"),
            ],
            body: Vec::new(),
            key: signing_key("alice"),
            created: T0,
            extra: vec![
                Component::field("content-type").expect("field"),
                Component::field("user-agent").expect("field"),
            ],
        }
    }

    pub fn body(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self
    }

    pub fn key(mut self, name: &str) -> Self {
        self.key = signing_key(name);
        self
    }

    pub fn created(mut self, created: u64) -> Self {
        self.created = created;
        self
    }

    pub fn path(mut self, path: &'a str) -> Self {
        self.path = path;
        self
    }

    /// Signs with a fresh nonce; returns the request and the nonce.
    pub fn sign(&self) -> (http::Request<Vec<u8>>, Nonce) {
        let nonce = Nonce::generate(&mut rand::rng());
        let mut builder = http::Request::builder()
            .method(self.method.clone())
            .uri(format!("http://{}{}", self.authority, self.path));
        for (name, value) in &self.headers {
            builder = builder.header(*name, *value);
        }
        let (mut parts, ()) = builder.body(()).expect("request").into_parts();
        let options = SignOptions::new(self.created, &nonce).cover(&self.extra);
        let view = RequestView::from_parts(&parts).expect("view");
        sign(&self.key, &view, &BodyDigest::of(&self.body), &options)
            .expect("signed")
            .apply_to(&mut parts.headers)
            .expect("headers");
        (http::Request::from_parts(parts, self.body.clone()), nonce)
    }

    pub fn signed(&self) -> http::Request<Vec<u8>> {
        self.sign().0
    }
}
