//! The differential check of the canonical-form shortcut: for any header
//! values, [`crate::canonical::recognize`] must give exactly what the `sfv`
//! path gives, or decline. Used by the unit tests below and, through
//! `tessera_core::fuzzing`, by the `parse_headers` fuzz target.

use crate::canonical::recognize;
use crate::parsed::ParsedSignature;

/// Panics unless [`ParsedSignature::from_fields`] gives exactly what the
/// `sfv` path alone gives for these one-line headers, errors included: the
/// shortcut may decline, never decide differently. Returns what it recognized.
#[cfg(any(test, fuzzing))]
pub(crate) fn assert_agrees(input: &[u8], signature: &[u8]) -> Option<ParsedSignature> {
    let fields = [("signature-input", input), ("signature", signature)];
    let through_sfv = ParsedSignature::from_fields_through_sfv(&fields[..]);
    let recognized = recognize(input, signature);
    if let Some(parsed) = &recognized {
        assert_eq!(
            through_sfv.as_ref().ok(),
            Some(parsed),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    assert_eq!(ParsedSignature::from_fields(&fields[..]), through_sfv);
    recognized
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsed::MAX_SIGNATURE_HEADER_LEN;
    use base64::Engine;
    use proptest::prelude::*;

    const MAC_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const INPUT: &str = concat!(
        r#"sig1=("@method" "@authority" "@path" "@query" "content-digest" "content-type")"#,
        r#";created=1700000000;keyid="user-42-phone";nonce="AAAAAAAAAAAAAAAAAAAAAA";tag="tessera-v1""#
    );

    fn signature() -> String {
        format!("sig1=:{MAC_B64}:")
    }

    #[test]
    fn recognizes_what_signers_emit() {
        let parsed = recognize(INPUT.as_bytes(), signature().as_bytes()).expect("canonical");
        assert_eq!(parsed.label(), "sig1");
        assert_eq!(parsed.created(), 1_700_000_000);
        assert_eq!(parsed.key_id().as_str(), "user-42-phone");
        assert_eq!(parsed.components().len(), 6);
        assert_eq!(format!("sig1={}", parsed.params()), INPUT);
    }

    #[test]
    fn leaves_every_other_form_to_sfv() {
        let sig = signature();
        let edits = [
            INPUT.replace("\" \"@authority", "\"  \"@authority"),
            INPUT.replace(";created", " ;created"),
            format!(" {INPUT}"),
            format!("{INPUT} "),
            format!("{INPUT}, other=1"),
            INPUT.replace("1700000000", "01700000000"),
            INPUT.replace("1700000000", "1700000000.0"),
            INPUT.replace("1700000000", "1234567890123456"),
            INPUT.replace("user-42-phone", r"user\-42"),
            INPUT.replace(r#"keyid="user-42-phone""#, r#"keyid=user-42-phone"#),
            INPUT.replace(
                r#";tag="tessera-v1""#,
                r#";tag="tessera-v1";tag="tessera-v1""#,
            ),
            INPUT.replace(r#";tag="tessera-v1""#, r#";tag="other""#),
            INPUT.replace(r#";tag="tessera-v1""#, ""),
            INPUT.replace(r#";tag="tessera-v1""#, r#";tag="tessera-v1";x=1"#),
            INPUT.replace(
                r#";tag="tessera-v1""#,
                r#";tag="tessera-v1";alg="hmac-sha1""#,
            ),
            INPUT.replace(
                r#";tag="tessera-v1""#,
                r#";expires=1700000000;tag="tessera-v1""#,
            ),
            INPUT.replace(r#""content-type""#, r#""content-type";bs"#),
            INPUT.replace(r#""content-type""#, r#""Content-Type""#),
            INPUT.replace(r#""content-type""#, r#""@method""#),
            INPUT.replace("sig1=", "sig1 ="),
            // Bytes the whole-value check refuses, inside a string, a key
            // and between members: escapes, control bytes, DEL, non-ASCII.
            INPUT.replace("user-42-phone", r#"user-\"42"#),
            INPUT.replace("user-42-phone", "user-42\tphone"),
            INPUT.replace(r#""content-type""#, "\"content-type\x7f\""),
            INPUT.replace("created", "cr\u{e9}ated"),
            INPUT.replace(" \"@authority", "\t\"@authority"),
        ];
        for edited in &edits {
            assert!(
                recognize(edited.as_bytes(), sig.as_bytes()).is_none(),
                "recognized {edited}"
            );
        }
        let bad_signatures = [
            format!("sig1=:{MAC_B64}: "),
            format!("sig2=:{MAC_B64}:"),
            format!("sig1=:{}:", MAC_B64.trim_end_matches('=')),
            format!("sig1=:{}:", MAC_B64.replace("8=", "9=")),
            format!("sig1=:{MAC_B64}:, sig1=:{MAC_B64}:"),
            "sig1=:AAAA:".to_owned(),
        ];
        for bad in &bad_signatures {
            assert!(
                recognize(INPUT.as_bytes(), bad.as_bytes()).is_none(),
                "recognized {bad}"
            );
        }
        // Labels must be sf-keys even when both headers agree on them.
        for label in ["Sig1", "1sig", "sig 1", "-"] {
            let input = INPUT.replace("sig1=", &format!("{label}="));
            let signature = sig.replace("sig1=", &format!("{label}="));
            assert!(
                recognize(input.as_bytes(), signature.as_bytes()).is_none(),
                "{label}"
            );
        }
        // Over the length limit, even the canonical form is the sfv path's to refuse.
        let label = format!(
            "a{}",
            "b".repeat(MAX_SIGNATURE_HEADER_LEN + 1 - INPUT.len() + 3)
        );
        let long = INPUT.replace("sig1=", &format!("{label}="));
        assert_eq!(long.len(), MAX_SIGNATURE_HEADER_LEN + 1);
        let long_sig = sig.replace("sig1=", &format!("{label}="));
        assert!(assert_agrees(long.as_bytes(), long_sig.as_bytes()).is_none());
        // The recognizer is a subset: what it declines still parses through sfv.
        let optional = INPUT.replace(
            r#";tag="tessera-v1""#,
            r#";tag="tessera-v1";alg="hmac-sha256";expires=1700000300"#,
        );
        assert!(recognize(optional.as_bytes(), sig.as_bytes()).is_some());
    }

    #[test]
    fn agrees_with_sfv_on_every_vector() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors");
        let (mut cases, mut recognized) = (0, 0);
        for entry in std::fs::read_dir(&dir).expect("spec/vectors") {
            let path = entry.expect("entry").path().join("case.json");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let case: serde_json::Value = serde_json::from_str(&text).expect("json");
            let header = |name: &str| -> Vec<u8> {
                let expected = &case["expected"][name.replace('-', "_")];
                if let Some(value) = expected.as_str() {
                    return value.as_bytes().to_vec();
                }
                let lines: Vec<&str> = case["request"]["headers"]
                    .as_array()
                    .expect("headers")
                    .iter()
                    .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                    .filter_map(|h| h[1].as_str())
                    .collect();
                lines.join(", ").into_bytes()
            };
            let (input, signature) = (header("signature-input"), header("signature"));
            cases += 1;
            let hit = assert_agrees(&input, &signature).is_some();
            let signer_output =
                case["kind"] == "tessera-v1" && case["expected"]["signature"].is_string();
            assert!(
                hit || !signer_output,
                "{} was not recognized",
                path.display()
            );
            recognized += usize::from(hit);
        }
        assert!(
            cases >= 90 && recognized >= 60,
            "{cases} cases, {recognized} recognized"
        );
    }

    /// A `Signature-Input` in the form signers emit (under a label drawn
    /// from `label`) and a `Signature` for the same label.
    fn canonical_pair(label: &'static str) -> impl Strategy<Value = (String, String)> {
        let extra = prop::sample::subsequence(
            vec![
                "content-type",
                "user-agent",
                "x-request-id",
                "accept",
                "date",
            ],
            0..=5,
        );
        (
            label,
            extra,
            prop_oneof![
                0u64..=999_999_999_999_999,
                999_999_999_900_000u64..=999_999_999_999_999
            ],
            prop::option::of(1u64..100_000),
            "[!#-\\[\\]-~]{1,40}",
            "[A-Za-z0-9_-]{22,43}",
            prop::option::of(Just(())),
            any::<[u8; 32]>(),
        )
            .prop_map(
                |(label, extra, created, lifetime, keyid, nonce, alg, mac)| {
                    let mut names =
                        vec!["@method", "@authority", "@path", "@query", "content-digest"];
                    names.extend(extra);
                    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
                    let mut input = format!("{label}=({});created={created}", list.join(" "));
                    // sf-integers have at most 15 digits.
                    let expires = lifetime
                        .map(|l| created + l)
                        .filter(|&e| e <= 999_999_999_999_999);
                    if let Some(expires) = expires {
                        input.push_str(&format!(";expires={expires}"));
                    }
                    input.push_str(&format!(";keyid=\"{keyid}\";nonce=\"{nonce}\""));
                    if alg.is_some() {
                        input.push_str(";alg=\"hmac-sha256\"");
                    }
                    input.push_str(";tag=\"tessera-v1\"");
                    let signature = format!(
                        "{label}=:{}:",
                        base64::engine::general_purpose::STANDARD.encode(mac)
                    );
                    (input, signature)
                },
            )
    }

    /// One edit at a position (taken modulo the length): insert, replace or
    /// delete a byte, repeat the next `byte % 48` bytes, or repeat the
    /// segment that starts at the `at`-th `;`, space or comma (`byte % 3`)
    /// and runs to the next one: a duplicated parameter, item or member.
    fn edit() -> impl Strategy<Value = (usize, u8, u8)> {
        let bytes = prop_oneof![
            3 => prop::sample::select(b"\"\\ ;=(),:0123456789aAZ-@*._\t\x7f\xc3".to_vec()),
            1 => any::<u8>(),
        ];
        (any::<usize>(), 0u8..5, bytes)
    }

    fn apply(text: &str, edits: &[(usize, u8, u8)]) -> Vec<u8> {
        let mut bytes = text.as_bytes().to_vec();
        for &(at, kind, byte) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 => bytes.insert(at, byte),
                _ if at == bytes.len() => {}
                1 => bytes[at] = byte,
                2 => {
                    bytes.remove(at);
                }
                3 => {
                    let end = (at + usize::from(byte % 48)).min(bytes.len());
                    let repeated = bytes[at..end].to_vec();
                    bytes.splice(end..end, repeated);
                }
                _ => {
                    let delimiter = [b';', b' ', b','][usize::from(byte % 3)];
                    let starts: Vec<usize> = (0..bytes.len())
                        .filter(|&i| bytes[i] == delimiter)
                        .collect();
                    if let Some(&start) = starts.get(at % starts.len().max(1)) {
                        let end = bytes[start + 1..]
                            .iter()
                            .position(|&b| b == delimiter)
                            .map_or(bytes.len(), |i| start + 1 + i);
                        let repeated = bytes[start..end].to_vec();
                        bytes.splice(end..end, repeated);
                    }
                }
            }
        }
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8000))]

        #[test]
        fn canonical_headers_are_recognized_as_sfv_reads_them(
            (input, signature) in canonical_pair("[a-z*][a-z0-9_.*-]{0,6}"),
        ) {
            prop_assert!(assert_agrees(input.as_bytes(), signature.as_bytes()).is_some());
        }

        #[test]
        fn edited_headers_never_make_the_paths_disagree(
            // Labels that sf-keys forbid, too: both headers carry the same one.
            (input, signature) in canonical_pair("[a-zA-Z0-9*_.%-]{1,7}"),
            input_edits in prop::collection::vec(edit(), 0..4),
            signature_edits in prop::collection::vec(edit(), 0..2),
        ) {
            assert_agrees(&apply(&input, &input_edits), &apply(&signature, &signature_edits));
        }
    }
}
