//! Harness for Tessera's end-to-end tests and round-trip benchmarks: loopback
//! servers (with and without the verifying layer), an echo handler, skewed
//! client clocks, and raw-socket helpers. Not published.

pub mod app;
pub mod wire;

/// The README's Rust examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;

/// The system time, Unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Serves `router` on 127.0.0.1 on a free port, in the background.
///
/// # Errors
/// When no port can be bound.
pub async fn serve(router: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(addr)
}

/// A `reqwest_middleware` client that signs with `signer` (the inner client
/// comes from [`tessera_client::client_builder`], so reqwest follows no
/// redirects itself).
///
/// # Panics
/// When reqwest cannot build a client (no TLS is configured, so never).
pub fn signed_client(signer: tessera_client::Signer) -> reqwest_middleware::ClientWithMiddleware {
    let inner = tessera_client::client_builder()
        .build()
        .unwrap_or_else(|e| panic!("reqwest client: {e}"));
    reqwest_middleware::ClientBuilder::new(inner)
        .with(tessera_client::SignRequestMiddleware::new(signer))
        .build()
}
