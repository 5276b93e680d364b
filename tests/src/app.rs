//! The application under test: an echo service behind `tessera-server`'s
//! `VerifySignatureLayer`, with a scope-guarded write route.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::wire::Tap;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::any;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tessera_client::Signer;
use tessera_core::{Scheme, SigningKey};
use tessera_server::{
    KeyIssuer, KeyRequest, MemoryKeyStore, RequireScopeLayer, VerifiedIdentity, Verifier,
    VerifySignatureLayer,
};

/// Largest body the test app accepts: 2 MiB, so 1 MiB bodies pass.
pub const BODY_LIMIT: usize = 2 << 20;

/// What the echo handler saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// The method received.
    pub method: String,
    /// The raw request target (path and query) as received.
    pub target: String,
    /// Body length in bytes.
    pub body_len: usize,
    /// Hex SHA-256 of the body.
    pub body_sha256: String,
    /// The verified key id (`None` on the unsigned app).
    pub key_id: Option<String>,
    /// The verified nonce (`None` on the unsigned app).
    pub nonce: Option<String>,
    /// Values of the `x-odd` header as received, in order.
    pub x_odd: Vec<String>,
}

/// SHA-256 of `bytes`, hex, via tessera-core's digest.
pub fn sha256_hex(bytes: &[u8]) -> String {
    tessera_core::BodyDigest::of(bytes)
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn echo(
    who: Option<VerifiedIdentity>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Echo> {
    Json(Echo {
        method: method.to_string(),
        target: uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        body_len: body.len(),
        body_sha256: sha256_hex(&body),
        key_id: who.as_ref().map(|w| w.key_id().to_string()),
        nonce: who.as_ref().map(|w| w.nonce().to_string()),
        x_odd: headers
            .get_all("x-odd")
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect(),
    })
}

/// The routes, without any signature layer.
fn routes() -> Router {
    Router::new()
        .route("/write/{*rest}", any(echo))
        .route_layer(RequireScopeLayer::new("write"))
        .fallback(echo)
}

/// A running app behind the verifying layer, on 127.0.0.1 and a free port.
#[derive(Debug, Clone)]
pub struct SignedApp {
    /// The socket address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    keys: Arc<MemoryKeyStore>,
}

impl SignedApp {
    /// Starts the app; the verifier serves exactly its own authority over
    /// plain HTTP, with the system clock and the default window (300 s old,
    /// 2 s ahead).
    ///
    /// # Panics
    /// When no port can be bound or the verifier cannot be built.
    pub async fn start() -> SignedApp {
        SignedApp::start_inner(false).await.0
    }

    /// Starts the app behind a recording [`Tap`]: the verifier serves both
    /// its own authority and the tap's.
    ///
    /// # Panics
    /// As [`SignedApp::start`].
    pub async fn start_behind_tap() -> (SignedApp, Tap) {
        let (app, tap) = SignedApp::start_inner(true).await;
        (
            app,
            tap.unwrap_or_else(|| unreachable!("a tap was requested")),
        )
    }

    async fn start_inner(with_tap: bool) -> (SignedApp, Option<Tap>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let tap = match with_tap {
            true => Some(
                Tap::start(addr)
                    .await
                    .unwrap_or_else(|e| panic!("tap: {e}")),
            ),
            false => None,
        };
        let mut authorities = vec![addr.to_string()];
        authorities.extend(tap.as_ref().map(|t| t.addr.to_string()));
        let keys = Arc::new(MemoryKeyStore::new());
        let verifier = Verifier::builder(Arc::clone(&keys))
            .scheme(Scheme::Http)
            .authorities(authorities)
            .body_limit(BODY_LIMIT)
            .build()
            .unwrap_or_else(|e| panic!("verifier: {e}"));
        // A new verifier's replay store refuses signatures created before
        // its memory point (spec §14.1: the next second, plus the seconds a
        // signature may be dated ahead); serve from then on, as
        // `tessera serve` does.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        tokio::time::sleep(tessera_core::until_memory_point(now)).await;
        let app = routes().layer(VerifySignatureLayer::new(verifier));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (
            SignedApp {
                addr,
                base: format!("http://{addr}"),
                keys,
            },
            tap,
        )
    }

    /// Issues a key with `scopes` for owner `"user-1"`, as a login would.
    ///
    /// # Panics
    /// When the issuer fails.
    pub fn issue(&self, scopes: &[&str]) -> SigningKey {
        let issued = KeyIssuer::memory(Arc::clone(&self.keys))
            .issue(&KeyRequest::new("user-1").with_scopes(scopes.iter().copied()))
            .unwrap_or_else(|e| panic!("issue: {e}"));
        SigningKey::new(issued.key_id().clone(), issued.expose_secret())
    }

    /// A signer for a fresh read+write key.
    ///
    /// # Panics
    /// As [`SignedApp::issue`].
    pub fn signer(&self) -> Signer {
        Signer::builder(self.issue(&["read", "write"]))
            .build()
            .unwrap_or_else(|e| panic!("signer: {e}"))
    }
}

/// Starts the same routes without the verifying layer (the round-trip
/// benchmark's baseline).
///
/// # Errors
/// When no port can be bound.
pub async fn start_unsigned() -> std::io::Result<SocketAddr> {
    crate::serve(routes()).await
}
