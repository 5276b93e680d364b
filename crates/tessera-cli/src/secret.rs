//! Reading a secret from a file, standard input or `TESSERA_SECRET`.
//!
//! There is deliberately no way to pass a secret as a command-line
//! argument: arguments land in shell history and in `ps` output.

use std::io::Read;
use std::path::PathBuf;

use tessera_core::SecretKey;
use zeroize::Zeroizing;

use crate::error::CliError;

/// The environment variable holding a hex secret.
pub(crate) const SECRET_ENV: &str = "TESSERA_SECRET";

/// Where the signing secret comes from.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SecretArgs {
    /// File holding the secret as hex; `-` reads it from standard input.
    /// Without it, the TESSERA_SECRET environment variable (hex) is used.
    #[arg(
        long = "secret-file",
        value_name = "FILE|-",
        allow_hyphen_values = true
    )]
    pub(crate) secret_file: Option<PathBuf>,
}

impl SecretArgs {
    /// Whether the secret is read from standard input.
    pub(crate) fn uses_stdin(&self) -> bool {
        self.secret_file
            .as_deref()
            .is_some_and(|p| p.as_os_str() == "-")
    }

    /// Loads and validates the secret.
    pub(crate) fn load(&self) -> Result<SecretKey, CliError> {
        let (text, origin) = match &self.secret_file {
            Some(path) if path.as_os_str() == "-" => {
                let mut text = Zeroizing::new(String::new());
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| CliError::runtime(format!("cannot read the secret from standard input: {e}")))?;
                (text, "standard input".to_owned())
            }
            Some(path) => {
                let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
                    CliError::runtime(format!(
                        "cannot read secret file '{}': {e}",
                        tessera_server::redacted_path(path)
                    ))
                })?);
                let text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
                (text, format!("secret file '{}'", path.display()))
            }
            None => match std::env::var(SECRET_ENV) {
                Ok(value) => (Zeroizing::new(value), SECRET_ENV.to_owned()),
                Err(_) => {
                    return Err(CliError::usage(format!(
                        "no secret given: use --secret-file FILE, --secret-file - (standard input) or set {SECRET_ENV} (hex)"
                    )))
                }
            },
        };
        SecretKey::from_hex(text.trim()).map_err(|e| {
            CliError::runtime(format!(
                "the secret in {origin} is unusable: {}",
                e.detail()
            ))
        })
    }
}
