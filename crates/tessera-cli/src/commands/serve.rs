//! `tessera serve`: a standalone verifying echo server for testing clients.
//!
//! The contract (binding tests in other languages rely on it): one line
//! `listening on http://IP:PORT` on standard output at startup; every route
//! and method is verified and answers 200 with
//! `{"key_id","user","scopes","method","path","query","body_sha256"}`;
//! methods other than GET, HEAD and OPTIONS also need scope `write`
//! (403 `insufficient_scope`); rejections are the server's problem+json.
//!
//! The server is HTTP/1.1 on its own accept loop rather than `axum::serve`,
//! which has no header-read timeout, connection limit or head size limit:
//! a handful of clients trickling bytes could otherwise hold connections and
//! memory without bound.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tessera_core::{Scheme, DEFAULT_WINDOW_SECS};
use tessera_gateway::server::{accept, shutdown_signal};
use tessera_gateway::stores::redact;
use tessera_server::{Clock, KeyStore, Verifier, DEFAULT_BODY_LIMIT};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::app;
use crate::error::{CliError, CliResult};
use crate::limits::{self, Limits};
use crate::timearg::now_unix;

/// Default of `--max-header-bytes`.
const DEFAULT_MAX_HEADER_BYTES: u32 = 16 * 1024;
/// Default of `--max-headers` (also the HTTP parser's usual default).
const DEFAULT_MAX_HEADERS: u32 = 100;
/// Default of `--header-timeout`, seconds.
const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// Default of `--body-timeout`, seconds.
const DEFAULT_BODY_TIMEOUT_SECS: u64 = 30;
/// Default of `--max-connections`. Near a file-descriptor limit of 1024,
/// `accept` may fail first; the loop then retries after a second.
const DEFAULT_MAX_CONNECTIONS: u32 = 1024;

/// Arguments of `tessera serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Keys file:
  {\"keys\":[{\"key_id\":\"k1\",\"secret_hex\":\"…\",\"user\":\"alice\",
             \"scopes\":[\"read\",\"write\"],\"not_after\":null,\"revoked\":false}]}
Prints `listening on http://127.0.0.1:PORT` once bound, then serves until
SIGINT or SIGTERM.

HTTP limits (HTTP/1.1 only). The 431 and 408 refusals are HTTP-level, not
signature verdicts: their application/problem+json bodies have
\"type\":\"about:blank\", the status phrase as \"title\", \"status\" and
\"detail\", and no tessera \"code\"; the connection is closed after them and
the access log says why.
  431  the request head is over --max-header-bytes (counted as the request
       line plus name + value + 4 bytes per field line) or has more than
       --max-headers fields. Heads over twice the limit plus 16 KiB, or with
       over twice the field count, are cut off by the HTTP parser: an empty
       431 and a closed connection.
  408  the body did not arrive whole within --body-timeout of its head.
A body over --body-limit gets the verifier's 413 body_too_large. Both apply
only once the MAC has verified: the body of a request whose signature does
not match is never read, and it gets 401 bad_signature at once.
A connection that does not send a complete head within --header-timeout,
counted from accept or from the previous answer (so it is also the keep-alive
idle timeout), is closed without an answer. Beyond --max-connections, new
connections wait in the listen queue until one closes.")]
pub(crate) struct Args {
    /// Address to listen on; port 0 picks a free port (printed at startup).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// JSON keys file.
    #[arg(
        long,
        value_name = "FILE",
        allow_hyphen_values = true,
        required_unless_present = "keys_db",
        conflicts_with = "keys_db"
    )]
    keys: Option<PathBuf>,
    /// Serve keys from a SQL key store (`tessera keys`): sqlite://PATH or
    /// postgres://USER@HOST:PORT/DB. The master key comes from
    /// --master-key-file, TESSERA_MASTER_KEY or TESSERA_MASTER_KEY_FILE.
    #[arg(long, value_name = "URL")]
    keys_db: Option<String>,
    /// With --keys-db: a file of master keys (`VERSION:HEX` lines, or one bare hex key).
    // `conflicts_with` as well: clap does not enforce `requires` once
    // `--keys` (which conflicts with `--keys-db`) is given.
    #[arg(
        long,
        value_name = "FILE",
        requires = "keys_db",
        conflicts_with = "keys"
    )]
    master_key_file: Option<PathBuf>,
    /// With --keys-db: how long cached keys keep verifying while the
    /// database is unreachable (seconds, 1 to 3600).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        requires = "keys_db",
        conflicts_with = "keys",
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    max_staleness: u64,
    /// An authority (`host[:port]`) to serve; repeat for more. Default: the
    /// bound IP:PORT and localhost:PORT.
    #[arg(
        long = "authority",
        value_name = "HOST[:PORT]",
        allow_hyphen_values = true
    )]
    authorities: Vec<String>,
    /// The one public authority every signature base uses, whatever `Host`
    /// says: for use behind a proxy that rewrites `Host`. `Host` is then not
    /// checked at all. Cannot be combined with --authority.
    #[arg(
        long,
        value_name = "HOST[:PORT]",
        conflicts_with = "authorities",
        allow_hyphen_values = true
    )]
    fixed_authority: Option<String>,
    /// The public scheme clients sign for (`https` behind TLS termination);
    /// decides which default port authorities drop.
    #[arg(long, value_name = "SCHEME", default_value = "http", value_parser = ["http", "https"])]
    scheme: String,
    /// Shift the server clock by this many seconds (negative: behind).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    clock_offset: i64,
    /// The acceptance window for `created`, seconds (up to 3600).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_WINDOW_SECS)]
    window: u64,
    /// Largest request body, bytes; larger ones get 413 body_too_large.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Largest request head, bytes (1024 to 131072): the request line plus
    /// name + value + 4 per field line. Larger: 431 problem+json.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = DEFAULT_MAX_HEADER_BYTES,
        value_parser = clap::value_parser!(u32).range(1024..=131_072)
    )]
    max_header_bytes: u32,
    /// Most header fields in a request (1 to 500); more: 431 problem+json.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_MAX_HEADERS,
        value_parser = clap::value_parser!(u32).range(1..=500)
    )]
    max_headers: u32,
    /// Seconds (1 to 3600) a connection has to send a complete request head,
    /// and the keep-alive idle timeout; then it is closed.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = DEFAULT_HEADER_TIMEOUT_SECS,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    header_timeout: u64,
    /// Seconds (1 to 3600) the whole request body has from the end of its
    /// head; then 408 problem+json.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = DEFAULT_BODY_TIMEOUT_SECS,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    body_timeout: u64,
    /// Most connections open at once (1 to 65536); further ones wait to be
    /// accepted. Keep it below the file-descriptor limit (`ulimit -n`).
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..=65_536)
    )]
    max_connections: u32,
    /// Limit each key to RATE requests (`10/s`, `100/m`, `1000/h`): past its
    /// budget a request gets 429 rate_limited with Retry-After and the
    /// RateLimit headers. Off by default.
    #[arg(long, value_name = "RATE")]
    rate_limit: Option<tessera_ratelimit::Rate>,
    /// With --rate-limit: requests a key may send at once after a quiet
    /// period (default: the rate's count).
    #[arg(long, value_name = "N", requires = "rate_limit", value_parser = clap::value_parser!(u32).range(1..))]
    burst: Option<u32>,
    /// Put the full signature base into bad_signature responses (development only).
    #[arg(long)]
    debug_base: bool,
    /// No access log on standard error.
    #[arg(long, short)]
    quiet: bool,
}

/// The system clock shifted by a fixed number of seconds.
#[derive(Debug, Clone, Copy)]
struct OffsetClock(i64);

impl Clock for OffsetClock {
    fn now_unix(&self) -> u64 {
        now_unix().saturating_add_signed(self.0)
    }
}

/// How the accept loop treats connections.
#[derive(Debug, Clone, Copy)]
struct ConnectionPolicy {
    /// `--header-timeout`.
    header_timeout: Duration,
    /// `--max-connections`.
    max_connections: usize,
    /// The per-request limits, also used to size the HTTP parser's.
    limits: Limits,
    /// `--quiet`: no log lines about connections.
    quiet: bool,
}

/// Runs `tessera serve`.
pub(crate) fn run(args: Args) -> CliResult {
    init_logging();
    let scheme = Scheme::parse(&args.scheme)
        .ok_or_else(|| CliError::usage(format!("unknown scheme {:?}", args.scheme)))?;
    let policy = ConnectionPolicy {
        header_timeout: Duration::from_secs(args.header_timeout),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        limits: Limits {
            max_header_bytes: usize::try_from(args.max_header_bytes).unwrap_or(usize::MAX),
            max_headers: usize::try_from(args.max_headers).unwrap_or(usize::MAX),
            body_timeout: Duration::from_secs(args.body_timeout),
        },
        quiet: args.quiet,
    };
    let file = match &args.keys {
        Some(path) => Some(
            tessera_server::load_keys_file(path).map_err(|e| CliError::runtime(e.to_string()))?,
        ),
        None => None,
    };
    let keyring = match &args.keys_db {
        Some(_) => Some(crate::commands::keys::keyring(
            args.master_key_file.as_ref(),
        )?),
        None => None,
    };
    let runtime = app::runtime()?;
    runtime.block_on(async move {
        let (store, keys_from): (Arc<dyn KeyStore>, String) = match (file, &args.keys_db, keyring) {
            (Some((store, count)), _, _) => {
                let store = Arc::new(store);
                // An edit of the file (a key revoked or removed) reaches
                // requests within FOLLOW_EVERY, with no restart.
                if let Some(path) = &args.keys {
                    tokio::spawn(tessera_server::follow_keys_file(
                        Arc::clone(&store),
                        path.clone(),
                        tessera_server::FOLLOW_EVERY,
                    ));
                }
                (store as Arc<dyn KeyStore>, format!("{count} key(s), followed for changes"))
            }
            (None, Some(url), Some(keyring)) => {
                let mut options = tessera_keys_sql::SqlKeyStoreOptions::default();
                options.max_staleness = Duration::from_secs(args.max_staleness);
                let store = crate::commands::keys::open(url, keyring, options).await?;
                (Arc::new(store), format!("keys from {}", redact(url)))
            }
            _ => return Err(CliError::usage("give --keys FILE or --keys-db URL")),
        };
        let (listener, addr) = app::bind(args.addr).await?;
        let builder = Verifier::builder(store)
            .clock(OffsetClock(args.clock_offset))
            .scheme(scheme)
            .body_limit(args.body_limit)
            .dangerous_debug_signature_base(args.debug_base);
        let (builder, served) = match &args.fixed_authority {
            Some(fixed) => (
                builder.fixed_authority(fixed.clone()),
                format!("fixed authority {fixed}"),
            ),
            None => {
                let authorities = if args.authorities.is_empty() {
                    app::default_authorities(addr)
                } else {
                    args.authorities.clone()
                };
                let served = format!("authorities {}", authorities.join(" "));
                (builder.authorities(authorities), served)
            }
        };
        let builder = if args.window <= DEFAULT_WINDOW_SECS {
            builder.window(args.window)
        } else {
            builder.dangerous_window(args.window)
        };
        let builder = match args.rate_limit {
            None => builder,
            Some(rate) => {
                let burst = args.burst.unwrap_or(rate.count());
                let plan = tessera_ratelimit::Plan::new("default", rate, burst)
                    .map_err(|e| CliError::usage(format!("invalid --rate-limit: {e}")))?;
                builder.admission(
                    tessera_ratelimit::RateLimiter::builder(
                        tessera_ratelimit::MemoryRateStore::default(),
                    )
                    .default_plan(plan)
                    .build(),
                )
            }
        };
        let verifier = builder
            .build()
            .map_err(|e| CliError::usage(format!("invalid server configuration: {e}")))?;
        app::wait_for_replay_store(&OffsetClock(args.clock_offset)).await;

        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening on http://{addr}")
            .and_then(|()| stdout.flush())
            .map_err(|e| CliError::runtime(format!("cannot write to standard output: {e}")))?;
        if !args.quiet {
            eprintln!(
                "tessera serve: {keys_from}, scheme {}, {served}, window {}s, clock offset {}s{}",
                args.scheme,
                args.window,
                args.clock_offset,
                if args.debug_base {
                    ", signature base in bad_signature answers"
                } else {
                    ""
                }
            );
            eprintln!(
                "tessera serve: limits: head {} bytes, {} fields, header timeout {}s, body {} bytes, body timeout {}s, {} connections",
                args.max_header_bytes,
                args.max_headers,
                args.header_timeout,
                args.body_limit,
                args.body_timeout,
                args.max_connections
            );
        }

        let router = app::router(verifier).layer(axum::middleware::from_fn_with_state(
            policy.limits,
            limits::enforce,
        ));
        let router = if args.quiet {
            router
        } else {
            app::with_access_log(router)
        };
        serve(listener, router, policy).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Accepts connections until SIGINT or SIGTERM, then lets the open ones
/// finish for a bounded time.
async fn serve(listener: TcpListener, router: Router, policy: ConnectionPolicy) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(policy.header_timeout)
        .max_header_size(policy.limits.parser_max_header_size())
        .max_headers(policy.limits.parser_max_headers());
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(policy.max_connections));
    let mut shutdown = pin!(shutdown_signal());
    let mut saturated = false;
    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                saturated = false;
                permit
            }
            Err(_) => {
                if !policy.quiet && !saturated {
                    eprintln!(
                        "tessera serve: {} connections open (--max-connections); new ones wait",
                        policy.max_connections
                    );
                }
                saturated = true;
                tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        // The semaphore is never closed.
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let Some((stream, peer)) = accept(&listener, shutdown.as_mut(), |e| {
            if !policy.quiet {
                eprintln!("tessera serve: accept failed: {e}; retrying in 1 s");
            }
        })
        .await
        else {
            break;
        };
        let served = Arc::new(AtomicBool::new(false));
        let service = {
            let router = router.clone();
            let served = Arc::clone(&served);
            hyper::service::service_fn(move |request: http::Request<Incoming>| {
                served.store(true, Ordering::Relaxed);
                router.clone().oneshot(request)
            })
        };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let result = connection.await;
            drop(permit);
            if let Err(e) = result {
                if !policy.quiet {
                    if let Some(line) =
                        connection_error(peer, &e, served.load(Ordering::Relaxed), &policy)
                    {
                        eprintln!("{line}");
                    }
                }
            }
        });
    }
    drop(listener);
    // Idle connections close at once; a request in progress has at most the
    // longer of the two timeouts left to arrive, then is answered at once.
    let grace = policy.header_timeout.max(policy.limits.body_timeout) + Duration::from_secs(1);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {}
    }
}

/// The log line for a connection that ended in an error worth reporting:
/// the limits at work, not clients that merely hung up.
fn connection_error(
    peer: SocketAddr,
    e: &hyper::Error,
    served: bool,
    policy: &ConnectionPolicy,
) -> Option<String> {
    if e.is_timeout() {
        // After a first request this is a keep-alive connection going idle.
        (!served).then(|| {
            format!(
                "tessera serve: {peer}: no complete request head within {} s (--header-timeout); connection closed",
                policy.header_timeout.as_secs()
            )
        })
    } else if e.is_parse_too_large() {
        Some(format!(
            "tessera serve: {peer}: request head over {} bytes or {} fields, cut off by the HTTP parser; empty 431, connection closed",
            policy.limits.parser_max_header_size(),
            policy.limits.parser_max_headers()
        ))
    } else if e.is_parse() {
        Some(format!(
            "tessera serve: {peer}: malformed request ({e}); connection closed"
        ))
    } else {
        None
    }
}

/// The verifier's own log lines (a failing key or nonce store, `store_reset`,
/// a key at its nonce cap: warnings and the reasons behind a 503 or 429) as
/// text on standard error, next to the access log. `RUST_LOG` overrides the
/// default level, `warn`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second initialization (tests running commands in one process) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec!["serve", "--keys", "k.json"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map(|cli| cli.args)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let args = parse(&[]).expect("defaults parse");
        assert_eq!(args.scheme, "http");
        assert_eq!(args.header_timeout, 10);
        assert_eq!(args.body_timeout, 30);
        assert_eq!(args.max_header_bytes, 16384);
        assert_eq!(args.max_headers, 100);
        assert_eq!(args.max_connections, 1024);
        assert_eq!(args.body_limit, DEFAULT_BODY_LIMIT);
        assert!(args.fixed_authority.is_none());
    }

    #[test]
    fn bad_values_and_combinations_are_usage_errors() {
        use clap::error::ErrorKind;
        for (extra, kind) in [
            (&["--scheme", "ftp"][..], ErrorKind::InvalidValue),
            (&["--header-timeout", "0"][..], ErrorKind::ValueValidation),
            (&["--body-timeout", "x"][..], ErrorKind::ValueValidation),
            (
                &["--max-header-bytes", "100"][..],
                ErrorKind::ValueValidation,
            ),
            (&["--body-limit", "lots"][..], ErrorKind::ValueValidation),
            (&["--max-connections", "0"][..], ErrorKind::ValueValidation),
            (
                &["--authority", "a.example", "--fixed-authority", "b.example"][..],
                ErrorKind::ArgumentConflict,
            ),
        ] {
            let e = parse(extra).expect_err("must be refused");
            assert_eq!(e.kind(), kind, "{extra:?}: {e}");
        }
    }
}
