//! The verifying echo application shared by `serve` and `demo`.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::Router;
use http::{Method, Uri};
use serde_json::{json, Value};
use tessera_core::{BodyDigest, ErrorCode};
use tessera_server::{Rejection, VerifiedIdentity, Verifier, VerifySignatureLayer};

/// The scope every method other than GET, HEAD and OPTIONS requires.
pub(crate) const WRITE_SCOPE: &str = "write";

/// Every route, any method, verified by `verifier`, answered by [`echo`].
pub(crate) fn router(verifier: Verifier) -> Router {
    Router::new()
        .fallback(echo)
        .layer(VerifySignatureLayer::new(verifier))
}

/// `router` with one access-log line per request on standard error:
/// `METHOD target -> status code`, or the reason of an HTTP-level refusal
/// ([`crate::limits::Refusal`]) in place of the code.
pub(crate) fn with_access_log(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(access_log))
}

async fn access_log(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().to_string(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let refusal = response.extensions().get::<crate::limits::Refusal>();
    // Every verifier refusal carries its code in the response extensions
    // (`Rejection::into_http_response`), whatever its status.
    let code = match (refusal, response.extensions().get::<ErrorCode>()) {
        (Some(refusal), _) => refusal.0.as_str(),
        (None, Some(code)) => code.as_str(),
        (None, None) => "",
    };
    eprintln!("{method} {target} -> {} {code}", response.status().as_u16());
    response
}

/// Answers a verified request with who signed it and what was received:
/// `{"key_id","user","scopes","method","path","query","body_sha256"}`, path
/// and query raw. Writes (any method but GET, HEAD, OPTIONS) need scope `write`.
async fn echo(
    identity: VerifiedIdentity,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<axum::Json<Value>, Rejection> {
    if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        identity.require_scope(WRITE_SCOPE)?;
    }
    Ok(axum::Json(json!({
        "key_id": identity.key_id().as_str(),
        "user": identity.owner(),
        "scopes": identity.scopes(),
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "body_sha256": hex::encode(BodyDigest::of(&body).as_bytes()),
    })))
}

/// The authorities a loopback server answers to by default:
/// the bound `ip:port`, `localhost:port`, and `127.0.0.1:port` when bound to all addresses.
pub(crate) fn default_authorities(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut out = vec![addr.to_string(), format!("localhost:{port}")];
    if addr.ip().is_unspecified() {
        out.push(format!("127.0.0.1:{port}"));
    }
    out
}

/// Binds `addr` (port 0 picks a free port).
pub(crate) async fn bind(
    addr: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), crate::error::CliError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| crate::error::CliError::runtime(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().map_err(|e| {
        crate::error::CliError::runtime(format!("cannot read the bound address: {e}"))
    })?;
    Ok((listener, local))
}

/// A multi-threaded tokio runtime.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, crate::error::CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            crate::error::CliError::runtime(format!("cannot start the async runtime: {e}"))
        })
}

/// Waits until `clock` reads the memory point of a replay store started now
/// (`tessera_core::memory_point`: the second after now, plus the seconds a
/// signature may be dated ahead). A verifier's in-memory nonce store refuses
/// signatures created before it (`store_reset`, spec §14.1: a process before
/// it may have accepted them); a server that says it is listening only once
/// that second has come accepts the first request anyone signs after reading
/// that line.
pub(crate) async fn wait_for_replay_store(clock: &dyn tessera_server::Clock) {
    let since = tessera_core::memory_point(clock.now_unix());
    while clock.now_unix() < since {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
