//! `tessera-loadgen`: the gateway benchmark's two processes.
//!
//! * `tessera-loadgen upstream`: a minimal hyper HTTP/1.1 server that reads
//!   each request body and answers 200 with a small JSON body.
//! * `tessera-loadgen run`: a load generator over HTTP/1.1 keep-alive, one
//!   connection per task; closed loop (N connections back to back, for a
//!   duration or a request count) or open loop (a fixed offered rate,
//!   latency measured from each request's scheduled send time, so a stalled
//!   server cannot hide its queue: no coordinated omission). Requests are
//!   optionally signed with tessera-client's `Signer`, inline, a fresh nonce
//!   each.
//!
//! `scripts/gateway-bench` runs both against direct, nginx and
//! tessera-gateway.

mod keys;
mod load;
mod report;
mod target;
mod upstream;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "tessera-loadgen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve 200 with a small body to every request (the benchmark upstream).
    Upstream(upstream::Args),
    /// Send load to a URL and report requests/s, p50, p99 and errors.
    Run(load::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Upstream(args) => upstream::main(&args),
        Command::Run(args) => load::main(args),
    }
}
