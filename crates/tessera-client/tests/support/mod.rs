//! A real verifier over loopback for the client's tests: tessera-server's
//! `VerifySignatureLayer` in front of an echo and a redirect route, and an
//! outer layer that records every request as it arrived (before
//! verification) together with the status the server answered.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use tessera_client::tessera_core::ParsedSignature;
use tessera_client::{Clock, ManualClock, Scheme, SigningKey};
use tessera_server::{
    Admission, KeyIssuer, KeyRequest, MemoryKeyStore, MemoryNonceStore, Verifier,
    VerifySignatureLayer,
};

/// The system time, Unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A client clock `.0` seconds off the system clock (positive: fast).
#[derive(Debug, Clone, Copy)]
pub struct Skewed(pub i64);

impl Clock for Skewed {
    fn now_unix(&self) -> u64 {
        now().saturating_add_signed(self.0)
    }
}

/// One request as the server received it, and its answer.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// Path and query as received.
    pub target: String,
    /// Header fields as received.
    pub headers: HeaderMap,
    /// The `Signature` value, if any.
    pub signature: Option<String>,
    /// The `Signature-Input` value, if any.
    pub signature_input: Option<String>,
    /// The nonce of the tessera signature, when it parses.
    pub nonce: Option<String>,
    /// Its `created`, when it parses.
    pub created: Option<u64>,
    /// The status the server answered.
    pub status: u16,
}

/// How to start an [`App`].
#[derive(Default)]
pub struct AppBuilder {
    clock: Option<ManualClock>,
    tick: Option<ManualClock>,
    require: Vec<&'static str>,
    keys: Option<Arc<MemoryKeyStore>>,
    admission: Option<Arc<dyn Admission>>,
}

impl AppBuilder {
    /// The verifier reads this clock (default: the system clock).
    pub fn clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Moves `clock` one second forward as each request arrives.
    pub fn tick(mut self, clock: ManualClock) -> Self {
        self.tick = Some(clock);
        self
    }

    /// Header fields every request must cover (`require_components`).
    pub fn require(mut self, fields: &[&'static str]) -> Self {
        self.require.extend_from_slice(fields);
        self
    }

    /// The verifier admits requests through `admission` (a rate limiter).
    pub fn admission(mut self, admission: impl Admission + 'static) -> Self {
        self.admission = Some(Arc::new(admission));
        self
    }

    /// Shares a key store with another app (both verify the same keys).
    pub fn keys(mut self, keys: Arc<MemoryKeyStore>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Binds 127.0.0.1 on a free port and serves in the background.
    pub async fn start(self) -> App {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let keys = self.keys.unwrap_or_else(|| Arc::new(MemoryKeyStore::new()));
        let mut verifier = Verifier::builder(Arc::clone(&keys))
            .scheme(Scheme::Http)
            .authority(addr.to_string())
            .require_components(self.require.iter().copied());
        if let Some(clock) = &self.clock {
            verifier = verifier.clock(clock.clone());
        }
        // No earlier process served these keys, so the store may remember
        // from the test's start (a new verifier's own store refuses
        // signatures before its memory point: spec §14.1).
        let since = match &self.clock {
            Some(clock) => clock.now_unix(),
            None => now(),
        };
        if let Some(admission) = self.admission.clone() {
            verifier = verifier.admission(admission);
        }
        let verifier = verifier
            .nonce_store(MemoryNonceStore::builder().remembers_since(since).build())
            .build()
            .expect("verifier");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder {
            seen: Arc::clone(&seen),
            tick: self.tick,
        };
        let app = Router::new()
            .route("/redirect/{status}", any(redirect))
            .fallback(echo)
            .layer(VerifySignatureLayer::new(verifier))
            .layer(axum::middleware::from_fn_with_state(recorder, record));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        App {
            addr,
            base: format!("http://{addr}"),
            keys,
            clock: self.clock,
            seen,
        }
    }
}

/// A verifying app on loopback.
pub struct App {
    /// The socket address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The keys it verifies.
    pub keys: Arc<MemoryKeyStore>,
    clock: Option<ManualClock>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl App {
    /// Options for a new app.
    pub fn builder() -> AppBuilder {
        AppBuilder::default()
    }

    /// An app with the system clock and no required components.
    pub async fn start() -> App {
        App::builder().start().await
    }

    /// Issues a read+write key, as a login would (valid from the
    /// verifier's now).
    pub fn issue(&self) -> SigningKey {
        let mut issuer = KeyIssuer::memory(Arc::clone(&self.keys));
        if let Some(clock) = &self.clock {
            issuer = issuer.with_clock(clock.clone());
        }
        let issued = issuer
            .issue(&KeyRequest::new("user-1").with_scopes(["read", "write"]))
            .expect("issue");
        SigningKey::new(issued.key_id().clone(), issued.expose_secret())
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// How many requests arrived.
    pub fn hits(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }
}

#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    tick: Option<ManualClock>,
}

async fn record(State(rec): State<Recorder>, request: Request, next: Next) -> Response {
    if let Some(clock) = &rec.tick {
        clock.advance(1);
    }
    let headers = request.headers().clone();
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let parsed = ParsedSignature::from_fields(&headers).ok();
    let mut seen = Seen {
        method: request.method().to_string(),
        target: request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        signature: text("signature"),
        signature_input: text("signature-input"),
        nonce: parsed.as_ref().map(|p| p.nonce().to_string()),
        created: parsed.as_ref().map(ParsedSignature::created),
        headers,
        status: 0,
    };
    let response = next.run(request).await;
    seen.status = response.status().as_u16();
    rec.seen.lock().expect("lock").push(seen);
    response
}

/// `METHOD path?query body-length`.
async fn echo(method: Method, uri: Uri, body: Bytes) -> String {
    let target = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    format!("{method} {target} {}", body.len())
}

/// `/redirect/<status>?to=<location, raw>`.
async fn redirect(uri: Uri, _body: Body) -> Response {
    let status = uri
        .path()
        .rsplit('/')
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::FOUND);
    let to = uri
        .query()
        .and_then(|q| q.strip_prefix("to="))
        .unwrap_or("/echo")
        .to_owned();
    (status, [("location", to)]).into_response()
}
