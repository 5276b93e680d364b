//! `tessera-gateway`: a verifying reverse proxy; see the crate docs and `--help`.

use std::process::ExitCode;

use clap::Parser;

/// A verifying reverse proxy for tessera-v1 signed requests.
#[derive(Debug, Parser)]
#[command(name = "tessera-gateway", version)]
struct Cli {
    #[command(flatten)]
    args: tessera_gateway::cli::Args,
}

fn main() -> ExitCode {
    tessera_gateway::cli::main(Cli::parse().args)
}
