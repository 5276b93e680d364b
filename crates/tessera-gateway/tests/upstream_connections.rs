//! The upstream connections, through a real gateway process in front of
//! the Python test upstream (which reports the port each request came
//! from): a client connection keeps one upstream connection for all its
//! requests, two client connections do not share one, and an upstream that
//! closes its end (after a `Connection: close` answer, or after an answer
//! without a body) costs the next request nothing but a new connection.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use support::*;

fn start(dir: &Path) -> (Gateway, Upstream, Key) {
    let alice = Key::random("alice-upstream");
    let keys = keys_file(dir, &[(&alice, "alice", &["read"], false)]);
    let upstream = Upstream::start(dir);
    let gateway = Gateway::start(
        dir,
        &[
            "--upstream",
            &upstream.url(),
            "--keys",
            keys.to_str().unwrap(),
        ],
    );
    (gateway, upstream, alice)
}

/// Sends a signed keep-alive GET on `stream`; returns the answer's status
/// and, for a 200, the upstream connection's port that the echo reports.
fn ask(stream: &mut TcpStream, key: &Key, addr: SocketAddr, path: &str) -> (u16, Option<u64>) {
    use std::io::Write;
    stream.write_all(&keep_alive_get(key, addr, path)).unwrap();
    let reply = read_reply(stream);
    let port = (reply.status == 200).then(|| reply.json()["peer_port"].as_u64().unwrap());
    (reply.status, port)
}

#[test]
fn a_client_connection_keeps_one_upstream_connection() {
    let dir = temp_dir("upstream-keep");
    let (gateway, _upstream, alice) = start(&dir);
    let mut first = TcpStream::connect(gateway.addr).unwrap();
    let ports: Vec<u64> = (0..5)
        .map(|i| {
            let (status, port) = ask(&mut first, &alice, gateway.addr, &format!("/keep/{i}"));
            assert_eq!(status, 200);
            port.unwrap()
        })
        .collect();
    assert!(
        ports.iter().all(|p| *p == ports[0]),
        "one client connection, one upstream connection: {ports:?}"
    );
    let mut second = TcpStream::connect(gateway.addr).unwrap();
    let (status, other) = ask(&mut second, &alice, gateway.addr, "/keep/other");
    assert_eq!(status, 200);
    assert_ne!(
        other.unwrap(),
        ports[0],
        "a second client connection has its own upstream connection"
    );
    // The first one still works on its own connection.
    let (status, again) = ask(&mut first, &alice, gateway.addr, "/keep/again");
    assert_eq!((status, again.unwrap()), (200, ports[0]));
}

#[test]
fn an_upstream_that_closes_is_reconnected_for_the_next_request() {
    let dir = temp_dir("upstream-close");
    let (gateway, upstream, alice) = start(&dir);
    let mut stream = TcpStream::connect(gateway.addr).unwrap();
    // Each /close answer closes the upstream connection behind it.
    let mut ports = Vec::new();
    for _ in 0..3 {
        let (status, port) = ask(&mut stream, &alice, gateway.addr, "/close");
        assert_eq!(status, 200, "{}", gateway.stderr());
        ports.push(port.unwrap());
    }
    ports.dedup();
    assert_eq!(ports.len(), 3, "a new upstream connection each time");
    // After an answer that has no body by rule (a 204) the upstream
    // connection is closed (late bytes from the upstream must not answer
    // the next request); the one opened next is kept as usual.
    let (status, _) = ask(&mut stream, &alice, gateway.addr, "/empty");
    assert_eq!(status, 204);
    let (status, after_empty) = ask(&mut stream, &alice, gateway.addr, "/after-empty");
    assert_eq!(status, 200);
    let (status, next) = ask(&mut stream, &alice, gateway.addr, "/next");
    assert_eq!((status, next), (200, after_empty));
    // Every request reached the upstream exactly once.
    let paths = upstream.paths();
    assert_eq!(
        paths,
        [
            "/close",
            "/close",
            "/close",
            "/empty",
            "/after-empty",
            "/next"
        ],
        "{}",
        gateway.stderr()
    );
}
