//! Signing with ureq, a blocking client built on `http` types: no async
//! runtime on the client side, no reqwest.
//!
//! Starts a small verifying server on 127.0.0.1 (tessera-server's tower
//! layer, in-memory keys, on its own thread), then sends it signed requests
//! with ureq. A ureq request is an `http::Request` with an absolute URI, so
//! `Signer::sign_request` signs it in place. On a `clock_skew` answer the
//! signer checks the server's authenticated time, adopts it, and the request
//! is signed again, never resent as is.
//!
//! ```text
//! cargo run -p tessera-client --example ureq_client
//! ```
//!
//! Exits non-zero if the server does not answer as expected.

use std::error::Error;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::{get, post};
use axum::Router;
use tessera_client::{rejection_code, Clock, ErrorCode, Scheme, Signer, SigningKey};
use tessera_server::{
    KeyIssuer, KeyRequest, MemoryKeyStore, VerifiedIdentity, Verifier, VerifySignatureLayer,
};

/// This device's clock runs ten minutes slow.
#[derive(Debug)]
struct SlowClock;

impl Clock for SlowClock {
    fn now_unix(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        now.saturating_sub(600)
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    let (authority, key) = runtime.block_on(start_server())?;
    let base = format!("http://{authority}");
    println!("verifying server on {base}");

    let signer = Signer::builder(key)
        .clock(SlowClock)
        .cover("content-type")
        .build()?;
    // Rejections are answers to read, not transport errors.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();

    let order = br#"{"item":"book","qty":1}"#.to_vec();
    let request = || {
        http::Request::post(format!("{base}/v1/orders"))
            .header("content-type", "application/json")
            .body(order.clone())
    };

    // 1. Signed with the slow clock: clock_skew, with a challenge.
    let mut first = request()?;
    let sent = signer.sign_request(&mut first)?;
    let mut response = agent.run(first)?;
    println!(
        "POST /v1/orders (clock 10 min slow) -> {} {}",
        response.status(),
        response.body_mut().read_to_string()?
    );
    if rejection_code(response.headers()) != Some(ErrorCode::ClockSkew) {
        return Err("expected a clock_skew rejection".into());
    }

    // 2. Check the challenge against our key and the nonce we sent, adopt
    //    the server's time, and sign again: new nonce, corrected created.
    let offset = signer.apply_skew_challenge(response.headers(), &sent.nonce)?;
    println!("adopted the server's time: offset {offset:+} s");
    let mut retry = request()?;
    let info = signer.sign_request(&mut retry)?;
    assert_ne!(info.nonce, sent.nonce);
    let mut response = agent.run(retry)?;
    let status = response.status();
    println!(
        "POST /v1/orders, signed again -> {status} {}",
        response.body_mut().read_to_string()?
    );
    if status != http::StatusCode::OK {
        return Err("expected the retry to be accepted".into());
    }

    // 3. A GET from the same signer: no content-type, nothing extra covered.
    let mut me = http::Request::get(format!("{base}/v1/me")).body(Vec::new())?;
    signer.sign_request(&mut me)?;
    println!(
        "GET /v1/me, Signature-Input: {}",
        me.headers()["signature-input"].to_str()?
    );
    let mut response = agent.run(me)?;
    let status = response.status();
    println!(
        "GET /v1/me -> {status} {}",
        response.body_mut().read_to_string()?
    );
    if status != http::StatusCode::OK {
        return Err("expected the GET to be accepted".into());
    }
    Ok(())
}

/// A verifying server on a free port of 127.0.0.1, running on the
/// runtime's threads, and a key it accepts.
async fn start_server() -> Result<(String, SigningKey), Box<dyn Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let authority = listener.local_addr()?.to_string();
    let keys = Arc::new(MemoryKeyStore::new());
    // At login, the server issues the device its key.
    let issued = KeyIssuer::memory(Arc::clone(&keys))
        .issue(&KeyRequest::new("user-42").with_scopes(["read", "write"]))?;
    let key = SigningKey::new(issued.key_id().clone(), issued.expose_secret());
    let verifier = Verifier::builder(keys)
        .scheme(Scheme::Http) // plain HTTP on loopback only
        .authority(authority.clone())
        .build()?;
    // A new verifier's replay store refuses signatures created before its
    // memory point (`store_reset`, spec §14.1: an earlier process may have
    // accepted them): the next second, plus the 2 s a signature may be
    // dated ahead. Serve from then on.
    while !verifier.is_ready() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let app = Router::new()
        .route(
            "/v1/me",
            get(|who: VerifiedIdentity| async move { format!("hello {}", who.owner()) }),
        )
        .route(
            "/v1/orders",
            post(
                |who: VerifiedIdentity, body: axum::body::Bytes| async move {
                    format!("order of {} bytes from {}", body.len(), who.owner())
                },
            ),
        )
        .layer(VerifySignatureLayer::new(verifier));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((authority, key))
}
