//! The on-disk case model: one `spec/vectors/<name>/case.json` per case.

use serde::{Deserialize, Serialize};

/// One test vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The case name, equal to its directory name (`pos-...`, `neg-...`, `rfc9421-...`).
    pub name: String,
    /// What the case exercises, in one or two sentences.
    pub description: String,
    /// Which procedure the case is for.
    pub kind: Kind,
    /// The request: before signing for positive cases, as received (after
    /// tampering, signature headers included) for negative cases.
    pub request: Request,
    /// The shared key.
    pub key: Key,
    /// The signing inputs (tessera-v1 cases). For negative cases, the inputs
    /// of the signature before it was tampered with; informative only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<Sign>,
    /// The covered components and parameters (`rfc9421-generic` cases only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc9421: Option<Generic>,
    /// The verifier's configuration (tessera-v1 cases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<Verifier>,
    /// What a conforming implementation produces or reports.
    pub expected: Expected,
}

/// The procedure a case exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A tessera-v1 request: sign with the profile, verify with the profile.
    #[serde(rename = "tessera-v1")]
    TesseraV1,
    /// A generic RFC 9421 signature (the RFC's own examples); not a tessera-v1 request.
    #[serde(rename = "rfc9421-generic")]
    Rfc9421Generic,
}

/// A request as it is sent or received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The method, as sent.
    pub method: String,
    /// The target. Positive and refused cases: the absolute URI given to the
    /// signer, split as spec §8 says (scheme, authority, raw path, raw query,
    /// fragment dropped). Received cases (`neg-`, `acc-`, and `pos-` after
    /// signing): the request-target of the request line, exactly as received;
    /// for an absolute URI that is the absolute-form.
    pub target_uri: String,
    /// Header field lines in order, duplicates kept, values raw. Every
    /// string of a case holds code points U+0000 to U+00FF only, each
    /// standing for the octet of that value (ISO-8859-1), so octets 0x80 to
    /// 0xFF can be written: `"caf\u00e9"` is the four octets `63 61 66 e9`.
    pub headers: Vec<(String, String)>,
    /// The body, standard base64 with padding.
    pub body_base64: String,
    /// Received cases: the HTTP version the request arrived over. Absent
    /// means HTTP/1.1; `"2"` means HTTP/2 (or HTTP/3), where several
    /// `cookie` lines are one value joined with `; ` (spec §8.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_version: Option<String>,
}

impl Request {
    /// Whether the request arrived over HTTP/2 or HTTP/3.
    ///
    /// # Errors
    /// An `http_version` other than absent, `"1.1"` or `"2"`.
    pub fn over_http2(&self) -> Result<bool, String> {
        match self.http_version.as_deref() {
            None | Some("1.1") => Ok(false),
            Some("2") => Ok(true),
            Some(other) => Err(format!("http_version {other:?} is not \"1.1\" or \"2\"")),
        }
    }
}

/// A shared HMAC key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// The key id.
    pub id: String,
    /// The secret, lowercase hex.
    pub secret_hex: String,
}

/// The per-request signing inputs of a tessera-v1 signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sign {
    /// `created`, Unix seconds.
    pub created: u64,
    /// The nonce.
    pub nonce: String,
    /// `expires`, Unix seconds, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Header fields covered after the mandatory floor, in order.
    pub extra_components: Vec<String>,
}

/// The inputs of a generic RFC 9421 signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generic {
    /// The signature label.
    pub label: String,
    /// Covered component identifiers, in order.
    pub components: Vec<String>,
    /// The serialized `@signature-params` value.
    pub signature_params: String,
}

/// A verifier's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verifier {
    /// The verifier's clock, Unix seconds.
    pub now: u64,
    /// The acceptance window for `created`, seconds: how old it may be (at
    /// most min(window, 2) seconds ahead).
    pub window: u64,
    /// The normalized authorities the verifier serves.
    pub authorities: Vec<String>,
    /// The scheme the verifier received the request over (`http` or `https`).
    pub scheme: String,
    /// Fixed-authority mode (spec §11.2, step 5): this normalized authority
    /// goes into every base and `Host` is not read; `authorities` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_authority: Option<String>,
    /// The nonce store's memory point (spec §14.1): after the MAC check, a
    /// signature created before this Unix second is `store_reset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_since: Option<u64>,
}

/// The expected outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expected {
    /// A positive case: every stage's output.
    Signed(Signed),
    /// A negative case: the error code verification reports.
    Rejected(Rejected),
    /// An accepted case (`acc-`): the request as received, in a form a
    /// Tessera signer does not produce, which a verifier accepts; the base it computes.
    Accepted(Accepted),
    /// A refused case (`unsignable-`): the error code a signer refuses with.
    Refused(Refused),
}

/// The outcome of an accepted case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// The signature base the verifier computes, exactly.
    pub signature_base: String,
}

/// The outcome of a refused case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refused {
    /// The stable error code the signer refuses with.
    pub sign_error: String,
}

/// The outputs of signing a positive case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    /// The signature base, exactly.
    pub signature_base: String,
    /// The `Signature-Input` value added.
    pub signature_input: String,
    /// The `Signature` value added.
    pub signature: String,
    /// The `Content-Digest` value added (absent for generic cases, which add none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<String>,
}

/// The outcome of a negative case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejected {
    /// The stable error code (`tessera_core::ErrorCode::as_str`).
    pub error: String,
}

impl Case {
    /// Whether the case expects a signature to be produced and accepted.
    pub fn is_positive(&self) -> bool {
        matches!(self.expected, Expected::Signed(_))
    }

    /// Pretty JSON with a trailing newline: the exact bytes of `case.json`.
    /// Header pairs (arrays inside arrays) are written on one line each.
    ///
    /// # Errors
    /// Never in practice: every field serializes.
    pub fn to_json(&self) -> serde_json::Result<String> {
        let mut buf = Vec::with_capacity(4096);
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, PairsInline::default());
        self.serialize(&mut ser)?;
        buf.push(b'\n');
        // serde_json writes valid UTF-8 only.
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

/// serde_json's pretty printer, except that an array nested directly in an
/// array is written inline: `["Accept", "application/json"]`.
#[derive(Default)]
struct PairsInline {
    pretty: serde_json::ser::PrettyFormatter<'static>,
    /// For each open array: whether it is written inline.
    arrays: Vec<bool>,
    /// Whether the innermost open container is an array.
    in_array: Vec<bool>,
}

impl PairsInline {
    fn inline(&self) -> bool {
        self.arrays.last().copied().unwrap_or(false)
    }
}

impl serde_json::ser::Formatter for PairsInline {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        let inline = self.in_array.last().copied().unwrap_or(false) || self.inline();
        self.arrays.push(inline);
        self.in_array.push(true);
        if inline {
            w.write_all(b"[")
        } else {
            self.pretty.begin_array(w)
        }
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        let inline = self.arrays.pop().unwrap_or(false);
        self.in_array.pop();
        if inline {
            w.write_all(b"]")
        } else {
            self.pretty.end_array(w)
        }
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if self.inline() {
            w.write_all(if first { b"" } else { b", " })
        } else {
            self.pretty.begin_array_value(w, first)
        }
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        if self.inline() {
            Ok(())
        } else {
            self.pretty.end_array_value(w)
        }
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.in_array.push(false);
        self.pretty.begin_object(w)
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.in_array.pop();
        self.pretty.end_object(w)
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.pretty.begin_object_key(w, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_object_value(w)
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_object_value(w)
    }
}
