//! The serialized `@signature-params` value: a tessera-v1 inner list of
//! component identifiers followed by its parameters.

use crate::component::Component;
use crate::TAG;

/// A signature parameter the profile knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param {
    Created,
    Expires,
    KeyId,
    Nonce,
    Alg,
    Tag,
}

impl Param {
    /// The parameter for a received key, `None` for keys the profile does not know.
    pub(crate) fn from_key(key: &str) -> Option<Param> {
        Some(match key {
            "created" => Param::Created,
            "expires" => Param::Expires,
            "keyid" => Param::KeyId,
            "nonce" => Param::Nonce,
            "alg" => Param::Alg,
            "tag" => Param::Tag,
            _ => return None,
        })
    }
}

/// The values behind the parameters; `alg` and `tag` have fixed values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParamValues<'a> {
    pub(crate) created: u64,
    pub(crate) expires: Option<u64>,
    pub(crate) keyid: &'a str,
    pub(crate) nonce: &'a str,
}

/// The order signers emit: created, expires (when set), keyid, nonce, tag.
pub(crate) fn signer_order(expires: Option<u64>) -> impl Iterator<Item = Param> {
    [Param::Created]
        .into_iter()
        .chain(expires.map(|_| Param::Expires))
        .chain([Param::KeyId, Param::Nonce, Param::Tag])
}

/// Appends the canonical RFC 9651 serialization of the inner list and its
/// parameters, in `order`, to `out`.
///
/// Every value was validated before (component names are lowercase tokens or
/// the four derived names; key ids and nonces exclude `"` and `\`), so each
/// sf-string is its text between quotes with nothing to escape, and the
/// output equals what a general structured-field serializer produces.
pub(crate) fn write_signature_params<'c>(
    out: &mut String,
    components: impl IntoIterator<Item = &'c Component>,
    order: impl IntoIterator<Item = Param>,
    values: &ParamValues<'_>,
) {
    out.push('(');
    for (i, c) in components.into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push('"');
        out.push_str(c.name());
        out.push('"');
    }
    out.push(')');
    let mut digits = itoa::Buffer::new();
    for param in order {
        match param {
            Param::Created => {
                out.push_str(";created=");
                out.push_str(digits.format(values.created));
            }
            Param::Expires => {
                if let Some(expires) = values.expires {
                    out.push_str(";expires=");
                    out.push_str(digits.format(expires));
                }
            }
            Param::KeyId => push_string_param(out, ";keyid=\"", values.keyid),
            Param::Nonce => push_string_param(out, ";nonce=\"", values.nonce),
            Param::Alg => out.push_str(";alg=\"hmac-sha256\""),
            Param::Tag => push_string_param(out, ";tag=\"", TAG),
        }
    }
}

fn push_string_param(out: &mut String, key_and_quote: &str, value: &str) {
    out.push_str(key_and_quote);
    out.push_str(value);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::MANDATORY;

    #[test]
    fn signer_and_received_orders() {
        let values = ParamValues {
            created: 1_700_000_000,
            expires: Some(1_700_000_300),
            keyid: "k1",
            nonce: "n",
        };
        let mut signed = String::new();
        write_signature_params(
            &mut signed,
            &MANDATORY[..2],
            signer_order(values.expires),
            &values,
        );
        assert_eq!(
            signed,
            r#"("@method" "@authority");created=1700000000;expires=1700000300;keyid="k1";nonce="n";tag="tessera-v1""#
        );
        let mut received = String::new();
        write_signature_params(
            &mut received,
            &[],
            [
                Param::Tag,
                Param::Alg,
                Param::Nonce,
                Param::KeyId,
                Param::Created,
            ],
            &values,
        );
        assert_eq!(
            received,
            r#"();tag="tessera-v1";alg="hmac-sha256";nonce="n";keyid="k1";created=1700000000"#
        );
        assert_eq!(Param::from_key("expires"), Some(Param::Expires));
        assert_eq!(Param::from_key("created2"), None);
    }
}
