//! `tessera-loadgen run`: closed-loop and open-loop load over HTTP/1.1
//! keep-alive connections, one per task.
//!
//! * Closed loop: every connection sends its next request as soon as the
//!   previous answer is read, for a warm-up (not measured) and then a
//!   measured duration, or until a total request count. Throughput is the
//!   answers completed within the measured window divided by its length.
//! * Open loop: a pacer thread releases request `i` at `start + i / rate`
//!   (`std::thread::sleep`, finer than tokio's 1 ms timer) into a queue the
//!   connections take from; latency runs from that scheduled time, so time
//!   spent queued behind a slow answer counts (no coordinated omission).
//!
//! Signing, when asked, happens inline, just before each request is sent
//! (a fresh nonce each), and outside the measured latency in the closed
//! loop; its cost per request is measured before the run and printed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};

use crate::keys;
use crate::report::Stats;
use crate::target::Target;

/// Longest measured duration and warm-up accepted, seconds.
const MAX_SECONDS: f64 = 600.0;
/// How long after the end an open-loop run still sends what is queued;
/// whatever is left then counts as failed.
const DRAIN: Duration = Duration::from_secs(10);

/// Arguments of `tessera-loadgen run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The URL to load (`http://IP:PORT/PATH`).
    #[arg(long)]
    url: String,
    /// The request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Body bytes (a JSON object); default 1024 for POST, PUT and PATCH, 0 otherwise.
    #[arg(long)]
    body_bytes: Option<usize>,
    /// Connections, each used by one task, kept alive.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up seconds, loaded but not measured.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Closed loop: stop after this many requests in all (no warm-up), or
    /// after --duration, whichever comes first.
    #[arg(long, conflicts_with = "rate")]
    requests: Option<u64>,
    /// Open loop: offer this many requests per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Sign every request with the keys of this file (`tessera serve --keys`
    /// format), round robin over its keys.
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// With --keys: only this key id.
    #[arg(long, requires = "keys")]
    key_id: Option<String>,
    /// Tokio worker threads of the load generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// A name for the result line.
    #[arg(long, default_value = "run")]
    label: String,
}

/// The measured window of a run.
#[derive(Clone, Copy)]
struct Window {
    /// Answers to requests sent before this are not measured.
    from: Instant,
    /// Nothing is sent from this instant on (closed loop).
    to: Instant,
}

/// Runs the load and prints one result line; exit status 1 on any error.
pub(crate) fn main(args: Args) -> ExitCode {
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tessera-loadgen run: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let seconds = |what: &str, v: f64| {
        if v.is_finite() && (0.0..=MAX_SECONDS).contains(&v) {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(format!(
                "--{what} must be 0 to {MAX_SECONDS} seconds, not {v}"
            ))
        }
    };
    let duration = seconds("duration", args.duration)?;
    let warmup = seconds("warmup", args.warmup)?;
    if duration.is_zero() {
        return Err("--duration must be above 0".to_owned());
    }
    if !(1..=4096).contains(&args.connections) {
        return Err(format!(
            "--connections must be 1 to 4096, not {}",
            args.connections
        ));
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0 && rate <= 1e6) {
            return Err(format!(
                "--rate must be above 0 and at most 1000000, not {rate}"
            ));
        }
    }
    if args.requests == Some(0) {
        return Err("--requests must be at least 1".to_owned());
    }
    let method = Method::from_bytes(args.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", args.method))?;
    let body_bytes = args.body_bytes.unwrap_or(
        if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            1024
        } else {
            0
        },
    );
    let signers = match &args.keys {
        Some(path) => keys::load(path, args.key_id.as_deref())?,
        None => Vec::new(),
    };
    let key_count = signers.len();
    let target = Arc::new(Target::new(&args.url, method.clone(), body_bytes, signers)?);
    let build_micros = build_cost(&target)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let (stats, measured, mode) = runtime.block_on(async {
        let connections = connect_all(&target, args.connections).await?;
        match args.rate {
            Some(rate) => open_loop(&target, connections, rate, warmup, duration)
                .await
                .map(|(s, m)| (s, m, format!("open rate={rate}"))),
            None => closed_loop(&target, connections, warmup, duration, args.requests)
                .await
                .map(|(s, m)| (s, m, "closed".to_owned())),
        }
    })?;
    // Workers still reading their last answer are not waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));

    let secs = measured.as_secs_f64().max(1e-9);
    let answered = stats.answered();
    let rps = answered as f64 / secs;
    let errors = stats.errors();
    println!(
        "label={} mode={} method={} body_bytes={} connections={} seconds={:.2} requests={} rps={:.0} p50_us={} p99_us={} max_us={} errors={} signed={} build_us={:.2}",
        args.label,
        mode.replace(' ', ":"),
        method,
        body_bytes,
        args.connections,
        secs,
        answered,
        rps,
        stats.micros_at(0.5),
        stats.micros_at(0.99),
        stats.max_micros(),
        errors,
        if target.signed() { key_count.to_string() } else { "no".to_owned() },
        build_micros,
    );
    if errors > 0 || answered == 0 {
        eprintln!(
            "tessera-loadgen: FAILED ({}): {errors} errors: {}; {answered} answers",
            args.label,
            if errors == 0 {
                "no answer at all".to_owned()
            } else {
                stats.error_summary()
            }
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Microseconds to build (and sign, when signing) one request, measured on
/// 2,000 requests before the run, so a reader can check signing is not
/// what limits the run.
fn build_cost(target: &Target) -> Result<f64, String> {
    const N: u32 = 2000;
    let started = Instant::now();
    for n in 0..N {
        std::hint::black_box(target.request(u64::from(n))?);
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(N))
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(target: &Target) -> Result<Sender, String> {
    let stream = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", target.addr))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP/1.1 handshake with {}: {e}", target.addr))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Opens every connection before anything is timed.
async fn connect_all(target: &Target, count: usize) -> Result<Vec<Sender>, String> {
    let mut connections = Vec::with_capacity(count);
    for _ in 0..count {
        connections.push(connect(target).await?);
    }
    Ok(connections)
}

/// Sends `request` on the worker's connection (reopened when the server
/// closed it between requests, which is not an error) and reads the whole
/// answer. `Err` when no answer came.
async fn exchange(
    target: &Target,
    connection: &mut Option<Sender>,
    request: http::Request<Full<Bytes>>,
) -> Result<u16, String> {
    let usable = match connection.as_mut() {
        Some(sender) => !sender.is_closed() && sender.ready().await.is_ok(),
        None => false,
    };
    let sender = match connection {
        Some(sender) if usable => sender,
        _ => connection.insert(connect(target).await?),
    };
    let answer = match sender.send_request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.into_body().collect().await {
                Ok(_) => Ok(status),
                Err(e) => Err(format!("reading the answer: {e}")),
            }
        }
        Err(e) => Err(format!("no answer: {e}")),
    };
    if answer.is_err() {
        *connection = None;
    }
    answer
}

async fn closed_loop(
    target: &Arc<Target>,
    connections: Vec<Sender>,
    warmup: Duration,
    duration: Duration,
    requests: Option<u64>,
) -> Result<(Stats, Duration), String> {
    let start = Instant::now();
    // A request count measures everything, from the first request.
    let warmup = if requests.is_some() {
        Duration::ZERO
    } else {
        warmup
    };
    let window = Window {
        from: start + warmup,
        to: start + warmup + duration,
    };
    let budget = requests.map(|n| Arc::new(AtomicU64::new(n)));
    let stride = connections.len() as u64;
    let workers: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(i, sender)| {
            let (target, budget) = (Arc::clone(target), budget.clone());
            tokio::spawn(closed_worker(
                target, sender, i as u64, stride, window, budget,
            ))
        })
        .collect();
    let mut stats = Stats::new();
    for worker in workers {
        stats.merge(worker.await.map_err(|e| format!("a worker failed: {e}"))?);
    }
    let measured = if requests.is_some() {
        start.elapsed()
    } else {
        duration
    };
    Ok((stats, measured))
}

async fn closed_worker(
    target: Arc<Target>,
    sender: Sender,
    first: u64,
    stride: u64,
    window: Window,
    budget: Option<Arc<AtomicU64>>,
) -> Stats {
    let mut stats = Stats::new();
    let mut connection = Some(sender);
    let mut n = first;
    loop {
        if Instant::now() >= window.to {
            break;
        }
        if let Some(budget) = &budget {
            if budget
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                    left.checked_sub(1)
                })
                .is_err()
            {
                break;
            }
        }
        let request = match target.request(n) {
            Ok(request) => request,
            Err(e) => {
                stats.failure(e);
                break;
            }
        };
        n += stride;
        let sent = Instant::now();
        let answer = exchange(&target, &mut connection, request).await;
        let done = Instant::now();
        let measured = sent >= window.from && done <= window.to;
        match answer {
            Ok(status) if measured => stats.response(status, done - sent),
            Ok(status) if !(200..300).contains(&status) => stats.error_status(status),
            Ok(_) => {}
            Err(e) => {
                let connect_failed = e.starts_with("connect ");
                stats.failure(e);
                if connect_failed {
                    break;
                }
            }
        }
    }
    stats
}

async fn open_loop(
    target: &Arc<Target>,
    connections: Vec<Sender>,
    rate: f64,
    warmup: Duration,
    duration: Duration,
) -> Result<(Stats, Duration), String> {
    let (queue, receiver) = mpsc::unbounded_channel::<Instant>();
    let receiver = Arc::new(Mutex::new(receiver));
    let start = Instant::now() + Duration::from_millis(20);
    let window = Window {
        from: start + warmup,
        to: start + warmup + duration,
    };
    let deadline = window.to + DRAIN;
    let interval = 1.0 / rate;
    // The pacer: a plain thread, for sub-millisecond release times.
    let pacer = std::thread::spawn(move || {
        let mut i: u64 = 0;
        loop {
            let due = start + Duration::from_secs_f64(i as f64 * interval);
            if due >= window.to {
                break;
            }
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if queue.send(due).is_err() {
                break;
            }
            i += 1;
        }
    });
    let workers: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(i, sender)| {
            let (target, receiver) = (Arc::clone(target), Arc::clone(&receiver));
            tokio::spawn(open_worker(
                target, sender, i as u64, receiver, window, deadline,
            ))
        })
        .collect();
    let mut stats = Stats::new();
    for worker in workers {
        stats.merge(worker.await.map_err(|e| format!("a worker failed: {e}"))?);
    }
    pacer
        .join()
        .map_err(|_| "the pacer thread panicked".to_owned())?;
    Ok((stats, duration))
}

async fn open_worker(
    target: Arc<Target>,
    sender: Sender,
    first: u64,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>,
    window: Window,
    deadline: Instant,
) -> Stats {
    let mut stats = Stats::new();
    let mut connection = Some(sender);
    let mut n = first;
    loop {
        let due = { queue.lock().await.recv().await };
        let Some(due) = due else {
            break; // The pacer is done and the queue empty.
        };
        if Instant::now() >= deadline {
            stats.failure(format!(
                "not sent within {} s of the end (the target fell behind)",
                DRAIN.as_secs()
            ));
            continue;
        }
        let request = match target.request(n) {
            Ok(request) => request,
            Err(e) => {
                stats.failure(e);
                continue;
            }
        };
        n += 1;
        let answer = exchange(&target, &mut connection, request).await;
        let done = Instant::now();
        match answer {
            Ok(status) if due >= window.from => stats.response(status, done - due),
            Ok(status) if !(200..300).contains(&status) => stats.error_status(status),
            Ok(_) => {}
            Err(e) => stats.failure(e),
        }
    }
    stats
}
