//! `tessera-gateway`: a verifying reverse proxy; see the crate docs and `--help`.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than the system allocator: a proxy allocates and frees
/// small blocks for every request (heads, header maps, futures, buffers),
/// and per-thread free lists without locks or consolidation pauses make
/// that cheaper; measured with scripts/gateway-bench.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
