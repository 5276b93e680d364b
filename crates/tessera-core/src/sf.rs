//! Structured-field parsing of `Signature-Input`, `Signature` and
//! `Content-Digest` with the `sfv` crate's visitor API.
//!
//! The visitors record only what the profile needs, borrowing from the input,
//! so a verification costs a handful of allocations instead of one map per
//! dictionary and parameter list. Syntax is still fully validated by `sfv`.
//! Duplicate keys follow RFC 9651: the last instance wins, and a repeated
//! parameter keeps its first position.

use std::borrow::Cow;
use std::convert::Infallible;

use sfv::visitor::{
    DictionaryVisitor, EntryVisitor, Ignored, InnerListVisitor, ItemVisitor, ParameterVisitor,
};
use sfv::{BareItemFromInput, KeyRef, StringRef};
use smallvec::SmallVec;

/// Most `Signature-Input` members accepted; bounds the work an unauthenticated header can cause.
pub(crate) const MAX_MEMBERS: usize = 16;
/// Most parameters accepted on one member (the profile knows six).
pub(crate) const MAX_PARAMS: usize = 16;
/// Most component identifiers accepted in one inner list before profile checks.
pub(crate) const MAX_ITEMS: usize = 64;

/// A visitor refusal: the header is larger than the profile allows.
#[derive(Debug)]
pub(crate) struct TooLarge(&'static str);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for TooLarge {}

/// The members of a `Signature-Input` dictionary; one is the usual case.
pub(crate) type InputMembers<'de> = SmallVec<[InputMember<'de>; 1]>;

/// One member of a `Signature-Input` dictionary.
pub(crate) struct InputMember<'de> {
    pub(crate) label: &'de KeyRef,
    pub(crate) is_inner_list: bool,
    /// Inline room for the floor plus three extra fields.
    pub(crate) items: SmallVec<[InputItem<'de>; 8]>,
    /// Inline room for every parameter the profile knows.
    pub(crate) params: SmallVec<[(&'de KeyRef, BareItemFromInput<'de>); 6]>,
}

impl InputMember<'_> {
    pub(crate) fn param(&self, name: &str) -> Option<&BareItemFromInput<'_>> {
        self.params
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v)
    }
}

/// One component identifier of an inner list.
pub(crate) struct InputItem<'de> {
    /// The identifier when it is an sf-string, `None` for any other type.
    pub(crate) name: Option<Cow<'de, StringRef>>,
    pub(crate) has_params: bool,
}

/// Parses a `Signature-Input` value into `members` (which should be empty).
pub(crate) fn parse_signature_input<'de>(
    input: &'de [u8],
    members: &mut InputMembers<'de>,
) -> Result<(), sfv::Error> {
    sfv::Parser::new(input).parse_dictionary_with_visitor(InputVisitor(members))
}

struct InputVisitor<'m, 'de>(&'m mut InputMembers<'de>);

impl<'de> DictionaryVisitor<'de> for InputVisitor<'_, 'de> {
    type Out = ();
    type Error = TooLarge;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl EntryVisitor<'de>, TooLarge> {
        // A repeated name replaces its earlier member and counts once
        // (spec §9.4): dropped before the count. The bound keeps this
        // linear search cheap.
        self.0.retain(|m| m.label != key);
        if self.0.len() >= MAX_MEMBERS {
            return Err(TooLarge("too many Signature-Input members"));
        }
        self.0.push(InputMember {
            label: key,
            is_inner_list: false,
            items: SmallVec::new(),
            params: SmallVec::new(),
        });
        Ok(self.0.last_mut())
    }

    fn finish(self) -> Result<(), TooLarge> {
        Ok(())
    }
}

impl<'de> EntryVisitor<'de> for &mut InputMember<'de> {
    type Error = Infallible;

    fn item(self) -> Result<impl ItemVisitor<'de>, Infallible> {
        // A member that is a bare item is never a tessera-v1 signature, but
        // the parameter bound applies to it too.
        Ok(BareMember)
    }

    fn inner_list(self) -> Result<impl InnerListVisitor<'de>, Infallible> {
        self.is_inner_list = true;
        Ok(self)
    }
}

/// A member whose value is a bare item: only its parameters are counted.
struct BareMember;

impl<'de> ItemVisitor<'de> for BareMember {
    type Out = ();
    type Error = Infallible;

    fn bare_item(
        self,
        _: BareItemFromInput<'de>,
    ) -> Result<impl ParameterVisitor<'de, Out = ()>, Infallible> {
        Ok(ItemParams::default())
    }
}

impl<'de> InnerListVisitor<'de> for &mut InputMember<'de> {
    type Error = TooLarge;

    fn item(&mut self) -> Result<impl ItemVisitor<'de>, TooLarge> {
        if self.items.len() >= MAX_ITEMS {
            return Err(TooLarge("too many covered components"));
        }
        self.items.push(InputItem {
            name: None,
            has_params: false,
        });
        Ok(self.items.last_mut())
    }

    fn finish(self) -> Result<impl ParameterVisitor<'de>, TooLarge> {
        Ok(MemberParams(&mut self.params))
    }
}

impl<'de> ItemVisitor<'de> for &mut InputItem<'de> {
    type Out = ();
    type Error = Infallible;

    fn bare_item(
        self,
        bare_item: BareItemFromInput<'de>,
    ) -> Result<impl ParameterVisitor<'de, Out = ()>, Infallible> {
        if let BareItemFromInput::String(name) = bare_item {
            self.name = Some(name);
        }
        Ok(ItemParams {
            has_params: Some(&mut self.has_params),
            seen: SmallVec::new(),
        })
    }
}

/// The parameters of one item: only counted (at most [`MAX_PARAMS`]
/// distinct names, spec §9.4), and noted when the item is a component.
#[derive(Default)]
struct ItemParams<'a, 'de> {
    has_params: Option<&'a mut bool>,
    seen: SmallVec<[&'de KeyRef; 4]>,
}

impl<'de> ParameterVisitor<'de> for ItemParams<'_, 'de> {
    type Out = ();
    type Error = TooLarge;

    fn parameter(&mut self, key: &'de KeyRef, _: BareItemFromInput<'de>) -> Result<(), TooLarge> {
        if let Some(has_params) = self.has_params.as_deref_mut() {
            *has_params = true;
        }
        if !self.seen.contains(&key) {
            if self.seen.len() >= MAX_PARAMS {
                return Err(TooLarge("an item has too many parameters"));
            }
            self.seen.push(key);
        }
        Ok(())
    }

    fn finish(self) -> Result<(), TooLarge> {
        Ok(())
    }
}

struct MemberParams<'a, 'de>(&'a mut SmallVec<[(&'de KeyRef, BareItemFromInput<'de>); 6]>);

impl<'de> ParameterVisitor<'de> for MemberParams<'_, 'de> {
    type Out = ();
    type Error = TooLarge;

    fn parameter(
        &mut self,
        key: &'de KeyRef,
        value: BareItemFromInput<'de>,
    ) -> Result<(), TooLarge> {
        let full = self.0.len() >= MAX_PARAMS;
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None if full => return Err(TooLarge("too many signature parameters")),
            None => self.0.push((key, value)),
        }
        Ok(())
    }

    fn finish(self) -> Result<(), TooLarge> {
        Ok(())
    }
}

/// What a dictionary holds under one key, when the value should be a byte sequence.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ByteMember {
    /// The key is absent.
    Absent,
    /// The key is present but its value is not a byte sequence of the wanted length.
    WrongShape,
    /// The 32 bytes.
    Bytes([u8; 32]),
}

/// Finds dictionary member `name` and returns it if it is a 32-byte byte sequence.
pub(crate) fn parse_byte_member(input: &[u8], name: &str) -> Result<ByteMember, sfv::Error> {
    sfv::Parser::new(input).parse_dictionary_with_visitor(ByteMemberVisitor {
        name,
        found: ByteMember::Absent,
    })
}

struct ByteMemberVisitor<'n> {
    name: &'n str,
    found: ByteMember,
}

impl<'de> DictionaryVisitor<'de> for ByteMemberVisitor<'_> {
    type Out = ByteMember;
    type Error = Infallible;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl EntryVisitor<'de>, Infallible> {
        if key.as_str() == self.name {
            // A later duplicate replaces an earlier one entirely.
            self.found = ByteMember::WrongShape;
            Ok(Some(&mut self.found))
        } else {
            Ok(None)
        }
    }

    fn finish(self) -> Result<ByteMember, Infallible> {
        Ok(self.found)
    }
}

impl<'de> EntryVisitor<'de> for &mut ByteMember {
    type Error = Infallible;

    fn item(self) -> Result<impl ItemVisitor<'de>, Infallible> {
        Ok(self)
    }

    fn inner_list(self) -> Result<impl InnerListVisitor<'de>, Infallible> {
        Ok(Ignored)
    }
}

impl<'de> ItemVisitor<'de> for &mut ByteMember {
    type Out = ();
    type Error = Infallible;

    fn bare_item(
        self,
        bare_item: BareItemFromInput<'de>,
    ) -> Result<impl ParameterVisitor<'de, Out = ()>, Infallible> {
        if let BareItemFromInput::ByteSequence(bytes) = bare_item {
            if let Ok(bytes) = <[u8; 32]>::try_from(bytes.as_slice()) {
                *self = ByteMember::Bytes(bytes);
            }
        }
        Ok(Ignored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_duplicate_member_and_parameter_win() {
        let mut members = InputMembers::new();
        parse_signature_input(
            br#"a=("x");p=1, b=2, a=("@method" "y";bs);tag="t";tag="u";created=5"#,
            &mut members,
        )
        .expect("valid");
        assert_eq!(members.len(), 2);
        let a = members.iter().find(|m| m.label.as_str() == "a").expect("a");
        assert!(a.is_inner_list);
        assert_eq!(a.items.len(), 2);
        assert!(a.items[1].has_params);
        assert_eq!(a.params.len(), 2);
        assert_eq!(
            a.param("tag")
                .and_then(|t| t.as_string())
                .map(|s| s.as_str()),
            Some("u")
        );
        assert!(!members
            .iter()
            .any(|m| m.label.as_str() == "b" && m.is_inner_list));
        assert!(parse_signature_input(b"a=(", &mut InputMembers::new()).is_err());
    }

    #[test]
    fn a_repeated_member_name_counts_once_toward_the_member_limit() {
        let mut members: Vec<String> = (0..MAX_MEMBERS).map(|i| format!("m{i}=1")).collect();
        members.push("m0=2".to_owned());
        let header = members.join(", ");
        let mut parsed = InputMembers::new();
        parse_signature_input(header.as_bytes(), &mut parsed).expect("16 distinct names");
        assert_eq!(parsed.len(), MAX_MEMBERS);
        members.push(format!("m{MAX_MEMBERS}=1"));
        assert!(
            parse_signature_input(members.join(", ").as_bytes(), &mut InputMembers::new()).is_err(),
            "17 distinct names"
        );
    }

    #[test]
    fn oversized_headers_are_refused_early() {
        let members: Vec<String> = (0..=MAX_MEMBERS).map(|i| format!("m{i}=1")).collect();
        assert!(
            parse_signature_input(members.join(", ").as_bytes(), &mut InputMembers::new()).is_err()
        );
        let params: String = (0..=MAX_PARAMS).map(|i| format!(";p{i}=1")).collect();
        assert!(parse_signature_input(
            format!("a=(\"@method\"){params}").as_bytes(),
            &mut InputMembers::new()
        )
        .is_err());
        let items: Vec<String> = (0..=MAX_ITEMS).map(|i| format!("\"x{i}\"")).collect();
        assert!(parse_signature_input(
            format!("a=({})", items.join(" ")).as_bytes(),
            &mut InputMembers::new()
        )
        .is_err());
        // The bound holds for every member and every item, not only for
        // the inner list of a would-be signature.
        assert!(
            parse_signature_input(format!("a=1{params}").as_bytes(), &mut InputMembers::new())
                .is_err()
        );
        assert!(parse_signature_input(
            format!("a=(\"x\"{params})").as_bytes(),
            &mut InputMembers::new()
        )
        .is_err());
        let sixteen: String = (1..=MAX_PARAMS).map(|i| format!(";p{i}=1")).collect();
        assert!(parse_signature_input(
            format!("a=1{sixteen}, b=(\"x\"{sixteen}){sixteen}").as_bytes(),
            &mut InputMembers::new()
        )
        .is_ok());
        // Repeating one parameter does not count against the bound.
        let repeated = ";p=1".repeat(200);
        assert!(parse_signature_input(
            format!("a=(\"@method\"){repeated}").as_bytes(),
            &mut InputMembers::new()
        )
        .is_ok());
    }

    #[test]
    fn byte_members() {
        let b64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let ok = format!("x=1, sig=:{b64}:");
        assert_eq!(
            parse_byte_member(ok.as_bytes(), "sig").ok(),
            Some(ByteMember::Bytes([0; 32]))
        );
        assert_eq!(
            parse_byte_member(b"sig=:AAAA:", "sig").ok(),
            Some(ByteMember::WrongShape)
        );
        assert_eq!(
            parse_byte_member(b"other=:AAAA:", "sig").ok(),
            Some(ByteMember::Absent)
        );
        assert!(parse_byte_member(b"sig=:not base64!:", "sig").is_err());
    }

    /// Spec §9.4: `=` padding may be absent or short of complete (RFC 9651
    /// §4.2.7 supplies it), never beyond complete; a length of 1 mod 4 and
    /// padding in the middle do not parse. The same table is in
    /// scripts/spec-check/sf.py, the spec-only implementation.
    #[test]
    fn byte_sequence_padding_follows_the_spec() {
        for (encoded, parses) in [
            ("", true),
            ("QQ", true),
            ("QQ=", true),
            ("QQ==", true),
            ("QQ===", false),
            ("QUI", true),
            ("QUI=", true),
            ("QUI==", false),
            ("QUJD", true),
            ("QUJD=", false),
            ("Q", false),
            ("Q=", false),
            ("=", false),
            ("==", false),
            ("Q=Q=", false),
        ] {
            let value = format!("x=:{encoded}:");
            assert_eq!(
                parse_byte_member(value.as_bytes(), "sig").is_ok(),
                parses,
                "{value}"
            );
        }
    }
}
