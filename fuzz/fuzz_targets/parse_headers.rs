//! `Signature-Input` / `Signature` / `Content-Digest` parsing on arbitrary
//! bytes: never panics, whatever parses re-parses from its own canonical
//! serialization to the same signature, and the canonical-form shortcut
//! never decides differently from the `sfv` parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::{BodyDigest, ParsedSignature};

fuzz_target!(|data: &[u8]| {
    // Split the input into the two header values at the first newline.
    let (input, signature) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let _ = BodyDigest::parse_header(signature);
    tessera_core::fuzzing::canonical_agrees_with_sfv(input, signature);
    let headers = [("signature-input", input), ("signature", signature)];
    if let Ok(parsed) = ParsedSignature::from_fields(&headers[..]) {
        let reserialized = format!("{}={}", parsed.label(), parsed.params());
        let again = [
            ("signature-input", reserialized.as_bytes()),
            ("signature", signature),
        ];
        let reparsed = ParsedSignature::from_fields(&again[..]).expect("canonical form parses");
        assert_eq!(parsed, reparsed);
    }
});
