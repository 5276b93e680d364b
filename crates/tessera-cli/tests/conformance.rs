//! The command line agrees with the spec and with every other signer and
//! verifier: methods and URLs are signed as written, uppercase component names
//! are refused, values may start with `-`, obs-text is accepted where a field
//! value may hold it, and `tessera verify` follows the verification order.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

mod support;
use support::{run, temp_dir, tessera, text};

const SECRET_HEX: &str = "42678cb1d6fb20456a8fb4d9fe23486d92b7dc01264b7095badf04294e7398bd";
const CREATED: &str = "1700000000";

fn dir() -> PathBuf {
    temp_dir("conformance")
}

fn secret_file(dir: &Path) -> String {
    let path = dir.join("secret.hex");
    std::fs::write(&path, SECRET_HEX).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `tessera base` for a request, with fixed created and nonce.
fn base(method: &str, url: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "base",
        method,
        url,
        "--key-id",
        "k1",
        "--created",
        CREATED,
        "--nonce",
        "AAAAAAAAAAAAAAAAAAAAAA",
    ];
    args.extend_from_slice(extra);
    tessera(&args)
}

#[test]
fn methods_are_signed_exactly_as_written() {
    for method in ["get", "PaTcH", "GET"] {
        let out = base(method, "https://api.example.com/a", &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with(&format!("\"@method\": {method}\n")),
            "{}",
            text(&out.stdout)
        );
    }
    let out = base("GE T", "https://api.example.com/a", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid_field_value"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn urls_are_signed_verbatim() {
    let url = "https://api.ex%61mple.com/a/\"q\"/<b>/c\\d/^e/`f`/{g}/h|i?x=<y>&z=\"w\"#frag";
    let out = base("GET", url, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("\"@authority\": api.ex%61mple.com\n"),
        "{shown}"
    );
    assert!(
        shown.contains("\"@path\": /a/\"q\"/<b>/c\\d/^e/`f`/{g}/h|i\n"),
        "{shown}"
    );
    assert!(shown.contains("\"@query\": ?x=<y>&z=\"w\"\n"), "{shown}");

    for (url, needle) in [
        ("https://api.example.com/caf\u{e9}", "not ASCII"),
        ("https://api.example.com:65536/", "65535"),
        ("https://api.example.com/a b", "space"),
        ("ftp://api.example.com/", "http"),
    ] {
        let out = base("GET", url, &[]);
        assert_eq!(out.status.code(), Some(2), "{url}");
        let err = text(&out.stderr);
        assert!(
            err.contains("invalid_field_value") && err.contains(needle),
            "{url}: {err}"
        );
    }
}

#[test]
fn uppercase_component_names_are_refused_not_lowercased() {
    let out = base(
        "GET",
        "https://api.example.com/a",
        &["-H", "Content-Type: text/plain", "--cover", "Content-Type"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("lowercase") && err.contains("\"content-type\""),
        "{err}"
    );
}

#[test]
fn values_may_start_with_a_hyphen() {
    let dir = dir();
    let secret = secret_file(&dir);
    let out = tessera(&[
        "sign",
        "GET",
        "https://api.example.com/a",
        "--key-id",
        "-k1",
        "--nonce",
        "-3kqAAAAAAAAAAAAAAAAAA",
        "--created",
        CREATED,
        "--secret-file",
        &secret,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let headers = text(&out.stdout);
    assert!(
        headers.contains("keyid=\"-k1\";nonce=\"-3kqAAAAAAAAAAAAAAAAAA\""),
        "{headers}"
    );
}

#[test]
fn obs_text_header_values() {
    use std::os::unix::ffi::OsStrExt;
    let dir = dir();
    let secret = secret_file(&dir);
    let header = std::ffi::OsStr::from_bytes(b"X-Name: Jos\xe9");
    let words = [
        "sign",
        "GET",
        "https://api.example.com/a",
        "--key-id",
        "k1",
        "--secret-file",
        &secret,
        "--curl",
        "-H",
    ];
    let common: Vec<&std::ffi::OsStr> = words
        .iter()
        .map(std::ffi::OsStr::new)
        .chain([header])
        .collect();
    // Not covered: accepted, and passed on to curl byte for byte.
    let out = run(&common);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.windows(4).any(|w| w == b"Jos\xe9"));
    // Covered: the signer refuses, as a verifier would.
    let mut covered = common.clone();
    covered.extend([
        std::ffi::OsStr::new("--cover"),
        std::ffi::OsStr::new("x-name"),
    ]);
    let out = run(&covered);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid_field_value"),
        "{}",
        text(&out.stderr)
    );
}

/// A signed POST as raw HTTP/1.1, with `target` on the request line and
/// these Host lines.
fn capture(secret: &str, url: &str, target: &str, hosts: &[&str]) -> Vec<u8> {
    let out = tessera(&[
        "sign",
        "POST",
        url,
        "--data",
        "{}",
        "--key-id",
        "k1",
        "--secret-file",
        secret,
        "--created",
        CREATED,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut raw = format!("POST {target} HTTP/1.1\r\n");
    for host in hosts {
        raw.push_str(&format!("Host: {host}\r\n"));
    }
    raw.push_str("Content-Length: 2\r\n");
    for line in text(&out.stdout).lines() {
        raw.push_str(line);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n{}");
    raw.into_bytes()
}

fn verify(dir: &Path, secret: &str, raw: &[u8], extra: &[&str]) -> Output {
    let file = dir.join(format!(
        "req-{}.http",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::write(&file, raw).unwrap();
    let mut args = vec![
        "verify",
        "--request",
        file.to_str().unwrap(),
        "--secret-file",
        secret,
    ];
    if !extra.contains(&"--now") {
        args.extend_from_slice(&["--now", "1700000010"]);
    }
    args.extend_from_slice(extra);
    tessera(&args)
}

fn verdict(out: &Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        text(&out.stdout).lines().next().unwrap_or("").to_owned(),
    )
}

#[test]
fn verify_follows_the_spec_order_and_host_rules() {
    let dir = dir();
    let secret = secret_file(&dir);
    let url = "https://api.example.com/v1/orders";
    let served = [
        "--authority",
        "other.example",
        "--authority",
        "api.example.com",
    ];

    // The key id comes from Signature-Input; --authority repeats.
    let ok = verify(
        &dir,
        &secret,
        &capture(&secret, url, "/v1/orders", &["api.example.com"]),
        &served,
    );
    assert_eq!(
        verdict(&ok),
        (Some(0), format!("ok keyid=k1 created={CREATED}"))
    );

    let cases: [(&str, &[&str], &str); 5] = [
        ("/v1/orders", &[], "rejected: authority_mismatch"),
        (
            "/v1/orders",
            &["api.example.com", "evil.example"],
            "rejected: invalid_field_value",
        ),
        (
            "/v1/orders",
            &["api.example.com:65536"],
            "rejected: invalid_field_value",
        ),
        ("*", &["api.example.com"], "rejected: invalid_field_value"),
        (
            "https://api.example.com/v1/orders",
            &["evil.example"],
            "ok keyid=k1",
        ),
    ];
    for (target, hosts, expected) in cases {
        let out = verify(
            &dir,
            &secret,
            &capture(&secret, url, target, hosts),
            &served,
        );
        let (code, line) = verdict(&out);
        assert!(line.starts_with(expected), "{target} {hosts:?}: {line}");
        assert_eq!(
            code,
            Some(if expected.starts_with("ok") { 0 } else { 1 }),
            "{line}"
        );
    }

    // Time (step 4) before the target and authority (step 5).
    let raw = capture(&secret, url, "v1/orders", &[]);
    let late = ["--authority", "api.example.com", "--now", "1700001000"];
    let out = verify(&dir, &secret, &raw, &late);
    assert!(
        verdict(&out).1.starts_with("rejected: clock_skew"),
        "{}",
        verdict(&out).1
    );
    let out = verify(&dir, &secret, &raw, &["--authority", "api.example.com"]);
    assert!(
        verdict(&out).1.starts_with("rejected: authority_mismatch"),
        "{}",
        verdict(&out).1
    );
    let raw = capture(&secret, url, "v1/orders", &["api.example.com"]);
    let out = verify(&dir, &secret, &raw, &["--authority", "api.example.com"]);
    assert!(
        verdict(&out).1.starts_with("rejected: invalid_field_value"),
        "{}",
        verdict(&out).1
    );

    // Fixed authority: Host is not read at all.
    let raw = capture(&secret, url, "/v1/orders", &["10.0.0.7:8080"]);
    let out = verify(
        &dir,
        &secret,
        &raw,
        &["--fixed-authority", "api.example.com"],
    );
    assert_eq!(verdict(&out).0, Some(0), "{}", verdict(&out).1);

    // --show-base prints the verifier's base to standard output.
    let raw = capture(&secret, url, "/v1/orders", &["api.example.com"]);
    let out = verify(
        &dir,
        &secret,
        &raw,
        &["--authority", "api.example.com", "--show-base"],
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("\"@path\": /v1/orders\n"), "{stdout}");
    assert!(stdout.contains("\"@signature-params\": "), "{stdout}");

    // A request that does not parse: a named code and exit status 3.
    let out = verify(
        &dir,
        &secret,
        b"POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n{}",
        &served,
    );
    assert_eq!(verdict(&out), (Some(3), verdict(&out).1));
    assert!(verdict(&out).1.starts_with("rejected: malformed_request: "));
    // A file that holds more than the request: the verdict would say
    // nothing of the rest. Empty lines after it are fine.
    let good = capture(&secret, url, "/v1/orders", &["api.example.com"]);
    for (after, code) in [
        (&b"\r\n\n"[..], Some(0)),
        (b"POST /admin HTTP/1.1\r\n\r\n", Some(3)),
        (b"x", Some(3)),
    ] {
        let out = verify(&dir, &secret, &[&good[..], after].concat(), &served);
        assert_eq!(verdict(&out).0, code, "{after:?}: {}", verdict(&out).1);
    }
    // A body cut short: digest_mismatch once the MAC verifies (step 7), as
    // a server answers a body it cannot read whole; an earlier step's code
    // comes first.
    let cut = &good[..good.len() - 1];
    let out = verify(&dir, &secret, cut, &served);
    assert_eq!(verdict(&out).0, Some(1));
    assert!(
        verdict(&out).1.starts_with("rejected: digest_mismatch: "),
        "{}",
        verdict(&out).1
    );
    assert!(
        text(&out.stdout).contains(
            "note: the capture ends after 1 of the 2 body bytes Content-Length announces"
        ),
        "{}",
        text(&out.stdout)
    );
    let out = verify(&dir, &secret, cut, &["--authority", "other.example"]);
    assert!(
        verdict(&out).1.starts_with("rejected: authority_mismatch"),
        "{}",
        verdict(&out).1
    );
    // A wrong --key-id is named.
    let raw = capture(&secret, url, "/v1/orders", &["api.example.com"]);
    let out = verify(
        &dir,
        &secret,
        &raw,
        &["--authority", "api.example.com", "--key-id", "k2"],
    );
    assert!(
        verdict(&out).1.starts_with("rejected: unknown_key"),
        "{}",
        verdict(&out).1
    );
}

/// Every received vector (`neg-`, `acc-`) that HTTP/1.1 can carry, written
/// as the raw request a capture holds and checked with `tessera verify`:
/// the offline verifier gives each the spec's verdict, as a server does.
/// Left out, each counted: requests HTTP/1.1 cannot carry (SP in the
/// method or target, CR or LF in a field), those received over HTTP/2, and
/// those that need a nonce store's memory point (`store_since`). A field
/// holding another control octet may be refused as a malformed head
/// instead (spec §8.6: HTTP servers refuse it before any verifier).
#[test]
fn every_received_vector_replayed_as_a_capture_gets_its_verdict() {
    use base64::Engine as _;
    let dir = dir();
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&vectors)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    names.sort();
    let octets = |s: &str| -> Vec<u8> {
        s.chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap())
            .collect()
    };
    let (mut checked, mut left_out) = (0, Vec::new());
    let mut wrong = Vec::new();
    for path in names {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !(name.starts_with("neg-") || name.starts_with("acc-")) {
            continue;
        }
        let case: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path.join("case.json")).unwrap())
                .unwrap();
        let request = &case["request"];
        let verifier = &case["verifier"];
        let method = octets(request["method"].as_str().unwrap());
        let target = octets(request["target_uri"].as_str().unwrap());
        let fields: Vec<(Vec<u8>, Vec<u8>)> = request["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    octets(f[0].as_str().unwrap()),
                    octets(f[1].as_str().unwrap()),
                )
            })
            .collect();
        let body = base64::engine::general_purpose::STANDARD
            .decode(request["body_base64"].as_str().unwrap())
            .unwrap();
        let breaks_the_line = |b: &u8| matches!(b, b' ' | b'\r' | b'\n');
        if request["http_version"].as_str() == Some("2")
            || !verifier["store_since"].is_null()
            || method.iter().any(breaks_the_line)
            || target.iter().any(breaks_the_line)
            || fields.iter().any(|(n, v)| {
                n.iter().any(breaks_the_line) || v.iter().any(|b| matches!(b, b'\r' | b'\n'))
            })
        {
            left_out.push(name);
            continue;
        }
        let mut raw = method.clone();
        raw.push(b' ');
        raw.extend_from_slice(&target);
        raw.extend_from_slice(b" HTTP/1.1\r\n");
        for (n, v) in &fields {
            raw.extend_from_slice(n);
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(v);
            raw.extend_from_slice(b"\r\n");
        }
        let has_length = fields
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(b"content-length"));
        if !body.is_empty() && !has_length {
            raw.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(&body);
        let secret = dir.join(format!("{name}.key"));
        std::fs::write(&secret, case["key"]["secret_hex"].as_str().unwrap()).unwrap();
        let now = verifier["now"].as_u64().unwrap().to_string();
        let window = verifier["window"].as_u64().unwrap().to_string();
        let scheme = verifier["scheme"].as_str().unwrap().to_owned();
        let key_id = case["key"]["id"].as_str().unwrap().to_owned();
        let mut args = vec![
            "--now", &now, "--window", &window, "--scheme", &scheme, "--key-id", &key_id,
        ];
        let fixed = verifier["fixed_authority"].as_str().map(str::to_owned);
        let authorities: Vec<String> = verifier["authorities"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        if let Some(fixed) = &fixed {
            args.extend_from_slice(&["--fixed-authority", fixed]);
        }
        for authority in &authorities {
            args.extend_from_slice(&["--authority", authority]);
        }
        let out = verify(&dir, secret.to_str().unwrap(), &raw, &args);
        let (status, line) = verdict(&out);
        let expected = case["expected"]["error"].as_str();
        let agrees = match expected {
            Some(code) => {
                status == Some(1) && line.starts_with(&format!("rejected: {code}: "))
                    || (status == Some(3)
                        && line.starts_with("rejected: malformed_request: ")
                        && fields
                            .iter()
                            .any(|(_, v)| v.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)))
            }
            None => status == Some(0) && line.starts_with("ok "),
        };
        if !agrees {
            wrong.push(format!(
                "{name}: expected {expected:?}, got {status:?} {line}"
            ));
        }
        checked += 1;
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The vectors HTTP/1.1 cannot carry stay few: a new one is looked at.
    assert!(
        checked >= 150 && left_out.len() <= 12,
        "{checked} checked, left out: {left_out:?}"
    );
}
