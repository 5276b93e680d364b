//! `tessera verify`: checks a captured raw HTTP/1.1 request offline.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use tessera_core::{
    normalize_authority, BodyDigest, Error, ErrorCode, KeyId, ParsedSignature, Policy,
    ReceivedRequest, Refusal, Scheme, SecretKey, SigningKey,
};

use crate::error::{CliError, CliResult, EXIT_FAILURE};
use crate::rawhttp::{self, RawRequest};
use crate::secret::SecretArgs;
use crate::timearg::{now_unix, parse_time};

/// Arguments of `tessera verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Prints `ok keyid=<id> created=<time>` (exit 0) or
`rejected: <code>: <detail>` (exit 1), with the tessera-v1 error code. A
request that is not valid HTTP/1.1 gets `rejected: malformed_request: <detail>`
(exit 3); a usage error exits 2. On bad_signature the signature base computed
here is printed too. Replays cannot be detected offline: there is no nonce store.")]
pub(crate) struct Args {
    /// The captured request: a file, or - for standard input.
    #[arg(long, value_name = "FILE|-", allow_hyphen_values = true)]
    request: PathBuf,
    #[command(flatten)]
    secret: SecretArgs,
    /// The key id the secret belongs to; default the `keyid` of the
    /// request's tessera-v1 signature.
    #[arg(long = "key-id", value_name = "ID", allow_hyphen_values = true)]
    key_id: Option<String>,
    /// An authority (`host[:port]`) the verifier serves; repeat for more. The
    /// request's received authority (Host, or an absolute-form target) must be one.
    /// Required unless --fixed-authority is given.
    #[arg(
        long = "authority",
        value_name = "HOST[:PORT]",
        allow_hyphen_values = true,
        required_unless_present = "fixed_authority",
        conflicts_with = "fixed_authority"
    )]
    authorities: Vec<String>,
    /// Fixed-authority mode: put this authority in the base and never read Host
    /// (for requests captured behind a proxy that rewrites Host).
    #[arg(long, value_name = "HOST[:PORT]", allow_hyphen_values = true)]
    fixed_authority: Option<String>,
    /// The verifier's current time (Unix seconds or RFC 3339); default now.
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_hyphen_values = true)]
    now: Option<u64>,
    /// The acceptance window for `created`, seconds: how old it may be (it
    /// may be at most min(window, 2) seconds ahead).
    #[arg(long, value_name = "SECS", default_value_t = tessera_core::DEFAULT_WINDOW_SECS, allow_hyphen_values = true)]
    window: u64,
    /// The public scheme the request was sent with (decides the default port).
    #[arg(long, value_name = "SCHEME", default_value = "https", value_parser = ["https", "http"])]
    scheme: String,
    /// Print the signature base computed here to standard output, whatever
    /// the verdict (once the request got as far as step 5).
    #[arg(long)]
    show_base: bool,
}

/// Exit status for a request that is not valid HTTP/1.1 (`malformed_request`).
const EXIT_UNPARSEABLE: u8 = 3;

/// Runs `tessera verify`.
pub(crate) fn run(args: &Args) -> CliResult {
    let reads_stdin = args.request.as_os_str() == "-";
    if reads_stdin && args.secret.uses_stdin() {
        return Err(CliError::usage(
            "the request and the secret cannot both come from standard input",
        ));
    }
    let scheme = Scheme::parse(&args.scheme).unwrap_or_default();
    let normal = |flag: &str, authority: &str| {
        normalize_authority(authority, scheme)
            .map(std::borrow::Cow::into_owned)
            .map_err(|e| CliError::usage(format!("invalid {flag} '{authority}': {}", e.detail())))
    };
    let authorities = args
        .authorities
        .iter()
        .map(|a| normal("--authority", a))
        .collect::<Result<Vec<_>, _>>()?;
    let fixed = args
        .fixed_authority
        .as_deref()
        .map(|a| normal("--fixed-authority", a))
        .transpose()?;
    let key_id = args
        .key_id
        .as_deref()
        .map(|id| {
            tessera_core::KeyId::new(id)
                .map_err(|e| CliError::usage(format!("invalid --key-id: {}", e.detail())))
        })
        .transpose()?;
    let secret = args.secret.load()?;

    let bytes = read_request(&args.request, reads_stdin)?;
    let raw = match rawhttp::parse(&bytes) {
        Ok(raw) => raw,
        Err(e) => {
            println!("rejected: malformed_request: {e}");
            return Ok(ExitCode::from(EXIT_UNPARSEABLE));
        }
    };

    let now = args.now.unwrap_or_else(now_unix);
    let policy = match &fixed {
        Some(fixed) => Policy::fixed(now, args.window, fixed),
        None => Policy::new(now, args.window, &authorities),
    }
    .with_scheme(scheme);
    let outcome = check(&raw, key_id.as_ref(), &secret, &policy);
    drop(secret);
    let mut stdout = std::io::stdout();
    let code = match &outcome.verdict {
        Ok(parsed) => {
            println!("ok keyid={} created={}", parsed.key_id(), parsed.created());
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("rejected: {}: {}", error.code(), error.detail());
            if let Some(note) = &outcome.note {
                println!("note: {note}");
            }
            if !args.show_base && error.code() == ErrorCode::BadSignature {
                if let Some(base) = &outcome.base {
                    println!(
                        "signature base computed by the verifier (sha256 {}):",
                        base.sha256_hex()
                    );
                    crate::output::write_raw_line(&mut stdout, base.as_bytes())?;
                }
            }
            ExitCode::from(EXIT_FAILURE)
        }
    };
    if args.show_base {
        match &outcome.base {
            Some(base) => {
                println!("signature base (sha256 {}):", base.sha256_hex());
                crate::output::write_raw_line(&mut stdout, base.as_bytes())?;
            }
            None => println!(
                "signature base: none (the request was rejected before its base could be built)"
            ),
        }
    }
    Ok(code)
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

/// The verdict, and the base computed over the request when it got that far.
struct Outcome {
    verdict: Result<ParsedSignature, Error>,
    base: Option<tessera_core::SignatureBase>,
    /// A line that explains the verdict further, printed after it.
    note: Option<String>,
}

/// The verification procedure, steps 1 to 7 (no replay check offline), in
/// the spec's order through `tessera_core`, as every verifier runs it.
fn check(
    raw: &RawRequest,
    key_id: Option<&KeyId>,
    secret: &SecretKey,
    policy: &Policy<'_>,
) -> Outcome {
    let fields = &raw.headers[..];
    let received = ReceivedRequest::new(&raw.method, &raw.target, fields);
    let parsed = match ParsedSignature::from_fields(fields) {
        Ok(parsed) => parsed,
        Err(error) => {
            return Outcome {
                verdict: Err(error),
                base: None,
                note: None,
            }
        }
    };
    if let Some(expected) = key_id {
        if parsed.key_id() != expected {
            return Outcome {
                verdict: Err(Refusal::UnknownKey.into()),
                base: None,
                note: Some(format!(
                    "the request is signed with key \"{}\", not with --key-id \"{expected}\"",
                    parsed.key_id()
                )),
            };
        }
    }
    let key = SigningKey::new(parsed.key_id().clone(), secret);
    let mut verdict = parsed.verify_with_key(&key, &received, &BodyDigest::of(&raw.body), policy);
    let mut note = None;
    // A capture that ends before its body: step 7 refuses it as a server
    // refuses a body it cannot read whole, whatever the digest of the part
    // that is there (spec §11.2 step 7); an earlier step's code stands.
    if let Some(announced) = raw.short_body {
        if verdict.is_ok()
            || verdict
                .as_ref()
                .is_err_and(|e| e.code() == ErrorCode::DigestMismatch)
        {
            verdict = Err(Refusal::BodyUnreadable.into());
            note = Some(format!(
                "the capture ends after {} of the {announced} body bytes Content-Length announces",
                raw.body.len()
            ));
        }
    }
    // The base, for --show-base and for bad_signature: only once step 5 has
    // accepted the target, never over an authority it refused.
    let base = match &verdict {
        Err(e) if matches!(e.code(), ErrorCode::ClockSkew | ErrorCode::SignatureExpired) => None,
        _ => received
            .view(policy.scheme, policy.authorities)
            .ok()
            .and_then(|view| parsed.signature_base(&view).ok()),
    };
    Outcome {
        verdict: verdict.map(|_| parsed),
        note,
        base,
    }
}
