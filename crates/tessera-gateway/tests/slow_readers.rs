//! Clients that send but do not read, through a real gateway process: an
//! HTTP/1.1 connection whose answers the client never takes is closed once
//! no response byte has gone out for the body timeout, one that takes them
//! under the minimum send rate once its writes have waited a body timeout
//! (and one that reads at a moderate speed is not), and the admin
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
    start_with(dir, "body_timeout_secs = 2\n")
}

/// A gateway (with an admin listener) whose `[limits]` table is `limits`.
fn start_with(dir: &Path, limits: &str) -> (Gateway, Upstream, Key) {
    let alice = Key::random("alice-slow");
    let keys = keys_file(dir, &[(&alice, "alice", &["read"], false)]);
    let upstream = Upstream::start(dir);
    let config = dir.join("slow.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\n[keys]\nfile = \"{}\"\n[limits]\n{limits}",
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

/// Asks for a 64 MiB answer and reads it steadily, `chunk` bytes every
/// 50 ms (far slower than the gateway can send), for at most `limit`.
/// Returns after how long the gateway closed the connection (as its
/// connection gauge says, within half a second), if it did.
fn read_steadily(gateway: &Gateway, key: &Key, chunk: usize, limit: Duration) -> Option<Duration> {
    let admin = gateway.admin.unwrap();
    let authority = gateway.addr.to_string();
    let mut stream = TcpStream::connect(gateway.addr).unwrap();
    stream
        .write_all(&signed(key, "GET", &authority, "/big?mib=64", b"", &[]))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; chunk];
    let mut received = 0usize;
    let mut rounds = 0u32;
    while started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(50));
        rounds += 1;
        // The gateway's side: once it has closed, what the client still
        // reads is what the socket buffers held.
        if rounds.is_multiple_of(10) && open_connections(admin) == Some(0.0) {
            return Some(started.elapsed());
        }
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(n) => received += n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    assert!(
        received > 100 * 1024,
        "the answer was flowing: {received} bytes"
    );
    assert_eq!(
        open_connections(admin),
        Some(1.0),
        "the reader's connection is open"
    );
    None
}

#[test]
fn a_client_that_reads_steadily_but_too_slowly_is_cut_off() {
    // 16 KiB every 50 ms (about 320 kB/s): something is taken every 50 ms,
    // so the stall limit (the 10 s body timeout) alone never ends the
    // connection.
    let dir = temp_dir("slow-steady");
    let (gateway, _upstream, alice) =
        start_with(&dir, "body_timeout_secs = 10\nmin_send_bytes_per_sec = 0\n");
    assert_eq!(
        read_steadily(&gateway, &alice, 16 * 1024, Duration::from_secs(13)),
        None,
        "with no minimum rate, a reader that keeps taking bytes keeps its connection"
    );
    // Under a minimum of 5 MB/s it is closed once the gateway's writes have
    // waited for it 10 s in all, with the reason in the log and the metric.
    let dir = temp_dir("slow-steady-min");
    let (gateway, _upstream, alice) = start_with(
        &dir,
        "body_timeout_secs = 10\nmin_send_bytes_per_sec = 5000000\n",
    );
    let closed = read_steadily(&gateway, &alice, 16 * 1024, Duration::from_secs(40));
    eprintln!("closed after {closed:?}");
    assert!(
        closed.is_some_and(|after| (Duration::from_secs(9)..Duration::from_secs(25)).contains(&after)),
        "a reader under the minimum rate was closed after {closed:?}"
    );
    assert!(
        gateway
            .stderr()
            .contains("under the minimum of 5000000 bytes per second"),
        "the log says why: {}",
        gateway.stderr()
    );
    let metrics = String::from_utf8(admin_get(gateway.admin.unwrap(), "/metrics").body).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gateway_connections_closed_total{")
                && l.contains("reason=\"slow_reader\"")
                && l.contains("listener=\"main\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    // Others are served as before.
    let reply = send_signed(&gateway, &alice, "GET", "/v1/after", b"", &[]);
    assert_eq!(reply.status, 200);
}

/// A client reading at a moderate speed (about 40 kB/s, eighty times the
/// default minimum rate) keeps its connection: the gateway holds little
/// unsent in the kernel, so its waiting writes wake every few kilobytes
/// the client takes rather than once a multi-megabyte send buffer has
/// drained by a third (tens of seconds at this speed).
#[test]
fn a_client_reading_at_a_moderate_speed_keeps_its_connection() {
    let dir = temp_dir("moderate-reader");
    let (gateway, _upstream, alice) = start_with(&dir, "body_timeout_secs = 4\n");
    assert_eq!(
        read_steadily(&gateway, &alice, 2 * 1024, Duration::from_secs(14)),
        None,
        "{}",
        gateway.stderr()
    );
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
    let (gateway, _upstream, alice) = start_with(&dir, "body_timeout_secs = 15\n");
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

/// The `gateway_connections_refused_total` counter for `reason`.
fn refused_connections(admin: SocketAddr, reason: &str) -> f64 {
    let metrics = String::from_utf8(admin_get(admin, "/metrics").body).unwrap();
    let prefix = format!("gateway_connections_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A connection from `source` (a loopback address other than the
/// gateway's own, so that it counts as another client).
fn connect_from(source: std::net::IpAddr, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

/// Whether the gateway closes `stream` without answering (EOF or reset
/// within `wait`) rather than keeping it open.
fn closed_by_gateway(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn one_client_address_holds_at_most_its_share_of_connections() {
    let dir = temp_dir("per-client-cap");
    let (gateway, upstream, alice) = start_with(
        &dir,
        "max_connections = 64\nmax_connections_per_client = 4\nheader_timeout_secs = 60\nidle_timeout_secs = 60\n",
    );
    let admin = gateway.admin.unwrap();
    // Four idle connections from 127.0.0.1: the client's whole share.
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(gateway.addr).unwrap())
        .collect();
    assert!(
        eventually(Duration::from_secs(10), || open_connections(admin)
            == Some(4.0)),
        "the four connections are open: {:?}",
        open_connections(admin)
    );
    // A fifth from the same address is closed at once, unanswered.
    let mut fifth = TcpStream::connect(gateway.addr).unwrap();
    let _ = fifth.write_all(&signed(
        &alice,
        "GET",
        &gateway.addr.to_string(),
        "/v1/fifth",
        b"",
        &[],
    ));
    assert!(
        closed_by_gateway(&mut fifth, Duration::from_secs(10)),
        "a fifth connection from the same address must be closed"
    );
    assert_eq!(refused_connections(admin, "per_client_cap"), 1.0);
    // Another client address is served meanwhile.
    let other = "127.0.0.2".parse().unwrap();
    let mut stream = connect_from(other, gateway.addr);
    stream
        .write_all(&signed(
            &alice,
            "GET",
            &gateway.addr.to_string(),
            "/v1/other-client",
            b"",
            &[],
        ))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(read_reply(&mut stream).status, 200);
    drop(stream);
    // One of the four closes: its place comes back to the client.
    drop(held.pop());
    assert!(
        eventually(Duration::from_secs(10), || open_connections(admin)
            == Some(3.0)),
        "the closed connection is given back: {:?}",
        open_connections(admin)
    );
    let reply = send_signed(&gateway, &alice, "GET", "/v1/place-back", b"", &[]);
    assert_eq!(reply.status, 200);
    assert!(!upstream.paths().iter().any(|p| p.contains("fifth")));
}

/// The head of a serialized request: everything up to the blank line.
fn head_only(request: &[u8]) -> &[u8] {
    let end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a blank line")
        + 4;
    &request[..end]
}

#[test]
fn a_request_whose_mac_fails_is_refused_before_its_body_arrives() {
    let dir = temp_dir("mac-before-body");
    let (gateway, upstream, alice) = start_with(&dir, "body_timeout_secs = 20\n");
    let authority = gateway.addr.to_string();
    let body = vec![b'a'; 60_000];
    let url = format!("http://{authority}/v1/upload");
    // Signed, then moved to another path: the MAC no longer verifies. Only
    // the head is sent; the 60,000 announced bytes never come.
    let mut forged = signed_request(&alice, "POST", &url, &body, &[]);
    *forged.uri_mut() = format!("http://{authority}/v1/elsewhere").parse().unwrap();
    let forged = serialize(&forged, &authority);
    let mut stream = TcpStream::connect(gateway.addr).unwrap();
    stream.write_all(head_only(&forged)).unwrap();
    let started = Instant::now();
    let reply = read_reply(&mut stream);
    assert_eq!(
        reply.status,
        401,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["code"], "bad_signature");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered without waiting for the body"
    );
    // The honest request's head alone gets no answer: its body is awaited.
    let honest = serialize(
        &signed_request(&alice, "POST", &url, &body, &[]),
        &authority,
    );
    let mut stream = TcpStream::connect(gateway.addr).unwrap();
    stream.write_all(head_only(&honest)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        stream.read(&mut byte).is_err(),
        "no answer before the body arrives"
    );
    // Sent in full, it passes.
    let remaining = &honest[head_only(&honest).len()..];
    stream.write_all(remaining).unwrap();
    assert_eq!(read_reply(&mut stream).status, 200);
    assert!(!upstream.paths().iter().any(|p| p.contains("elsewhere")));
}

/// The gateway answers a forged upload as soon as its head is in, while
/// the client is still sending: the client must still get that answer (not
/// a reset from a close with unread bytes), whatever the body's size.
#[test]
fn a_forged_upload_still_gets_its_answer_while_it_is_being_sent() {
    let dir = temp_dir("forged-upload");
    let (gateway, _upstream, alice) = start_with(&dir, "body_timeout_secs = 20\n");
    let authority = gateway.addr.to_string();
    for size in [60_000usize, 900_000] {
        let body = vec![b'a'; size];
        let url = format!("http://{authority}/v1/upload");
        let mut forged = signed_request(&alice, "POST", &url, &body, &[]);
        *forged.uri_mut() = format!("http://{authority}/v1/elsewhere").parse().unwrap();
        let forged = serialize(&forged, &authority);
        for attempt in 0..5 {
            let mut stream = TcpStream::connect(gateway.addr).unwrap();
            let writer = {
                let mut stream = stream.try_clone().unwrap();
                let bytes = forged.clone();
                // The gateway may close before taking it all: errors here are expected.
                std::thread::spawn(move || drop(stream.write_all(&bytes)))
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut received = Vec::new();
            let mut buf = [0u8; 65536];
            let outcome = loop {
                match stream.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                    Err(e) => break Err(e),
                }
            };
            writer.join().unwrap();
            let reply = parse(&received);
            assert!(
                reply.as_ref().is_some_and(|r| r.status == 401),
                "{size} bytes, attempt {attempt}: {outcome:?}, got {:?}",
                String::from_utf8_lossy(&received[..received.len().min(200)])
            );
            assert_eq!(reply.unwrap().json()["code"], "bad_signature");
        }
    }
}

/// Bodies to public routes share a quarter of the body budget, and one
/// key's bodies a sixteenth, so that neither can keep other bodies out:
/// with 4 MiB bodies, sixteen stalled uploads to a public route fill the
/// public share (the seventeenth is answered 503 at once) and four of one
/// key fill its share (its fifth is 503), while another key's requests
/// with bodies still pass. A copy of one of the key's uploads in progress
/// is answered `replayed` at once, and a request that names the key
/// without its secret `bad_signature`: neither can spend its share.
#[test]
fn public_routes_and_one_key_hold_only_their_share_of_the_body_budget() {
    const LIMIT: usize = 4 << 20;
    let dir = temp_dir("shares");
    let alice = Key::random("alice-shares");
    let bob = Key::random("bob-shares");
    let keys = keys_file(
        &dir,
        &[
            (&alice, "alice", &["read"], false),
            (&bob, "bob", &["read"], false),
        ],
    );
    let upstream = Upstream::start(&dir);
    let config = dir.join("shares.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\nbody_limit = {LIMIT}\n[keys]\nfile = \"{}\"\n[[public]]\nmethod = \"POST\"\npath = \"/login\"\n[limits]\nbody_timeout_secs = 60\n",
            upstream.url(),
            keys.display()
        ),
    )
    .unwrap();
    let gateway = Gateway::start(
        &dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let admin = gateway.admin.expect("admin listener");
    let authority = gateway.addr.to_string();
    let body = vec![b'x'; LIMIT];
    let public = {
        let mut request =
            format!("POST /login HTTP/1.1\r\nhost: {authority}\r\ncontent-length: {LIMIT}\r\n\r\n")
                .into_bytes();
        request.extend_from_slice(&body);
        request
    };
    let upload = |key: &Key| signed(key, "POST", &authority, "/v1/upload", &body, &[]);
    // An upload that sends all of its body but the last byte, and waits.
    let stall = |request: &[u8]| {
        let mut stream = TcpStream::connect(gateway.addr).unwrap();
        stream.write_all(&request[..request.len() - 1]).unwrap();
        stream
    };
    // The first `sent` bytes of the body, then the answer, if one comes.
    let partial = |request: &[u8], sent: usize| {
        let head = request.len() - LIMIT;
        raw(
            gateway.addr,
            &request[..head + sent],
            Duration::from_secs(10),
        )
    };
    // Waits until the gateway holds `bytes` of bodies from `sender`.
    let holds = |sender: &str, bytes: usize| {
        assert!(
            eventually(Duration::from_secs(20), || {
                body_bytes_in_progress(admin, sender) == Some(bytes as f64)
            }),
            "{sender} bodies in progress: {:?}, expected {bytes}",
            body_bytes_in_progress(admin, sender)
        );
    };

    let public_held: Vec<TcpStream> = (0..PUBLIC_SHARE_BODIES).map(|_| stall(&public)).collect();
    holds("public", PUBLIC_SHARE_BODIES * LIMIT);
    let refused = partial(&public, 1 << 20).expect("answered at once");
    assert_busy(&refused, "public routes");
    assert_eq!(refused.header("retry-after"), Some("1"));

    let alice_uploads: Vec<Vec<u8>> = (0..KEY_SHARE_BODIES).map(|_| upload(&alice)).collect();
    let alice_held: Vec<TcpStream> = alice_uploads.iter().map(|r| stall(r)).collect();
    holds("key", KEY_SHARE_BODIES * LIMIT);
    let refused = partial(&upload(&alice), 1 << 10).expect("answered at once");
    assert_busy(&refused, "this key");
    // A copy of an upload in progress: the replay it is, at once.
    let copy = partial(&alice_uploads[0], 1 << 10).expect("answered at once");
    assert_eq!(copy.status, 401, "{}", String::from_utf8_lossy(&copy.body));
    assert_eq!(copy.json()["code"], "replayed");
    // Naming alice's key without her secret: refused at the MAC.
    let forged = partial(&upload(&Key::random("alice-shares")), 1 << 10).expect("an answer");
    assert_eq!(
        forged.status,
        401,
        "{}",
        String::from_utf8_lossy(&forged.body)
    );
    assert_eq!(forged.json()["code"], "bad_signature");

    // Another key's bodies still pass, large or small.
    for size in [5, 1 << 20] {
        let reply = send_signed(&gateway, &bob, "POST", "/v1/notes", &vec![b'b'; size], &[]);
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    assert!(
        public_held.iter().chain(&alice_held).all(|s| !is_closed(s)),
        "the stalled uploads still wait"
    );
    // Once alice's uploads are gone, so is her share's use.
    drop(alice_held);
    holds("key", 0);
    let reply = send_signed(&gateway, &alice, "POST", "/v1/notes", b"again", &[]);
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    drop(public_held);
    holds("public", 0);
}

/// The `gateway_request_body_bytes_in_progress` gauge for `sender`.
fn body_bytes_in_progress(admin: SocketAddr, sender: &str) -> Option<f64> {
    let metrics = String::from_utf8(admin_get(admin, "/metrics").body).ok()?;
    let prefix = format!("gateway_request_body_bytes_in_progress{{sender=\"{sender}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// `reply` is a 503 whose problem detail names `share`.
fn assert_busy(reply: &Reply, share: &str) {
    assert_eq!(
        reply.status,
        503,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let detail = reply.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains(share), "{detail}");
}

/// 4 MiB bodies that fill the public routes' share (a quarter of 256 MiB).
const PUBLIC_SHARE_BODIES: usize = 16;
/// 4 MiB bodies that fill one key's share (a sixteenth of 256 MiB).
const KEY_SHARE_BODIES: usize = 4;
