//! `tessera sign`: the signature headers for a request, or a ready curl command.

use std::process::ExitCode;

use tessera_core::{SignedHeaders, SigningKey};

use crate::error::{CliError, CliResult};
use crate::request::{BodySource, PreparedRequest, RequestArgs};
use crate::secret::SecretArgs;

/// Arguments of `tessera sign`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  tessera sign GET 'https://api.example.com/v1/me' --key-id k1 --secret-file key.hex
  tessera sign POST https://api.example.com/v1/orders -H 'Content-Type: application/json' \\
      --cover content-type --data @order.json --key-id k1 --secret-file key.hex --curl | sh")]
pub(crate) struct Args {
    #[command(flatten)]
    request: RequestArgs,
    #[command(flatten)]
    secret: SecretArgs,
    /// Print a ready curl command line instead of the headers.
    #[arg(long)]
    curl: bool,
    /// Also print the signature base to standard error.
    #[arg(long)]
    show_base: bool,
}

/// Runs `tessera sign`.
pub(crate) fn run(args: &Args) -> CliResult {
    if args.request.uses_stdin() && args.secret.uses_stdin() {
        return Err(CliError::usage(
            "the body and the secret cannot both come from standard input",
        ));
    }
    let secret = args.secret.load()?;
    let request = args.request.prepare()?;
    let view = request.view()?;
    request.check_host_matches_url()?;
    request.check_covered_present()?;
    let key = SigningKey::new(request.key_id.clone(), &secret);
    drop(secret);
    let signed = tessera_core::sign(&key, &view, &request.digest(), &request.options())
        .map_err(|e| CliError::usage(format!("cannot sign this request: {e}")))?;
    if args.show_base {
        let base = request.signature_base(&key)?;
        crate::output::write_raw_line(&mut std::io::stderr(), base.as_bytes())?;
    }
    if args.curl {
        crate::output::write_raw_line(&mut std::io::stdout(), &curl_command(&request, &signed)?)?;
    } else {
        for (name, value) in display_headers(&signed) {
            println!("{name}: {value}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The three headers with conventional capitalization.
fn display_headers(signed: &SignedHeaders) -> [(&'static str, &str); 3] {
    [
        ("Content-Digest", &*signed.content_digest),
        ("Signature-Input", signed.signature_input.as_str()),
        ("Signature", signed.signature.as_str()),
    ]
}

/// A curl command that sends exactly the signed request, as bytes: a header
/// value may hold obs-text, which is passed through as it is.
///
/// `--path-as-is` keeps dot segments, `--globoff` keeps `[]{}` literal, so
/// curl sends the path and query as signed. `-X` sends the method exactly as
/// written (curl does not change its case).
///
/// What curl would not send as signed is refused or written so that it is:
/// an authority that curl rewrites (a zero-padded port, a percent-encoded
/// host) is an error; an empty header value is written `-H 'Name;'` (curl
/// drops `Name:` with nothing after it); and the caller's own
/// `Content-Digest`, `Signature-Input` and `Signature` lines are left out,
/// since the signed ones replace them (spec §10).
fn curl_command(request: &PreparedRequest, signed: &SignedHeaders) -> Result<Vec<u8>, CliError> {
    check_curl_sends_authority(&request.url)?;
    let mut out = b"curl -sS --path-as-is --globoff".to_vec();
    let arg = |out: &mut Vec<u8>, flag: &str, value: &[u8]| {
        out.push(b' ');
        out.extend_from_slice(flag.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&shell_quote_bytes(value));
    };
    if request.method == "HEAD" {
        out.extend_from_slice(b" --head");
    } else {
        arg(&mut out, "-X", request.method.as_bytes());
    }
    let header = |name: &str, value: &[u8]| {
        if value.iter().all(|b| matches!(b, b' ' | b'\t')) {
            // `Name;` is curl's way to send a field with an empty value.
            [name.as_bytes(), b";"].concat()
        } else {
            [name.as_bytes(), b": ", value].concat()
        }
    };
    for (name, value) in &request.header_lines {
        let replaced = display_headers(signed)
            .iter()
            .any(|(signed_name, _)| signed_name.eq_ignore_ascii_case(name));
        if !replaced {
            arg(&mut out, "-H", &header(name, value));
        }
    }
    for (name, value) in display_headers(signed) {
        arg(&mut out, "-H", &header(name, value.as_bytes()));
    }
    match &request.body_source {
        BodySource::None => {}
        BodySource::File(path) => {
            arg(
                &mut out,
                "--data-binary",
                format!("@{}", path.display()).as_bytes(),
            );
        }
        BodySource::Literal(text) => arg(&mut out, "--data-raw", text.as_bytes()),
        BodySource::Stdin => {
            if !request.body.is_empty() {
                if request.body.contains(&0) {
                    return Err(CliError::usage(
                        "a body with NUL bytes from standard input cannot be put on a curl command line; use --data @FILE",
                    ));
                }
                arg(&mut out, "--data-raw", &request.body);
            }
        }
    }
    out.push(b' ');
    out.extend_from_slice(&shell_quote_bytes(request.url.as_bytes()));
    Ok(out)
}

/// Refuses a URL whose authority curl would send in another form than the
/// one signed: curl decodes a percent-encoded host and writes the port as a
/// plain number, so the verifier would see another authority.
fn check_curl_sends_authority(url: &str) -> Result<(), CliError> {
    let cannot = |e: tessera_core::Error| CliError::usage(format!("cannot sign this request: {e}"));
    let target = tessera_core::Target::parse_url(url).map_err(cannot)?;
    let authority = target.authority();
    // The port follows the last `:` outside an IPv6 literal's brackets.
    let port = authority
        .rsplit_once(':')
        .filter(|(host, _)| !host.starts_with('[') || host.ends_with(']'))
        .map(|(_, port)| port);
    if authority.contains('%') || port.is_some_and(|p| p.len() > 1 && p.starts_with('0')) {
        return Err(CliError::usage(format!(
            "--curl: curl would send the authority {authority:?} in another form (it decodes %-escapes in the host and drops leading zeros of the port), so the request would not verify; write the URL's host and port as curl sends them"
        )));
    }
    Ok(())
}

/// Quotes `text` for a POSIX shell: unchanged when it is plainly safe,
/// otherwise in single quotes with embedded quotes as `'\''`.
#[cfg(test)]
pub(crate) fn shell_quote(text: &str) -> String {
    String::from_utf8_lossy(&shell_quote_bytes(text.as_bytes())).into_owned()
}

/// `shell_quote` for arbitrary bytes (single quotes pass every byte but `'`).
fn shell_quote_bytes(text: &[u8]) -> Vec<u8> {
    let safe = !text.is_empty()
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(b));
    if safe {
        return text.to_vec();
    }
    let mut out = Vec::with_capacity(text.len() + 2);
    out.push(b'\'');
    for &b in text {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("GET"), "GET");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("http://h/p?a=1&b=2"), "'http://h/p?a=1&b=2'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }
}
