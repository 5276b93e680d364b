//! `tessera`: the command-line tool of the Tessera project.
//!
//! One file per command under `commands/`; the shared pieces (request
//! arguments, secrets, raw HTTP parsing, the echo application, terminal
//! output) live beside this file. Run `tessera --help` for the commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod app;
mod commands;
mod error;
mod limits;
mod output;
mod rawhttp;
mod request;
mod secret;
mod timearg;

/// mimalloc, as in the `tessera-gateway` binary: `tessera gateway` and
/// `tessera serve` allocate and free small blocks for every request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sign, verify and debug tessera-v1 HTTP request signatures
/// (RFC 9421 hmac-sha256 with RFC 9530 Content-Digest).
///
/// Secrets are never taken as command-line arguments: use
/// `--secret-file FILE`, `--secret-file -` (standard input) or the
/// TESSERA_SECRET environment variable (hex).
#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run signed requests against a local verifying server and check every outcome.
    Demo(commands::demo::Args),
    /// Generate a new key id and secret.
    Keygen(commands::keygen::Args),
    /// Administer a SQL key store: migrate, issue, list, show, revoke, rotate, rewrap.
    Keys(commands::keys::Args),
    /// Sign a request: print the headers to add, or a ready curl command.
    Sign(commands::sign::Args),
    /// Print the exact signature base of a request, for diffing against a server's.
    Base(commands::base::Args),
    /// Verify a captured raw HTTP/1.1 request offline.
    Verify(commands::verify::Args),
    /// Run a verifying echo server for testing clients.
    Serve(commands::serve::Args),
    /// Run a verifying reverse proxy in front of any HTTP API.
    // Boxed: its flags are the largest by far, and clap parses once.
    Gateway(Box<commands::gateway::Args>),
}

fn main() -> ExitCode {
    output::quiet_on_closed_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return error::clap_exit(&e),
    };
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Keygen(args) => commands::keygen::run(&args),
        Command::Keys(args) => commands::keys::run(args),
        Command::Sign(args) => commands::sign::run(&args),
        Command::Base(args) => commands::base::run(&args),
        Command::Verify(args) => commands::verify::run(&args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Gateway(args) => commands::gateway::run(*args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tessera: error: {e}");
            e.exit_code()
        }
    }
}
