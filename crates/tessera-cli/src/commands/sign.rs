//! `tessera sign`: the signature headers for a request, or a ready curl command.

use std::fmt::Write as _;
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
    let key = SigningKey::new(request.key_id.clone(), &secret);
    drop(secret);
    let signed = tessera_core::sign(
        &key,
        &request.view()?,
        &request.digest(),
        &request.options(),
    )
    .map_err(|e| CliError::usage(format!("cannot sign this request: {e}")))?;
    if args.show_base {
        let base = request.signature_base(&key)?;
        crate::output::write_raw_line(&mut std::io::stderr(), base.as_bytes())?;
    }
    if args.curl {
        println!("{}", curl_command(&request, &signed)?);
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

/// A curl command that sends exactly the signed request.
///
/// `--path-as-is` keeps dot segments, `--globoff` keeps `[]{}` literal, so
/// curl sends the path and query as signed.
fn curl_command(request: &PreparedRequest, signed: &SignedHeaders) -> Result<String, CliError> {
    let mut out = String::from("curl -sS --path-as-is --globoff");
    if request.method == http::Method::HEAD {
        out.push_str(" --head");
    } else {
        let _ = write!(out, " -X {}", shell_quote(request.method.as_str()));
    }
    for (name, value) in &request.header_lines {
        let _ = write!(out, " -H {}", shell_quote(&format!("{name}: {value}")));
    }
    for (name, value) in display_headers(signed) {
        let _ = write!(out, " -H {}", shell_quote(&format!("{name}: {value}")));
    }
    match &request.body_source {
        BodySource::None => {}
        BodySource::File(path) => {
            let _ = write!(
                out,
                " --data-binary {}",
                shell_quote(&format!("@{}", path.display()))
            );
        }
        BodySource::Literal(text) => {
            let _ = write!(out, " --data-raw {}", shell_quote(text));
        }
        BodySource::Stdin => {
            if !request.body.is_empty() {
                let text = std::str::from_utf8(&request.body)
                    .ok()
                    .filter(|t| !t.contains('\0'))
                    .ok_or_else(|| {
                        CliError::usage(
                            "a binary body from standard input cannot be put on a curl command line; use --data @FILE",
                        )
                    })?;
                let _ = write!(out, " --data-raw {}", shell_quote(text));
            }
        }
    }
    let _ = write!(out, " {}", shell_quote(&request.url));
    Ok(out)
}

/// Quotes `text` for a POSIX shell: unchanged when it is plainly safe,
/// otherwise in single quotes with embedded quotes as `'\''`.
pub(crate) fn shell_quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if safe {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
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
