//! `tessera verify`: checks a captured raw HTTP/1.1 request offline.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use tessera_core::{
    normalize_authority, BodyDigest, Error, ErrorCode, ParsedSignature, Policy, RequestView,
    Scheme, SigningKey,
};

use crate::error::{CliError, CliResult, EXIT_FAILURE};
use crate::rawhttp::{self, RawRequest};
use crate::secret::SecretArgs;
use crate::timearg::{now_unix, parse_time};

/// Arguments of `tessera verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Prints `ok keyid=<id> created=<time>` (exit 0) or
`rejected: <code>: <detail>` (exit 1), with the tessera-v1 error code. On
bad_signature the signature base computed here is printed too. Replays cannot
be detected offline: there is no nonce store.")]
pub(crate) struct Args {
    /// The captured request: a file, or - for standard input.
    #[arg(long, value_name = "FILE|-")]
    request: PathBuf,
    #[command(flatten)]
    secret: SecretArgs,
    /// The key id the secret belongs to.
    #[arg(long = "key-id", value_name = "ID")]
    key_id: String,
    /// The authority (host[:port]) the verifier serves; the request's Host must match it.
    #[arg(long, value_name = "HOST[:PORT]")]
    authority: String,
    /// The verifier's current time (Unix seconds or RFC 3339); default now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    now: Option<u64>,
    /// The acceptance window for `created`, seconds, in both directions.
    #[arg(long, value_name = "SECS", default_value_t = tessera_core::DEFAULT_WINDOW_SECS)]
    window: u64,
    /// The scheme the request was sent with (decides the default port).
    #[arg(long, value_name = "SCHEME", default_value = "https", value_parser = ["https", "http"])]
    scheme: String,
}

/// Runs `tessera verify`.
pub(crate) fn run(args: &Args) -> CliResult {
    let reads_stdin = args.request.as_os_str() == "-";
    if reads_stdin && args.secret.uses_stdin() {
        return Err(CliError::usage(
            "the request and the secret cannot both come from standard input",
        ));
    }
    let scheme = Scheme::parse(&args.scheme).unwrap_or_default();
    let authority = normalize_authority(&args.authority, scheme)
        .map_err(|e| {
            CliError::usage(format!(
                "invalid --authority '{}': {}",
                args.authority,
                e.detail()
            ))
        })?
        .into_owned();
    let key_id = tessera_core::KeyId::new(args.key_id.as_str())
        .map_err(|e| CliError::usage(format!("invalid --key-id: {}", e.detail())))?;
    let secret = args.secret.load()?;
    let key = SigningKey::new(key_id, &secret);
    drop(secret);

    let bytes = read_request(&args.request, reads_stdin)?;
    let raw = rawhttp::parse(&bytes).map_err(|e| {
        CliError::runtime(format!(
            "cannot parse request '{}': {e}",
            args.request.display()
        ))
    })?;

    let authorities = [authority];
    let policy = Policy {
        now: args.now.unwrap_or_else(now_unix),
        window: args.window,
        authorities: &authorities,
    };
    match check(&raw, scheme, &key, &policy) {
        Ok(parsed) => {
            println!("ok keyid={} created={}", parsed.keyid(), parsed.created());
            Ok(ExitCode::SUCCESS)
        }
        Err(Failure { error, base }) => {
            println!("rejected: {}: {}", error.code(), error.detail());
            if let Some(base) = base {
                println!(
                    "signature base computed by the verifier (sha256 {}):",
                    base.sha256_hex()
                );
                crate::output::write_raw_line(&mut std::io::stdout(), base.as_bytes())?;
            }
            Ok(ExitCode::from(EXIT_FAILURE))
        }
    }
}

fn read_request(path: &PathBuf, stdin: bool) -> Result<Vec<u8>, CliError> {
    if stdin {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map_err(|e| {
            CliError::runtime(format!("cannot read the request from standard input: {e}"))
        })?;
        Ok(bytes)
    } else {
        std::fs::read(path).map_err(|e| {
            CliError::runtime(format!(
                "cannot read request file '{}': {e}",
                path.display()
            ))
        })
    }
}

/// A rejection, with the base computed when the MAC did not match.
struct Failure {
    error: Error,
    base: Option<tessera_core::SignatureBase>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure { error, base: None }
    }
}

/// The verification procedure, steps 1 to 7 (no replay check offline).
fn check(
    raw: &RawRequest,
    scheme: Scheme,
    key: &SigningKey,
    policy: &Policy<'_>,
) -> Result<ParsedSignature, Failure> {
    let fields = &raw.headers[..];
    let parsed = ParsedSignature::from_fields(fields)?;
    if parsed.keyid() != key.id() {
        return Err(Error::new(
            ErrorCode::UnknownKey,
            format!(
                "the request is signed with key \"{}\", not with --key-id \"{}\"",
                parsed.keyid(),
                key.id()
            ),
        )
        .into());
    }
    let (path, query, target_authority) = split_target(&raw.target)?;
    let host = match target_authority {
        Some(a) => a,
        None => {
            let mut hosts = raw.values("host");
            match (hosts.next(), hosts.next()) {
                (Some(h), None) => std::str::from_utf8(h).map_err(|_| {
                    Error::new(ErrorCode::InvalidFieldValue, "the Host header is not ASCII")
                })?,
                (None, _) => "",
                (Some(_), Some(_)) => {
                    return Err(Error::new(
                        ErrorCode::InvalidFieldValue,
                        "the request has more than one Host header",
                    )
                    .into())
                }
            }
        }
    };
    let view = RequestView::new(&raw.method, scheme, host, path, query, fields)?;
    match parsed.verify_with_key(key, &view, &BodyDigest::of(&raw.body), policy) {
        Ok(()) => Ok(parsed),
        Err(error) if error.code() == ErrorCode::BadSignature => Err(Failure {
            base: parsed.signature_base(&view).ok(),
            error,
        }),
        Err(error) => Err(error.into()),
    }
}

/// Path, query and (for absolute-form targets) authority of a request target.
fn split_target(target: &str) -> Result<(&str, Option<&str>, Option<&str>), Error> {
    let (authority, rest) = if target.starts_with('/') {
        (None, target)
    } else {
        let after_scheme = ["http://", "https://"]
            .iter()
            .find_map(|s| {
                target
                    .get(..s.len())
                    .filter(|p| p.eq_ignore_ascii_case(s))
                    .map(|_| &target[s.len()..])
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::InvalidFieldValue,
                    format!("request target \"{target}\" is neither origin-form nor absolute-form"),
                )
            })?;
        let end = after_scheme.find(['/', '?']).unwrap_or(after_scheme.len());
        let rest = &after_scheme[end..];
        (
            Some(&after_scheme[..end]),
            if rest.is_empty() { "/" } else { rest },
        )
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    Ok((path, query, authority))
}

#[cfg(test)]
mod tests {
    use super::split_target;

    #[test]
    fn targets() {
        assert_eq!(split_target("/a?b=1").ok(), Some(("/a", Some("b=1"), None)));
        assert_eq!(split_target("/a").ok(), Some(("/a", None, None)));
        assert_eq!(split_target("/a?").ok(), Some(("/a", Some(""), None)));
        assert_eq!(
            split_target("http://h:1/x?y").ok(),
            Some(("/x", Some("y"), Some("h:1")))
        );
        assert_eq!(
            split_target("https://h?q").ok(),
            Some(("", Some("q"), Some("h")))
        );
        assert!(split_target("*").is_err());
    }
}
