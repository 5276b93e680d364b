//! tessera-client's reqwest middleware against tessera-server's axum layer,
//! over real loopback sockets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

use std::collections::HashSet;

use reqwest::Method;
use tessera_client::Signer;
use tessera_e2e::app::{sha256_hex, Echo, SignedApp};
use tessera_e2e::signed_client;
use tessera_e2e::wire::send_raw;

async fn echo(resp: reqwest::Response) -> Echo {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn every_method_with_empty_small_and_large_bodies() {
    let app = SignedApp::start().await;
    let client = signed_client(app.signer());
    let json = br#"{"order":{"qty":1,"note":"caf\u00e9 \u2615"}}"#.to_vec();
    let binary: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ] {
        for (kind, body) in [
            ("empty", Vec::new()),
            ("json", json.clone()),
            ("binary-1MiB", binary.clone()),
        ] {
            let mut req = client.request(method.clone(), format!("{}/v1/items/{kind}", app.base));
            if !body.is_empty() {
                let ct = if kind == "json" {
                    "application/json"
                } else {
                    "application/octet-stream"
                };
                req = req.header("content-type", ct).body(body.clone());
            }
            let seen = echo(req.send().await.unwrap()).await;
            assert_eq!(seen.method, method.as_str(), "{method} {kind}");
            assert_eq!(seen.target, format!("/v1/items/{kind}"));
            assert_eq!(seen.body_len, body.len(), "{method} {kind}");
            assert_eq!(seen.body_sha256, sha256_hex(&body));
            assert!(seen.key_id.is_some());
        }
    }
}

#[tokio::test]
async fn paths_and_queries_that_break_other_signers_arrive_intact() {
    let app = SignedApp::start().await;
    let client = signed_client(app.signer());
    // (what the caller writes, what must arrive on the wire)
    let cases = [
        ("/files/a b.txt", "/files/a%20b.txt"),
        ("/p+q/r", "/p+q/r"),
        ("/x%20y", "/x%20y"),
        ("/a%2Fb/c", "/a%2Fb/c"),
        ("/a%252Fb", "/a%252Fb"),
        ("/~user/x~y", "/~user/x~y"),
        ("/{id}/x", "/%7Bid%7D/x"),
        ("/ünï/日本", "/%C3%BCn%C3%AF/%E6%97%A5%E6%9C%AC"),
        ("/s?q=a b", "/s?q=a%20b"),
        ("/s?q=a+b&r=a%20b&t=a%2Bb", "/s?q=a+b&r=a%20b&t=a%2Bb"),
        ("/s?k=1&k=2&k=1", "/s?k=1&k=2&k=1"),
        ("/s?empty=&flag&=v", "/s?empty=&flag&=v"),
        ("/s?path=%2Fetc%2F&dbl=%252F", "/s?path=%2Fetc%2F&dbl=%252F"),
        ("/s?json={\"a\":[1,2]}", "/s?json={%22a%22:[1,2]}"),
        ("/s?u=ü&tilde=~", "/s?u=%C3%BC&tilde=~"),
        ("/trailing?", "/trailing?"),
        ("/a/./b/../c", "/a/c"),
        ("/", "/"),
    ];
    for (input, wire) in cases {
        let resp = client
            .get(format!("{}{input}", app.base))
            .send()
            .await
            .unwrap();
        let seen = echo(resp).await;
        assert_eq!(seen.target, wire, "input {input:?}");
    }
}

#[tokio::test]
async fn covered_headers_with_odd_whitespace_and_repeats() {
    let app = SignedApp::start().await;
    let signer = Signer::builder(app.issue(&["read"]))
        .cover_all(["x-odd", "content-type", "user-agent"])
        .build()
        .unwrap();
    let client = signed_client(signer);
    let resp = client
        .post(format!("{}/headers", app.base))
        .header("x-odd", "  leading and trailing\t ")
        .header("x-odd", "inner \t tab")
        .header("content-type", "application/json;  charset=utf-8")
        .header("user-agent", "tessera-e2e/1.0 (test)")
        .body("{}")
        .send()
        .await
        .unwrap();
    let seen = echo(resp).await;
    // The server's parser trims the outer whitespace; both sides sign the trimmed values.
    assert_eq!(seen.x_odd, ["leading and trailing", "inner \t tab"]);
}

#[tokio::test]
async fn a_captured_request_replayed_byte_for_byte_is_rejected() {
    // The client talks to the tap, so it signs the tap's authority, which
    // the verifier also serves; the replay goes straight to the server.
    let (app, tap) = SignedApp::start_behind_tap().await;
    let key = app.issue(&["read", "write"]);
    let client = signed_client(Signer::builder(key).build().unwrap());
    let resp = client
        .post(format!("http://{}/write/orders?id=7", tap.addr))
        .header("content-type", "application/json")
        .body(r#"{"qty":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let captured = tap.captured();
    assert_eq!(captured.len(), 1);
    let raw = &captured[0];
    let text = String::from_utf8_lossy(raw);
    assert!(
        text.starts_with("POST /write/orders?id=7 HTTP/1.1\r\n"),
        "{text}"
    );
    assert!(text.contains("signature-input: tessera=("), "{text}");
    assert!(text.ends_with(r#"{"qty":2}"#));

    let replay = send_raw(app.addr, raw).await.unwrap();
    assert_eq!(replay.status, 401, "{}", replay.head);
    assert_eq!(
        replay.header("www-authenticate"),
        Some(r#"Tessera realm="tessera", error="replayed""#)
    );
    let problem: serde_json::Value = serde_json::from_slice(&replay.body).unwrap();
    assert_eq!(problem["code"], "replayed");
}

#[tokio::test]
async fn a_read_only_key_is_refused_on_a_write_route() {
    let app = SignedApp::start().await;
    let reader = signed_client(Signer::builder(app.issue(&["read"])).build().unwrap());
    let resp = reader
        .post(format!("{}/write/orders", app.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let problem: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(problem["code"], "insufficient_scope");
    // Reading is fine, and a writer may write.
    assert_eq!(
        reader
            .get(format!("{}/orders", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let writer = signed_client(app.signer());
    let seen = echo(
        writer
            .post(format!("{}/write/orders", app.base))
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen.target, "/write/orders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_from_one_client() {
    let app = SignedApp::start().await;
    let client = signed_client(app.signer());
    let calls = (0..200).map(|i| {
        let client = client.clone();
        let url = format!("{}/c/{i}?n={i}", app.base);
        tokio::spawn(async move {
            let resp = if i % 2 == 0 {
                client.get(url).send().await
            } else {
                client.post(url).body(format!("{{\"i\":{i}}}")).send().await
            };
            echo(resp.unwrap()).await
        })
    });
    let mut nonces = HashSet::new();
    for (i, handle) in futures_util::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        let seen = handle.unwrap();
        assert_eq!(seen.target, format!("/c/{i}?n={i}"));
        assert!(nonces.insert(seen.nonce.unwrap()), "nonce collision");
    }
    assert_eq!(nonces.len(), 200);
}
