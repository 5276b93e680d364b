//! Server CPU time that `VerifySignatureLayer` adds per request, under load
//! over loopback.
//!
//! ```text
//! cargo run --release -p tessera-server --example layer_load -- [--requests 40000] [--seconds 15] [--rounds 5] [--connections 64] [--prefill 300000] [--rate 0] [--spin 1] [--only 0]
//! ```
//!
//! One server thread runs a tokio `current_thread` runtime with six axum
//! listeners on 127.0.0.1, one per mode:
//!
//! * `unsigned`: plain requests, no layer;
//! * `signed`: the same requests signed (Signature-Input, Signature,
//!   Content-Digest), no layer: the handler ignores the signature;
//! * `layer`: the same signed requests through `VerifySignatureLayer`
//!   (`MemoryKeyStore` of 64 keys, the default `MemoryNonceStore`
//!   pre-filled with 300,000 live nonces of 1,000 other keys, system clock;
//!   each layer mode has a verifier and stores of its own, and its store
//!   also keeps every nonce its runs record, about 40,000 more a round
//!   with the defaults);
//! * `floor`: the same signed requests through [`FloorLayer`], a layer
//!   written here that does only the work no verifying layer can skip and
//!   checks nothing: the same plumbing as `VerifySignatureLayer` (a boxed
//!   future per request, the inner service cloned and called after the
//!   body is read), the body read and hashed (SHA-256), one HMAC-SHA256
//!   from a pre-keyed state over 420 bytes (about a signature base: the
//!   same number of SHA-256 blocks), and an identity of the same size
//!   inserted into the request's extensions. `floor − signed` is what a
//!   layer costs here before it parses, looks up or checks anything, so
//!   `layer − floor` is the cost of tessera's checks themselves;
//! * `layer, around the router` and `floor, around the router`: the same
//!   two layers wrapping the whole `Router` (`Layer::layer(&layer, router)`,
//!   served with `into_make_service`) instead of each route through
//!   `Router::layer`. `Router::layer` wraps every route in a boxed, cloned
//!   service, so each request there pays for two more allocations and
//!   service clones than a layer around the router, which clones the
//!   router (one reference count) instead. (`Router::layer` also covers
//!   only the routes added before it is called; a layer around the router
//!   covers every route, whenever added.)
//!
//! `--only M` runs one mode alone, `--rounds` times (1 `unsigned`, 2
//! `signed`, 3 `layer`, 4 `floor`, 5 and 6 the same around the router), for
//! a profiler attached to the whole process
//! (`perf record`, then the `server` thread's samples): it prints each run
//! and the server thread's user and kernel time per request, from clock
//! ticks, and its context switches.
//!
//! `--prefill` sets how many live nonces of other keys the store starts
//! with. `--rate R` paces the client: each connection sends one request
//! every `connections / R` seconds (the connections staggered evenly), so
//! the server answers a fixed load of `R` requests per second instead of
//! as many as it can (the default, `0`): at saturation the layer's extra
//! time also changes how many requests each wake-up of the server finds,
//! which a fixed load keeps the same in every mode.
//!
//! `--spin 1` (the default) keeps the client's thread awake: a task of its
//! own yields in a loop, so the client polls its sockets instead of
//! sleeping in `epoll_wait`. A client that sleeps must be woken by each
//! response, and on loopback that wake-up (an interrupt to the other
//! processor, a VM exit on a virtual machine) runs on the server's thread,
//! inside the `write` of the response, at about 0.3 to 0.9 µs a request
//! here: it is charged to whichever mode leaves the client idle more often,
//! which is the slower server, and so it counts the load generator's
//! idleness as the layer's cost. A server's remote clients are woken by
//! their own machines. `--spin 0` measures with a sleeping client, as
//! before.
//!
//! The routes and handlers are the same in every mode: `GET /v1/orders?…`
//! answers `ok`, `POST /v1/orders` takes the body as `Bytes` and answers
//! `ok`. The client, on the main thread (its own `current_thread`
//! runtime), keeps `--connections` HTTP/1.1 keep-alive connections busy,
//! one request in flight on each, alternating GET and POST with a 1 KiB JSON
//! body; each connection signs with its own key, a fresh nonce and the
//! current time. Any answer other than 200 aborts the run.
//!
//! A run of one mode stops after `--requests` requests or `--seconds`
//! seconds, whichever comes first. The modes run in turn, `--rounds` times
//! (after one short warm-up run each), so a drift of the machine's speed
//! hits all of them alike. The server thread's CPU time (user + system, in
//! nanoseconds, from `/proc/self/task/<tid>/schedstat`) is read before and
//! after each run. Three tables follow: per mode, the median over rounds of
//! server CPU microseconds per request (and of requests per second); per
//! mode, that time split into user and kernel time from the thread's clock
//! ticks, summed over all rounds (coarse, but it tells the server's own
//! code from the kernel's work on its behalf: sockets, waking the client,
//! interrupts that land while it runs); and the differences between modes
//! (the layer's cost is `layer` − `signed`), each the median of per-round
//! differences with their quartiles (the machine's noise: half the rounds
//! fall between them).
//!
//! `scripts/layer-before-after` builds this benchmark a second time against
//! round 1's verifier and runs the two builds in turn, for a before/after
//! comparison on one machine.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::routing::get;
use axum::Router;
use axum::ServiceExt;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};
use tessera_core::{
    sign, BodyDigest, Component, KeyId, Nonce, RequestView, Scheme, SecretKey, SignOptions,
    SigningKey,
};
use tessera_server::{
    KeyMetadata, MemoryKeyStore, MemoryNonceStore, NonceRecord, VerifiedIdentity, Verifier,
    VerifySignatureLayer,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tower::ServiceExt as _;

const AUTHORITY: &str = "api.example.com";
const PATH: &str = "/v1/orders";
/// The GET query, without its `?`.
const QUERY: &str = "limit=50&cursor=abc%2Fdef";
const PREFILL: usize = 300_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unsigned,
    Signed,
    Layer,
    Floor,
    LayerAround,
    FloorAround,
}

impl Mode {
    const ALL: [Mode; 6] = [
        Mode::Unsigned,
        Mode::Signed,
        Mode::Layer,
        Mode::Floor,
        Mode::LayerAround,
        Mode::FloorAround,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::Unsigned => "unsigned, no layer",
            Mode::Signed => "signed, no layer",
            Mode::Layer => "signed, with layer (Router::layer)",
            Mode::Floor => "signed, floor layer (Router::layer)",
            Mode::LayerAround => "signed, with layer around the router",
            Mode::FloorAround => "signed, floor layer around the router",
        }
    }
}

struct Options {
    requests: usize,
    seconds: u64,
    rounds: usize,
    connections: usize,
    prefill: usize,
    rate: usize,
    spin: bool,
    only: usize,
}

fn options() -> Options {
    let mut o = Options {
        requests: 40_000,
        seconds: 15,
        rounds: 5,
        connections: 64,
        prefill: PREFILL,
        rate: 0,
        spin: true,
        only: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value: usize = args
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage(&arg));
        match arg.as_str() {
            "--requests" => o.requests = value.max(1),
            "--seconds" => o.seconds = (value as u64).max(1),
            "--rounds" => o.rounds = value.max(1),
            "--connections" => o.connections = value.max(1),
            "--prefill" => o.prefill = value,
            "--rate" => o.rate = value,
            "--spin" => o.spin = value != 0,
            "--only" => o.only = value,
            _ => usage(&arg),
        }
    }
    o
}

fn usage(arg: &str) -> ! {
    eprintln!(
        "unexpected argument {arg:?}; usage: layer_load [--requests N] [--seconds S] [--rounds R] [--connections C] [--prefill N] [--rate R] [--spin 0|1] [--only M]"
    );
    std::process::exit(2)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn key_id(i: usize) -> KeyId {
    KeyId::new(format!("load-{i:03}")).expect("key id")
}

fn secret() -> SecretKey {
    SecretKey::from_bytes(&[0x42; 32]).expect("secret")
}

/// Ports of the listeners (one per mode, in [`Mode::ALL`]'s order), and the
/// server thread's id.
struct Server {
    ports: [u16; 6],
    tid: String,
}

/// A verifier with its own key store (one key per connection) and its own
/// memory nonce store, pre-filled with `prefill` live nonces of 1,000 other
/// keys: each layer mode gets one, so that neither runs against the nonces
/// the other recorded.
fn verifier(connections: usize, prefill: usize) -> Verifier {
    let keys = MemoryKeyStore::new();
    for i in 0..connections {
        keys.insert(key_id(i), &secret(), KeyMetadata::new(format!("user-{i}")));
    }
    let nonces = MemoryNonceStore::builder().remembers_since(0).build();
    let others: Vec<KeyId> = (0..1000)
        .map(|i| KeyId::new(format!("other-{i:04}")).expect("id"))
        .collect();
    let now = unix_now();
    let mut rng = rand::rng();
    for i in 0..prefill {
        let nonce = Nonce::generate(&mut rng);
        let created = now - 299 + (i as u64 * 299 / prefill as u64);
        let record = NonceRecord::new(
            &others[i % others.len()],
            &nonce,
            created,
            now,
            created + 301,
        );
        nonces.check_and_record(record).expect("room");
    }
    Verifier::builder(keys)
        .nonce_store(nonces)
        .authority(AUTHORITY)
        .build()
        .expect("verifier")
}

fn start_server(connections: usize, prefill: usize) -> Server {
    let routes = || {
        Router::new().route(
            PATH,
            get(|| async { "ok" }).post(|body: Bytes| async move {
                std::hint::black_box(body.len());
                "ok"
            }),
        )
    };
    let around_layer = tower::Layer::layer(
        &VerifySignatureLayer::new(verifier(connections, prefill)),
        routes(),
    );
    let around_floor = tower::Layer::layer(&FloorLayer::new(), routes());
    let apps = [
        routes(),
        routes(),
        routes().layer(VerifySignatureLayer::new(verifier(connections, prefill))),
        routes().layer(FloorLayer::new()),
    ];
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("server".to_owned())
        .spawn(move || {
            let tid = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .expect("/proc/thread-self");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut ports = [0u16; 6];
                let mut listeners = Vec::new();
                for port in ports.iter_mut() {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind");
                    *port = listener.local_addr().expect("addr").port();
                    listeners.push(listener);
                }
                let mut listeners = listeners.into_iter();
                let mut next = || listeners.next().expect("one listener per mode");
                for app in apps {
                    let listener = next();
                    tokio::spawn(async move { axum::serve(listener, app).await });
                }
                let (layer, floor) = (next(), next());
                tokio::spawn(async move {
                    axum::serve(
                        layer,
                        ServiceExt::<Request>::into_make_service(around_layer),
                    )
                    .await
                });
                tokio::spawn(async move {
                    axum::serve(
                        floor,
                        ServiceExt::<Request>::into_make_service(around_floor),
                    )
                    .await
                });
                tx.send(Server { ports, tid }).expect("send");
                std::future::pending::<()>().await;
            });
        })
        .expect("server thread");
    rx.recv().expect("server started")
}

/// CPU time of thread `tid` of this process, nanoseconds.
fn thread_cpu_ns(tid: &str) -> u64 {
    let stat =
        std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).expect("schedstat");
    stat.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("schedstat run time")
}

/// One client connection: takes request numbers from `next` until `total`
/// or `deadline`, one request in flight at a time.
async fn connection(
    port: u16,
    mode: Mode,
    key: SigningKey,
    next: Arc<AtomicUsize>,
    total: usize,
    deadline: Instant,
    pace: Option<(tokio::time::Instant, Duration)>,
) -> usize {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let body: Vec<u8> = (0..1024).map(|i| b"{\"k\":12345}"[i % 11]).collect();
    let post_digest = BodyDigest::of(&body);
    let extra = [
        Component::field("content-type").expect("field"),
        Component::field("user-agent").expect("field"),
    ];
    // `ThreadRng` is not `Send`; a CSPRNG of the task's own, seeded from the OS.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    let mut request = Vec::with_capacity(2048);
    let mut line = String::new();
    let mut response_body = Vec::new();
    let mut done = 0;
    let mut pace = pace;
    loop {
        if let Some((due, interval)) = pace.as_mut() {
            tokio::time::sleep_until(*due).await;
            *due += *interval;
        }
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= total || Instant::now() >= deadline {
            break;
        }
        let post = n % 2 == 1;
        let (method, query, body, digest) = if post {
            ("POST", None, &body[..], &post_digest)
        } else {
            ("GET", Some(QUERY), &[][..], &BodyDigest::EMPTY)
        };
        let fields = [
            ("host", AUTHORITY),
            ("content-type", "application/json"),
            ("user-agent", "tessera-load/1.0"),
        ];
        request.clear();
        request.extend_from_slice(method.as_bytes());
        request.push(b' ');
        request.extend_from_slice(PATH.as_bytes());
        if let Some(query) = query {
            request.push(b'?');
            request.extend_from_slice(query.as_bytes());
        }
        request.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in fields {
            push_header(&mut request, name, value);
        }
        push_header(&mut request, "content-length", &body.len().to_string());
        if mode != Mode::Unsigned {
            let nonce = Nonce::generate(&mut rng);
            let options = SignOptions::new(unix_now(), &nonce).cover(&extra);
            let view = RequestView::new(method, Scheme::Https, AUTHORITY, PATH, query, &fields[..])
                .expect("view");
            let signed = sign(&key, &view, digest, &options).expect("sign");
            for (name, value) in signed.iter() {
                push_header(&mut request, name, value);
            }
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        write.write_all(&request).await.expect("write");

        // The response: status line, headers, then Content-Length bytes.
        line.clear();
        read.read_line(&mut line).await.expect("status line");
        let ok = line.starts_with("HTTP/1.1 200");
        let status = line.trim_end().to_owned();
        let mut length = 0usize;
        loop {
            line.clear();
            read.read_line(&mut line).await.expect("header line");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("content-length");
                }
            }
        }
        response_body.resize(length, 0);
        read.read_exact(&mut response_body)
            .await
            .expect("response body");
        if !ok {
            panic!(
                "{}: unexpected response {status:?}: {}",
                mode.name(),
                String::from_utf8_lossy(&response_body)
            );
        }
        done += 1;
    }
    done
}

fn push_header(request: &mut Vec<u8>, name: &str, value: &str) {
    request.extend_from_slice(name.as_bytes());
    request.extend_from_slice(b": ");
    request.extend_from_slice(value.as_bytes());
    request.extend_from_slice(b"\r\n");
}

/// One run of `mode`: (requests answered, server CPU ns, wall time).
fn run(
    client: &tokio::runtime::Runtime,
    server: &Server,
    mode: Mode,
    o: &Options,
    requests: usize,
    limit: Duration,
) -> (usize, u64, Duration) {
    let (connections, rate) = (o.connections, o.rate);
    let port = server.ports[Mode::ALL.iter().position(|m| *m == mode).unwrap_or(0)];
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = thread_cpu_ns(&server.tid);
    let start = Instant::now();
    let deadline = start + limit;
    let done = client.block_on(async {
        // Keeps this runtime from sleeping while the connections wait (see
        // the module docs, `--spin`).
        let spinner = o.spin.then(|| {
            tokio::spawn(async {
                loop {
                    tokio::task::yield_now().await;
                }
            })
        });
        let mut tasks = tokio::task::JoinSet::new();
        // Paced: each connection sends one request per `interval`, the
        // connections' schedules staggered evenly over it.
        let interval =
            (rate > 0).then(|| Duration::from_secs_f64(connections as f64 / rate as f64));
        let first = tokio::time::Instant::now() + Duration::from_millis(5);
        for c in 0..connections {
            let key = SigningKey::new(key_id(c), &secret());
            let pace = interval.map(|i| (first + i.mul_f64(c as f64 / connections as f64), i));
            tasks.spawn(connection(
                port,
                mode,
                key,
                Arc::clone(&next),
                requests,
                deadline,
                pace,
            ));
        }
        let mut done = 0;
        while let Some(n) = tasks.join_next().await {
            done += n.expect("client task");
        }
        if let Some(spinner) = spinner {
            spinner.abort();
        }
        done
    });
    let wall = start.elapsed();
    // The server finishes its last responses before the client reads them;
    // closing connections afterwards costs a little more, counted as well.
    std::thread::sleep(Duration::from_millis(50));
    let cpu = thread_cpu_ns(&server.tid) - cpu_before;
    (done, cpu, wall)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// `--only M`: runs mode `M` alone (numbered as in [`Mode::ALL`], from 1),
/// `--rounds` times, so that a profiler attached to the server
/// thread sees one mode only.
fn profile(client: &tokio::runtime::Runtime, server: &Server, o: &Options, limit: Duration) {
    let mode = Mode::ALL[(o.only - 1).min(Mode::ALL.len() - 1)];
    let ticks_before = thread_ticks(&server.tid);
    let switches_before = thread_switches(&server.tid);
    let mut total = 0;
    for round in 1..=o.rounds {
        let (done, cpu, wall) = run(client, server, mode, o, o.requests, limit);
        println!(
            "round {round} {:<38} {done:>7} requests in {:>6.2} s: server CPU {:>6.2} us/request",
            mode.name(),
            wall.as_secs_f64(),
            cpu as f64 / 1000.0 / done as f64,
        );
        total += done;
    }
    // Clock ticks (10 ms each at the usual 100 Hz): coarse, but over a few
    // seconds enough to tell user from kernel time.
    let ticks_after = thread_ticks(&server.tid);
    let switches_after = thread_switches(&server.tid);
    let tick_us = 1e6 / 100.0;
    println!(
        "server thread over all rounds: user {:.2} us/request, kernel {:.2} us/request (from clock ticks)",
        (ticks_after.0 - ticks_before.0) as f64 * tick_us / total as f64,
        (ticks_after.1 - ticks_before.1) as f64 * tick_us / total as f64,
    );
    println!(
        "server thread context switches per 1,000 requests: voluntary {:.1}, involuntary {:.1}",
        (switches_after.0 - switches_before.0) as f64 * 1000.0 / total as f64,
        (switches_after.1 - switches_before.1) as f64 * 1000.0 / total as f64,
    );
}

/// Voluntary and involuntary context switches of thread `tid` (from
/// `/proc/self/task/<tid>/status`).
fn thread_switches(tid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        field("voluntary_ctxt_switches:"),
        field("nonvoluntary_ctxt_switches:"),
    )
}

/// User and kernel clock ticks of thread `tid` (`/proc/.../stat` fields 14
/// and 15).
fn thread_ticks(tid: &str) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).expect("stat");
    // The command name may hold spaces: count fields after its `)`.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    (
        fields.first().copied().unwrap_or(0),
        fields.get(1).copied().unwrap_or(0),
    )
}

fn main() {
    let o = options();
    let server = start_server(o.connections, o.prefill);
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let limit = Duration::from_secs(o.seconds);
    println!(
        "layer_load: {} connections, GET and POST 1 KiB alternating, up to {} requests or {} s per run, {} rounds, client {}",
        o.connections, o.requests, o.seconds, o.rounds,
        if o.spin { "awake (--spin 1)" } else { "sleeping between answers (--spin 0)" }
    );
    if o.only != 0 {
        return profile(&client, &server, &o, limit);
    }
    for mode in Mode::ALL {
        run(&client, &server, mode, &o, 2_000, limit);
    }
    let mut per_request: [Vec<f64>; 6] = Default::default();
    let mut rates: [Vec<f64>; 6] = Default::default();
    // Per-round differences, each from one round's runs.
    let differences: [(&str, usize, usize); 7] = [
        ("signed − unsigned", 1, 0),
        ("**layer − signed** (Router::layer)", 2, 1),
        (
            "floor − signed: what any verifying layer costs here (Router::layer)",
            3,
            1,
        ),
        (
            "layer − floor: tessera's checks themselves (Router::layer)",
            2,
            3,
        ),
        ("**layer − signed** (around the router)", 4, 1),
        ("floor − signed (around the router)", 5, 1),
        ("layer − floor (around the router)", 4, 5),
    ];
    let mut per_round_differences: [Vec<f64>; 7] = Default::default();
    // Per mode over all rounds: requests, and user and kernel clock ticks.
    let mut ticks = [(0usize, 0u64, 0u64); 6];
    for round in 1..=o.rounds {
        let mut this_round = [0.0f64; 6];
        for (m, mode) in Mode::ALL.into_iter().enumerate() {
            let ticks_before = thread_ticks(&server.tid);
            let (done, cpu, wall) = run(&client, &server, mode, &o, o.requests, limit);
            let ticks_after = thread_ticks(&server.tid);
            ticks[m].0 += done;
            ticks[m].1 += ticks_after.0 - ticks_before.0;
            ticks[m].2 += ticks_after.1 - ticks_before.1;
            let us = cpu as f64 / 1000.0 / done as f64;
            this_round[m] = us;
            per_request[m].push(us);
            rates[m].push(done as f64 / wall.as_secs_f64());
            println!(
                "round {round} {:<38} {done:>7} requests in {:>6.2} s: server CPU {:>6.2} us/request, {:>7.0} requests/s",
                mode.name(),
                wall.as_secs_f64(),
                us,
                done as f64 / wall.as_secs_f64()
            );
        }
        for (values, (_, a, b)) in per_round_differences.iter_mut().zip(differences) {
            values.push(this_round[a] - this_round[b]);
        }
    }
    println!();
    println!(
        "| mode | server CPU us/request (median of {}) | requests/s (median) |",
        o.rounds
    );
    println!("|---|---:|---:|");
    for (m, mode) in Mode::ALL.into_iter().enumerate() {
        println!(
            "| {} | {:.2} | {:.0} |",
            mode.name(),
            median(&mut per_request[m]),
            median(&mut rates[m])
        );
    }
    println!();
    // Clock ticks (10 ms at the usual 100 Hz) are coarse, but over all
    // rounds they tell the server's own code (user) from the kernel's work
    // on its behalf (sockets, wake-ups of the client, interrupts that land
    // while it runs), which moves with how busy the server is.
    println!("| mode | user us/request (all rounds, clock ticks) | kernel us/request |");
    println!("|---|---:|---:|");
    // `/proc` reports these in USER_HZ units, 100 a second on Linux
    // whatever the kernel's own tick rate.
    let tick_us = 1e6 / 100.0;
    for (mode, (done, user, kernel)) in Mode::ALL.into_iter().zip(ticks) {
        println!(
            "| {} | {:.2} | {:.2} |",
            mode.name(),
            user as f64 * tick_us / done as f64,
            kernel as f64 * tick_us / done as f64
        );
    }
    println!();
    println!("| difference, us/request | median of per-round differences | quartiles |");
    println!("|---|---:|---:|");
    for (values, (name, _, _)) in per_round_differences.iter_mut().zip(differences) {
        let (low, high) = quartiles(values);
        println!(
            "| {name} | {:+.2} | {low:+.2} to {high:+.2} |",
            median(values)
        );
    }
}

/// The first and third quartiles (nearest rank): half the values lie
/// between them.
fn quartiles(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let index = ((q * values.len() as f64).ceil() as usize).saturating_sub(1);
        values[index.min(values.len() - 1)]
    };
    (rank(0.25), rank(0.75))
}

/// The `floor` mode's layer: the work no verifying layer can skip, and no
/// check at all (see the module docs). Not a verifier: it accepts every
/// request.
#[derive(Clone)]
struct FloorLayer {
    /// HMAC-SHA256 keyed once, as a verifier's prepared key is.
    mac: Hmac<Sha256>,
}

impl FloorLayer {
    fn new() -> Self {
        FloorLayer {
            mac: Hmac::new_from_slice(&[0x42; 32]).expect("any key length"),
        }
    }
}

impl<S> tower::Layer<S> for FloorLayer {
    type Service = FloorService<S>;

    fn layer(&self, inner: S) -> FloorService<S> {
        FloorService {
            inner,
            mac: self.mac.clone(),
        }
    }
}

#[derive(Clone)]
struct FloorService<S> {
    inner: S,
    mac: Hmac<Sha256>,
}

/// About the length of this benchmark's signature bases: the same seven
/// SHA-256 blocks of inner hash.
const FLOOR_BASE: [u8; 420] = [b'b'; 420];

/// Stands in for the verified identity: the same size, so the extensions
/// insert moves as many bytes.
#[derive(Clone)]
struct FloorIdentity(#[allow(dead_code)] [u8; std::mem::size_of::<VerifiedIdentity>()]);

type FloorFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for FloorService<S>
where
    S: tower::Service<http::Request<Full<Bytes>>> + Clone + Send + 'static,
    S::Future: Send,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = FloorFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let mut mac = self.mac.clone();
        let (mut parts, body) = request.into_parts();
        Box::pin(async move {
            // A body that fails to arrive is served empty: the floor checks nothing.
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => Bytes::new(),
            };
            if !bytes.is_empty() {
                std::hint::black_box(Sha256::digest(&bytes));
            }
            mac.update(&FLOOR_BASE);
            std::hint::black_box(mac.finalize().into_bytes());
            parts
                .extensions
                .insert(FloorIdentity([0; std::mem::size_of::<VerifiedIdentity>()]));
            inner
                .oneshot(http::Request::from_parts(parts, Full::new(bytes)))
                .await
        })
    }
}
