//! Hostile and malformed clients, byte for byte over raw TCP: oversized
//! heads, request smuggling shapes, Host rules, slow bodies, slowloris,
//! and the drain on SIGTERM.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

struct Setup {
    _dir: std::path::PathBuf,
    upstream: Upstream,
    gateway: Gateway,
    alice: Key,
}

fn setup(limits: &str) -> Setup {
    let dir = temp_dir("hardening");
    let upstream = Upstream::start(&dir);
    let alice = Key::random("alice-phone");
    let keys = keys_file(&dir, &[(&alice, "alice", &["read", "write"], false)]);
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\n[keys]\nfile = \"{}\"\n[limits]\n{limits}\n[[public]]\nprefix = \"/public\"\n",
            upstream.url(),
            keys.display()
        ),
    )
    .unwrap();
    let gateway = Gateway::start(&dir, &["--config", config.to_str().unwrap()]);
    Setup {
        _dir: dir,
        upstream,
        gateway,
        alice,
    }
}

fn send(s: &Setup, bytes: &str) -> Reply {
    raw(s.gateway.addr, bytes.as_bytes(), Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no reply to {bytes:?}"))
}

fn assert_problem(reply: &Reply, status: u16, detail: &str) {
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let json = reply.json();
    assert_eq!(json["status"], status);
    assert!(
        json["detail"].as_str().unwrap().contains(detail),
        "{json} should mention {detail:?}"
    );
}

#[test]
fn oversized_heads_get_431_with_a_body() {
    let s = setup("max_header_bytes = 2048\nmax_headers = 20");
    let host = s.gateway.addr;
    let pad = "a".repeat(3000);
    let reply = send(
        &s,
        &format!("GET /public/x HTTP/1.1\r\nhost: {host}\r\nx-pad: {pad}\r\n\r\n"),
    );
    assert_problem(&reply, 431, "max_header_bytes");
    // Far over the limit too (past what the HTTP parser itself accepts).
    let pad = "a".repeat(200_000);
    let reply = send(
        &s,
        &format!("GET /public/x HTTP/1.1\r\nhost: {host}\r\nx-pad: {pad}\r\n\r\n"),
    );
    assert_problem(&reply, 431, "max_header_bytes");
    let many: String = (0..30).map(|i| format!("x-f{i}: v\r\n")).collect();
    let reply = send(
        &s,
        &format!("GET /public/x HTTP/1.1\r\nhost: {host}\r\n{many}\r\n"),
    );
    assert_problem(&reply, 431, "max_headers");
    assert!(s.upstream.paths().is_empty());
}

#[test]
fn smuggling_shapes_and_host_rules_are_refused() {
    let s = setup("");
    let host = s.gateway.addr;
    let cases = [
        (
            format!("POST /public/a HTTP/1.1\r\nhost: {host}\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /public/smuggled HTTP/1.1\r\nhost: {host}\r\n\r\n"),
            "Transfer-Encoding together",
        ),
        (
            format!("POST /public/b HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n"),
            "Transfer-Encoding together",
        ),
        (
            format!("POST /public/c HTTP/1.1\r\nhost: {host}\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello"),
            "more than one Content-Length",
        ),
        (
            format!("POST /public/d HTTP/1.1\r\nhost: {host}\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!"),
            "more than one Content-Length",
        ),
        (
            format!("POST /public/e HTTP/1.1\r\nhost: {host}\r\ncontent-length: 5, 5\r\n\r\nhello"),
            "more than one Content-Length",
        ),
        (
            format!("POST /public/f HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: gzip, chunked, identity\r\n\r\n"),
            "only Transfer-Encoding: chunked",
        ),
        (
            format!("GET http://{host}/public/h HTTP/1.1\r\n\r\n"),
            "exactly one Host",
        ),
        (
            format!("POST /public/i HTTP/1.1\r\nhost: {host}\r\ncontent-length: 18446744073709551615\r\n\r\nhello"),
            "not a number, or is too large",
        ),
        (
            format!("POST /public/j HTTP/1.1\r\nhost: {host}\r\ncontent-length: \u{a0}5\r\n\r\nhello"),
            "not a number, or is too large",
        ),
    ];
    for (request, detail) in &cases {
        let reply = send(&s, request);
        assert_problem(&reply, 400, detail);
        assert_eq!(reply.header("connection"), Some("close"), "{request:?}");
    }
    // CONNECT is no tunnel here: a problem, not a misleading path complaint.
    let reply = send(
        &s,
        "CONNECT api.example.com:443 HTTP/1.1\r\nhost: api.example.com:443\r\n\r\n",
    );
    assert_problem(&reply, 405, "does not open tunnels");
    assert!(s.upstream.paths().is_empty(), "{:?}", s.upstream.paths());
    // Targets no URI parser takes get a problem body, not a bare 400; one
    // the profile refuses gets its code (spec §8.4), as from a verifier.
    for (target, code, detail) in [
        ("http:///x", Some("invalid_field_value"), "authority"),
        ("http://", Some("invalid_field_value"), "authority"),
        ("/a b%", None, "malformed"),
        ("http://[::1/x", Some("invalid_field_value"), ""),
        ("/x#f", Some("invalid_field_value"), "fragment"),
        ("/caf\u{e9}", Some("invalid_field_value"), "ASCII"),
        ("/caf\u{c3}\u{a9}", Some("invalid_field_value"), "ASCII"),
        ("/a?q=\u{c3}\u{a9}", Some("invalid_field_value"), "ASCII"),
        ("/a<b", None, "not a valid URI"),
        ("/a`b", None, "not a valid URI"),
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        // `é` as the one octet 0xe9, as a client would send it.
        let bytes: Vec<u8> = request.chars().map(|c| c as u32 as u8).collect();
        let reply = raw(s.gateway.addr, &bytes, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no reply to {target:?}"));
        assert_problem(&reply, 400, detail);
        assert_eq!(reply.json()["code"].as_str(), code, "{target:?}");
        assert_eq!(reply.header("connection"), Some("close"), "{target:?}");
    }
    // A method that is not a token gets the profile's code too (spec §8.2),
    // though httparse refuses the whole head.
    for method in ["GE@T", "G\u{e9}T", "GET\u{1}", "(GET)"] {
        let request =
            format!("{method} /public/m HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        let bytes: Vec<u8> = request.chars().map(|c| c as u32 as u8).collect();
        let reply = raw(s.gateway.addr, &bytes, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no reply to {method:?}"));
        assert_problem(&reply, 400, "method");
        assert_eq!(
            reply.json()["code"].as_str(),
            Some("invalid_field_value"),
            "{method:?}"
        );
    }
    // Not exactly one Host (RFC 9112 §3.2: 400): several Host lines get
    // the code of spec §11.2 step 5; none gets a plain 400 (step 5 would
    // answer authority_mismatch, a 401).
    for (request, code, detail) in [
        (
            format!("GET /public/g HTTP/1.1\r\nhost: {host}\r\nhost: other.example\r\n\r\n"),
            Some("invalid_field_value"),
            "more than one Host",
        ),
        (
            "GET /public/h HTTP/1.1\r\n\r\n".to_owned(),
            None,
            "exactly one Host",
        ),
    ] {
        let reply = send(&s, &request);
        assert_problem(&reply, 400, detail);
        assert_eq!(reply.json()["code"].as_str(), code, "{request:?}");
        assert_eq!(reply.header("connection"), Some("close"), "{request:?}");
    }
    assert!(s.upstream.paths().is_empty(), "{:?}", s.upstream.paths());
    // A well-formed chunked request and a pipelined second request pass.
    let ok = format!(
        "POST /public/chunked HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /public/next HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    );
    let mut stream = TcpStream::connect(s.gateway.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(ok.as_bytes()).unwrap();
    let mut all = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut all);
    let first = parse(&all).unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["body"], "abc");
    assert_eq!(s.upstream.paths(), ["/public/chunked", "/public/next"]);
}

#[test]
fn a_slow_body_gets_408() {
    let s = setup("body_timeout_secs = 1");
    let host = s.gateway.addr;
    let mut stream = TcpStream::connect(s.gateway.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            format!("POST /public/slow HTTP/1.1\r\nhost: {host}\r\ncontent-length: 10\r\n\r\nab")
                .as_bytes(),
        )
        .unwrap();
    let mut all = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut all);
    let reply = parse(&all).unwrap();
    assert_problem(&reply, 408, "within 1 s");
    assert!(s.upstream.paths().is_empty());
}

#[test]
fn stalled_connections_do_not_stop_signed_traffic() {
    let s = setup("header_timeout_secs = 3");
    let host = s.gateway.addr;
    // 300 slowloris connections: a partial head each, then a byte now and then.
    let mut stalled: Vec<TcpStream> = (0..300)
        .map(|i| {
            let mut c = TcpStream::connect(s.gateway.addr).unwrap();
            c.write_all(format!("GET /public/{i} HTTP/1.1\r\nhost: {host}\r\n").as_bytes())
                .unwrap();
            c
        })
        .collect();
    let started = Instant::now();
    for i in 0..20 {
        for c in stalled.iter_mut() {
            let _ = c.write_all(b"x");
        }
        let reply = send_signed(
            &s.gateway,
            &s.alice,
            "GET",
            &format!("/signed/{i}"),
            b"",
            &[],
        );
        assert_eq!(reply.status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // The header timeout closes them: reads see the end.
    std::thread::sleep(Duration::from_secs(4));
    let mut closed = 0;
    for c in stalled.iter_mut() {
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 16];
        match std::io::Read::read(c, &mut buf) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    assert_eq!(closed, 300);
    assert_eq!(s.upstream.paths().len(), 20);
}

#[test]
fn sigterm_drains_requests_in_flight() {
    let s = setup("");
    let host = s.gateway.addr.to_string();
    let bytes = signed(&s.alice, "GET", &host, "/slow?secs=2", b"", &[]);
    let addr = s.gateway.addr;
    let in_flight = std::thread::spawn(move || raw(addr, &bytes, Duration::from_secs(20)));
    // SIGTERM once the request is at the upstream (it logs before its
    // 2 s sleep): in flight, whatever the machine's load.
    assert!(
        eventually(Duration::from_secs(10), || s
            .upstream
            .paths()
            .iter()
            .any(|p| p.starts_with("/slow"))),
        "the request never reached the upstream"
    );
    s.gateway.sigterm();
    let reply = in_flight
        .join()
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(reply.status, 200);
    let mut gateway = s.gateway;
    let status = gateway.proc.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        TcpStream::connect(addr).is_err(),
        "no new connections after the drain"
    );
}

/// Sends `bytes` on one connection and reads until the gateway closes it;
/// every response on it, in order.
fn conversation(s: &Setup, bytes: &str) -> Vec<Reply> {
    let mut stream = TcpStream::connect(s.gateway.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes.as_bytes()).unwrap();
    let mut all = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut all);
    // The bodies in these tests never hold a status line.
    let starts: Vec<usize> = (0..all.len())
        .filter(|&at| all[at..].starts_with(b"HTTP/1.1 "))
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let end = starts.get(i + 1).copied().unwrap_or(all.len());
            parse(&all[start..end]).unwrap()
        })
        .collect()
}

#[test]
fn chunk_sizes_with_leading_zeros_do_not_switch_the_guard_off() {
    let s = setup("max_header_bytes = 8192\nmax_headers = 50");
    let host = s.gateway.addr;
    // 20 zeros, then the size: hyper reads it as 5, and so must the guard,
    // or it loses track of where the next head starts.
    let first = format!(
        "POST /public/first HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: chunked\r\n\r\n000000000000000000005\r\nhello\r\n0\r\n\r\n"
    );
    let many: String = (0..80).map(|i| format!("x-f{i}: v\r\n")).collect();
    let pad = "a".repeat(20 * 1024);
    let seconds = [
        (
            format!("POST /public/second HTTP/1.1\r\nhost: {host}\r\ncontent-length: 50\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            400,
            "Transfer-Encoding together",
        ),
        (
            format!("POST /public/second HTTP/1.1\r\nhost: {host}\r\ncontent-length: 3\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc"),
            400,
            "more than one Content-Length",
        ),
        (
            format!("GET /public/second HTTP/1.1\r\nhost: {host}\r\n{many}connection: close\r\n\r\n"),
            431,
            "max_headers",
        ),
        (
            format!("GET /public/second HTTP/1.1\r\nhost: {host}\r\nx-pad: {pad}\r\nconnection: close\r\n\r\n"),
            431,
            "max_header_bytes",
        ),
    ];
    for (second, status, detail) in &seconds {
        let replies = conversation(&s, &format!("{first}{second}"));
        assert_eq!(replies.len(), 2, "{second:?}");
        assert_eq!(replies[0].status, 200);
        assert_eq!(replies[0].json()["body"], "hello");
        assert_problem(&replies[1], *status, detail);
        assert_eq!(replies[1].header("connection"), Some("close"));
    }
    assert_eq!(s.upstream.paths(), ["/public/first"; 4]);
}

#[test]
fn chunk_sizes_over_64_bits_are_refused_and_end_the_connection() {
    let s = setup("");
    let host = s.gateway.addr;
    for size in ["10000000000000000", "00000000000000000010000000000000000"] {
        let replies = conversation(
            &s,
            &format!(
                "POST /public/first HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: chunked\r\n\r\n{size}\r\nhello\r\n0\r\n\r\nPOST /public/second HTTP/1.1\r\nhost: {host}\r\ncontent-length: 50\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            ),
        );
        assert_eq!(replies.len(), 1, "{size}");
        assert_problem(&replies[0], 400, "more than 16 significant hex digits");
        assert_eq!(replies[0].header("connection"), Some("close"));
    }
    assert!(s.upstream.paths().is_empty(), "{:?}", s.upstream.paths());
}

#[test]
fn an_over_long_chunk_line_is_refused_before_its_end() {
    let s = setup("");
    let host = s.gateway.addr;
    let mut stream = TcpStream::connect(s.gateway.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let ext = "a".repeat(5000);
    stream
        .write_all(
            format!(
                "POST /public/first HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: chunked\r\n\r\n5;x={ext}"
            )
            .as_bytes(),
        )
        .unwrap();
    // The refusal comes without the line's end: the guard does not wait for it.
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let reply = loop {
        let n = std::io::Read::read(&mut stream, &mut buf).unwrap();
        assert!(n > 0, "closed without a reply");
        received.extend_from_slice(&buf[..n]);
        if let Some(reply) = parse(&received) {
            let length: usize = reply.header("content-length").unwrap().parse().unwrap();
            if reply.body.len() >= length {
                break reply;
            }
        }
    };
    assert_problem(&reply, 400, "the chunked request body was refused");
    assert_eq!(reply.header("connection"), Some("close"));
    // The rest, after a pause, and a smuggling shape behind it: the
    // connection is over, nothing more is answered.
    std::thread::sleep(Duration::from_millis(300));
    let _ = stream.write_all(
        format!(
            "\r\nhello\r\n0\r\n\r\nPOST /public/second HTTP/1.1\r\nhost: {host}\r\ncontent-length: 50\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut rest);
    assert!(
        !rest.windows(9).any(|w| w == b"HTTP/1.1 "),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    assert!(s.upstream.paths().is_empty(), "{:?}", s.upstream.paths());
}

#[test]
fn transfer_codings_other_than_chunked_are_refused() {
    let s = setup("");
    let host = s.gateway.addr;
    for te in [
        "transfer-encoding: gzip, chunked\r\n",
        "transfer-encoding: foo, chunked\r\n",
        "transfer-encoding: identity, chunked\r\n",
        "transfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n",
    ] {
        let reply = send(
            &s,
            &format!("POST /public/te HTTP/1.1\r\nhost: {host}\r\n{te}\r\n3\r\nabc\r\n0\r\n\r\n"),
        );
        assert_problem(&reply, 400, "only Transfer-Encoding: chunked");
        assert_eq!(reply.header("connection"), Some("close"), "{te:?}");
    }
    assert!(s.upstream.paths().is_empty(), "{:?}", s.upstream.paths());
    // Upper case and trailing whitespace are still one `chunked`.
    for te in [
        "transfer-encoding: CHUNKED\r\n",
        "transfer-encoding: chunked \t\r\n",
    ] {
        let reply = send(
            &s,
            &format!(
                "POST /public/te-ok HTTP/1.1\r\nhost: {host}\r\n{te}connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            ),
        );
        assert_eq!(reply.status, 200, "{te:?}");
        assert_eq!(reply.json()["body"], "abc");
    }
}

#[test]
fn chunk_extensions_and_leading_zeros_that_fit_still_work() {
    let s = setup("");
    let host = s.gateway.addr;
    let replies = conversation(
        &s,
        &format!(
            "POST /public/ext HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: chunked\r\n\r\n0005;a=b\r\nhello\r\n0003 ; c=\"d e\"\r\nabc\r\n0\r\nx-trailer: t\r\n\r\nGET /public/next HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
        ),
    );
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0].status, 200);
    assert_eq!(replies[0].json()["body"], "helloabc");
    assert_eq!(replies[1].status, 200);
    assert_eq!(s.upstream.paths(), ["/public/ext", "/public/next"]);
}

#[test]
fn a_signed_chunked_body_the_guard_cannot_follow_is_never_forwarded() {
    let s = setup("");
    let host = s.gateway.addr.to_string();
    let chunked = |path: &str, chunks: &str| {
        let bytes = signed(&s.alice, "POST", &host, path, b"hello", &[]);
        let text = String::from_utf8(bytes).unwrap();
        let head = text.strip_suffix("content-length: 5\r\n\r\nhello").unwrap();
        format!("{head}transfer-encoding: chunked\r\n\r\n{chunks}")
    };
    // Followed: leading zeros and an extension.
    let reply = send(&s, &chunked("/signed/ok", "0005;a=b\r\nhello\r\n0\r\n\r\n"));
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["body"], "hello");
    // Not followed: the guard refuses the body, and the gateway says why.
    let reply = send(
        &s,
        &chunked("/signed/refused", "10000000000000000\r\nhello\r\n0\r\n\r\n"),
    );
    assert_problem(
        &reply,
        400,
        "the chunked request body was refused: a chunk size has more than 16 significant hex digits",
    );
    assert_eq!(s.upstream.paths(), ["/signed/ok"]);
}

/// The gateway's head guard and `tessera verify` read a request line that
/// httparse refuses the same way (`tessera_core::RequestLine`), so the same
/// bytes get the same answer: the profile's code for a method that is not a
/// token or a target octet outside visible ASCII (spec §8.2, §8.4), a
/// malformed head otherwise. The requests carry a signature that passes
/// steps 1 to 4, so that the offline verifier reaches step 5 too.
#[test]
fn the_gateway_and_tessera_verify_read_a_refused_request_line_alike() {
    let s = setup("");
    let host = s.gateway.addr;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let fields = format!(
        "host: {host}\r\ncontent-digest: sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:\r\nsignature-input: tessera=(\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\");created={now};keyid=\"{}\";nonce=\"AAAAAAAAAAAAAAAAAAAAAA\";tag=\"tessera-v1\"\r\nsignature: tessera=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:\r\nconnection: close\r\n",
        s.alice.id
    );
    let secret = s._dir.join("alice.hex");
    std::fs::write(&secret, &s.alice.secret_hex).unwrap();
    let absolute = format!("GE@T http://{host}/v1/x HTTP/1.1");
    // Longer than one read of the guard, so httparse refuses it before its
    // end has arrived.
    let long = format!("GE@T /v1/{} HTTP/1.1", "a".repeat(6000));
    for (line, expected) in [
        (long.as_str(), "invalid_field_value"),
        // A bare CR is no empty line: it stays in the method.
        ("\rGET /v1/x HTTP/1.1", "invalid_field_value"),
        ("GE@T /v1/x HTTP/1.1", "invalid_field_value"),
        // In absolute-form the authority comes from the target, so a field
        // line that does not parse is what decides, not a missing Host.
        (absolute.as_str(), "invalid_field_value"),
        ("\r\nGE@T /v1/x HTTP/1.1", "invalid_field_value"),
        (" /v1/x HTTP/1.1", "invalid_field_value"),
        ("GE@T /v1/x HTTP/1.2", "invalid_field_value"),
        ("GET /v1/x\rb HTTP/1.1", "invalid_field_value"),
        ("GET /v1/caf\u{e9} HTTP/1.1", "invalid_field_value"),
        ("GET /v1/a\tb HTTP/1.1", "invalid_field_value"),
        ("GET  HTTP/1.1", "malformed"),
        ("GET /v1/x FTP/1.1", "malformed"),
    ] {
        for bad_field in [false, true] {
            let extra = if bad_field { "x y: 1\r\n" } else { "" };
            let request = format!("{line}\r\n{fields}{extra}\r\n");
            let bytes: Vec<u8> = request.chars().map(|c| c as u32 as u8).collect();
            let reply = raw(s.gateway.addr, &bytes, Duration::from_secs(10))
                .unwrap_or_else(|| panic!("no reply to {line:?}"));
            assert_eq!(reply.status, 400, "{line:?}");
            let gateway = reply.json()["code"]
                .as_str()
                .unwrap_or("malformed")
                .to_owned();
            // The same bytes in two writes, cut inside the request line: the
            // same answer, however the bytes arrive.
            let mut stream = TcpStream::connect(s.gateway.addr).unwrap();
            let cut = line.len().min(6) + 1;
            stream.write_all(&bytes[..cut]).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            stream.write_all(&bytes[cut..]).unwrap();
            let in_two = read_reply(&mut stream);
            assert_eq!(
                in_two.json()["code"].as_str().unwrap_or("malformed"),
                gateway,
                "{line:?} in two writes, bad field {bad_field}"
            );
            let file = s._dir.join("captured.http");
            std::fs::write(&file, &bytes).unwrap();
            let out = std::process::Command::new(tessera_cli())
                .args([
                    "verify",
                    "--request",
                    file.to_str().unwrap(),
                    "--secret-file",
                ])
                .arg(&secret)
                .args(["--authority", &host.to_string()])
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let offline = match stdout
                .lines()
                .next()
                .unwrap_or("")
                .strip_prefix("rejected: ")
            {
                Some(rest) if rest.starts_with("malformed_request:") => "malformed".to_owned(),
                Some(rest) => rest.split(':').next().unwrap().to_owned(),
                None => stdout.to_string(),
            };
            // A field line that does not parse makes the head malformed.
            let expected = if bad_field { "malformed" } else { expected };
            assert_eq!(
                (gateway.as_str(), offline.as_str()),
                (expected, expected),
                "{line:?}, bad field {bad_field}: {stdout}"
            );
        }
    }
    assert!(s.upstream.paths().is_empty(), "{:?}", s.upstream.paths());
}

/// A head whose request line the profile refuses is still held to the size
/// limit, whatever the pieces it arrives in (431, as a valid head of that
/// size), a defect past the limit included, and to the field count; and one
/// that never completes, which the guard waits on for its code, is answered
/// as malformed at the header timeout or when the client stops sending, not
/// dropped.
#[test]
fn a_refused_request_line_waits_within_the_head_limits() {
    let s = setup("max_header_bytes = 4096\nheader_timeout_secs = 1");
    let host = s.gateway.addr;
    let pad = "a".repeat(6000);
    let many: String = (0..110).map(|i| format!("x-f{i}: v\r\n")).collect();
    let heads = [
        // Over the limit once complete.
        (
            format!("GE@T /v1/x HTTP/1.1\r\nhost: {host}\r\nx-pad: {pad}\r\nconnection: close\r\n\r\n"),
            "max_header_bytes",
        ),
        // What makes each of these malformed lies past the limit: a field
        // line, the version, a line that is no request line.
        (
            format!("GE@T /v1/x HTTP/1.1\r\nhost: {host}\r\nx-pad: {pad}\r\nx y: 1\r\nconnection: close\r\n\r\n"),
            "max_header_bytes",
        ),
        (
            format!("GET /v1/x HTTP/1.1\r\nhost: {host}\r\nx-pad: {pad}\r\nx y: 1\r\nconnection: close\r\n\r\n"),
            "max_header_bytes",
        ),
        (
            format!("GET /v1/{pad} HTTP/1.2\r\nhost: {host}\r\nconnection: close\r\n\r\n"),
            "max_header_bytes",
        ),
        (
            format!("GE@T /v1/{} FTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n", &pad[..4904]),
            "max_header_bytes",
        ),
        // More fields than `limits.max_headers` (100), as after a valid line.
        (
            format!("GE@T /v1/x HTTP/1.1\r\nhost: {host}\r\n{many}connection: close\r\n\r\n"),
            "max_headers",
        ),
        (
            format!("GET /v1/x HTTP/1.1\r\nhost: {host}\r\n{many}connection: close\r\n\r\n"),
            "max_headers",
        ),
    ];
    // Each answered 431 for its own limit, however it arrives.
    for (head, limit) in &heads {
        let line = head.lines().next().unwrap_or_default();
        for piece in [head.len(), 1254, 1024, 100] {
            let mut stream = TcpStream::connect(s.gateway.addr).unwrap();
            for chunk in head.as_bytes().chunks(piece) {
                // The answer may come, and the connection close, before the end.
                if stream.write_all(chunk).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let reply = read_reply(&mut stream);
            let json = reply.json();
            assert_eq!(
                (reply.status, reply.header("content-type")),
                (431, Some("application/problem+json")),
                "{line:.60} in pieces of {piece}: {json}"
            );
            assert!(
                json["detail"].as_str().unwrap_or_default().contains(limit),
                "{line:.60} in pieces of {piece}: {json} should name {limit}"
            );
        }
    }
    // The client stops sending before the line ends: the same 400.
    for head in [&b"GE@T /caf\xe9"[..], b"GE@T /v1/x HTTP/1.1\r\nhost: h\r\n"] {
        let mut stream = TcpStream::connect(s.gateway.addr).unwrap();
        stream.write_all(head).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let started = Instant::now();
        let reply = read_reply(&mut stream);
        assert_problem(&reply, 400, "malformed");
        assert!(
            started.elapsed() < Duration::from_millis(800),
            "answered at the EOF, not at the timeout: {:?}",
            started.elapsed()
        );
    }
    // No LF ever comes: a 400 when the header timeout ends the wait.
    let mut stream = TcpStream::connect(s.gateway.addr).unwrap();
    stream.write_all(b"GE@T /caf\xe9").unwrap();
    let started = Instant::now();
    let reply = read_reply(&mut stream);
    assert_problem(&reply, 400, "malformed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(s.upstream.paths().is_empty(), "{:?}", s.upstream.paths());
}
