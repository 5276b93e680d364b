//! `tessera keygen`: a new key id and secret, minted by the server's `KeyIssuer`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tessera_server::{KeyIssuer, KeyRequest, MemoryKeyStore};

use crate::error::{error_chain, CliError, CliResult};
use crate::timearg::{parse_duration, rfc3339};

/// Arguments of `tessera keygen`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The JSON form is one entry of a `tessera serve --keys` file:
  tessera keygen --user alice --scopes read,write --json
Keep the secret out of shell history: save it to a file (chmod 600) and sign
with --secret-file."
)]
pub(crate) struct Args {
    /// The user the key acts for.
    #[arg(
        long,
        value_name = "USER",
        default_value = "user",
        allow_hyphen_values = true
    )]
    user: String,
    /// Scopes to grant, comma-separated.
    #[arg(
        long,
        value_name = "A,B",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    scopes: Vec<String>,
    /// Lifetime: a number with unit s, m, h, d or w (30d); default no expiry.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    ttl: Option<u64>,
    /// Print {"key_id","secret_hex","user","scopes","not_after"} as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `tessera keygen`.
pub(crate) fn run(args: &Args) -> CliResult {
    let scopes: Vec<String> = args
        .scopes
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let mut request = KeyRequest::new(args.user.as_str()).with_scopes(scopes.iter().cloned());
    if let Some(secs) = args.ttl {
        request = request.with_lifetime(Duration::from_secs(secs));
    }
    // The issuer mints the id and secret exactly as a server does at login;
    // the throwaway store is dropped at the end.
    let issued = KeyIssuer::memory(Arc::new(MemoryKeyStore::new()))
        .issue(&request)
        .map_err(|e| CliError::usage(format!("cannot issue a key: {}", error_chain(&e))))?;
    let entry = tessera_server::KeyFileEntry::new(
        issued.key_id().to_string(),
        issued.expose_secret().expose_hex().to_string(),
        args.user.clone(),
    )
    .with_scopes(issued.metadata().scopes.iter().cloned())
    .with_not_after(issued.metadata().not_after);
    if args.json {
        let text = serde_json::to_string(&entry)
            .map_err(|e| CliError::runtime(format!("cannot encode JSON: {e}")))?;
        println!("{text}");
    } else {
        println!("key_id:     {}", entry.key_id);
        println!("secret_hex: {}", entry.secret_hex);
        println!("user:       {}", entry.owner);
        println!("scopes:     {}", entry.scopes.join(","));
        match entry.not_after {
            Some(t) => println!("not_after:  {t} ({})", rfc3339(t)),
            None => println!("not_after:  never"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
