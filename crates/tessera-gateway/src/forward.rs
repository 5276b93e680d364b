//! What a forwarded request and a returned response carry: hop-by-hop
//! fields removed (RFC 9110 §7.6.1), identity and forwarding fields set by
//! the gateway alone.

use std::net::IpAddr;

use http::header::{
    CONNECTION, CONTENT_LENGTH, COOKIE, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use tessera_server::VerifiedIdentity;

use crate::config::IdentityHeaders;

/// Hop-by-hop fields that are never forwarded, besides those `Connection` names.
const HOP_BY_HOP: [&str; 3] = ["keep-alive", "proxy-connection", "proxy-authorization"];

/// Removes `Connection`, every field it names, and the other hop-by-hop fields.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    remove_fields(headers, is_hop_by_hop);
}

/// Whether `name` is a hop-by-hop field whatever `Connection` says.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE].contains(name)
        || HOP_BY_HOP.contains(&name.as_str())
}

/// Removes every field `doomed` selects and every field `Connection` names.
///
/// One pass over the names the map holds, then a removal only for those
/// present: most requests carry none of the many names a proxy drops, and
/// a removal by name costs a hash and a probe even when the field is absent.
fn remove_fields(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    let mut remove: Vec<HeaderName> = Vec::new();
    let mut connection = false;
    for name in headers.keys() {
        connection |= name == CONNECTION;
        if doomed(name) {
            remove.push(name.clone());
        }
    }
    if connection {
        // Token by token: a token that is no field name (obs-text, say)
        // must not keep the others in the same value from being honoured.
        remove.extend(
            connection_options(headers).filter_map(|token| HeaderName::from_bytes(token).ok()),
        );
    }
    for name in remove {
        headers.remove(name);
    }
}

/// The options every `Connection` line lists, as raw bytes without the
/// optional whitespace around them (RFC 9110 §7.6.1); empty list elements
/// are skipped.
fn connection_options(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

/// Joins the `Cookie` fields an HTTP/2 client may send one cookie each
/// into one field, as HTTP/1.1 expects (RFC 9113 §8.2.3), each trimmed of
/// SP and HTAB first: the value the signature base holds (spec §8.6), so
/// that the upstream gets exactly the value that was verified.
pub fn join_cookies(headers: &mut HeaderMap) {
    if !headers.contains_key(COOKIE) {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(COOKIE)
        .iter()
        .map(|crumb| crate::guard::trim_ows(crumb.as_bytes()))
        .collect();
    // Parts of valid values joined with `; `: a valid value again.
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(COOKIE, value);
    }
}

/// The first field of the request that its `Connection` names although
/// the request depends on it end to end (RFC 9110 §7.6.1: a sender must not
/// name such a field): `Host`, a `Content-*` field, `Authorization`, the
/// signature fields, or any field the `Signature-Input` lists. Removing it as
/// hop-by-hop would forward a request without its Host or without a field
/// the signature covered. Other names (custom hop-by-hop fields, fields the
/// request does not carry) are fine: they are removed as usual.
pub fn end_to_end_connection_option(headers: &HeaderMap) -> Option<String> {
    let covered = |name: &str| {
        let quoted = format!("\"{name}\"");
        headers.get_all("signature-input").iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains(&quoted))
        })
    };
    connection_options(headers)
        .map(|token| String::from_utf8_lossy(token).to_ascii_lowercase())
        .find(|token| {
            headers.contains_key(token.as_str())
                && (token == "host"
                    || token.starts_with("content-")
                    || token == "authorization"
                    || token == "signature"
                    || token == "signature-input"
                    || covered(token))
        })
}

/// Fields that make an upstream act on something other than what was
/// signed and matched (method overrides, rewritten URLs or schemes), trust
/// a client address or user the gateway did not see, or reach a CGI-style
/// stack as a variable it trusts: dropped from every forwarded request.
/// Lowercase, `-` spelled (every spelling with the same [`skeleton`] is
/// dropped too, see [`is_dropped`]).
const OVERRIDES: [&str; 28] = [
    // The method.
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    // The URL, host or scheme.
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-envoy-original-path",
    "x-original-host",
    "x-host",
    "x-scheme",
    "x-url-scheme",
    "front-end-https",
    "x-forwarded",
    // The client's address (Rails' `remote_ip` reads `Client-IP`).
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-original-forwarded-for",
    "x-proxyuser-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-envoy-external-address",
    // httpoxy: CGI turns `Proxy` into `HTTP_PROXY`, which HTTP clients in
    // the application take as their outgoing proxy.
    "proxy",
];

/// Fields naming a user or a client certificate that some stacks trust as
/// already authenticated (set by the proxy in front of them): a client's
/// copies are dropped. Unlike [`OVERRIDES`], an operator may
/// name one of them as an identity field, which the gateway then sets
/// itself.
const UNVERIFIED_USERS: [&str; 8] = [
    "remote-user",
    "x-remote-user",
    "x-authenticated-user",
    "x-webauth-user",
    "ssl-client-cert",
    "x-client-cert",
    "x-arr-clientcert",
    "x-goog-iap-jwt-assertion",
];

/// Families of such fields, by prefix: client certificates a
/// TLS-terminating proxy vouches for, and users that identity-aware
/// proxies (oauth2-proxy, AWS ALB, Google IAP, Azure App Service,
/// Cloudflare Access) vouch for.
const UNVERIFIED_USER_PREFIXES: [&str; 6] = [
    "x-ssl-client-",
    "x-auth-request-",
    "x-amzn-oidc-",
    "x-goog-authenticated-user-",
    "x-ms-client-principal",
    "cf-access-",
];

/// Whether `name` (lowercase, `-` spelled) is one of [`UNVERIFIED_USERS`]
/// or of their families.
fn is_unverified_user(name: &str) -> bool {
    UNVERIFIED_USERS.contains(&name)
        || UNVERIFIED_USER_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// `name` as CGI-style stacks see it: every byte other than a letter or
/// a digit read as `-`. They turn field names into variables such as
/// `HTTP_TESSERA_OWNER`: lighttpd maps every other byte to `_`, Apache's
/// CGI, WSGI and PHP map `-` and `_` (PHP `.` too), so `Tessera_Owner`,
/// `Tessera.Owner` and `Tessera~Owner` all reach an application as
/// `Tessera-Owner` would. Byte for byte (no run is collapsed), as they do.
pub(crate) fn skeleton(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return std::borrow::Cow::Borrowed(name);
    }
    std::borrow::Cow::Owned(
        name.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b.to_ascii_lowercase())
                } else {
                    '-'
                }
            })
            .collect(),
    )
}

/// Whether a client-sent field is dropped before forwarding: forwarding
/// fields, overrides, and any name whose [`skeleton`] is one of those or
/// an identity field (a CGI-style stack reads `Tessera_Owner` or
/// `Tessera.Owner` as the owner).
fn is_dropped(name: &HeaderName, identity: &IdentityHeaders) -> bool {
    let name = skeleton(name.as_str());
    if is_forwarding_or_override(&name) || is_unverified_user(&name) {
        return true;
    }
    // Both sides by skeleton: a configured `X_Owner` is read as
    // `HTTP_X_OWNER`, and so is a client's `X-Owner`.
    [&identity.key_id, &identity.owner, &identity.scopes]
        .iter()
        .any(|id| skeleton(id.as_str()) == name)
}

/// Whether the operator drops `name` (`drop_client_fields`): compared by
/// [`skeleton`], so every spelling a CGI-style stack reads as the same
/// variable goes.
fn is_dropped_by_operator(name: &HeaderName, drop: &[HeaderName]) -> bool {
    if drop.is_empty() {
        return false;
    }
    let name = skeleton(name.as_str());
    drop.iter().any(|d| skeleton(d.as_str()) == name)
}

/// Whether `name` may not carry the identity: a field the forwarded request
/// needs as it is (`Host`, framing, `content-*`, the signature fields,
/// credentials, `Via`), a hop-by-hop field, or a forwarding or override
/// field, which the gateway drops or sets itself (an owner in
/// `X-HTTP-Method-Override` would change the method upstream).
pub(crate) fn is_reserved(name: &HeaderName) -> bool {
    // By skeleton: a name that a CGI-style stack reads as one of these
    // (`Content.Type`) is reserved as well.
    let text = skeleton(name.as_str());
    is_hop_by_hop(name)
        || [
            HOST,
            CONTENT_LENGTH,
            COOKIE,
            http::header::AUTHORIZATION,
            http::header::VIA,
        ]
        .iter()
        .any(|reserved| reserved.as_str() == text)
        || ["signature", "signature-input"].contains(&&*text)
        || text.starts_with("content-")
        || is_forwarding_or_override(&text)
}

/// Whether `name` (lowercase, `-` spelled) is a forwarding field or an
/// override.
fn is_forwarding_or_override(name: &str) -> bool {
    name == "forwarded" || name.starts_with("x-forwarded-") || OVERRIDES.contains(&name)
}

/// The forwarding fields of one client connection's address, made once
/// per connection rather than per request.
#[derive(Debug, Clone)]
pub struct PeerFields {
    /// The client's address.
    pub ip: IpAddr,
    /// The address as an `X-Forwarded-For` value.
    x_forwarded_for: HeaderValue,
    /// The `for=` parameter of a `Forwarded` element (RFC 7239 §6: an IPv6
    /// address quoted in brackets).
    forwarded_for: String,
}

impl PeerFields {
    /// The fields for a client at `ip`.
    pub fn new(ip: IpAddr) -> Self {
        let text = ip.to_string();
        let forwarded_for = if ip.is_ipv6() {
            format!("for=\"[{text}]\"")
        } else {
            format!("for={text}")
        };
        PeerFields {
            ip,
            x_forwarded_for: value_of(text),
            forwarded_for,
        }
    }
}

/// How one request is forwarded.
#[derive(Debug)]
pub struct Forwarding<'a> {
    /// The client connection's address and its fields.
    pub peer: &'a PeerFields,
    /// Whether the peer is a configured trusted proxy.
    pub trusted: bool,
    /// The public scheme (`http` or `https`).
    pub proto: &'static str,
    /// Identity header names.
    pub identity_names: &'a IdentityHeaders,
    /// The verified identity (none on public routes).
    pub identity: Option<&'a VerifiedIdentity>,
    /// Remove `Signature` and `Signature-Input`.
    pub strip_signature: bool,
    /// Client fields the operator drops (`drop_client_fields`), besides
    /// the gateway's own list.
    pub drop: &'a [HeaderName],
}

/// Rewrites request headers for the upstream.
pub fn request_headers(headers: &mut HeaderMap, f: &Forwarding<'_>) {
    // Client-sent forwarding fields are dropped, unless a trusted proxy sent
    // them, in which case this hop is appended: read after the hop-by-hop
    // fields are gone (`Connection` may name one of them).
    let trusted = f.trusted;
    if trusted {
        remove_hop_by_hop(headers);
    }
    let joined = |headers: &HeaderMap, name: &str| -> Option<String> {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    let prior_for = trusted
        .then(|| joined(headers, "x-forwarded-for"))
        .flatten();
    let prior_proto = trusted
        .then(|| joined(headers, "x-forwarded-proto"))
        .flatten();
    let prior_host = trusted
        .then(|| joined(headers, "x-forwarded-host"))
        .flatten();
    let prior_forwarded = trusted.then(|| joined(headers, "forwarded")).flatten();
    let ids = f.identity_names;
    remove_fields(headers, |name| {
        is_hop_by_hop(name)
            // The body is forwarded whole; its length is set from it, and
            // there is nothing left to wait for a 100 (Continue) about.
            || name == CONTENT_LENGTH
            || name == http::header::EXPECT
            // Identity fields come from the verifier only: every client
            // copy goes.
            || name == ids.key_id
            || name == ids.owner
            || name == ids.scopes
            || is_dropped(name, ids)
            || is_dropped_by_operator(name, f.drop)
            || (f.strip_signature && (name == "signature" || name == "signature-input"))
    });
    // A shared handle on the value, not a copy.
    let host_value = headers.get(HOST).filter(|h| h.to_str().is_ok()).cloned();
    let host = host_value.as_ref().and_then(|h| h.to_str().ok());
    let xff = match prior_for {
        Some(prior) => value_of(format!("{prior}, {}", f.peer.ip)),
        None => f.peer.x_forwarded_for.clone(),
    };
    headers.insert(X_FORWARDED_FOR, xff);
    let proto = match prior_proto {
        Some(prior) => value_of(prior),
        None => HeaderValue::from_static(f.proto),
    };
    headers.insert(X_FORWARDED_PROTO, proto);
    match (prior_host, &host_value) {
        (Some(prior), _) => {
            headers.insert(X_FORWARDED_HOST, value_of(prior));
        }
        (None, Some(h)) => {
            headers.insert(X_FORWARDED_HOST, h.clone());
        }
        (None, None) => {}
    }
    let mut element = String::with_capacity(64);
    if let Some(prior) = &prior_forwarded {
        element.push_str(prior);
        element.push_str(", ");
    }
    element.push_str(&f.peer.forwarded_for);
    element.push_str(";proto=");
    element.push_str(f.proto);
    if let Some(h) = host {
        if h.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            element.push_str(";host=\"");
            element.push_str(h);
            element.push('"');
        }
    }
    headers.insert(FORWARDED, value_of(element));
    if let Some(identity) = f.identity {
        headers.insert(
            f.identity_names.key_id.clone(),
            value_of(identity.key_id().as_str().to_owned()),
        );
        headers.insert(
            f.identity_names.owner.clone(),
            value_of(identity.owner().to_owned()),
        );
        let mut scopes = String::new();
        for scope in identity.scopes() {
            if !scopes.is_empty() {
                scopes.push(' ');
            }
            scopes.push_str(scope);
        }
        headers.insert(f.identity_names.scopes.clone(), value_of(scopes));
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// `value` as a field value, taking its bytes without a copy;
/// percent-encodes bytes a field value cannot carry.
fn value_of(value: String) -> HeaderValue {
    // What `HeaderValue::from_str` accepts: visible ASCII, space and tab.
    // Those bytes always make a valid value, so the fallback is never taken.
    if value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return HeaderValue::from_maybe_shared(bytes::Bytes::from(value))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
    }
    encoded(&value)
}

/// `value` with every byte a field value cannot carry percent-encoded.
fn encoded(value: &str) -> HeaderValue {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // Only visible ASCII and spaces remain.
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_crumbs_are_forwarded_as_the_base_joins_them() {
        let mut headers = HeaderMap::new();
        for crumb in ["a=1 ", "\t b=2", "c=3"] {
            headers.append(COOKIE, HeaderValue::from_static(crumb));
        }
        join_cookies(&mut headers);
        let forwarded: Vec<_> = headers.get_all(COOKIE).iter().collect();
        assert_eq!(forwarded, ["a=1; b=2; c=3"]);
        // One crumb is trimmed as well: the base holds it trimmed.
        let mut one = HeaderMap::new();
        one.append(COOKIE, HeaderValue::from_static(" a=1 "));
        join_cookies(&mut one);
        assert_eq!(one.get_all(COOKIE).iter().collect::<Vec<_>>(), ["a=1"]);
    }

    fn names() -> IdentityHeaders {
        IdentityHeaders {
            key_id: HeaderName::from_static("tessera-key-id"),
            owner: HeaderName::from_static("tessera-owner"),
            scopes: HeaderName::from_static("tessera-scopes"),
        }
    }

    /// Forwarding for a public route from an untrusted plain-HTTP peer.
    fn untrusted_forwarding<'a>(
        peer: &'a PeerFields,
        names: &'a IdentityHeaders,
        drop: &'a [HeaderName],
    ) -> Forwarding<'a> {
        Forwarding {
            peer,
            trusted: false,
            proto: "http",
            identity_names: names,
            identity: None,
            strip_signature: false,
            drop,
        }
    }

    /// A header map with these field lines, in order (repeated names append).
    fn headers(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for &(name, value) in lines {
            map.append(name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn every_field_connection_names_is_removed_whatever_else_the_value_holds() {
        let mut map = headers(&[
            ("connection", " X-Secret ,,\tx-other"),
            ("x-secret", "s"),
            ("x-other", "o"),
            ("x-third", "t"),
            ("x-kept", "k"),
        ]);
        // A byte outside visible ASCII (obs-text) in the same value must
        // not keep the valid options from being honoured.
        map.append(
            CONNECTION,
            HeaderValue::from_bytes(b"x-third, \xff, caf\xc3\xa9").expect("obs-text value"),
        );
        remove_hop_by_hop(&mut map);
        for gone in ["connection", "x-secret", "x-other", "x-third"] {
            assert!(map.get(gone).is_none(), "{gone} was forwarded");
        }
        assert_eq!(map["x-kept"], "k");
    }

    #[test]
    fn spoofed_fields_are_replaced_unless_the_peer_is_trusted() {
        let names = names();
        let mut headers = headers(&[
            ("host", "api.example"),
            ("tessera-owner", "admin"),
            ("tessera-owner", "root"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-anything", "x"),
            ("connection", "x-secret, keep-alive"),
            ("x-secret", "s"),
        ]);
        let peer = PeerFields::new("127.0.0.1".parse().expect("ip"));
        let mut f = untrusted_forwarding(&peer, &names, &[]);
        let mut untrusted = headers.clone();
        request_headers(&mut untrusted, &f);
        assert!(untrusted.get("tessera-owner").is_none());
        assert!(untrusted.get("x-secret").is_none());
        assert!(untrusted.get("x-forwarded-anything").is_none());
        assert_eq!(untrusted["x-forwarded-for"], "127.0.0.1");
        assert_eq!(
            untrusted["forwarded"],
            "for=127.0.0.1;proto=http;host=\"api.example\""
        );
        headers.extend(self::headers(&[
            ("tessera_owner", "root"),
            ("x_forwarded_for", "6.6.6.6"),
            ("x-http-method-override", "DELETE"),
            ("x-real-ip", "6.6.6.6"),
            ("x-request-id", "kept"),
        ]));
        let mut untrusted = headers.clone();
        request_headers(&mut untrusted, &f);
        for dropped in [
            "tessera_owner",
            "x_forwarded_for",
            "x-http-method-override",
            "x-real-ip",
        ] {
            assert!(untrusted.get(dropped).is_none(), "{dropped}");
        }
        assert_eq!(untrusted["x-request-id"], "kept");
        f.trusted = true;
        request_headers(&mut headers, &f);
        assert_eq!(headers["x-forwarded-for"], "1.2.3.4, 127.0.0.1");
        assert!(headers.get("tessera-owner").is_none());
    }

    #[test]
    fn operator_fields_are_dropped_in_every_spelling() {
        let drop = [HeaderName::from_static("x-internal-user")];
        for name in spellings("x-internal-user")
            .into_iter()
            .chain([HeaderName::from_static("x-internal_user")])
        {
            assert!(is_dropped_by_operator(&name, &drop), "{name}");
            assert!(!is_dropped_by_operator(&name, &[]), "{name}");
        }
        let other = HeaderName::from_static("x-internal-users");
        assert!(!is_dropped_by_operator(&other, &drop));
    }

    #[test]
    fn every_override_is_dropped_in_every_spelling() {
        let names = names();
        let families = [
            "x-ssl-client-s-dn",
            "x-auth-request-email",
            "x-amzn-oidc-data",
            "x-goog-authenticated-user-email",
            "x-ms-client-principal-name",
            "cf-access-authenticated-user-email",
        ];
        for name in OVERRIDES
            .into_iter()
            .chain(UNVERIFIED_USERS)
            .chain(families)
        {
            for spelled in spellings(name) {
                assert!(is_dropped(&spelled, &names), "{spelled}");
            }
        }
        for identity in ["tessera-key-id", "tessera-owner", "tessera-scopes"] {
            // The exact names are removed by the caller (the gateway sets
            // them); every other spelling here.
            for spelled in spellings(identity).into_iter().skip(1) {
                assert!(is_dropped(&spelled, &names), "{spelled}");
            }
        }
        for kept in [
            "x-request-id",
            "content-type",
            "user-agent",
            "signature",
            // Another variable: `HTTP_TESSERA__OWNER`, `HTTP_TESSERAOWNER`.
            "tessera--owner",
            "tesseraowner",
        ] {
            assert!(
                !is_dropped(&HeaderName::from_static(kept), &names),
                "{kept}"
            );
        }
    }

    /// `name` (`-` spelled) with each separator a field name may hold in
    /// place of every `-`, the `-` spelling first: the same variable to
    /// lighttpd (every byte but letters and digits becomes `_`), and for
    /// `_` and `.` to PHP, WSGI and Apache's CGI too.
    fn spellings(name: &str) -> Vec<HeaderName> {
        [
            "-", "_", ".", "~", "!", "#", "$", "%", "&", "'", "*", "+", "^", "`", "|",
        ]
        .iter()
        .map(|sep| HeaderName::from_bytes(name.replace('-', sep).as_bytes()).expect("name"))
        .collect()
    }

    #[test]
    fn configured_identity_names_are_dropped_in_every_spelling() {
        let names = IdentityHeaders {
            key_id: HeaderName::from_static("x-key.id"),
            owner: HeaderName::from_static("x_owner"),
            scopes: HeaderName::from_static("x.scopes"),
        };
        for spelled in [
            "x-key-id", "x_key_id", "x-owner", "x.owner", "x-scopes", "x~scopes",
        ] {
            let name = HeaderName::from_static(spelled);
            assert!(is_dropped(&name, &names), "{spelled}");
        }
        assert!(!is_dropped(&HeaderName::from_static("x-ownerx"), &names));
    }

    #[test]
    fn a_mixed_spelling_of_an_identity_field_never_reaches_the_upstream() {
        let names = names();
        let peer = PeerFields::new("127.0.0.1".parse().expect("ip"));
        let drop = [HeaderName::from_static("x-internal-user")];
        let f = untrusted_forwarding(&peer, &names, &drop);
        let mut headers = headers(&[
            ("Tessera.Owner", "admin"),
            ("Tessera~Scopes", "admin write"),
            ("Tessera_Key.Id", "forged"),
            ("X~HTTP~Method~Override", "DELETE"),
            ("X.Real.IP", "6.6.6.6"),
            ("Remote.User", "root"),
            ("X.Internal!User", "root"),
            ("X-Request-Id", "kept"),
        ]);
        request_headers(&mut headers, &f);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        for name in &left {
            assert!(
                !name.contains('.')
                    && !name.contains('~')
                    && !name.contains('_')
                    && !name.contains('!'),
                "{name} was forwarded: {left:?}"
            );
        }
        assert_eq!(headers["x-request-id"], "kept");
    }

    #[test]
    fn connection_may_not_name_host_content_or_covered_fields() {
        let mut headers = headers(&[
            ("host", "api.example"),
            ("content-type", "text/plain"),
            ("te", "trailers"),
            ("x-hop", "1"),
            ("user-agent", "app/1"),
            (
                "signature-input",
                "sig=(\"@method\" \"user-agent\");created=1",
            ),
            ("connection", "close, TE, keep-alive, x-absent, x-hop"),
        ]);
        assert_eq!(end_to_end_connection_option(&headers), None);
        for named in ["host", "Content-Type", "close, host", "User-Agent"] {
            headers.insert("connection", HeaderValue::from_str(named).expect("value"));
            assert!(end_to_end_connection_option(&headers).is_some(), "{named}");
        }
    }
}
