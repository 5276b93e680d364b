//! The request arguments shared by `sign` and `base`, and the request they describe.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::PathBuf;

use http::{HeaderMap, HeaderName, HeaderValue};
use tessera_core::{BodyDigest, Component, KeyId, Nonce, RequestView, SignOptions, SigningKey};

use crate::error::CliError;
use crate::timearg::{now_unix, parse_time};

/// Method, URL, headers, body, covered headers and signature parameters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RequestArgs {
    /// HTTP method (GET, POST, ...), signed exactly as written: `get` and
    /// `GET` are different methods.
    #[arg(value_name = "METHOD")]
    pub(crate) method: String,
    /// Absolute http:// or https:// URL. Its authority, path and query are
    /// signed exactly as written: no normalization, no percent-encoding; a
    /// #fragment is never sent and not signed.
    #[arg(value_name = "URL")]
    pub(crate) url: String,
    /// A request header, 'Name: value'; repeat for more. The value may hold
    /// any octets a field value may (obs-text included).
    #[arg(short = 'H', long = "header", value_name = "'Name: value'",
          value_parser = clap::value_parser!(OsString), allow_hyphen_values = true)]
    pub(crate) headers: Vec<OsString>,
    /// The body: @FILE, - (standard input) or literal text.
    #[arg(
        short = 'd',
        long = "data",
        value_name = "@FILE|-|TEXT",
        allow_hyphen_values = true
    )]
    pub(crate) data: Option<String>,
    /// A header to cover in addition to @method, @authority, @path, @query and
    /// content-digest, written in lowercase; repeat for more. It must be among
    /// the -H headers.
    #[arg(long = "cover", value_name = "HEADER", allow_hyphen_values = true)]
    pub(crate) cover: Vec<String>,
    /// The key id to sign with.
    #[arg(long = "key-id", value_name = "ID", allow_hyphen_values = true)]
    pub(crate) key_id: String,
    /// The signature's `created` time (Unix seconds or RFC 3339); default now.
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_hyphen_values = true)]
    pub(crate) created: Option<u64>,
    /// The signature's `expires` time (Unix seconds or RFC 3339); default none.
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_hyphen_values = true)]
    pub(crate) expires: Option<u64>,
    /// The nonce (22 to 64 base64url characters, which may start with `-`);
    /// default a fresh random one. Give it with --created to reproduce an
    /// earlier signature's base.
    #[arg(long, value_name = "NONCE", allow_hyphen_values = true)]
    pub(crate) nonce: Option<String>,
}

/// Where the body came from, which decides how `--curl` sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodySource {
    /// No body.
    None,
    /// `@FILE`.
    File(PathBuf),
    /// Standard input.
    Stdin,
    /// Literal text on the command line.
    Literal(String),
}

/// A fully parsed request, ready to sign or to show the base of.
#[derive(Debug)]
pub(crate) struct PreparedRequest {
    /// The method, as written.
    pub(crate) method: String,
    /// The URL exactly as given.
    pub(crate) url: String,
    /// The headers in the order given (names lowercase).
    pub(crate) headers: HeaderMap,
    /// The headers as `(name, value)` pairs in the order given, names as written.
    pub(crate) header_lines: HeaderLines,
    /// The body bytes.
    pub(crate) body: Vec<u8>,
    /// Where the body came from.
    pub(crate) body_source: BodySource,
    /// The covered fields the caller chose (`--cover`).
    pub(crate) cover: Vec<Component>,
    /// The key id.
    pub(crate) key_id: KeyId,
    /// `created`.
    pub(crate) created: u64,
    /// `expires`.
    pub(crate) expires: Option<u64>,
    /// The nonce.
    pub(crate) nonce: Nonce,
}

impl RequestArgs {
    /// Whether the body is read from standard input.
    pub(crate) fn uses_stdin(&self) -> bool {
        matches!(self.data.as_deref(), Some("-" | "@-"))
    }

    /// Parses and checks every argument, reading the body.
    pub(crate) fn prepare(&self) -> Result<PreparedRequest, CliError> {
        // The URL and method are checked where every signer checks them,
        // when the request view is built (`PreparedRequest::view`).
        let (headers, header_lines) = parse_headers(&self.headers)?;
        // Spec §10's order: the covered names, then the parameters (here
        // and in `view`), then the request (`view`), then the fields.
        let cover = parse_cover(&self.cover)?;
        let created = self.created.unwrap_or_else(now_unix);
        if created > tessera_core::MAX_TIME
            || self.expires.is_some_and(|e| e > tessera_core::MAX_TIME)
        {
            return Err(CliError::usage(format!(
                "malformed_signature: --created and --expires must be at most {} (15 digits, the largest sf-integer)",
                tessera_core::MAX_TIME
            )));
        }
        let key_id = KeyId::new(self.key_id.as_str()).map_err(|e| {
            CliError::usage(format!("{}: invalid --key-id: {}", e.code(), e.detail()))
        })?;
        let nonce = match &self.nonce {
            Some(n) => Nonce::new(n.as_str()).map_err(|e| {
                CliError::usage(format!("{}: invalid --nonce: {}", e.code(), e.detail()))
            })?,
            None => Nonce::generate(&mut rand::rng()),
        };
        let (body, body_source) = read_body(self.data.as_deref())?;
        Ok(PreparedRequest {
            method: self.method.clone(),
            url: self.url.clone(),
            headers,
            header_lines,
            body,
            body_source,
            cover,
            key_id,
            created,
            expires: self.expires,
            nonce,
        })
    }
}

impl PreparedRequest {
    /// The view the signature covers. The signing options (`created`,
    /// `expires`) are checked first: spec §10 checks the parameters before
    /// the request.
    pub(crate) fn view(&self) -> Result<RequestView<'_, HeaderMap>, CliError> {
        let cannot =
            |e: tessera_core::Error| CliError::usage(format!("cannot sign this request: {e}"));
        self.options().check().map_err(cannot)?;
        RequestView::from_url(&self.method, &self.url, &self.headers).map_err(cannot)
    }

    /// Spec §10, "A `Host` line and the URL": the signature covers the
    /// URL's authority, and a verifier reads the request's `Host` line
    /// instead when it is sent with one, so a `Host` that names another
    /// authority could never verify, whatever sends it.
    pub(crate) fn check_host_matches_url(&self) -> Result<(), CliError> {
        let cannot =
            |e: tessera_core::Error| CliError::usage(format!("cannot sign this request: {e}"));
        let target = tessera_core::Target::parse_url(&self.url).map_err(cannot)?;
        tessera_core::check_host_matches_target(&self.headers, target.scheme(), target.authority())
            .map_err(cannot)
    }

    /// Spec §10 step 6, with a hint: every `--cover` header is in the
    /// request (the signer would refuse it with the same code, after every
    /// check of the earlier steps).
    pub(crate) fn check_covered_present(&self) -> Result<(), CliError> {
        for component in &self.cover {
            // `--cover` names are lowercase (uppercase ones are refused).
            let name = component.name();
            if !self.headers.contains_key(name) {
                return Err(CliError::usage(format!(
                    "missing_component: --cover {name}: the request has no such header (add it with -H '{name}: ...')"
                )));
            }
        }
        Ok(())
    }

    /// The signing options.
    pub(crate) fn options(&self) -> SignOptions<'_> {
        SignOptions::new(self.created, &self.nonce)
            .with_expires(self.expires)
            .cover(&self.cover)
    }

    /// The body digest.
    pub(crate) fn digest(&self) -> BodyDigest {
        BodyDigest::of(&self.body)
    }

    /// The exact signature base.
    pub(crate) fn signature_base(
        &self,
        key: &SigningKey,
    ) -> Result<tessera_core::SignatureBase, CliError> {
        let view = self.view()?;
        self.check_host_matches_url()?;
        self.check_covered_present()?;
        tessera_core::signature_base(key, &view, &self.digest(), &self.options())
            .map_err(|e| CliError::usage(format!("cannot build the signature base: {e}")))
    }
}

/// Header lines as written: name, value octets.
type HeaderLines = Vec<(String, Vec<u8>)>;

fn parse_headers(lines: &[OsString]) -> Result<(HeaderMap, HeaderLines), CliError> {
    let mut headers = HeaderMap::new();
    let mut pairs = Vec::with_capacity(lines.len());
    for line in lines {
        let line = os_bytes(line);
        let shown = String::from_utf8_lossy(&line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(CliError::usage(format!(
                "header '{shown}' must look like 'Name: value'"
            )));
        };
        let name = String::from_utf8_lossy(&line[..colon]).trim().to_owned();
        let value = trim_ows(&line[colon + 1..]);
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| CliError::usage(format!("'{name}' is not a valid header name")))?;
        // Any field-value octet is accepted, obs-text (0x80 to 0xFF) included;
        // the signer refuses obs-text only in a covered field.
        let header_value = HeaderValue::from_bytes(value).map_err(|_| {
            CliError::usage(format!(
                "invalid_field_value: the value of header '{name}' contains a control character (CR, LF, NUL, DEL or another control but HTAB), which no field value may hold"
            ))
        })?;
        headers.append(header_name, header_value);
        pairs.push((name, value.to_vec()));
    }
    Ok((headers, pairs))
}

/// The bytes of a command-line argument as the OS passed them.
fn os_bytes(arg: &OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        std::os::unix::ffi::OsStrExt::as_bytes(arg).to_vec()
    }
    #[cfg(not(unix))]
    {
        arg.to_string_lossy().into_owned().into_bytes()
    }
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn parse_cover(names: &[String]) -> Result<Vec<Component>, CliError> {
    // The verifier's order and codes (tessera_core::parse_cover). No
    // silent lowercasing: the name is what Signature-Input will list, and
    // every Tessera API refuses an uppercase one the same way.
    tessera_core::parse_cover(names)
        .map_err(|e| CliError::usage(format!("cannot cover {}: {e}", names.join(", "))))
}

fn read_body(data: Option<&str>) -> Result<(Vec<u8>, BodySource), CliError> {
    match data {
        None => Ok((Vec::new(), BodySource::None)),
        Some("-" | "@-") => {
            let mut body = Vec::new();
            std::io::stdin().read_to_end(&mut body).map_err(|e| {
                CliError::runtime(format!("cannot read the body from standard input: {e}"))
            })?;
            Ok((body, BodySource::Stdin))
        }
        Some(text) => match text.strip_prefix('@') {
            Some(path) => {
                let body = std::fs::read(path).map_err(|e| {
                    CliError::runtime(format!("cannot read body file '{path}': {e}"))
                })?;
                Ok((body, BodySource::File(PathBuf::from(path))))
            }
            None => Ok((
                text.as_bytes().to_vec(),
                BodySource::Literal(text.to_owned()),
            )),
        },
    }
}
