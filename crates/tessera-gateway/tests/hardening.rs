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
            format!("GET /public/g HTTP/1.1\r\nhost: {host}\r\nhost: other.example\r\n\r\n"),
            "exactly one Host",
        ),
        ("GET /public/h HTTP/1.1\r\n\r\n".to_owned(), "exactly one Host"),
    ];
    for (request, detail) in &cases {
        let reply = send(&s, request);
        assert_problem(&reply, 400, detail);
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
    std::thread::sleep(Duration::from_millis(700));
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
