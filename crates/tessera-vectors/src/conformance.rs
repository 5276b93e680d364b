//! The cases that settle what spec §8 to §11 leave to the reader: method
//! case, which octets a target may hold, where the received authority comes
//! from, the §9.4 parse limits, lenient base64, duplicate keys, RFC 9651
//! types in foreign members, and the codes a signer refuses with.
//!
//! Besides `pos-` and `neg-` cases this file writes `acc-` cases (a request
//! as received, in a form no Tessera signer produces, that a verifier
//! accepts) and `unsignable-` cases (a request a signer refuses, with the
//! code). Most `unsignable-` cases have a `neg-` twin: the same request sent
//! anyway, which a verifier rejects with the same code.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tessera_core::{
    rfc9421, Authorities, BodyDigest, ErrorCode, ParsedSignature, ReceivedRequest, Scheme,
};

use crate::cases::{neg, owned, pattern_key, pos, received, Wire, CREATED, KEY_ID, P};
use crate::check::{header_octets, octets, verify_received, Failure};
use crate::model::{Accepted, Case, Expected, Refused};

/// The origin-form of the default target.
const ORIGIN: &str = "/v1/orders?limit=10";

impl Wire {
    /// Signs the request as received again: the MAC over the base a verifier
    /// computes from it, under the selected label, replacing `Signature`.
    pub(crate) fn remac(&mut self) {
        match self.verifier_base() {
            Ok((label, base)) => {
                let secret = hex::decode(&self.key.secret_hex).unwrap_or_default();
                let mac = rfc9421::hmac_sha256(&secret, &base);
                self.set("Signature", &format!("{label}=:{}:", STANDARD.encode(mac)));
            }
            Err(e) => self.problems.push(format!("remac: {e}")),
        }
    }

    fn verifier_base(&self) -> Result<(String, Vec<u8>), String> {
        let headers = header_octets(&self.headers)?;
        let method = octets(&self.method)?;
        let target = octets(&self.target_uri)?;
        let parsed = ParsedSignature::from_fields(&headers[..]).map_err(|e| e.to_string())?;
        let request = ReceivedRequest::new(&method, &target, &headers[..])
            .over_http2(self.http_version.as_deref() == Some("2"));
        let scheme = Scheme::parse(&self.verifier.scheme).unwrap_or_default();
        let authorities = match &self.verifier.fixed_authority {
            Some(fixed) => Authorities::Fixed(fixed),
            None => Authorities::Served(&self.verifier.authorities),
        };
        let view = request
            .view(scheme, authorities)
            .map_err(|e| e.to_string())?;
        let base = parsed.signature_base(&view).map_err(|e| e.to_string())?;
        Ok((parsed.label().to_owned(), base.as_bytes().to_vec()))
    }

    /// Adds `member` to `Signature-Input` before the signature's member.
    fn member_before(&mut self, member: &str) {
        let input = self.get("signature-input");
        self.set("signature-input", &format!("{member}, {input}"));
    }

    /// Adds `member` to `Signature-Input` after the signature's member.
    fn member_after(&mut self, member: &str) {
        let input = self.get("signature-input");
        self.set("signature-input", &format!("{input}, {member}"));
    }

    /// Removes the `=` padding of the byte sequence that ends `header`.
    fn strip_padding(&mut self, header: &str) {
        let value = self.get(header);
        match value.strip_suffix("=:") {
            Some(unpadded) => self.set(header, &format!("{unpadded}:")),
            None => self
                .problems
                .push(format!("{header} {value:?} has no padding")),
        }
    }

    /// Sets the unused low bits of the last base64 character of the byte
    /// sequence that ends `header`: the same bytes, not canonically encoded.
    fn set_pad_bits(&mut self, header: &str) {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let value = self.get(header);
        let Some(unpadded) = value.strip_suffix("=:") else {
            self.problems
                .push(format!("{header} {value:?} has no padding"));
            return;
        };
        let (head, last) = unpadded.split_at(unpadded.len() - 1);
        let index = ALPHABET
            .iter()
            .position(|&c| c == last.as_bytes()[0])
            .unwrap_or(0);
        // 32 bytes in 44 characters leave the 2 low bits of the last one unused.
        let changed = char::from(ALPHABET[index | 0b11]);
        self.set(header, &format!("{head}{changed}=:"));
    }

    /// Sends the default target in origin-form with these `Host` lines.
    fn origin_form(&mut self, hosts: &[&str]) {
        self.target_uri = ORIGIN.to_owned();
        self.remove("host");
        for host in hosts {
            self.headers.push(("Host".to_owned(), (*host).to_owned()));
        }
    }
}

/// An accepted case: `base` signed, changed by `tamper` (which calls
/// [`Wire::remac`] when it changes what is covered); the verifier must
/// accept it and compute the recorded base.
fn acc(
    name: &'static str,
    description: &'static str,
    base: P,
    tamper: impl FnOnce(&mut Wire),
) -> Result<Case, Failure> {
    let mut case = received(name, description, base, tamper)?;
    let base = match verify_received(&case, &case.request.headers)? {
        Ok((_, base)) => base,
        Err(e) => {
            return Err(Failure {
                case: name.to_owned(),
                stage: "verify",
                detail: format!("an accepted case was rejected: {e}"),
            })
        }
    };
    case.expected = Expected::Accepted(Accepted {
        signature_base: base,
    });
    Ok(case)
}

/// A refused case: a signer given `base` must refuse with `error`.
fn unsignable(
    name: &'static str,
    description: &'static str,
    mut base: P,
    error: ErrorCode,
) -> Result<Case, Failure> {
    base.name = name;
    base.description = description;
    let mut case = base.skeleton()?;
    case.expected = Expected::Refused(Refused {
        sign_error: error.as_str().to_owned(),
    });
    Ok(case)
}

/// The `neg-` twin of an `unsignable-` case: the request sent anyway, its
/// headers written as a signer would (floor, extra fields, parameters in
/// signer order) but with an all-zero MAC, since no signer can make one.
/// The defect is found before the MAC is compared.
fn sent_anyway(
    name: &'static str,
    description: &'static str,
    mut base: P,
    error: ErrorCode,
) -> Result<Case, Failure> {
    base.name = name;
    base.description = description;
    let mut case = base.skeleton()?;
    let sign = case.sign.clone().ok_or_else(|| Failure {
        case: name.to_owned(),
        stage: "setup",
        detail: "no signing inputs".to_owned(),
    })?;
    let mut components =
        String::from(r#""@method" "@authority" "@path" "@query" "content-digest""#);
    for extra in &sign.extra_components {
        components.push_str(&format!(" \"{extra}\""));
    }
    let input = format!(
        "tessera=({components});created={};keyid=\"{}\";nonce=\"{}\";tag=\"tessera-v1\"",
        sign.created, case.key.id, sign.nonce
    );
    let body = STANDARD
        .decode(&case.request.body_base64)
        .unwrap_or_default();
    let headers = &mut case.request.headers;
    headers.push((
        "Content-Digest".to_owned(),
        BodyDigest::of(&body).header_value().into_owned(),
    ));
    headers.push(("Signature-Input".to_owned(), input));
    headers.push((
        "Signature".to_owned(),
        format!("tessera=:{}:", STANDARD.encode([0u8; 32])),
    ));
    case.expected = Expected::Rejected(crate::model::Rejected {
        error: error.as_str().to_owned(),
    });
    Ok(case)
}

/// `n` parameters `;p1=1;p2=1…`.
fn params(n: usize) -> String {
    (1..=n).map(|i| format!(";p{i}=1")).collect()
}

/// The default signature's member value without its label.
fn member_of(w: &Wire) -> String {
    let input = w.get("signature-input");
    input.strip_prefix("tessera=").unwrap_or(&input).to_owned()
}

#[allow(clippy::too_many_lines)]
pub(crate) fn cases() -> Result<Vec<Case>, Failure> {
    use ErrorCode as E;
    let base = || pos("", "");
    let with_path = |target: &str| base().target(target);
    let covered_note = || base().header("X-Note", "hello").extra(&["x-note"]);
    let mut cases = vec![
        // §8.2: the method is signed as sent.
        pos("pos-method-lowercase", "A lowercase method, `get`, is a different method from `GET` and is signed exactly as sent (RFC 9110 §9.1: methods are case-sensitive).")
            .method("get")
            .build(),
        pos("pos-method-mixed-case", "A mixed-case extension method, `PaTcH`, is signed exactly as sent.")
            .method("PaTcH")
            .build(),
        neg(
            "neg-method-case-changed",
            "Signed as `GET`, received as `get`: a different method, so the base differs.",
            base(),
            E::BadSignature,
            |w| w.method = "get".to_owned(),
        ),
        // §8.4: every visible ASCII octet but `#` is signed verbatim.
        pos("pos-path-visible-ascii", "Every visible ASCII octet a path may hold, `\"` `<` `>` `\\` `^` `` ` `` `{` `}` `|` included, is signed verbatim, with no percent-encoding added or removed.")
            .target("https://api.example.com/a/\"q\"/<b>/c\\d/^e/`f`/{g}/h|i/!$&'()*+,;=:@-._~%41")
            .build(),
        pos("pos-query-visible-ascii", "Every visible ASCII octet a query may hold, a second `?` included, is signed verbatim.")
            .target("https://api.example.com/search?q=\"a\"<b>c\\d^e`f`{g}h|i?j/k:l@m!$&'()*+,;=%7e")
            .build(),
        pos("pos-pct-encoded-host", "A percent-encoded reg-name host, as in spec §8.3, is signed as written (escapes are not decoded), lowercased.")
            .target("https://api.ex%61mple.com/v1/orders")
            .build(),
        pos("pos-pct-encoded-host-upper", "Uppercase letters and escape hex digits in the host are lowercased: `API.EX%4Dample.com` becomes `api.ex%4dample.com`.")
            .target("https://API.EX%4Dample.com/v1/orders")
            .build(),
        pos("pos-port-65535", "The largest port, 65535, is kept.")
            .target("https://api.example.com:65535/v1/orders")
            .build(),
        pos("pos-ipv6-embedded-ipv4", "An IPv6 literal with an embedded IPv4 tail (RFC 3986 IPv6address) is kept as written, lowercased.")
            .target("https://[::ffff:192.0.2.1]:8443/v1/orders")
            .build(),
        pos("pos-ipv6-not-compressed", "An IPv6 literal is lowercased but not re-compressed: `[2001:db8:0:0::1]`, not `[2001:db8::1]`.")
            .target("https://[2001:DB8:0:0::1]/v1/orders")
            .build(),
        pos("pos-ipv4-like-reg-name", "A host that looks like an IPv4 address with leading zeros is an RFC 3986 reg-name and is signed as written: no numeric normalization.")
            .target("https://127.000.000.001:8443/v1/orders")
            .build(),
        pos("pos-url-fragment-dropped", "A fragment in the URL given to the signer is never sent, so it is not signed either: `@query` is `?limit=10`.")
            .target("https://api.example.com/v1/orders?limit=10#section-2")
            .build(),
        // §8.4 and §8.6: octets above 0x7E are refused everywhere.
        unsignable(
            "unsignable-path-non-ascii",
            "The path holds octet 0xE9 (written U+00E9, spec §16.2): not ASCII, so it cannot be signed; percent-encode it (`%C3%A9` for UTF-8).",
            with_path("https://api.example.com/caf\u{e9}"),
            E::InvalidFieldValue,
        ),
        sent_anyway(
            "neg-path-non-ascii",
            "The path holds octet 0xE9 (written U+00E9): rejected at step 5.",
            with_path("https://api.example.com/caf\u{e9}"),
            E::InvalidFieldValue,
        ),
        unsignable(
            "unsignable-query-non-ascii",
            "The query holds octet 0xFF (written U+00FF): not ASCII, cannot be signed.",
            with_path("https://api.example.com/v1/orders?q=\u{ff}"),
            E::InvalidFieldValue,
        ),
        sent_anyway(
            "neg-query-non-ascii",
            "The query holds octet 0xFF (written U+00FF): rejected at step 5.",
            with_path("https://api.example.com/v1/orders?q=\u{ff}"),
            E::InvalidFieldValue,
        ),
        unsignable(
            "unsignable-obs-text-in-covered-header",
            "A covered field holds octet 0xE9 (obs-text, written U+00E9): the base is US-ASCII, so the signer refuses.",
            covered_note().headers(&[("X-Note", "caf\u{e9}")]),
            E::InvalidFieldValue,
        ),
        sent_anyway(
            "neg-obs-text-in-covered-header",
            "A covered field holds octet 0xE9 (written U+00E9): rejected while the base is built (step 6).",
            covered_note().headers(&[("X-Note", "caf\u{e9}")]),
            E::InvalidFieldValue,
        ),
        pos("pos-obs-text-in-uncovered-header", "A field that is not covered may hold obs-text (octet 0xE9, written U+00E9): it is not in the base.")
            .header("X-Display-Name", "Jos\u{e9}")
            .build(),
        unsignable(
            "unsignable-two-host-lines",
            "The request to sign carries two Host lines: every verifier refuses it (RFC 9112 §3.2), so the signer does too, whatever the URL's authority.",
            base().header("Host", "api.example.com").header("Host", "evil.example"),
            E::InvalidFieldValue,
        ),
        unsignable(
            "unsignable-path-space",
            "A space in the path cannot be sent in a request line, so it cannot be signed.",
            with_path("https://api.example.com/a b"),
            E::InvalidFieldValue,
        ),
        unsignable(
            "unsignable-port-out-of-range",
            "Port 65536 is out of range: the signer refuses.",
            with_path("https://api.example.com:65536/v1/orders").authorities(&["api.example.com:65536"]),
            E::InvalidFieldValue,
        ),
        unsignable(
            "unsignable-ipv6-zone-id",
            "An IPv6 zone identifier (RFC 6874 `%25eth0`) is outside the RFC 3986 grammar this profile uses.",
            with_path("https://[fe80::1%25eth0]/v1/orders").authorities(&["[fe80::1%25eth0]"]),
            E::InvalidFieldValue,
        ),
        unsignable(
            "unsignable-userinfo",
            "Userinfo in the authority is refused.",
            with_path("https://user@api.example.com/v1/orders").authorities(&["api.example.com"]),
            E::InvalidFieldValue,
        ),
        // Step order (§11.2): time (step 4) before the target checks (step 5).
        neg(
            "neg-clock-skew-before-bad-path",
            "Outside the window and with a space in the received path: step 4 fails first, `clock_skew`.",
            base().now(CREATED + 301),
            E::ClockSkew,
            |w| w.target_uri = "/v1/a b".to_owned(),
        ),
        neg(
            "neg-expired-before-bad-authority",
            "`expires` passed and the Host has an invalid character: step 4 fails first, `signature_expired`.",
            base().expires(CREATED + 10).now(CREATED + 20),
            E::SignatureExpired,
            |w| w.origin_form(&["api.example.com/"]),
        ),
        neg(
            "neg-clock-skew-before-missing-host",
            "Outside the window and with no authority at all: `clock_skew` (step 4) before `authority_mismatch` (step 5).",
            base().now(CREATED - 301),
            E::ClockSkew,
            |w| w.origin_form(&[]),
        ),
        // §11.2 step 5: the received authority.
        acc(
            "acc-origin-form-host",
            "Origin-form request-target with one Host line: the Host is the received authority.",
            base(),
            |w| w.origin_form(&["api.example.com"]),
        ),
        acc(
            "acc-host-ows",
            "The Host value is trimmed of SP and HTAB like any field value before it is parsed.",
            base(),
            |w| w.origin_form(&[" \tapi.example.com:443 "]),
        ),
        acc(
            "acc-absolute-form-ignores-host",
            "Absolute-form request-target: its authority is used and the Host line is ignored (RFC 9112 §3.2.2).",
            base(),
            |w| w.headers.push(("Host".to_owned(), "internal.example:8080".to_owned())),
        ),
        // §8.6: cookie crumbs over HTTP/2.
        acc(
            "acc-h2-cookie-crumbs-joined-with-semicolon",
            "Received over HTTP/2 with `Cookie` split into two lines (RFC 9113 §8.2.3): the `cookie` component joins them with `; `, the value the client signed as one line.",
            base().header("Cookie", "a=1; b=2").extra(&["cookie"]),
            |w| {
                w.remove("cookie");
                w.headers.insert(0, ("cookie".to_owned(), "a=1".to_owned()));
                w.headers.insert(1, ("cookie".to_owned(), "b=2".to_owned()));
                w.http_version = Some("2".to_owned());
            },
        ),
        neg(
            "neg-h1-two-cookie-lines",
            "The same two `Cookie` lines received over HTTP/1.1: a covered `cookie` must be one line there (§8.6), so `invalid_field_value` once the base is built, before the MAC (the twin of `unsignable-two-cookie-lines`).",
            base().header("Cookie", "a=1; b=2").extra(&["cookie"]),
            E::InvalidFieldValue,
            |w| {
                w.remove("cookie");
                w.headers.insert(0, ("cookie".to_owned(), "a=1".to_owned()));
                w.headers.insert(1, ("cookie".to_owned(), "b=2".to_owned()));
            },
        ),
        neg(
            "neg-h1-cookie-line-split-after-signing",
            "Signed with one `Cookie: a=1, b=2` line and received over HTTP/1.1 split into `a=1` and `b=2`: joined with `, ` like any field the base would be the same and the MAC would verify, yet an application reads two cookies where one (`a` = `1, b=2`) was signed; refused with `invalid_field_value` (§8.6).",
            base().header("Cookie", "a=1, b=2").extra(&["cookie"]),
            E::InvalidFieldValue,
            |w| {
                w.remove("cookie");
                w.headers.insert(0, ("cookie".to_owned(), "a=1".to_owned()));
                w.headers.insert(1, ("cookie".to_owned(), "b=2".to_owned()));
            },
        ),
        unsignable(
            "unsignable-two-cookie-lines",
            "`cookie` covered and the request has two `Cookie` lines: a client sends one (RFC 6265 §5.4), and a verifier that received them over HTTP/2 would join them with `; ` where the signer joined them with `, `, so the signer refuses (§10 step 6); a verifier rejects them over HTTP/1.1 with the same code (`neg-h1-two-cookie-lines`).",
            base()
                .header("Cookie", "a=1")
                .header("Cookie", "b=2")
                .extra(&["cookie"]),
            E::InvalidFieldValue,
        ),
        neg(
            "neg-no-host",
            "Origin-form request-target and no Host line: no received authority.",
            base(),
            E::AuthorityMismatch,
            |w| w.origin_form(&[]),
        ),
        neg(
            "neg-empty-host",
            "An empty Host value is an empty authority: invalid syntax.",
            base(),
            E::InvalidFieldValue,
            |w| w.origin_form(&[""]),
        ),
        neg(
            "neg-two-host-lines",
            "A valid Host line followed by a second, forged one: more than one Host line is a bad request (RFC 9112 §3.2).",
            base(),
            E::InvalidFieldValue,
            |w| w.origin_form(&["api.example.com", "evil.example"]),
        ),
        neg(
            "neg-two-identical-host-lines",
            "Two identical Host lines are still more than one.",
            base(),
            E::InvalidFieldValue,
            |w| w.origin_form(&["api.example.com", "api.example.com"]),
        ),
        neg(
            "neg-two-host-lines-absolute-form",
            "Absolute-form target and two Host lines: still a bad request, though Host is otherwise ignored.",
            base(),
            E::InvalidFieldValue,
            |w| {
                w.headers.push(("Host".to_owned(), "api.example.com".to_owned()));
                w.headers.push(("Host".to_owned(), "evil.example".to_owned()));
            },
        ),
        neg(
            "neg-host-port-out-of-range",
            "Host `api.example.com:65536`: the port is above 65535.",
            base(),
            E::InvalidFieldValue,
            |w| w.origin_form(&["api.example.com:65536"]),
        ),
        neg(
            "neg-host-ipv6-bad",
            "Host `[2001:db8::g]` is not an IPv6 address.",
            base(),
            E::InvalidFieldValue,
            |w| w.origin_form(&["[2001:db8::g]"]),
        ),
        neg(
            "neg-host-non-ascii",
            "A Host holding octet 0xE9 (written U+00E9) is invalid syntax, not a mismatch.",
            base(),
            E::InvalidFieldValue,
            |w| w.origin_form(&["caf\u{e9}.example"]),
        ),
        neg(
            "neg-host-not-served",
            "A well-formed Host that is not served.",
            base(),
            E::AuthorityMismatch,
            |w| w.origin_form(&["other.example.com"]),
        ),
        neg(
            "neg-authority-trailing-dot",
            "Host `api.example.com.`: the trailing dot is kept (§8.3), so it is another authority than the served `api.example.com`.",
            base(),
            E::AuthorityMismatch,
            |w| w.origin_form(&["api.example.com."]),
        ),
        // Request-target forms (RFC 9112 §3.2).
        neg(
            "neg-asterisk-form",
            "`OPTIONS *`: an asterisk-form target has no path to sign.",
            base().method("OPTIONS"),
            E::InvalidFieldValue,
            |w| {
                w.target_uri = "*".to_owned();
                w.headers.push(("Host".to_owned(), "api.example.com".to_owned()));
            },
        ),
        neg(
            "neg-authority-form",
            "`CONNECT api.example.com:443`: an authority-form target has no path to sign.",
            base().method("CONNECT"),
            E::InvalidFieldValue,
            |w| {
                w.target_uri = "api.example.com:443".to_owned();
                w.headers.push(("Host".to_owned(), "api.example.com".to_owned()));
            },
        ),
        neg(
            "neg-relative-target",
            "A request-target that does not start with `/` and is not absolute.",
            base(),
            E::InvalidFieldValue,
            |w| {
                w.target_uri = "v1/orders?limit=10".to_owned();
                w.headers.push(("Host".to_owned(), "api.example.com".to_owned()));
            },
        ),
        neg(
            "neg-fragment-in-target",
            "`#` in a received request-target (a fragment is never sent): invalid.",
            base(),
            E::InvalidFieldValue,
            |w| w.target_uri.push_str("#top"),
        ),
        // Fixed-authority mode.
        acc(
            "acc-fixed-authority-ignores-host",
            "Fixed authority `api.example.com`: the Host line (an internal name) is not read.",
            base().fixed("api.example.com"),
            |w| w.origin_form(&["10.0.0.7:8080"]),
        ),
        acc(
            "acc-fixed-authority-no-host-or-two",
            "Fixed authority: neither a missing Host nor several Host lines matter, because Host is not read at all.",
            base().fixed("api.example.com"),
            |w| w.origin_form(&["a.internal", "b.internal"]),
        ),
        neg(
            "neg-fixed-authority-bad-path",
            "Fixed authority: the method, path and query checks of step 5 still run.",
            base().fixed("api.example.com"),
            E::InvalidFieldValue,
            |w| w.target_uri = "/v1/a b".to_owned(),
        ),
        acc(
            "acc-fixed-authority-target-authority-not-used",
            "Fixed authority: an absolute-form target naming another valid authority (an internal name) is accepted; the fixed value goes into the base.",
            base().fixed("api.example.com"),
            |w| w.target_uri = "https://backend.internal:8443/v1/orders?limit=10".to_owned(),
        ),
        neg(
            "neg-fixed-authority-target-fragment",
            "Fixed authority: `#` in an absolute-form target's authority (`https://evil#x/...`): the target's own authority is not used but must parse (step 5.3).",
            base().fixed("api.example.com"),
            E::InvalidFieldValue,
            |w| w.target_uri = "https://evil#x/v1/orders?limit=10".to_owned(),
        ),
        neg(
            "neg-fixed-authority-target-userinfo",
            "Fixed authority: userinfo in an absolute-form target (`https://u@api.example.com/...`): invalid authority syntax (step 5.3).",
            base().fixed("api.example.com"),
            E::InvalidFieldValue,
            |w| w.target_uri = "https://u@api.example.com/v1/orders?limit=10".to_owned(),
        ),
        neg(
            "neg-fixed-authority-target-empty-authority",
            "Fixed authority: an absolute-form target with an empty authority (`https:///...`): invalid authority syntax (step 5.3).",
            base().fixed("api.example.com"),
            E::InvalidFieldValue,
            |w| w.target_uri = "https:///v1/orders?limit=10".to_owned(),
        ),
        neg(
            "neg-fixed-authority-other-host-signed",
            "Fixed authority `api.example.com`, signed for `other.example.com`: the fixed value goes into the base.",
            with_path("https://other.example.com/v1/orders?limit=10").fixed("api.example.com"),
            E::BadSignature,
            |w| w.origin_form(&["other.example.com"]),
        ),
        // §9.4 limits, on every member and item.
        neg(
            "neg-foreign-bare-item-17-params",
            "A foreign member that is a bare item with 17 parameters: over the 16-parameter limit.",
            base(),
            E::MalformedSignature,
            |w| {
                w.member_before(&format!("other=1{}", params(17)));
            },
        ),
        acc(
            "acc-foreign-bare-item-16-params",
            "A foreign bare-item member with 16 parameters: at the limit, ignored.",
            base(),
            |w| {
                w.member_before(&format!("other=1{}", params(16)));
            },
        ),
        neg(
            "neg-foreign-inner-list-17-params",
            "A foreign inner-list member with 17 parameters.",
            base(),
            E::MalformedSignature,
            |w| {
                w.member_after(&format!("other=(\"@method\"){}", params(17)));
            },
        ),
        neg(
            "neg-foreign-item-17-params",
            "An item inside a foreign inner list with 17 parameters.",
            base(),
            E::MalformedSignature,
            |w| {
                w.member_after(&format!("other=(\"@method\"{})", params(17)));
            },
        ),
        neg(
            "neg-component-17-params",
            "A component of the tessera-v1 member with 17 parameters: the parse limit (step 1) fails before the profile's ban on component parameters (step 2).",
            base(),
            E::MalformedSignature,
            |w| w.input("\"@path\"", &format!("\"@path\"{}", params(17))),
        ),
        neg(
            "neg-tessera-member-17-params",
            "The tessera-v1 member with 17 distinct parameters.",
            base(),
            E::MalformedSignature,
            |w| w.input(";tag=", &format!("{};tag=", params(13))),
        ),
        acc(
            "acc-repeated-parameter-counts-once",
            "A foreign member repeats one parameter 40 times: 1 distinct parameter, within the limit.",
            base(),
            |w| {
                w.member_before(&format!("other=1{}", ";p=1".repeat(40)));
            },
        ),
        neg(
            "neg-17-members",
            "17 distinct members: over the 16-member limit.",
            base(),
            E::MalformedSignature,
            |w| {
                let extra: Vec<String> = (1..=16).map(|i| format!("m{i}=1")).collect();
                w.member_before(&extra.join(", "));
            },
        ),
        acc(
            "acc-16-members",
            "16 distinct members (15 foreign): at the limit.",
            base(),
            |w| {
                let extra: Vec<String> = (1..=15).map(|i| format!("m{i}=1")).collect();
                w.member_before(&extra.join(", "));
            },
        ),
        acc(
            "acc-16-members-one-repeated",
            "16 distinct members (15 foreign), then a foreign name again: a repeated name counts once, so still at the limit.",
            base(),
            |w| {
                let extra: Vec<String> = (1..=15).map(|i| format!("m{i}=1")).collect();
                w.member_before(&extra.join(", "));
                w.member_after("m1=2");
            },
        ),
        neg(
            "neg-foreign-inner-list-65-items",
            "A foreign inner list with 65 items: over the 64-item limit.",
            base(),
            E::MalformedSignature,
            |w| {
                let items: Vec<String> = (1..=65).map(|i| format!("\"x{i}\"")).collect();
                w.member_after(&format!("other=({})", items.join(" ")));
            },
        ),
        neg(
            "neg-signature-input-too-long-joined",
            "Two Signature-Input lines, each under 8192 bytes, whose joined value is over it.",
            base(),
            E::MalformedSignature,
            |w| {
                w.headers.insert(0, ("Signature-Input".to_owned(), format!("pad=\"{}\"", "a".repeat(8100))));
            },
        ),
        // §9.4: several lines, OWS and empty lines.
        acc(
            "acc-signature-input-split-lines",
            "A foreign member on one Signature-Input line and the tessera-v1 member on another: joined with `, ` before parsing.",
            base(),
            |w| w.headers.insert(0, ("Signature-Input".to_owned(), "other=(\"@method\");tag=\"x\"".to_owned())),
        ),
        acc(
            "acc-signature-headers-ows",
            "Signature-Input and Signature values with leading and trailing SP and HTAB: each line is trimmed before the lines are joined and parsed.",
            base(),
            |w| {
                let input = w.get("signature-input");
                let signature = w.get("signature");
                w.set("signature-input", &format!(" \t{input}\t "));
                w.set("signature", &format!("\t{signature} "));
            },
        ),
        neg(
            "neg-signature-input-empty-line",
            "An empty Signature-Input line before the real one: the joined value starts with `, ` and does not parse (empty lines are joined, not dropped).",
            base(),
            E::MalformedSignature,
            |w| w.headers.insert(0, ("Signature-Input".to_owned(), String::new())),
        ),
        neg(
            "neg-signature-empty-line",
            "An empty Signature line after the real one: the joined value ends with `, ` and does not parse.",
            base(),
            E::MalformedSignature,
            |w| w.headers.push(("Signature".to_owned(), String::new())),
        ),
        // base64 (RFC 9651 §4.2.7): padding optional, non-zero pad bits ignored.
        acc(
            "acc-signature-unpadded",
            "The Signature byte sequence without its `=` padding: accepted (RFC 9651 §4.2.7).",
            base(),
            |w| w.strip_padding("signature"),
        ),
        acc(
            "acc-signature-nonzero-pad-bits",
            "The last base64 character of the Signature changed so that the unused pad bits are not zero: same 32 bytes, accepted.",
            base(),
            |w| w.set_pad_bits("signature"),
        ),
        acc(
            "acc-content-digest-unpadded",
            "Content-Digest without `=` padding, covered as received and signed so: accepted, the digest decodes to the body's.",
            base(),
            |w| {
                w.strip_padding("content-digest");
                w.remac();
            },
        ),
        acc(
            "acc-content-digest-member-params",
            "Parameters on the `sha-256` member of Content-Digest (`;x=1`), covered as received and signed so: ignored (RFC 9530 defines none), and the member's byte sequence is the body's digest.",
            base(),
            |w| {
                let digest = w.get("content-digest");
                w.set("content-digest", &format!("{digest};x=1"));
                w.remac();
            },
        ),
        acc(
            "acc-content-digest-nonzero-pad-bits",
            "Content-Digest with non-zero pad bits, covered as received and signed so: accepted.",
            base(),
            |w| {
                w.set_pad_bits("content-digest");
                w.remac();
            },
        ),
        neg(
            "neg-signature-base64url",
            "The Signature in the base64url alphabet (`-` and `_`): not base64, does not parse.",
            base().nonce("AAAAAAAAAAAAAAAAAAAAAA").key(pattern_key(KEY_ID, 32, 5)),
            E::MalformedSignature,
            |w| {
                let signature = w.get("signature").replace('+', "-").replace('/', "_");
                if !signature.contains(['-', '_']) {
                    w.problems.push("the MAC has neither + nor /".to_owned());
                }
                w.set("signature", &signature);
            },
        ),
        // Short padding: RFC 9651 §4.2.7 decodes "synthesizing padding if
        // necessary", so `:QQ=:` is the byte 0x41 like `:QQ==:` and `:QQ:`.
        acc(
            "acc-byte-sequences-short-padding",
            "A foreign member `x=:QQ=:` (one `=` where complete padding has two) in Signature-Input, Signature and Content-Digest: the parser supplies the missing `=` (RFC 9651 §4.2.7), so each parses and the request is accepted.",
            base(),
            |w| {
                w.member_before("x=:QQ=:");
                let signature = w.get("signature");
                w.set("signature", &format!("x=:QQ=:, {signature}"));
                let digest = w.get("content-digest");
                w.set("content-digest", &format!("x=:QQ=:, {digest}"));
                w.remac();
            },
        ),
        neg(
            "neg-signature-foreign-overpadded",
            "A foreign Signature member `x=:QQ===:`: padding beyond complete does not decode, so Signature does not parse.",
            base(),
            E::MalformedSignature,
            |w| {
                let signature = w.get("signature");
                w.set("signature", &format!("x=:QQ===:, {signature}"));
            },
        ),
        neg(
            "neg-content-digest-foreign-overpadded",
            "A foreign Content-Digest member `x=:QUI==:`, signed as sent: padding beyond complete does not decode, so Content-Digest does not parse (`digest_mismatch`, after the MAC verified).",
            base(),
            E::DigestMismatch,
            |w| {
                let digest = w.get("content-digest");
                w.set("content-digest", &format!("x=:QUI==:, {digest}"));
                w.remac();
            },
        ),
        // Duplicate keys (RFC 9651): the last value wins, at the first position.
        acc(
            "acc-duplicate-parameter",
            "`created` appears twice, first `1` then the real value: the last value wins at the first position, so `@signature-params` lists `created` first with the real value.",
            base(),
            |w| {
                w.input(";created=", ";created=1;keyid=\"x\";created=");
                w.remac();
            },
        ),
        acc(
            "acc-duplicate-signature-member",
            "Signature holds the label twice, a wrong MAC first: the last member wins.",
            base(),
            |w| {
                let signature = w.get("signature");
                w.set(
                    "signature",
                    &format!("tessera=:{}:, {signature}", STANDARD.encode([0u8; 32])),
                );
            },
        ),
        neg(
            "neg-duplicate-member-last-wins",
            "Signature-Input holds the label twice, the real member first and an untagged one last: the last wins, and it is no tessera-v1 signature.",
            base(),
            E::MissingSignature,
            |w| {
                w.member_after("tessera=(\"@method\")");
            },
        ),
        // RFC 9651 types in foreign members.
        acc(
            "acc-foreign-member-date",
            "A foreign member holding an RFC 9651 Date (`@1700000000`) and a Date parameter: parsed (RFC 9651, not RFC 8941) and ignored.",
            base(),
            |w| {
                w.member_before("when=@1700000000;at=@0");
            },
        ),
        acc(
            "acc-foreign-member-display-string",
            "A foreign member holding an RFC 9651 Display String (`%\"caf%c3%a9\"`): parsed and ignored.",
            base(),
            |w| {
                w.member_after("note=%\"caf%c3%a9\"");
            },
        ),
        acc(
            "acc-parameters-reordered",
            "The tessera-v1 parameters in another order with `alg`: the signed `@signature-params` follows the received order.",
            base(),
            |w| {
                let member = member_of(w);
                let (list, params) = member.split_at(member.find(';').unwrap_or(0));
                let mut parts: Vec<&str> = params.split(';').filter(|p| !p.is_empty()).collect();
                parts.reverse();
                w.set(
                    "signature-input",
                    &format!("sig1={list};alg=\"hmac-sha256\";{}", parts.join(";")),
                );
                w.replace_in("signature", "tessera=", "sig1=");
                w.remac();
            },
        ),
        // §10: what a signer refuses, and with which code.
        unsignable(
            "unsignable-keyid-bad-char",
            "A key id with a space: `invalid_parameter`.",
            base().key(pattern_key("device 7", 32, 11)),
            E::InvalidParameter,
        ),
        unsignable(
            "unsignable-keyid-too-long",
            "A key id of 129 characters: `invalid_parameter`.",
            base().key(pattern_key(&"k".repeat(129), 32, 11)),
            E::InvalidParameter,
        ),
        unsignable(
            "unsignable-nonce-too-short",
            "A 21-character nonce: `invalid_parameter`.",
            base().nonce("AAAAAAAAAAAAAAAAAAAAA"),
            E::InvalidParameter,
        ),
        unsignable(
            "unsignable-nonce-padded",
            "A nonce with `=` padding: `invalid_parameter`.",
            base().nonce("AAAAAAAAAAAAAAAAAAAAAA=="),
            E::InvalidParameter,
        ),
        unsignable(
            "unsignable-secret-15-bytes",
            "A 15-byte secret is shorter than the profile's 16-byte minimum: `invalid_parameter`.",
            base().key(pattern_key(KEY_ID, 15, 11)),
            E::InvalidParameter,
        ),
        unsignable(
            "unsignable-secret-129-bytes",
            "A 129-byte secret is longer than the profile's 128-byte maximum: `invalid_parameter`.",
            base().key(pattern_key(KEY_ID, 129, 11)),
            E::InvalidParameter,
        ),
        unsignable(
            "unsignable-floor-named-again",
            "`content-digest` given as an additional component: it is in the floor already, `duplicate_component`.",
            base().extra(&["content-digest"]),
            E::DuplicateComponent,
        ),
        unsignable(
            "unsignable-extra-derived-floor",
            "`@method` given as an additional component: a floor component named again, `duplicate_component`, as a verifier reports for the list it would receive.",
            base().extra(&["@method"]),
            E::DuplicateComponent,
        ),
        unsignable(
            "unsignable-extra-derived-forbidden",
            "`@target-uri` given as an additional component: `forbidden_component`.",
            base().extra(&["@target-uri"]),
            E::ForbiddenComponent,
        ),
        sent_anyway(
            "neg-extra-derived-forbidden",
            "`\"@target-uri\"` in the received component list: `forbidden_component`.",
            base().extra(&["@target-uri"]),
            E::ForbiddenComponent,
        ),
        unsignable(
            "unsignable-extra-twice",
            "The same additional field twice: `duplicate_component`.",
            covered_note().extra(&["x-note", "x-note"]),
            E::DuplicateComponent,
        ),
        unsignable(
            "unsignable-extra-uppercase",
            "`Content-Type` as a component name: names are never lowercased silently, `malformed_signature`.",
            base().header("Content-Type", "text/plain").extra(&["Content-Type"]),
            E::MalformedSignature,
        ),
        sent_anyway(
            "neg-extra-uppercase",
            "`\"Content-Type\"` in the received component list: `malformed_signature`.",
            base().header("Content-Type", "text/plain").extra(&["Content-Type"]),
            E::MalformedSignature,
        ),
        unsignable(
            "unsignable-extra-forbidden",
            "`host` as an additional component: `forbidden_component`.",
            base().header("Host", "api.example.com").extra(&["host"]),
            E::ForbiddenComponent,
        ),
        unsignable(
            "unsignable-extra-absent",
            "An additional field the request does not have: `missing_component`.",
            base().extra(&["x-absent"]),
            E::MissingComponent,
        ),
        unsignable(
            "unsignable-expires-not-after-created",
            "`expires` equal to `created`: `invalid_parameter`.",
            base().expires(CREATED),
            E::InvalidParameter,
        ),
        unsignable(
            "unsignable-created-too-large",
            "`created` above the largest sf-integer, 999999999999999: 16 digits do not parse, so the signer refuses with the verifier's `malformed_signature`.",
            base().created(1_000_000_000_000_000).now(CREATED),
            E::MalformedSignature,
        ),
        sent_anyway(
            "neg-created-too-large",
            "`created=1000000000000000` (16 digits) received: not an sf-integer, the header does not parse.",
            base().created(1_000_000_000_000_000).now(CREATED),
            E::MalformedSignature,
        ),
        unsignable(
            "unsignable-expires-too-large",
            "`expires` above the largest sf-integer: `malformed_signature`, as for `created`.",
            base().expires(1_000_000_000_000_000),
            E::MalformedSignature,
        ),
        neg(
            "neg-alg-before-unknown-parameter",
            "`;alg=\"x\";foo=1`: parameters are checked in one pass in received order, name and type then value, so the bad `alg` value is found first.",
            base(),
            E::AlgorithmMismatch,
            |w| w.input(";tag=", ";alg=\"x\";foo=1;tag="),
        ),
        neg(
            "neg-unknown-parameter-before-alg",
            "`;foo=1;alg=\"x\"`: the unknown parameter comes first in received order.",
            base(),
            E::MalformedSignature,
            |w| w.input(";tag=", ";foo=1;alg=\"x\";tag="),
        ),
        neg(
            "neg-keyid-escaped-quote",
            "`keyid=\"device\\\"7f3a2c\"`: a valid sf-string (not the canonical form a shortcut may take, so the parser decides), whose value holds a `\"` no key id may hold.",
            base(),
            E::InvalidParameter,
            |w| w.input("keyid=\"device-7f3a2c\"", "keyid=\"device\\\"7f3a2c\""),
        ),
        neg(
            "neg-inner-list-tab",
            "A tab instead of the space between two component identifiers: RFC 9651 separates inner-list items with spaces only, so the header does not parse.",
            base(),
            E::MalformedSignature,
            |w| w.input("\"@method\" \"@authority\"", "\"@method\"\t\"@authority\""),
        ),
        neg(
            "neg-signature-input-only-empty-line",
            "A single, empty Signature-Input line: an empty dictionary, so no tessera-v1 member.",
            base(),
            E::MissingSignature,
            |w| w.set("signature-input", ""),
        ),
        neg(
            "neg-absolute-form-empty-authority",
            "Absolute-form `https:///v1/orders` with a valid Host: the target carries an (empty) authority, which wins over Host and is invalid.",
            base(),
            E::InvalidFieldValue,
            |w| {
                w.target_uri = "https:///v1/orders?limit=10".to_owned();
                w.headers.push(("Host".to_owned(), "api.example.com".to_owned()));
            },
        ),
        sent_anyway(
            "neg-base-order-absent-before-obs-text",
            "Covered `x-absent` (missing) then `x-note` (obs-text): fields are checked in the order of the covered list, so `missing_component`.",
            base().header("X-Note", "caf\u{e9}").extra(&["x-absent", "x-note"]),
            E::MissingComponent,
        ),
        sent_anyway(
            "neg-base-order-obs-text-before-absent",
            "Covered `x-note` (obs-text) then `x-absent` (missing): `invalid_field_value`, the first in list order.",
            base().header("X-Note", "caf\u{e9}").extra(&["x-note", "x-absent"]),
            E::InvalidFieldValue,
        ),
        unsignable(
            "unsignable-components-checked-before-count",
            "34 components, one of them `host`: every name is checked before the count of 32, so `forbidden_component` (a verifier checks its list the same way).",
            many_fields_then(27, &["x-f1", "host"]),
            E::ForbiddenComponent,
        ),
        unsignable(
            "unsignable-count-before-repeats",
            "33 components with a repeat: the count of 32 is checked before repeats, `malformed_signature`.",
            many_fields_then(27, &["x-f1"]),
            E::MalformedSignature,
        ),
        unsignable(
            "unsignable-33-components",
            "28 additional fields: 33 components in all, over the 32-component limit, `malformed_signature`.",
            many_fields(28),
            E::MalformedSignature,
        ),
        unsignable(
            "unsignable-scheme-ftp",
            "An `ftp://` URL: only http and https can be signed, `invalid_field_value`.",
            with_path("ftp://api.example.com/v1/orders").authorities(&["api.example.com"]),
            E::InvalidFieldValue,
        ),
        unsignable(
            "unsignable-method-not-token",
            "A method with a space is not an RFC 9110 token: `invalid_field_value`.",
            base().method("GET X"),
            E::InvalidFieldValue,
        ),
        sent_anyway(
            "neg-method-not-token",
            "A method holding `@`, which is not an RFC 9110 `tchar` (an HTTP/1.1 request line can carry it, where it cannot carry a space): rejected at step 5 with `invalid_field_value` (§8.2), by a verifier that reads the request line itself as by one behind an HTTP server.",
            base().method("GE@T"),
            E::InvalidFieldValue,
        ),
    ];
    let mut limit = many_fields(27);
    limit.name = "pos-extra-32-components";
    limit.description = "27 additional fields: 32 components in all, the limit.";
    cases.push(limit.build());
    cases.into_iter().collect()
}

impl P {
    /// A verifier in fixed-authority mode with this authority.
    fn fixed(mut self, authority: &str) -> Self {
        self.fixed_authority = Some(authority.to_owned());
        self
    }
}

/// A request with `n` extra headers `x-f1`… all covered.
/// [`many_fields`] with more names to cover after them.
fn many_fields_then(n: usize, more: &[&str]) -> P {
    let mut p = many_fields(n);
    p.extra.extend(more.iter().map(|m| (*m).to_owned()));
    p
}

fn many_fields(n: usize) -> P {
    let mut p = pos("", "");
    p.headers = owned(&[]);
    for i in 1..=n {
        p.headers.push((format!("X-F{i}"), format!("v{i}")));
        p.extra.push(format!("x-f{i}"));
    }
    p
}
