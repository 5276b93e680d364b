//! The same arbitrary request goes to the signer and to the verifier: either
//! it is signable and verifies, or both refuse it with the same error code
//! (`tessera_core::agreement`, shared with the property test).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tessera_core::agreement::{sign_and_verify_agree, Attempt};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    https: bool,
    method: &'a str,
    authority: &'a str,
    path_and_query: &'a str,
    headers: Vec<(&'a str, &'a [u8])>,
    cover: Vec<String>,
    body: &'a [u8],
    origin_form: bool,
}

fuzz_target!(|input: Input<'_>| {
    let scheme = if input.https { "https" } else { "http" };
    let url = format!("{scheme}://{}{}", input.authority, input.path_and_query);
    let headers: Vec<(String, Vec<u8>)> = input
        .headers
        .iter()
        // Names are names: the request is built by an HTTP library, which
        // refuses anything else, and the signature fields are the signer's.
        .filter(|(n, _)| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !["signature", "signature-input", "content-digest"]
                    .contains(&n.to_ascii_lowercase().as_str())
        })
        .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
        .collect();
    let attempt = Attempt {
        method: input.method,
        url: &url,
        headers: &headers,
        cover: &input.cover,
        body: input.body,
        origin_form: input.origin_form,
    };
    if let Err(disagreement) = sign_and_verify_agree(&attempt) {
        panic!(
            "signer and verifier disagree on {url:?} {:?}: {disagreement}",
            input.method
        );
    }
});
