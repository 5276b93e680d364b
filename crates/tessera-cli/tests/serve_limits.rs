//! `tessera serve` under hostile or unusual traffic: oversized heads, stalled
//! heads (slowloris), stalled bodies, oversized bodies, and a public scheme
//! and authority that differ from the loopback address. Every test runs the
//! real binary and talks raw HTTP/1.1 to it on 127.0.0.1 only.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{keygen, keys_file, temp_dir, tessera, text, Key, Server};

/// The header lines `tessera sign` prints for a request.
fn sign(key: &Key, method: &str, url: &str, data: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "sign",
        method,
        url,
        "--key-id",
        key.id.as_str(),
        "--secret-file",
        key.secret_file.to_str().unwrap(),
    ];
    if let Some(data) = data {
        args.extend_from_slice(&["--data", data]);
    }
    let out = tessera(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

/// A raw HTTP/1.1 request head (with `Connection: close`), ending in the empty line.
fn head(method: &str, target: &str, host: &str, fields: &[String], body_len: usize) -> Vec<u8> {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if body_len > 0 || method == "POST" {
        raw.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    for field in fields {
        raw.push_str(field);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    raw.into_bytes()
}

/// A parsed answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", text(&self.body)))
    }
}

/// Reads an answer until the server closes the connection.
///
/// A reset after some bytes still yields them: the server may close with
/// request bytes unread, which the kernel reports as a reset.
fn read_reply(stream: &mut TcpStream) -> Option<Reply> {
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = text(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// Sends `raw` on a new connection and reads the answer.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(raw);
    read_reply(&mut stream).expect("an HTTP answer")
}

/// A signed request, sent whole.
fn signed_exchange(server: &Server, key: &Key, method: &str, path: &str, body: &str) -> Reply {
    let url = format!("{}{path}", server.url);
    let data = (!body.is_empty()).then_some(body);
    let fields = sign(key, method, &url, data);
    let host = server.addr.to_string();
    let mut raw = head(method, path, &host, &fields, body.len());
    raw.extend_from_slice(body.as_bytes());
    exchange(server.addr, &raw)
}

/// Asserts an HTTP-level refusal: problem+json of type about:blank, no tessera code.
fn assert_http_problem(reply: &Reply, status: u16, detail_mentions: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.header("connection"), Some("close"));
    let json = reply.json();
    assert_eq!(json["type"], "about:blank", "{json}");
    assert_eq!(json["status"], status, "{json}");
    assert!(
        json["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{json}"
    );
    let detail = json["detail"].as_str().unwrap();
    assert!(detail.contains(detail_mentions), "{detail}");
    assert!(json.get("code").is_none(), "{json}");
}

#[test]
fn oversized_heads_get_431_problem_json_and_a_log_line() {
    let dir = temp_dir("head");
    let key = keygen(&dir, "alice", "read");
    let server = Server::start(
        &[&key],
        &dir,
        &["--max-header-bytes", "4096", "--max-headers", "20"],
    );
    let host = server.addr.to_string();

    // Over the limit but under the parser's: the explained 431.
    let pad = vec![format!("X-Pad: {}", "a".repeat(5000))];
    let reply = exchange(server.addr, &head("GET", "/big", &host, &pad, 0));
    assert_http_problem(&reply, 431, "--max-header-bytes");
    let line = server.log_line("/big", Duration::from_secs(2));
    assert!(line.contains("431") && line.contains("4096"), "{line}");

    // Too many fields, each small.
    let many: Vec<String> = (0..30).map(|i| format!("X-F{i}: {i}")).collect();
    let reply = exchange(server.addr, &head("GET", "/many", &host, &many, 0));
    assert_http_problem(&reply, 431, "--max-headers");
    server.log_line("/many -> 431", Duration::from_secs(2));

    // Far beyond the limit the HTTP parser stops reading: an empty 431 or a
    // closed connection, never an answer from the application.
    let huge = vec![format!("X-Pad: {}", "a".repeat(100_000))];
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let _ = stream.write_all(&head("GET", "/huge", &host, &huge, 0));
    if let Some(reply) = read_reply(&mut stream) {
        assert_eq!(reply.status, 431, "{reply:?}");
    }
    server.log_line("cut off by the HTTP parser", Duration::from_secs(5));

    // A signed request within the limits is still served.
    let reply = signed_exchange(&server, &key, "GET", "/ok", "");
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// A stalled connection: part of a head, then a byte now and then.
struct Stalled {
    stream: TcpStream,
    closed_at: Option<Instant>,
}

impl Stalled {
    /// Notes the server closing the connection, draining anything it sent.
    fn poll_closed(&mut self) {
        if self.closed_at.is_some() {
            return;
        }
        let mut buf = [0u8; 512];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.closed_at = Some(Instant::now());
    }

    fn trickle(&mut self) {
        if self.closed_at.is_none() {
            match self.stream.write(b"a") {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.closed_at = Some(Instant::now()),
            }
        }
    }
}

#[test]
fn slowloris_neither_delays_signed_requests_nor_outlives_the_header_timeout() {
    // 300 sockets here and 300 in the server stay under the usual soft limit
    // of 1024 descriptors per process, so there is no limit to raise.
    const STALLED: usize = 300;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
    let dir = temp_dir("slowloris");
    let key = keygen(&dir, "bob", "read");
    let server = Server::start(&[&key], &dir, &["--header-timeout", "2"]);
    // Signed before the stall starts: `tessera sign` is a process start.
    let fields = sign(&key, "GET", &format!("{}/ping", server.url), None);
    let signed = head("GET", "/ping", &server.addr.to_string(), &fields, 0);

    let opened = Instant::now();
    let mut stalled: Vec<Stalled> = (0..STALLED)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            stream.set_nonblocking(true).unwrap();
            Stalled {
                stream,
                closed_at: None,
            }
        })
        .collect();
    let all_open = Instant::now();
    stalled.iter_mut().for_each(Stalled::trickle);

    let started = Instant::now();
    let reply = exchange(server.addr, &signed);
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        elapsed < Duration::from_secs(1),
        "the signed request took {elapsed:?} behind {STALLED} stalled connections"
    );
    stalled.iter_mut().for_each(Stalled::poll_closed);
    if opened.elapsed() < HEADER_TIMEOUT - Duration::from_millis(300) {
        let closed = stalled.iter().filter(|s| s.closed_at.is_some()).count();
        assert_eq!(closed, 0, "stalled connections closed before the timeout");
    }

    // Keep trickling, one byte a second, until the server has closed them all.
    let give_up = all_open + HEADER_TIMEOUT + Duration::from_secs(2);
    let mut last_trickle = Instant::now();
    while stalled.iter().any(|s| s.closed_at.is_none()) {
        let open = stalled.iter().filter(|s| s.closed_at.is_none()).count();
        assert!(
            Instant::now() < give_up,
            "{open} of {STALLED} stalled connections still open {:?} after they were opened",
            opened.elapsed()
        );
        if last_trickle.elapsed() >= Duration::from_secs(1) {
            stalled.iter_mut().for_each(Stalled::trickle);
            last_trickle = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
        stalled.iter_mut().for_each(Stalled::poll_closed);
    }
    // The bytes trickling in did not extend the timeout, and the timeout,
    // not something earlier, closed the connections.
    let first = stalled.iter().filter_map(|s| s.closed_at).min().unwrap();
    let last = stalled.iter().filter_map(|s| s.closed_at).max().unwrap();
    eprintln!(
        "signed request answered in {elapsed:?}; stalled connections closed {:?} to {:?} after opening",
        first.duration_since(opened),
        last.duration_since(opened)
    );
    assert!(
        first.duration_since(opened) >= HEADER_TIMEOUT - Duration::from_millis(100),
        "closed after {:?}",
        first.duration_since(opened)
    );
    server.log_line("--header-timeout", Duration::from_secs(2));

    // The server is still healthy.
    let reply = signed_exchange(&server, &key, "GET", "/after", "");
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn default_header_timeout_is_10_seconds_in_help() {
    let out = tessera(&["serve", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    let option = |flag: &str| {
        let start = help
            .find(&format!("{flag} <"))
            .unwrap_or_else(|| panic!("no {flag} in:\n{help}"));
        let rest = &help[start..];
        let end = rest[2..].find("\n  -").map_or(rest.len(), |i| i + 2);
        rest[..end].to_owned()
    };
    for (flag, default) in [
        ("--header-timeout", "[default: 10]"),
        ("--body-timeout", "[default: 30]"),
        ("--max-header-bytes", "[default: 16384]"),
        ("--max-headers", "[default: 100]"),
        ("--max-connections", "[default: 1024]"),
        ("--body-limit", "[default: 1048576]"),
        ("--scheme", "[default: http]"),
    ] {
        let text = option(flag);
        assert!(text.contains(default), "{flag}: {text}");
    }
    assert!(option("--fixed-authority").contains("--authority"));
    assert!(help.contains("about:blank"), "{help}");
}

#[test]
fn a_stalled_body_gets_408_after_the_body_timeout() {
    let dir = temp_dir("body");
    let key = keygen(&dir, "carol", "read,write");
    let server = Server::start(&[&key], &dir, &["--body-timeout", "2"]);
    let body = "b".repeat(100);
    let fields = sign(&key, "POST", &format!("{}/upload", server.url), Some(&body));
    let mut raw = head("POST", "/upload", &server.addr.to_string(), &fields, 100);
    raw.extend_from_slice(&body.as_bytes()[..10]);

    let mut stream = TcpStream::connect(server.addr).unwrap();
    let started = Instant::now();
    stream.write_all(&raw).unwrap();
    let reply = read_reply(&mut stream).expect("an answer");
    let elapsed = started.elapsed();
    assert_http_problem(&reply, 408, "--body-timeout");
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}"
    );
    server.log_line("/upload -> 408", Duration::from_secs(2));

    // Other requests are served meanwhile and afterwards.
    let reply = signed_exchange(&server, &key, "POST", "/upload", &body);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["path"], "/upload");
}

#[test]
fn fixed_authority_and_https_scheme_accept_requests_signed_for_the_public_url() {
    let dir = temp_dir("fixed");
    let key = keygen(&dir, "dave", "read");
    let send = |extra: &[&str], public: &str| {
        let server = Server::start(&[&key], &dir, extra);
        let fields = sign(&key, "GET", &format!("{public}/v1/items?x=1"), None);
        // Host is the loopback address, not the signed authority.
        let raw = head("GET", "/v1/items?x=1", &server.addr.to_string(), &fields, 0);
        exchange(server.addr, &raw)
    };

    let reply = send(
        &["--scheme", "https", "--fixed-authority", "api.example.com"],
        "https://api.example.com",
    );
    assert_eq!(reply.status, 200, "{}", text(&reply.body));
    assert_eq!(reply.json()["path"], "/v1/items");
    assert_eq!(reply.json()["query"], "x=1");

    // The scheme reaches the verifier: under https port 443 is the default
    // and drops out of the authority, under the default http it stays.
    let reply = send(
        &[
            "--scheme",
            "https",
            "--fixed-authority",
            "api.example.com:443",
        ],
        "https://api.example.com",
    );
    assert_eq!(reply.status, 200, "{}", text(&reply.body));
    let reply = send(
        &["--fixed-authority", "api.example.com:443"],
        "https://api.example.com",
    );
    assert_eq!(reply.status, 401, "{}", text(&reply.body));
    assert_eq!(reply.json()["code"], "bad_signature");

    // --authority and --fixed-authority together: a usage error from clap.
    let keys = keys_file(&[&key], &dir);
    let out = tessera(&[
        "serve",
        "--keys",
        keys.to_str().unwrap(),
        "--authority",
        "a.example",
        "--fixed-authority",
        "b.example",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("tessera: error: "), "{err}");
    assert!(
        err.contains("--fixed-authority") && err.contains("cannot be used with"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn bodies_over_the_body_limit_get_413_body_too_large() {
    let dir = temp_dir("limit");
    let key = keygen(&dir, "erin", "read,write");
    let server = Server::start(&[&key], &dir, &["--body-limit", "1000"]);
    let reply = signed_exchange(&server, &key, "POST", "/big", &"c".repeat(2000));
    assert_eq!(reply.status, 413, "{}", text(&reply.body));
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let json = reply.json();
    assert_eq!(json["code"], "body_too_large", "{json}");
    assert_eq!(json["type"], "urn:tessera:error:body_too_large", "{json}");
    // The access log names the code of every refusal, not only of a 401.
    server.log_line("/big -> 413 body_too_large", Duration::from_secs(2));
    let reply = signed_exchange(&server, &key, "POST", "/fits", &"c".repeat(1000));
    assert_eq!(reply.status, 200, "{}", text(&reply.body));
}

#[test]
fn bad_limit_values_are_one_line_usage_errors() {
    let dir = temp_dir("usage");
    let key = keygen(&dir, "frank", "read");
    let keys = keys_file(&[&key], &dir);
    let keys = keys.to_str().unwrap();
    for (extra, needle) in [
        (&["--scheme", "ftp"][..], "--scheme"),
        (&["--header-timeout", "0"][..], "--header-timeout"),
        (&["--body-timeout", "soon"][..], "--body-timeout"),
        (&["--max-header-bytes", "10"][..], "--max-header-bytes"),
        (&["--max-headers", "100000"][..], "--max-headers"),
        (&["--max-connections", "0"][..], "--max-connections"),
        (&["--body-limit", "1MB"][..], "--body-limit"),
        (&["--fixed-authority", "bad host"][..], "authority"),
    ] {
        let mut args = vec!["serve", "--keys", keys];
        args.extend_from_slice(extra);
        let out = tessera(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("tessera: error: "), "{err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    }
}

/// Spec §11.2 step 5 and RFC 9112 §3.2 through `tessera serve`: a second,
/// forged Host line is refused (400), as the tower layer and `tessera verify`
/// refuse it; a lowercase method is signed and verified as sent.
#[test]
fn several_host_lines_are_refused_and_methods_keep_their_case() {
    let dir = temp_dir("hosts");
    let key = keygen(&dir, "hana", "read,write");
    let server = Server::start(&[&key], &dir, &[]);
    let host = server.addr.to_string();
    let url = format!("{}/v1/x", server.url);

    let fields = sign(&key, "GET", &url, None);
    let mut raw = head("GET", "/v1/x", &host, &fields, 0);
    let forged = "Host: evil.example\r\n";
    let at = raw.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    raw.splice(at..at, forged.bytes());
    let reply = exchange(server.addr, &raw);
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.json()["code"], "invalid_field_value");
    server.log_line(
        "GET /v1/x -> 400 invalid_field_value",
        Duration::from_secs(2),
    );

    // The same request with one Host line passes (its nonce was not used).
    let reply = exchange(server.addr, &head("GET", "/v1/x", &host, &fields, 0));
    assert_eq!(reply.status, 200, "{reply:?}");

    let fields = sign(&key, "get", &url, None);
    let reply = exchange(server.addr, &head("get", "/v1/x", &host, &fields, 0));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["method"], "get");
}
