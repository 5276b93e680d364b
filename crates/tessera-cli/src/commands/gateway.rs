//! `tessera gateway`: the verifying reverse proxy of `tessera-gateway`,
//! with the same flags and configuration file as its own binary.

use crate::error::CliResult;

/// Arguments of `tessera gateway` (those of `tessera-gateway`).
pub(crate) type Args = tessera_gateway::cli::Args;

/// Runs the gateway until SIGTERM or SIGINT.
pub(crate) fn run(args: Args) -> CliResult {
    Ok(tessera_gateway::cli::main(args))
}
