//! End-to-end tests of the `tessera` binary: every command run as a real process.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

mod support;
use support::{
    cli_signed_get, cli_signed_get_with, keygen, keys_file, raw_get, raw_get_reply, temp_dir,
    tessera, text, Key, Server, BIN,
};

fn tessera_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("TESSERA_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn curl_available() -> bool {
    Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a `sign --curl` line with sh; returns (HTTP status, JSON body).
fn run_curl(line: &str) -> (u16, Value) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{line} -w '\\n%{{http_code}}'"))
        .output()
        .unwrap();
    assert!(out.status.success(), "curl failed: {}", stderr(&out));
    let text = stdout(&out);
    let (body, status) = text.rsplit_once('\n').unwrap();
    (
        status.trim().parse().unwrap(),
        serde_json::from_str(body).unwrap(),
    )
}

#[test]
fn demo_exits_zero_and_prints_every_scenario() {
    demo_with(&["demo"]);
}

/// The same scenarios with the keys in the SQL key store (a temporary
/// SQLite file, deleted afterwards).
#[test]
fn demo_against_a_temporary_sqlite_key_database() {
    let text = demo_with(&["demo", "--sqlite"]);
    let db = text
        .split("keys in a temporary SQLite database (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("the demo does not name its database:\n{text}"));
    assert!(db.ends_with("keys.db"), "{db}");
    assert!(!std::path::Path::new(db).exists(), "{db} outlived the demo");
}

fn demo_with(args: &[&str]) -> String {
    let started = Instant::now();
    let out = tessera(args);
    let elapsed = started.elapsed();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for (label, expected) in [
        ("signed GET", "200 ok"),
        ("tampered path", "401 bad_signature"),
        ("tampered query", "401 bad_signature"),
        ("tampered body", "401 digest_mismatch"),
        ("replayed request", "401 replayed"),
        ("stale timestamp", "401 clock_skew"),
        ("future timestamp", "401 clock_skew"),
        ("clock skew recovered", "200 ok"),
        ("read-only key, write", "403 insufficient_scope"),
        ("revoked key", "401 key_revoked"),
        ("unknown key", "401 unknown_key"),
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no line for {label}:\n{text}"));
        assert!(line.starts_with("[ok] "), "{line}");
        assert!(line.contains(&format!("-> {expected} ")), "{line}");
    }
    // Not a terminal: plain ASCII, no colour.
    assert!(text.is_ascii(), "{text}");
    assert!(!text.contains("[FAIL]"));
    assert!(text.contains("outcomes as expected"));
    assert!(elapsed < Duration::from_secs(20), "demo took {elapsed:?}");
    text
}

/// A reader that stops early (`tessera demo | head -1`, here a pipe closed
/// before anything is written) ends the command quietly with success, not
/// with a panic message and exit status 101.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let mut child = Command::new(BIN)
        .args(["demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn keygen_text_and_json_parse() {
    let out = tessera(&[
        "keygen",
        "--user",
        "alice",
        "--scopes",
        "read,write",
        "--ttl",
        "30d",
    ]);
    assert!(out.status.success());
    let text = stdout(&out);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert!(field("key_id").starts_with("m1."));
    let secret = field("secret_hex");
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(field("user"), "alice");
    assert_eq!(field("scopes"), "read,write");
    let not_after: u64 = field("not_after")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(not_after.abs_diff(now() + 30 * 86_400) < 60);

    let out = tessera(&["keygen", "--user", "bob", "--json"]);
    let json: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let object = json.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["key_id", "not_after", "scopes", "secret_hex", "user"]
    );
    assert_eq!(json["user"], "bob");
    assert_eq!(json["scopes"], serde_json::json!([]));
    assert!(json["not_after"].is_null());
    // Two runs never give the same key.
    let again: Value =
        serde_json::from_str(stdout(&tessera(&["keygen", "--json"])).trim()).unwrap();
    assert_ne!(again["key_id"], json["key_id"]);
    assert_ne!(again["secret_hex"], json["secret_hex"]);
}

#[test]
fn sign_curl_is_accepted_by_serve_then_replayed() {
    if !curl_available() {
        eprintln!("SKIPPED sign_curl_is_accepted_by_serve_then_replayed: curl is not installed");
        return;
    }
    let dir = temp_dir("curl");
    let writer = keygen(&dir, "alice", "read,write");
    let reader = keygen(&dir, "bob", "read");
    let server = Server::start(&[&writer, &reader], &dir, &[]);
    let body = dir.join("order.json");
    std::fs::write(&body, b"{\"qty\": 1, \"note\": \"it's\"}\n").unwrap();
    let url = format!("{}/v1/orders/it's?b=2&a=%20x&a=1", server.url);
    let data = format!("@{}", body.display());
    let sign = |key: &Key, extra: &[&str]| {
        let mut args = vec![
            "sign",
            "POST",
            url.as_str(),
            "-H",
            "Content-Type: application/json",
            "--cover",
            "content-type",
            "--data",
            data.as_str(),
            "--key-id",
            key.id.as_str(),
            "--secret-file",
            key.secret_file.to_str().unwrap(),
            "--curl",
        ];
        args.extend_from_slice(extra);
        let out = tessera(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let line = stdout(&out).trim_end().to_owned();
        assert!(line.starts_with("curl "), "{line}");
        assert!(line.contains("--data-binary "), "{line}");
        line
    };

    let line = sign(&writer, &[]);
    let (status, json) = run_curl(&line);
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["key_id"], writer.id.as_str());
    assert_eq!(json["user"], "alice");
    assert_eq!(json["scopes"], serde_json::json!(["read", "write"]));
    assert_eq!(json["method"], "POST");
    assert_eq!(json["path"], "/v1/orders/it's");
    assert_eq!(json["query"], "b=2&a=%20x&a=1");
    let digest = Command::new("sha256sum").arg(&body).output();
    if let Ok(d) = digest {
        let hex = stdout(&d);
        assert_eq!(json["body_sha256"], hex.split(' ').next().unwrap());
    }

    // The same bytes again.
    let (status, json) = run_curl(&line);
    assert_eq!(
        (status, json["code"].as_str()),
        (401, Some("replayed")),
        "{json}"
    );

    // A read-only key may not write.
    let (status, json) = run_curl(&sign(&reader, &[]));
    assert_eq!(
        (status, json["code"].as_str()),
        (403, Some("insufficient_scope"))
    );

    // An old signature is outside the window.
    let old = (now() - 1000).to_string();
    let (status, json) = run_curl(&sign(&writer, &["--created", &old]));
    assert_eq!((status, json["code"].as_str()), (401, Some("clock_skew")));
}

/// What curl would not send as signed: an empty covered header is written
/// `-H 'Name;'` (curl drops `Name:`), the caller's own signature fields are
/// left out (the signed ones replace them), and an authority curl rewrites
/// is refused.
#[test]
fn sign_curl_sends_empty_headers_and_replaces_signature_fields() {
    if !curl_available() {
        eprintln!("SKIPPED sign_curl_sends_empty_headers_and_replaces_signature_fields: curl is not installed");
        return;
    }
    let dir = temp_dir("curl-fields");
    let key = keygen(&dir, "dora", "read,write");
    let server = Server::start(&[&key], &dir, &[]);
    let url = format!("{}/v1/empty", server.url);
    let sign = |url: &str, extra: &[&str]| {
        let mut args = vec![
            "sign",
            "POST",
            url,
            "--data",
            "{}",
            "--key-id",
            key.id.as_str(),
            "--secret-file",
            key.secret_file.to_str().unwrap(),
            "--curl",
        ];
        args.extend_from_slice(extra);
        tessera(&args)
    };
    let out = sign(
        &url,
        &[
            "-H",
            "X-Empty:",
            "-H",
            "Accept:  ",
            "--cover",
            "x-empty",
            "--cover",
            "accept",
            "-H",
            "Content-Digest: sha-256=:AAAA:",
            "-H",
            "Signature: other=:AAAA:",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out).trim_end().to_owned();
    assert!(line.contains("-H 'X-Empty;'"), "{line}");
    assert!(!line.contains("AAAA"), "{line}");
    let (status, json) = run_curl(&line);
    assert_eq!(status, 200, "{json}");

    let zero_padded = url.replace(
        &format!(":{}", server.addr.port()),
        &format!(":0{}", server.addr.port()),
    );
    for bad in [zero_padded, url.replace("127.0.0.1", "127.0.0.%31")] {
        let out = sign(&bad, &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = stderr(&out);
        assert!(err.contains("--curl") && err.contains("authority"), "{err}");
        // Without --curl the headers are printed: another client may send the authority as written.
        let mut args = vec!["sign", "GET", bad.as_str(), "--key-id", key.id.as_str()];
        args.extend_from_slice(&["--secret-file", key.secret_file.to_str().unwrap()]);
        assert!(tessera(&args).status.success(), "{bad}");
    }

    // curl (or any client) would send the caller's Host line, which the
    // server puts in the base instead of the URL's authority: refused, and
    // named, with or without --curl.
    let out = sign(&url, &["-H", "Host: api.example.com"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("authority_mismatch") && err.contains("Host header names `api.example.com`"),
        "{err}"
    );
    let mut args = vec!["sign", "GET", url.as_str(), "--key-id", key.id.as_str()];
    args.extend_from_slice(&["--secret-file", key.secret_file.to_str().unwrap()]);
    args.extend_from_slice(&["-H", "Host: api.example.com"]);
    let out = tessera(&args);
    assert_eq!(out.status.code(), Some(2), "without --curl too");
    assert!(
        stderr(&out).contains("Host header names `api.example.com`"),
        "{}",
        stderr(&out)
    );
    // One that agrees (case and the default port aside) is sent and verifies.
    let agreeing = format!("Host: {}", server.addr);
    let out = sign(&url, &["-H", agreeing.as_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, json) = run_curl(stdout(&out).trim_end());
    assert_eq!(status, 200, "{json}");
}

#[test]
fn serve_clock_offset_and_debug_base() {
    if !curl_available() {
        eprintln!("SKIPPED serve_clock_offset_and_debug_base: curl is not installed");
        return;
    }
    let dir = temp_dir("offset");
    let key = keygen(&dir, "carol", "read");
    let server = Server::start(&[&key], &dir, &["--clock-offset", "-1000", "--debug-base"]);
    let signed = |created: u64, url: &str| {
        let out = tessera(&[
            "sign",
            "GET",
            url,
            "--key-id",
            &key.id,
            "--secret-file",
            key.secret_file.to_str().unwrap(),
            "--created",
            &created.to_string(),
            "--curl",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim_end().to_owned()
    };
    let url = format!("{}/x", server.url);
    let (status, json) = run_curl(&signed(now(), &url));
    assert_eq!((status, json["code"].as_str()), (401, Some("clock_skew")));
    let (status, _) = run_curl(&signed(now() - 1000, &url));
    assert_eq!(status, 200);

    // A request sent to another path than signed: the server reports its base,
    // which equals `tessera base` for the request as received.
    let created = now() - 1000;
    let line = signed(created, &url)
        .replace("/x'", "/y'")
        .replace("/x ", "/y ");
    let line = if line.ends_with("/x") {
        format!("{}/y", line.trim_end_matches("/x"))
    } else {
        line
    };
    let (status, json) = run_curl(&line);
    assert_eq!(
        (status, json["code"].as_str()),
        (401, Some("bad_signature")),
        "{json}"
    );
    let server_base = json["signature_base"].as_str().unwrap();
    let nonce = server_base
        .split("nonce=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    let out = tessera(&[
        "base",
        "GET",
        &format!("{}/y", server.url),
        "--key-id",
        &key.id,
        "--created",
        &created.to_string(),
        "--nonce",
        nonce,
    ]);
    assert_eq!(stdout(&out).trim_end(), server_base);
    let hash = tessera(&[
        "base",
        "GET",
        &format!("{}/y", server.url),
        "--key-id",
        &key.id,
        "--created",
        &created.to_string(),
        "--nonce",
        nonce,
        "--sha256",
    ]);
    assert_eq!(stdout(&hash).trim(), json["base_sha256"].as_str().unwrap());
}

/// Signs a fixed request and returns its raw HTTP/1.1 bytes.
fn captured_request(key: &Key, created: u64, path_and_query: &str) -> Vec<u8> {
    let body = r#"{"qty":1}"#;
    let out = tessera(&[
        "sign",
        "POST",
        &format!("https://api.example.com{path_and_query}"),
        "-H",
        "Content-Type: application/json",
        "--cover",
        "content-type",
        "--data",
        body,
        "--key-id",
        &key.id,
        "--secret-file",
        key.secret_file.to_str().unwrap(),
        "--created",
        &created.to_string(),
        "--nonce",
        "AAAAAAAAAAAAAAAAAAAAAA",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut raw = format!(
        "POST {path_and_query} HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for line in stdout(&out).lines() {
        raw.push_str(line);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw.into_bytes()
}

#[test]
fn verify_gives_the_right_verdicts() {
    let dir = temp_dir("verify");
    let key = keygen(&dir, "dave", "read");
    let created = 1_700_000_000_u64;
    let raw = captured_request(&key, created, "/v1/orders?dry_run=1");
    let file = dir.join("req.http");
    std::fs::write(&file, &raw).unwrap();
    let verify = |request: &str, extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--request",
            request,
            "--secret-file",
            key.secret_file.to_str().unwrap(),
            "--key-id",
            key.id.as_str(),
            "--authority",
            "api.example.com",
        ];
        args.extend_from_slice(extra);
        tessera(&args)
    };

    let ok = verify(file.to_str().unwrap(), &["--now", "1700000060"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert_eq!(
        stdout(&ok).trim(),
        format!("ok keyid={} created={created}", key.id)
    );

    // From standard input, with the secret from the environment.
    let secret = std::fs::read_to_string(&key.secret_file).unwrap();
    let out = Command::new(BIN)
        .args([
            "verify",
            "--request",
            "-",
            "--key-id",
            &key.id,
            "--authority",
            "api.example.com",
            "--now",
            "1700000060",
        ])
        .env("TESSERA_SECRET", secret.trim())
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Tampered query: bad_signature, with the base the verifier computed.
    let tampered = String::from_utf8(raw.clone())
        .unwrap()
        .replace("dry_run=1", "dry_run=0");
    let tampered_file = dir.join("tampered.http");
    std::fs::write(&tampered_file, tampered).unwrap();
    let bad = verify(tampered_file.to_str().unwrap(), &["--now", "1700000060"]);
    assert_eq!(bad.status.code(), Some(1));
    let text = stdout(&bad);
    assert!(text.starts_with("rejected: bad_signature: "), "{text}");
    assert!(text.contains("\"@query\": ?dry_run=0\n"), "{text}");
    let base = tessera(&[
        "base",
        "POST",
        "https://api.example.com/v1/orders?dry_run=0",
        "-H",
        "Content-Type: application/json",
        "--cover",
        "content-type",
        "--data",
        r#"{"qty":1}"#,
        "--key-id",
        &key.id,
        "--created",
        &created.to_string(),
        "--nonce",
        "AAAAAAAAAAAAAAAAAAAAAA",
    ]);
    assert!(
        text.ends_with(&stdout(&base)),
        "{text}\n---\n{}",
        stdout(&base)
    );

    // Tampered body.
    let body_tampered = String::from_utf8(raw.clone())
        .unwrap()
        .replace("{\"qty\":1}", "{\"qty\":9}");
    std::fs::write(&tampered_file, body_tampered).unwrap();
    let out = verify(tampered_file.to_str().unwrap(), &["--now", "1700000060"]);
    assert!(
        stdout(&out).starts_with("rejected: digest_mismatch: "),
        "{}",
        stdout(&out)
    );

    // Old: the real clock is far past 2023.
    let old = verify(file.to_str().unwrap(), &[]);
    assert_eq!(old.status.code(), Some(1));
    assert!(
        stdout(&old).starts_with("rejected: clock_skew: "),
        "{}",
        stdout(&old)
    );

    // Wrong authority, wrong key id.
    let out = tessera(&[
        "verify",
        "--request",
        file.to_str().unwrap(),
        "--secret-file",
        key.secret_file.to_str().unwrap(),
        "--key-id",
        &key.id,
        "--authority",
        "evil.example",
        "--now",
        "1700000060",
    ]);
    assert!(stdout(&out).starts_with("rejected: authority_mismatch: "));
    let out = tessera(&[
        "verify",
        "--request",
        file.to_str().unwrap(),
        "--secret-file",
        key.secret_file.to_str().unwrap(),
        "--key-id",
        "someone-else",
        "--authority",
        "api.example.com",
        "--now",
        "1700000060",
    ]);
    assert!(stdout(&out).starts_with("rejected: unknown_key: "));
}

#[test]
fn base_matches_the_base_sign_shows() {
    let dir = temp_dir("base");
    let key = keygen(&dir, "erin", "read");
    let request = [
        "PUT",
        "https://API.example.com:443/v1/a%2Fb/../c?x=1&x=2&empty=",
        "-H",
        "X-Request-Id: 42",
        "-H",
        "Accept: text/plain",
        "--cover",
        "x-request-id",
        "--data",
        "hello",
        "--key-id",
        key.id.as_str(),
        "--created",
        "1700000000",
        "--nonce",
        "BBBBBBBBBBBBBBBBBBBBBB",
    ];
    let mut sign_args = vec!["sign"];
    sign_args.extend_from_slice(&request);
    sign_args.extend_from_slice(&[
        "--secret-file",
        key.secret_file.to_str().unwrap(),
        "--show-base",
    ]);
    let signed = tessera(&sign_args);
    assert!(signed.status.success(), "{}", stderr(&signed));
    let headers = stdout(&signed);
    let names: Vec<&str> = headers
        .lines()
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(names, ["Content-Digest", "Signature-Input", "Signature"]);

    let mut base_args = vec!["base"];
    base_args.extend_from_slice(&request);
    let base = tessera(&base_args);
    assert!(base.status.success());
    assert_eq!(stdout(&base), stderr(&signed));
    let text = stdout(&base);
    assert!(text.starts_with("\"@method\": PUT\n\"@authority\": api.example.com\n\"@path\": /v1/a%2Fb/../c\n\"@query\": ?x=1&x=2&empty=\n"), "{text}");
    assert!(text.contains("\"x-request-id\": 42\n"));

    // A sign command line works for base unchanged (the secret is ignored).
    let mut reused = vec!["base"];
    reused.extend_from_slice(&request);
    reused.extend_from_slice(&["--secret-file", key.secret_file.to_str().unwrap()]);
    assert_eq!(stdout(&tessera(&reused)), stdout(&base));
}

#[test]
fn secret_sources_agree() {
    let dir = temp_dir("secrets");
    let key = keygen(&dir, "frank", "read");
    let common = [
        "sign",
        "GET",
        "https://h.example/",
        "--key-id",
        key.id.as_str(),
        "--created",
        "1700000000",
        "--nonce",
        "CCCCCCCCCCCCCCCCCCCCCC",
    ];
    let mut from_file = common.to_vec();
    from_file.extend_from_slice(&["--secret-file", key.secret_file.to_str().unwrap()]);
    let a = tessera(&from_file);
    let secret = std::fs::read(&key.secret_file).unwrap();
    let mut from_stdin = common.to_vec();
    from_stdin.extend_from_slice(&["--secret-file", "-"]);
    let b = tessera_stdin(&from_stdin, &secret);
    let c = Command::new(BIN)
        .args(common)
        .env("TESSERA_SECRET", String::from_utf8(secret).unwrap())
        .output()
        .unwrap();
    assert!(a.status.success() && b.status.success() && c.status.success());
    assert_eq!(stdout(&a), stdout(&b));
    assert_eq!(stdout(&a), stdout(&c));
}

/// Asserts a failure with one `tessera: error:` line on stderr.
fn assert_one_line_error(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("tessera: error: "), "{err}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    assert!(out.stdout.is_empty(), "{}", stdout(out));
}

#[test]
fn bad_arguments_and_unreadable_files_fail_with_one_line() {
    let dir = temp_dir("errors");
    let key = keygen(&dir, "gina", "read");
    let secret = key.secret_file.to_str().unwrap();
    let missing = dir.join("missing").display().to_string();
    // `tessera sign METHOD URL --key-id k --secret-file <secret> EXTRA...`
    let signing = |method: &'static str, url: &'static str, extra: &[&'static str]| {
        let mut args = vec![
            "sign",
            method,
            url,
            "--key-id",
            "k",
            "--secret-file",
            secret,
        ];
        args.extend_from_slice(extra);
        args
    };
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["sign", "GET", "https://h/", "--key-id", "k", "--bogus"],
            2,
            "--bogus",
        ),
        (vec!["sign", "GET", "https://h/"], 2, "--key-id"),
        (vec!["frobnicate"], 2, "frobnicate"),
        (
            vec!["sign", "GET", "https://h/", "--key-id", "k"],
            2,
            "TESSERA_SECRET",
        ),
        (
            vec![
                "sign",
                "GET",
                "https://h/",
                "--key-id",
                "k",
                "--secret-file",
                &missing,
            ],
            1,
            "cannot read secret file",
        ),
        (signing("GET", "ftp://h/", &[]), 2, "http://"),
        (
            signing("GET", "https://h/", &["-H", "nocolon"]),
            2,
            "Name: value",
        ),
        (
            signing("GET", "https://h/", &["--cover", "host"]),
            2,
            "host",
        ),
        (
            signing("GET", "https://h/", &["--cover", "x-a"]),
            2,
            "missing_component: --cover x-a: the request has no such header",
        ),
        // Spec §10's order: an absent covered header (step 6) is reported
        // only once the options (step 2) and the request (step 3) pass.
        (
            signing("GET", "ftp://h/", &["--cover", "x-a"]),
            2,
            "invalid_field_value: only http:// and https:// URLs",
        ),
        (
            signing("G(T", "https://h/", &["--cover", "x-a"]),
            2,
            "invalid_field_value: the method is not a valid token",
        ),
        (
            signing("GET", "https://h/", &["--nonce", "short", "--cover", "x-a"]),
            2,
            "invalid_parameter: invalid --nonce",
        ),
        (
            signing(
                "GET",
                "ftp://h/",
                &["--created", "200", "--expires", "100", "--cover", "x-a"],
            ),
            2,
            "invalid_parameter: expires must be after created",
        ),
        (
            vec![
                "sign",
                "GET",
                "ftp://h/",
                "--key-id",
                "bad id",
                "--secret-file",
                secret,
                "--cover",
                "x-a",
            ],
            2,
            "invalid_parameter: invalid --key-id",
        ),
        (
            signing("GET", "https://h/", &["-H", "x-a: a\u{7f}b"]),
            2,
            "invalid_field_value: the value of header 'x-a' contains a control character",
        ),
        (
            signing("POST", "https://h/", &["--data", "@/nonexistent/body"]),
            1,
            "cannot read body file",
        ),
        (
            signing("GET", "https://h/", &["--created", "soon"]),
            2,
            "soon",
        ),
        (vec!["keygen", "--ttl", "3y"], 2, "3y"),
        (
            vec![
                "verify",
                "--request",
                &missing,
                "--secret-file",
                secret,
                "--key-id",
                "k",
                "--authority",
                "h",
            ],
            1,
            "cannot read request file",
        ),
        (
            vec!["serve", "--keys", &missing],
            1,
            "cannot read keys file",
        ),
    ];
    for (args, code, needle) in cases {
        let out = tessera(&args);
        assert_one_line_error(&out, code, needle);
    }

    // A secret that is not hex, a keys file that is not JSON, a request that is not HTTP.
    let bad_secret = dir.join("bad.hex");
    std::fs::write(&bad_secret, "not hex").unwrap();
    let out = tessera(&[
        "sign",
        "GET",
        "https://h/",
        "--key-id",
        "k",
        "--secret-file",
        bad_secret.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, 1, "secret");
    let out = tessera(&["serve", "--keys", bad_secret.to_str().unwrap()]);
    assert_one_line_error(&out, 1, "keys file");
    let out = tessera(&[
        "verify",
        "--request",
        bad_secret.to_str().unwrap(),
        "--secret-file",
        secret,
        "--key-id",
        "k",
        "--authority",
        "h",
    ]);
    // A request that does not parse is a rejection with a named code and its
    // own exit status, not a usage or runtime error.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("rejected: malformed_request: "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn secrets_cannot_be_given_on_the_command_line() {
    for flag in ["--secret", "--secret-hex", "--key", "--password"] {
        let out = tessera(&[
            "sign",
            "GET",
            "https://h/",
            "--key-id",
            "k",
            flag,
            "00112233445566778899aabbccddeeff",
        ]);
        assert_one_line_error(&out, 2, flag);
        let out = tessera(&[
            "verify",
            "--request",
            "-",
            "--key-id",
            "k",
            "--authority",
            "h",
            flag,
            "00",
        ]);
        assert_eq!(out.status.code(), Some(2));
    }
    for command in ["sign", "verify", "base"] {
        let help = stdout(&tessera(&[command, "--help"]));
        let secret_flags: Vec<&str> = help
            .split_whitespace()
            .filter(|w| w.starts_with("--secret"))
            .collect();
        assert!(
            secret_flags.iter().all(|f| f.starts_with("--secret-file")),
            "{command}: {secret_flags:?}"
        );
    }
}

#[test]
fn every_command_has_help() {
    for command in [
        "demo", "keygen", "sign", "base", "verify", "serve", "keys", "gateway",
    ] {
        let out = tessera(&[command, "--help"]);
        assert!(out.status.success(), "{command}");
        assert!(stdout(&out).contains("Usage: tessera"), "{command}");
    }
    let out = tessera(&["--help"]);
    assert!(out.status.success());
    let out = tessera(&["--version"]);
    assert!(stdout(&out).starts_with("tessera "));
}

/// A restarted `tessera serve` has an empty nonce store: every request the
/// process before it accepted is refused with `store_reset` (503) when sent
/// again, none accepted, while a request signed after the restart passes.
/// Half of them are dated 2 s ahead, as by a client whose clock runs fast:
/// the most step 4 accepts, and still refused after the restart.
#[test]
fn a_restarted_server_refuses_every_request_accepted_before_the_restart() {
    let dir = temp_dir("restart");
    let key = keygen(&dir, "alice", "read");
    let first = Server::start(&[&key], &dir, &[]);
    let addr = first.addr;
    let url = format!("http://{addr}/v1/me");
    let sign = || cli_signed_get(&url, &key.id, &key.secret_file);
    let sign_ahead = || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let created = (now + tessera_core::MAX_AHEAD_SECS).to_string();
        cli_signed_get_with(&url, &key.id, &key.secret_file, &["--created", &created])
    };
    let accepted: Vec<String> = (0..20)
        .map(|i| if i % 2 == 0 { sign() } else { sign_ahead() })
        .collect();
    for headers in &accepted {
        let (status, body) = raw_get(addr, "/v1/me", headers);
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(raw_get(addr, "/v1/me", &accepted[0]).0, 401, "replayed");
    drop(first);

    // The same address, a new process.
    let addr_arg = addr.to_string();
    let second = Server::start_at(&[&key], &dir, &addr_arg, &[]);
    assert_eq!(second.addr, addr);
    for headers in &accepted {
        let (status, body) = raw_get(addr, "/v1/me", headers);
        assert_eq!(status, 503, "a request accepted before the restart: {body}");
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["code"], "store_reset", "{body}");
    }
    let (status, body) = raw_get(addr, "/v1/me", &sign());
    assert_eq!(status, 200, "signed after the restart: {body}");
}

/// `tessera serve --rate-limit` answers a key past its budget with 429
/// rate_limited, a usable Retry-After and the RateLimit fields; a bad rate
/// is a usage error that says what to write.
#[test]
fn serve_rate_limit_answers_429_with_retry_after() {
    let dir = temp_dir("ratelimit");
    let key = keygen(&dir, "alice", "read");
    let server = Server::start(&[&key], &dir, &["--rate-limit", "2/m"]);
    let addr = server.addr;
    let url = format!("http://{addr}/v1/me");
    let sign = || cli_signed_get(&url, &key.id, &key.secret_file);
    for _ in 0..2 {
        let (status, body) = raw_get(addr, "/v1/me", &sign());
        assert_eq!(status, 200, "{body}");
    }
    let reply = raw_get_reply(addr, "/v1/me", &sign());
    assert!(reply.starts_with("HTTP/1.1 429"), "{reply}");
    let head = reply.to_ascii_lowercase();
    assert!(head.contains("\r\nretry-after: 30\r\n"), "{reply}");
    assert!(
        head.contains("\r\nratelimit-policy: \"default\";q=2;w=60\r\n"),
        "{reply}"
    );
    assert!(reply.contains("\"code\":\"rate_limited\""), "{reply}");

    let out = tessera(&["serve", "--keys", "/nonexistent", "--rate-limit", "10/x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("10/s"), "{}", stderr(&out));
}

/// `tessera serve --keys FILE` follows the file: a key revoked there is
/// refused within a second, with no restart.
#[test]
fn serve_follows_the_keys_file() {
    if !curl_available() {
        eprintln!("SKIPPED serve_follows_the_keys_file: curl is not installed");
        return;
    }
    let dir = temp_dir("follow");
    let mut key = keygen(&dir, "erin", "read");
    let server = Server::start(&[&key], &dir, &[]);
    let call = |key: &Key| {
        let out = tessera(&[
            "sign",
            "GET",
            &format!("{}/v1/me", server.url),
            "--key-id",
            &key.id,
            "--secret-file",
            key.secret_file.to_str().unwrap(),
            "--curl",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        run_curl(stdout(&out).trim_end())
    };
    assert_eq!(call(&key).0, 200);
    key.json["revoked"] = serde_json::Value::Bool(true);
    keys_file(&[&key], &dir);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let (status, json) = call(&key);
        if status == 401 {
            assert_eq!(json["code"], "key_revoked", "{json}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {status}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("the keys file changed"), "{log}");
}

/// A secret given where the path of its file belongs is refused without
/// being echoed: `sign --secret-file HEX`, `serve --keys HEX`.
#[test]
fn a_secret_given_as_a_path_is_not_echoed() {
    let secret = "27b722d490c7a93a2fa25bf0f764c18cc8093711efc79732d5429f9101a7eedb";
    for args in [
        vec![
            "sign",
            "GET",
            "https://api.example.com/v1/me",
            "--key-id",
            "k1",
            "--secret-file",
            secret,
        ],
        vec!["serve", "--keys", secret],
    ] {
        let out = tessera(&args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(!stderr.contains(&secret[..16]), "{args:?}: {stderr}");
        assert!(stderr.contains("not shown"), "{args:?}: {stderr}");
    }
}
