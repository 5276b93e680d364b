//! `tessera base`: the exact signature base of a request.

use std::path::PathBuf;
use std::process::ExitCode;

use tessera_core::{SecretKey, SigningKey};

use crate::error::{CliError, CliResult};
use crate::request::RequestArgs;

/// Arguments of `tessera base`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "To reproduce the base of a request that was signed earlier, pass the
created and nonce parameters of its Signature-Input:
  tessera base POST https://api.example.com/v1/orders --data @order.json \\
      --key-id k1 --created 1700000000 --nonce q8Zl1mVQm0yD9kR3tW5xCA
The base needs no secret; --secret-file is accepted and ignored, so a sign
command line can be reused as it is."
)]
pub(crate) struct Args {
    #[command(flatten)]
    request: RequestArgs,
    /// Print the hex SHA-256 of the base instead (compare with a server's `base_sha256`).
    #[arg(long)]
    sha256: bool,
    /// Ignored: the base does not depend on the secret.
    #[arg(long = "secret-file", value_name = "FILE|-", hide = true)]
    _secret_file: Option<PathBuf>,
}

/// Runs `tessera base`.
pub(crate) fn run(args: &Args) -> CliResult {
    let request = args.request.prepare()?;
    if args.request.created.is_none() || args.request.nonce.is_none() {
        eprintln!(
            "tessera: note: using created={} nonce={}; pass --created and --nonce from a request's Signature-Input to reproduce its base",
            request.created, request.nonce
        );
    }
    // The base depends on the key id only; any secret gives the same bytes.
    let placeholder = SecretKey::from_bytes(&[0; 32])
        .map_err(|e| CliError::runtime(format!("internal error: {e}")))?;
    let key = SigningKey::new(request.key_id.clone(), &placeholder);
    let base = request.signature_base(&key)?;
    if args.sha256 {
        println!("{}", base.sha256_hex());
    } else {
        crate::output::write_raw_line(&mut std::io::stdout(), base.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}
