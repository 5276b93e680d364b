//! `tessera serve`: a standalone verifying echo server for testing clients.
//!
//! The contract (binding tests in other languages rely on it): one line
//! `listening on http://IP:PORT` on standard output at startup; every route
//! and method is verified and answers 200 with
//! `{"key_id","user","scopes","method","path","query","body_sha256"}`;
//! methods other than GET, HEAD and OPTIONS also need scope `write`
//! (403 `insufficient_scope`); rejections are the server's problem+json.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use tessera_core::{Scheme, DEFAULT_WINDOW_SECS};
use tessera_server::{Clock, Verifier};

use crate::app;
use crate::error::{CliError, CliResult};
use crate::timearg::now_unix;

/// Arguments of `tessera serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Keys file:
  {\"keys\":[{\"key_id\":\"k1\",\"secret_hex\":\"…\",\"user\":\"alice\",
             \"scopes\":[\"read\",\"write\"],\"not_after\":null,\"revoked\":false}]}
Prints `listening on http://127.0.0.1:PORT` once bound, then serves until
SIGINT or SIGTERM.")]
pub(crate) struct Args {
    /// Address to listen on; port 0 picks a free port (printed at startup).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// JSON keys file.
    #[arg(long, value_name = "FILE")]
    keys: PathBuf,
    /// An authority (host[:port]) to serve; repeat for more. Default: the
    /// bound IP:PORT and localhost:PORT.
    #[arg(long = "authority", value_name = "HOST[:PORT]")]
    authorities: Vec<String>,
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

/// Runs `tessera serve`.
pub(crate) fn run(args: Args) -> CliResult {
    let (store, count) = crate::keyfile::load(&args.keys)?;
    let runtime = app::runtime()?;
    runtime.block_on(async move {
        let (listener, addr) = app::bind(args.addr).await?;
        let authorities = if args.authorities.is_empty() {
            app::default_authorities(addr)
        } else {
            args.authorities.clone()
        };
        let builder = Verifier::builder()
            .key_store(store)
            .clock(OffsetClock(args.clock_offset))
            .scheme(Scheme::Http)
            .authorities(authorities.iter().cloned())
            .dangerous_debug_signature_base(args.debug_base);
        let builder = if args.window <= DEFAULT_WINDOW_SECS {
            builder.window(args.window)
        } else {
            builder.dangerous_window(args.window)
        };
        let verifier = builder
            .build()
            .map_err(|e| CliError::usage(format!("invalid server configuration: {e}")))?;

        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening on http://{addr}")
            .and_then(|()| stdout.flush())
            .map_err(|e| CliError::runtime(format!("cannot write to standard output: {e}")))?;
        if !args.quiet {
            eprintln!(
                "tessera serve: {count} key(s), authorities {}, window {}s, clock offset {}s{}",
                authorities.join(" "),
                args.window,
                args.clock_offset,
                if args.debug_base {
                    ", signature base in bad_signature answers"
                } else {
                    ""
                }
            );
        }

        let router = if args.quiet {
            app::router(verifier)
        } else {
            app::logged_router(verifier)
        };
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| CliError::runtime(format!("server error: {e}")))?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on SIGINT or (on Unix) SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        // If the handler cannot be installed, never resolve: the process
        // still stops on the default signal action.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
