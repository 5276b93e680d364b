//! The keep-alive idle timeout (`[limits] idle_timeout_secs`), through a
//! real gateway process: an idle keep-alive connection is closed once the
//! timeout has passed since its last answer, while a connection in use
//! (requests closer together than the timeout, or a request whose upstream
//! answer takes longer than it) stays open.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

/// The idle timeout the tests configure, seconds.
const IDLE_SECS: u64 = 1;

fn start(dir: &Path) -> (Gateway, Upstream, Key) {
    let alice = Key::random("alice-idle");
    let keys = keys_file(dir, &[(&alice, "alice", &["read"], false)]);
    let upstream = Upstream::start(dir);
    let config = dir.join("idle.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\n[keys]\nfile = \"{}\"\n[limits]\nidle_timeout_secs = {IDLE_SECS}\n",
            upstream.url(),
            keys.display()
        ),
    )
    .unwrap();
    let gateway = Gateway::start(dir, &["--config", config.to_str().unwrap()]);
    (gateway, upstream, alice)
}

/// Sends a signed keep-alive GET on `stream` and reads its answer, which
/// must be 200.
fn ask(stream: &mut TcpStream, key: &Key, addr: SocketAddr, path: &str) -> Reply {
    stream.write_all(&keep_alive_get(key, addr, path)).unwrap();
    let reply = read_reply(stream);
    assert_eq!(
        reply.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply
}

/// Waits (up to `limit`) for the server to close the connection; returns
/// how long that took and any bytes it sent first.
fn wait_for_close(stream: &mut TcpStream, limit: Duration) -> (Option<Duration>, Vec<u8>) {
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (Some(start.elapsed()), received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                return (Some(start.elapsed()), received)
            }
            // The read timeout: still open.
            Err(_) => return (None, received),
        }
        if start.elapsed() >= limit {
            return (None, received);
        }
    }
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let dir = temp_dir("idle");
    let (gateway, upstream, alice) = start(&dir);
    let mut stream = TcpStream::connect(gateway.addr).unwrap();
    // The gateway's idle timer cannot start before the request is sent.
    let asked = Instant::now();
    let reply = ask(&mut stream, &alice, gateway.addr, "/v1/first");
    assert_ne!(
        reply.header("connection").map(str::to_ascii_lowercase),
        Some("close".to_owned()),
        "the answer itself must keep the connection open"
    );

    let waiting = Instant::now();
    let (closed_after, sent) = wait_for_close(&mut stream, Duration::from_secs(IDLE_SECS * 5));
    let closed_after = closed_after.unwrap_or_else(|| {
        panic!(
            "the idle connection was still open after {} s",
            IDLE_SECS * 5
        )
    });
    // The lower bound from the request (a stalled test thread after the
    // answer would shorten `closed_after`, not the gateway's timer).
    let since_asked = (waiting - asked) + closed_after;
    assert!(
        since_asked >= Duration::from_millis(IDLE_SECS * 1000 - 200),
        "closed {since_asked:?} after the request, before the idle timeout of {IDLE_SECS} s"
    );
    assert!(
        closed_after <= Duration::from_millis(IDLE_SECS * 1000 + 1500),
        "closed only after {closed_after:?}"
    );
    assert!(
        sent.is_empty(),
        "an idle close sends nothing: {:?}",
        String::from_utf8_lossy(&sent)
    );
    assert_eq!(upstream.paths(), ["/v1/first"]);
}

#[test]
fn a_connection_in_use_is_not_closed_by_the_idle_timeout() {
    let dir = temp_dir("busy");
    let (gateway, upstream, alice) = start(&dir);
    let mut stream = TcpStream::connect(gateway.addr).unwrap();
    let started = Instant::now();
    // Requests closer together than the idle timeout, for three times as
    // long as it: every one is answered on the same connection.
    let mut sent = Vec::new();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(IDLE_SECS * 3) {
        let path = format!("/v1/busy/{i}");
        ask(&mut stream, &alice, gateway.addr, &path);
        sent.push(path);
        // A quarter of the timeout: the rest is margin for a loaded machine.
        std::thread::sleep(Duration::from_millis(IDLE_SECS * 1000 / 4));
        i += 1;
    }
    assert!(sent.len() >= 5, "{sent:?}");

    // A request whose answer takes twice the idle timeout: the connection
    // waits for it, it is not idle.
    let slow = format!("/slow?secs={}", IDLE_SECS * 2);
    let asked = Instant::now();
    ask(&mut stream, &alice, gateway.addr, &slow);
    assert!(asked.elapsed() >= Duration::from_secs(IDLE_SECS * 2));
    sent.push(slow);
    // Still usable right after the slow answer.
    ask(&mut stream, &alice, gateway.addr, "/v1/after-slow");
    sent.push("/v1/after-slow".to_owned());
    assert_eq!(upstream.paths(), sent);

    // Then left alone, it is closed like any idle connection.
    let (closed_after, _) = wait_for_close(&mut stream, Duration::from_secs(IDLE_SECS * 5));
    assert!(closed_after.is_some(), "never closed once idle");
}
