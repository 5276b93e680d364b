//! Clients that send but do not read, through a real gateway process: an
//! HTTP/1.1 connection whose answers the client never takes is closed once
//! no response byte has gone out for the body timeout, and the admin
//! listener serves a bounded number of connections, so neither can hold the
//! gateway's connection slots or file descriptors for ever.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

fn start(dir: &Path) -> (Gateway, Upstream, Key) {
    start_with(dir, 2)
}

fn start_with(dir: &Path, body_timeout_secs: u64) -> (Gateway, Upstream, Key) {
    let alice = Key::random("alice-slow");
    let keys = keys_file(dir, &[(&alice, "alice", &["read"], false)]);
    let upstream = Upstream::start(dir);
    let config = dir.join("slow.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\n[keys]\nfile = \"{}\"\n[limits]\nbody_timeout_secs = {body_timeout_secs}\n",
            upstream.url(),
            keys.display()
        ),
    )
    .unwrap();
    let gateway = Gateway::start(
        dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--admin",
            "127.0.0.1:0",
        ],
    );
    (gateway, upstream, alice)
}

/// The `gateway_connections` gauge.
fn open_connections(admin: SocketAddr) -> Option<f64> {
    let metrics = String::from_utf8(admin_get(admin, "/metrics").body).ok()?;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("gateway_connections "))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_client_that_never_reads_its_answers_is_cut_off() {
    let dir = temp_dir("slow-reader");
    let (gateway, _upstream, alice) = start(&dir);
    let admin = gateway.admin.unwrap();
    // Many pipelined unsigned requests, each answered 401 with a problem
    // body: tens of megabytes of answers, more than the socket buffers
    // hold, none of them read.
    let mut stream = TcpStream::connect(gateway.addr).unwrap();
    let request = format!("GET /v1/x HTTP/1.1\r\nhost: {}\r\n\r\n", gateway.addr);
    let flood = request.repeat(50_000).into_bytes();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        // Ends with an error once the gateway closes the connection.
        let _ = writer.write_all(&flood);
    });
    let started = Instant::now();
    // The connection stays open while answers go out, then the writes
    // stall; two seconds without progress and it is closed.
    let closed = eventually(Duration::from_secs(40), || {
        open_connections(admin) == Some(0.0)
    });
    assert!(
        closed,
        "the connection of a client that reads nothing is still open after {:?}",
        started.elapsed()
    );
    // Its socket ends: what was sent before the close, then EOF or a reset.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let ended = loop {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break true,
            Ok(_) => {}
        }
    };
    assert!(ended);
    sender.join().unwrap();
    // Others are served as before.
    let reply = send_signed(&gateway, &alice, "GET", "/v1/after", b"", &[]);
    assert_eq!(reply.status, 200);
}

#[test]
fn the_admin_listener_serves_a_bounded_number_of_connections() {
    let dir = temp_dir("admin-cap");
    let (gateway, _upstream, alice) = start(&dir);
    let admin = gateway.admin.unwrap();
    // tessera_gateway::admin::MAX_ADMIN_CONNECTIONS idle connections are
    // held (until the admin header timeout); those beyond are closed at once.
    let held: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(admin).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let closed_at_once = held.iter().filter(|s| is_closed(s)).count();
    assert!(
        closed_at_once >= 80 - 64,
        "{closed_at_once} of 80 admin connections closed at once"
    );
    // The main listener is untouched.
    let reply = send_signed(&gateway, &alice, "GET", "/v1/during", b"", &[]);
    assert_eq!(reply.status, 200);
    drop(held);
    // Once they are gone, the admin endpoints answer again.
    assert!(eventually(Duration::from_secs(15), || {
        open_connections(admin).is_some()
    }));
}

/// Bodies are charged to the gateway's body budget (256 MiB) by the bytes
/// that arrived, not by the length declared: three hundred connections
/// that each announce a 1 MiB body and send 1 KiB of it hold 300 KiB, and
/// honest requests with bodies still pass while they wait.
#[test]
fn bodies_announced_but_not_sent_hold_no_room() {
    let dir = temp_dir("announced");
    let (gateway, _upstream, alice) = start_with(&dir, 15);
    let authority = gateway.addr.to_string();
    let request = signed(
        &alice,
        "POST",
        &authority,
        "/v1/upload",
        &vec![b'x'; 1 << 20],
        &[],
    );
    let head_end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let held: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut stream = TcpStream::connect(gateway.addr).unwrap();
            stream.write_all(&request[..head_end + 1024]).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        held.iter().all(|s| !is_closed(s)),
        "the stalled uploads wait"
    );
    let reply = send_signed(&gateway, &alice, "POST", "/v1/honest", b"hello", &[]);
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

/// Whether the peer has closed `stream` (EOF or a reset), without waiting.
fn is_closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    stream.set_nonblocking(true).unwrap();
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}
