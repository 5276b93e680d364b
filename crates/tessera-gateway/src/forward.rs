//! What a forwarded request and a returned response carry: hop-by-hop
//! fields removed (RFC 9110 §7.6.1), identity and forwarding fields set by
//! the gateway alone.

use std::net::IpAddr;

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};
use tessera_server::VerifiedIdentity;

use crate::config::IdentityHeaders;

/// Hop-by-hop fields that are never forwarded, besides those `Connection` names.
const HOP_BY_HOP: [&str; 3] = ["keep-alive", "proxy-connection", "proxy-authorization"];

/// Removes `Connection`, every field it names, and the other hop-by-hop fields.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// How one request is forwarded.
#[derive(Debug)]
pub struct Forwarding<'a> {
    /// The client's address.
    pub peer: IpAddr,
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
}

/// Rewrites request headers for the upstream.
pub fn request_headers(headers: &mut HeaderMap, f: &Forwarding<'_>) {
    remove_hop_by_hop(headers);
    // The body is forwarded whole; its length is set from it, and there is
    // nothing left to wait for a 100 (Continue) about.
    headers.remove(CONTENT_LENGTH);
    headers.remove(http::header::EXPECT);
    // Identity fields come from the verifier only: every client copy goes.
    for name in [
        &f.identity_names.key_id,
        &f.identity_names.owner,
        &f.identity_names.scopes,
    ] {
        headers.remove(name);
    }
    // Client-sent forwarding fields are dropped, unless a trusted proxy sent
    // them, in which case this hop is appended.
    let joined = |headers: &HeaderMap, name: &str| -> Option<String> {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    let prior_for = f
        .trusted
        .then(|| joined(headers, "x-forwarded-for"))
        .flatten();
    let prior_proto = f
        .trusted
        .then(|| joined(headers, "x-forwarded-proto"))
        .flatten();
    let prior_host = f
        .trusted
        .then(|| joined(headers, "x-forwarded-host"))
        .flatten();
    let prior_forwarded = f.trusted.then(|| joined(headers, "forwarded")).flatten();
    let drop: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str() == "forwarded" || n.as_str().starts_with("x-forwarded-"))
        .cloned()
        .collect();
    for name in drop {
        headers.remove(name);
    }
    let peer = f.peer.to_string();
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let xff = match prior_for {
        Some(prior) => format!("{prior}, {peer}"),
        None => peer.clone(),
    };
    set(headers, "x-forwarded-for", &xff);
    set(
        headers,
        "x-forwarded-proto",
        prior_proto.as_deref().unwrap_or(f.proto),
    );
    if let Some(h) = prior_host.as_deref().or(host.as_deref()) {
        set(headers, "x-forwarded-host", h);
    }
    let node = if f.peer.is_ipv6() {
        format!("\"[{peer}]\"")
    } else {
        peer
    };
    let mut element = format!("for={node};proto={}", f.proto);
    if let Some(h) = &host {
        if h.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            element.push_str(&format!(";host=\"{h}\""));
        }
    }
    let forwarded = match prior_forwarded {
        Some(prior) => format!("{prior}, {element}"),
        None => element,
    };
    set(headers, "forwarded", &forwarded);
    if let Some(identity) = f.identity {
        insert(
            headers,
            &f.identity_names.key_id,
            identity.key_id().as_str(),
        );
        insert(headers, &f.identity_names.owner, identity.owner());
        let scopes: Vec<&str> = identity.scopes().iter().map(String::as_str).collect();
        insert(headers, &f.identity_names.scopes, &scopes.join(" "));
    }
    if f.strip_signature {
        headers.remove("signature");
        headers.remove("signature-input");
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    insert(headers, &HeaderName::from_static(name), value);
}

/// Inserts `value`, percent-encoding bytes a field value cannot carry.
fn insert(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    let value = HeaderValue::from_str(value).unwrap_or_else(|_| {
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
    });
    headers.insert(name.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> IdentityHeaders {
        IdentityHeaders {
            key_id: HeaderName::from_static("tessera-key-id"),
            owner: HeaderName::from_static("tessera-owner"),
            scopes: HeaderName::from_static("tessera-scopes"),
        }
    }

    #[test]
    fn spoofed_fields_are_replaced_unless_the_peer_is_trusted() {
        let names = names();
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("api.example"));
        headers.append("tessera-owner", HeaderValue::from_static("admin"));
        headers.append("tessera-owner", HeaderValue::from_static("root"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        headers.insert("x-forwarded-anything", HeaderValue::from_static("x"));
        headers.insert(
            "connection",
            HeaderValue::from_static("x-secret, keep-alive"),
        );
        headers.insert("x-secret", HeaderValue::from_static("s"));
        let mut f = Forwarding {
            peer: "127.0.0.1".parse().expect("ip"),
            trusted: false,
            proto: "http",
            identity_names: &names,
            identity: None,
            strip_signature: false,
        };
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
        f.trusted = true;
        request_headers(&mut headers, &f);
        assert_eq!(headers["x-forwarded-for"], "1.2.3.4, 127.0.0.1");
        assert!(headers.get("tessera-owner").is_none());
    }
}
