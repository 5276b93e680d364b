//! HTTP/2 from clients: prior knowledge on a plain listener and ALPN over
//! TLS, through the same verification as HTTP/1.1; the idle watchdog; and
//! `--no-http2`.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// A current-thread runtime for the async HTTP/2 client.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends `request` (already signed) and reads the whole response, with
/// the HTTP version it came over.
fn send(client: &reqwest::Client, request: http::Request<Vec<u8>>) -> (http::Version, Reply) {
    runtime().block_on(async {
        let request = reqwest::Request::try_from(request).unwrap();
        let response = client.execute(request).await.unwrap();
        let version = response.version();
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response.bytes().await.unwrap().to_vec();
        (
            version,
            Reply {
                status,
                headers,
                body,
            },
        )
    })
}

/// Sends `request`, which the gateway must answer 200 over HTTP/2.
fn accepted_over_http2(client: &reqwest::Client, request: http::Request<Vec<u8>>) -> Reply {
    let (version, reply) = send(client, request);
    assert_eq!(version, http::Version::HTTP_2);
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply
}

#[test]
fn signed_requests_pass_over_http2_with_prior_knowledge() {
    let dir = temp_dir("h2c");
    let upstream = Upstream::start(&dir);
    let alice = Key::random("alice-phone");
    let keys = keys_file(&dir, &[(&alice, "alice", &["read", "write"], false)]);
    let gateway = Gateway::start_for(&dir, &upstream, &keys, &[]);
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let base = format!("http://{}", gateway.addr);

    let get = signed_request(
        &alice,
        "GET",
        &format!("{base}/v1/h2?x=1"),
        b"",
        &[("tessera-owner", "mallory")],
    );
    let replay = {
        let mut copy = http::Request::new(get.body().clone());
        *copy.method_mut() = get.method().clone();
        *copy.uri_mut() = get.uri().clone();
        *copy.headers_mut() = get.headers().clone();
        copy
    };
    let reply = accepted_over_http2(&client, get);
    assert_eq!(
        reply.echoed("tessera-owner"),
        ["alice"],
        "the spoofed owner is replaced"
    );
    assert_eq!(reply.echoed("tessera-key-id"), ["alice-phone"]);
    // The upstream speaks HTTP/1.1 and gets Host from :authority.
    assert_eq!(reply.echoed("host"), [gateway.addr.to_string()]);

    let post = signed_request(
        &alice,
        "POST",
        &format!("{base}/v1/h2/orders"),
        br#"{"item":42}"#,
        &[("content-type", "application/json")],
    );
    let reply = accepted_over_http2(&client, post);
    assert_eq!(reply.json()["body"], r#"{"item":42}"#);

    // The same signature again, now over HTTP/2: a replay.
    let (_, reply) = send(&client, replay);
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["code"], "replayed");

    // Tampered after signing: refused, and the upstream never sees it.
    let mut tampered = signed_request(&alice, "GET", &format!("{base}/v1/h2/secret"), b"", &[]);
    *tampered.uri_mut() = format!("{base}/v1/h2/other").parse().unwrap();
    let (_, reply) = send(&client, tampered);
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["code"], "bad_signature");
    assert!(
        !upstream.paths().iter().any(|p| p.contains("other")),
        "{:?}",
        upstream.paths()
    );

    // Unsigned over HTTP/2: 401 with the challenge, from the gateway.
    let unsigned = http::Request::get(format!("{base}/v1/h2"))
        .body(Vec::new())
        .unwrap();
    let (_, reply) = send(&client, unsigned);
    assert_eq!(reply.status, 401);
    assert!(reply.header("www-authenticate").is_some());
}

#[test]
fn an_idle_http2_connection_is_closed_and_http2_can_be_turned_off() {
    let dir = temp_dir("h2-idle");
    let upstream = Upstream::start(&dir);
    let alice = Key::random("alice-phone");
    let keys = keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\n[keys]\nfile = \"{}\"\n[limits]\nheader_timeout_secs = 1\n",
            upstream.url(),
            keys.display()
        ),
    )
    .unwrap();
    let gateway = Gateway::start(&dir, &["--config", config.to_str().unwrap()]);
    // The preface and nothing more: closed after about the header timeout.
    let mut stream = TcpStream::connect(gateway.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut sink = Vec::new();
    let end = stream.read_to_end(&mut sink);
    assert!(end.is_ok(), "the gateway closes the connection: {end:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The server spoke HTTP/2 first: its SETTINGS frame (type 4).
    assert!(sink.len() >= 9 && sink[3] == 4, "{sink:?}");

    // With --no-http2 the preface is just a malformed HTTP/1.1 request.
    let plain = Gateway::start_for(&dir, &upstream, &keys, &["--no-http2"]);
    let reply = raw(
        plain.addr,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        Duration::from_secs(10),
    )
    .expect("a reply");
    assert_eq!(reply.status, 400);
    assert!(upstream.paths().is_empty(), "{:?}", upstream.paths());
}

#[test]
fn http2_is_negotiated_over_tls() {
    let dir = temp_dir("h2-tls");
    tls_files(&dir);
    let upstream = Upstream::start(&dir);
    let alice = Key::random("alice-phone");
    keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let gateway = Gateway::start_tls(&dir, &upstream);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    let url = format!("https://localhost:{}/v1/tls-h2", gateway.addr.port());
    for (http1_only, expected) in [
        (false, http::Version::HTTP_2),
        (true, http::Version::HTTP_11),
    ] {
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([ca.clone()])
            .resolve("localhost", gateway.addr);
        if http1_only {
            builder = builder.http1_only();
        }
        let client = builder.build().unwrap();
        let (version, reply) = send(&client, signed_request(&alice, "GET", &url, b"", &[]));
        assert_eq!(version, expected);
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.echoed("tessera-owner"), ["alice"]);
    }
}

/// A gateway with one key, and a signer with that key that covers `cookie`.
fn cookie_gateway(
    name: &str,
) -> (
    std::path::PathBuf,
    Upstream,
    Gateway,
    tessera_client::Signer,
) {
    let dir = temp_dir(name);
    let upstream = Upstream::start(&dir);
    let alice = Key::random("alice-cookie");
    let keys = keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let gateway = Gateway::start_for(&dir, &upstream, &keys, &[]);
    let signer = tessera_client::Signer::builder(tessera_client::SigningKey::new(
        tessera_client::KeyId::new(alice.id.as_str()).unwrap(),
        &tessera_client::SecretKey::from_hex(&alice.secret_hex).unwrap(),
    ))
    .cover("cookie")
    .build()
    .unwrap();
    (dir, upstream, gateway, signer)
}

/// A covered `Cookie` that an HTTP/2 client splits into crumbs (RFC 9113
/// §8.2.3) verifies as the one value the client signed, `a=1; b=2`, and is
/// forwarded as that value (spec §8.6): what the signature covered is what
/// the upstream gets.
#[test]
fn cookie_crumbs_over_http2_verify_and_are_forwarded_as_signed() {
    let (_dir, _upstream, gateway, signer) = cookie_gateway("h2-cookie");
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut request = http::Request::get(format!("http://{}/v1/cookie", gateway.addr))
        .header("cookie", "a=1; b=2")
        .body(Vec::new())
        .unwrap();
    signer.sign_request(&mut request).unwrap();
    // Sent as two crumbs, as browsers do over HTTP/2.
    let headers = request.headers_mut();
    headers.remove("cookie");
    headers.append("cookie", http::HeaderValue::from_static("a=1"));
    headers.append("cookie", http::HeaderValue::from_static("b=2"));
    let reply = accepted_over_http2(&client, request);
    assert_eq!(reply.echoed("cookie"), ["a=1; b=2"]);
}

/// Over HTTP/1.1 a covered `Cookie` is one line (spec §8.6): a signed line
/// `a=1, b=2` (one cookie) split on its way into `a=1` and `b=2` would give
/// the same base, yet reach the upstream as two cookies. Refused with
/// `invalid_field_value`, and nothing is forwarded.
#[test]
fn a_covered_cookie_split_over_http1_is_refused() {
    let (_dir, upstream, gateway, signer) = cookie_gateway("h1-cookie");
    let authority = gateway.addr.to_string();
    let signed_line = |cookie: &str| {
        let mut request = http::Request::get(format!("http://{authority}/v1/cookie"))
            .header("cookie", cookie)
            .body(Vec::new())
            .unwrap();
        signer.sign_request(&mut request).unwrap();
        serialize(&request, &authority)
    };
    // As signed, one line: accepted.
    let reply = raw(
        gateway.addr,
        &signed_line("a=1, b=2"),
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    // The same bytes with the line split in two.
    let split = String::from_utf8(signed_line("a=1, b=2"))
        .unwrap()
        .replacen("cookie: a=1, b=2\r\n", "cookie: a=1\r\ncookie: b=2\r\n", 1);
    let reply = raw(gateway.addr, split.as_bytes(), Duration::from_secs(20)).unwrap();
    assert_eq!(
        reply.status,
        400,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["code"], "invalid_field_value");
    assert_eq!(upstream.paths().len(), 1, "{:?}", upstream.paths());
}
