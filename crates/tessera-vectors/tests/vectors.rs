//! Runs every vector in `spec/vectors`, each as its own named test.
//!
//! The list below is the contract: `every_vector_directory_has_a_test`
//! fails when a directory exists without an entry here (or the reverse), so
//! a new vector cannot be skipped silently. Regenerate the list with
//! `cargo run -p tessera-vectors -- test-list`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use tessera_vectors::{case_dirs, check, default_dir, load_case, Expected, RFC_B25_SIGNATURE};

fn run_case(name: &str) {
    let dir = default_dir();
    let case = load_case(&dir, name).unwrap_or_else(|e| panic!("case {name}: stage load: {e}"));
    assert_eq!(
        case.name, name,
        "case {name}: stage load: the name field differs from the directory"
    );
    if let Err(failure) = check(&case) {
        panic!("{failure}");
    }
}

macro_rules! vectors {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                run_case($name);
            }
        )*

        /// Every case name the macro lists.
        const LISTED: &[&str] = &[$($name),*];
    };
}

vectors! {
    pos_rfc9421_b25_hmac => "pos-rfc9421-b25-hmac",
    pos_basic_get => "pos-basic-get",
    pos_spec_worked_example => "pos-spec-worked-example",
    pos_store_since_equals_created => "pos-store-since-equals-created",
    pos_root_path => "pos-root-path",
    pos_empty_path => "pos-empty-path",
    pos_empty_path_with_query => "pos-empty-path-with-query",
    pos_trailing_slash => "pos-trailing-slash",
    pos_repeated_slashes => "pos-repeated-slashes",
    pos_dot_segments => "pos-dot-segments",
    pos_pct_upper_hex => "pos-pct-upper-hex",
    pos_pct_lower_hex => "pos-pct-lower-hex",
    pos_pct_mixed_case_hex => "pos-pct-mixed-case-hex",
    pos_pct_encoded_slash => "pos-pct-encoded-slash",
    pos_double_encoded_slash => "pos-double-encoded-slash",
    pos_pct_encoded_unreserved => "pos-pct-encoded-unreserved",
    pos_plus_in_query => "pos-plus-in-query",
    pos_no_query => "pos-no-query",
    pos_empty_query => "pos-empty-query",
    pos_repeated_query_keys => "pos-repeated-query-keys",
    pos_query_unsorted => "pos-query-unsorted",
    pos_query_empty_values => "pos-query-empty-values",
    pos_query_special_chars => "pos-query-special-chars",
    pos_utf8_pct_text => "pos-utf8-pct-text",
    pos_tilde_and_unreserved => "pos-tilde-and-unreserved",
    pos_braces_in_path => "pos-braces-in-path",
    pos_long_query => "pos-long-query",
    pos_nondefault_port => "pos-nondefault-port",
    pos_ipv6_literal => "pos-ipv6-literal",
    pos_ipv6_literal_port => "pos-ipv6-literal-port",
    pos_ipv4_literal => "pos-ipv4-literal",
    pos_uppercase_host => "pos-uppercase-host",
    pos_https_default_port_dropped => "pos-https-default-port-dropped",
    pos_http_default_port_dropped => "pos-http-default-port-dropped",
    pos_http_port_443_kept => "pos-http-port-443-kept",
    pos_https_port_80_kept => "pos-https-port-80-kept",
    pos_empty_port => "pos-empty-port",
    pos_zero_padded_default_port => "pos-zero-padded-default-port",
    pos_zero_padded_port => "pos-zero-padded-port",
    pos_http_scheme => "pos-http-scheme",
    pos_localhost => "pos-localhost",
    pos_header_leading_trailing_ws => "pos-header-leading-trailing-ws",
    pos_header_inner_ws => "pos-header-inner-ws",
    pos_header_empty_value => "pos-header-empty-value",
    pos_header_whitespace_only => "pos-header-whitespace-only",
    pos_duplicate_header_fields => "pos-duplicate-header-fields",
    pos_duplicate_header_mixed_case => "pos-duplicate-header-mixed-case",
    pos_header_quotes_commas => "pos-header-quotes-commas",
    pos_header_uppercase_name => "pos-header-uppercase-name",
    pos_uncovered_headers_ignored => "pos-uncovered-headers-ignored",
    pos_empty_body_post => "pos-empty-body-post",
    pos_body_1mib => "pos-body-1mib",
    pos_binary_body => "pos-binary-body",
    pos_json_body => "pos-json-body",
    pos_json_body_rfc9530 => "pos-json-body-rfc9530",
    pos_form_body => "pos-form-body",
    pos_utf8_body => "pos-utf8-body",
    pos_extra_one => "pos-extra-one",
    pos_extra_order_a => "pos-extra-order-a",
    pos_extra_order_b => "pos-extra-order-b",
    pos_extra_order_c => "pos-extra-order-c",
    pos_extra_many => "pos-extra-many",
    pos_extra_authorization => "pos-extra-authorization",
    pos_extra_content_length => "pos-extra-content-length",
    pos_expires => "pos-expires",
    pos_expires_at_now => "pos-expires-at-now",
    pos_created_window_edge_past => "pos-created-window-edge-past",
    pos_created_ahead_edge => "pos-created-ahead-edge",
    pos_created_ahead_small_window => "pos-created-ahead-small-window",
    pos_window_zero => "pos-window-zero",
    pos_created_small => "pos-created-small",
    pos_method_get => "pos-method-get",
    pos_method_head => "pos-method-head",
    pos_method_post => "pos-method-post",
    pos_method_put => "pos-method-put",
    pos_method_patch => "pos-method-patch",
    pos_method_delete => "pos-method-delete",
    pos_method_options => "pos-method-options",
    pos_method_trace => "pos-method-trace",
    pos_method_connect => "pos-method-connect",
    pos_method_extension => "pos-method-extension",
    pos_key_16_bytes => "pos-key-16-bytes",
    pos_key_64_bytes => "pos-key-64-bytes",
    pos_key_128_bytes => "pos-key-128-bytes",
    pos_keyid_max_length => "pos-keyid-max-length",
    pos_keyid_punctuation => "pos-keyid-punctuation",
    pos_nonce_min_length => "pos-nonce-min-length",
    pos_nonce_max_length => "pos-nonce-max-length",
    pos_multiple_authorities => "pos-multiple-authorities",
    pos_foreign_signature_alongside => "pos-foreign-signature-alongside",
    neg_missing_created => "neg-missing-created",
    neg_missing_keyid => "neg-missing-keyid",
    neg_missing_nonce => "neg-missing-nonce",
    neg_missing_tag => "neg-missing-tag",
    neg_wrong_tag => "neg-wrong-tag",
    neg_unknown_parameter => "neg-unknown-parameter",
    neg_duplicate_component => "neg-duplicate-component",
    neg_duplicate_field_component => "neg-duplicate-field-component",
    neg_floor_component_after_floor => "neg-floor-component-after-floor",
    neg_content_digest_after_floor => "neg-content-digest-after-floor",
    neg_forbidden_target_uri => "neg-forbidden-target-uri",
    neg_forbidden_request_target => "neg-forbidden-request-target",
    neg_forbidden_signature_params => "neg-forbidden-signature-params",
    neg_forbidden_sf_param => "neg-forbidden-sf-param",
    neg_forbidden_query_param => "neg-forbidden-query-param",
    neg_forbidden_host => "neg-forbidden-host",
    neg_forbidden_x_forwarded_for => "neg-forbidden-x-forwarded-for",
    neg_forbidden_signature => "neg-forbidden-signature",
    neg_forbidden_signature_input => "neg-forbidden-signature-input",
    neg_forbidden_hop_by_hop => "neg-forbidden-hop-by-hop",
    neg_forbidden_forwarded => "neg-forbidden-forwarded",
    neg_forbidden_via => "neg-forbidden-via",
    neg_uppercase_component => "neg-uppercase-component",
    neg_missing_floor_query => "neg-missing-floor-query",
    neg_missing_floor_content_digest => "neg-missing-floor-content-digest",
    neg_missing_floor_method => "neg-missing-floor-method",
    neg_created_too_old => "neg-created-too-old",
    neg_created_in_future => "neg-created-in-future",
    neg_created_ahead_beyond => "neg-created-ahead-beyond",
    neg_created_ahead_small_window => "neg-created-ahead-small-window",
    neg_expires_passed => "neg-expires-passed",
    neg_expires_before_created => "neg-expires-before-created",
    neg_created_negative => "neg-created-negative",
    neg_created_string => "neg-created-string",
    neg_cr_in_covered_header => "neg-cr-in-covered-header",
    neg_lf_in_covered_header => "neg-lf-in-covered-header",
    neg_crlf_in_covered_header => "neg-crlf-in-covered-header",
    neg_nul_in_covered_header => "neg-nul-in-covered-header",
    neg_nonce_too_long => "neg-nonce-too-long",
    neg_nonce_too_short => "neg-nonce-too-short",
    neg_nonce_bad_char => "neg-nonce-bad-char",
    neg_keyid_too_long => "neg-keyid-too-long",
    neg_keyid_bad_char => "neg-keyid-bad-char",
    neg_keyid_empty => "neg-keyid-empty",
    neg_signature_not_base64 => "neg-signature-not-base64",
    neg_signature_wrong_length => "neg-signature-wrong-length",
    neg_signature_too_long => "neg-signature-too-long",
    neg_signature_not_byte_sequence => "neg-signature-not-byte-sequence",
    neg_signature_label_mismatch => "neg-signature-label-mismatch",
    neg_signature_input_not_dictionary => "neg-signature-input-not-dictionary",
    neg_alg_mismatch => "neg-alg-mismatch",
    neg_alg_asymmetric => "neg-alg-asymmetric",
    neg_missing_signature_header => "neg-missing-signature-header",
    neg_no_signature => "neg-no-signature",
    neg_two_tessera_signatures => "neg-two-tessera-signatures",
    neg_wrong_digest => "neg-wrong-digest",
    neg_digest_replaced_after_signing => "neg-digest-replaced-after-signing",
    neg_digest_sha512_only => "neg-digest-sha512-only",
    neg_digest_malformed => "neg-digest-malformed",
    neg_content_digest_obs_text => "neg-content-digest-obs-text",
    neg_missing_content_digest_header => "neg-missing-content-digest-header",
    neg_covered_header_absent => "neg-covered-header-absent",
    neg_unknown_key => "neg-unknown-key",
    neg_wrong_authority => "neg-wrong-authority",
    neg_wrong_port => "neg-wrong-port",
    neg_wrong_secret => "neg-wrong-secret",
    neg_tampered_method => "neg-tampered-method",
    neg_tampered_authority => "neg-tampered-authority",
    neg_store_reset => "neg-store-reset",
    neg_store_reset_after_bad_signature => "neg-store-reset-after-bad-signature",
    neg_tampered_path => "neg-tampered-path",
    neg_tampered_path_pct_case => "neg-tampered-path-pct-case",
    neg_tampered_query => "neg-tampered-query",
    neg_tampered_query_removed => "neg-tampered-query-removed",
    neg_tampered_covered_header => "neg-tampered-covered-header",
    neg_tampered_header_line_added => "neg-tampered-header-line-added",
    neg_tampered_duplicate_order => "neg-tampered-duplicate-order",
    neg_tampered_body => "neg-tampered-body",
    neg_tampered_body_and_signature => "neg-tampered-body-and-signature",
    neg_tampered_body_and_digest => "neg-tampered-body-and-digest",
    neg_tampered_created => "neg-tampered-created",
    neg_tampered_expires_added => "neg-tampered-expires-added",
    neg_tampered_nonce => "neg-tampered-nonce",
    neg_tampered_keyid => "neg-tampered-keyid",
    neg_tampered_extra_dropped => "neg-tampered-extra-dropped",
    neg_tampered_signature_bit => "neg-tampered-signature-bit",
    pos_method_lowercase => "pos-method-lowercase",
    pos_method_mixed_case => "pos-method-mixed-case",
    neg_method_case_changed => "neg-method-case-changed",
    pos_path_visible_ascii => "pos-path-visible-ascii",
    pos_query_visible_ascii => "pos-query-visible-ascii",
    pos_pct_encoded_host => "pos-pct-encoded-host",
    pos_pct_encoded_host_upper => "pos-pct-encoded-host-upper",
    pos_port_65535 => "pos-port-65535",
    pos_ipv6_embedded_ipv4 => "pos-ipv6-embedded-ipv4",
    pos_ipv6_not_compressed => "pos-ipv6-not-compressed",
    pos_ipv4_like_reg_name => "pos-ipv4-like-reg-name",
    pos_url_fragment_dropped => "pos-url-fragment-dropped",
    unsignable_path_non_ascii => "unsignable-path-non-ascii",
    neg_path_non_ascii => "neg-path-non-ascii",
    unsignable_query_non_ascii => "unsignable-query-non-ascii",
    neg_query_non_ascii => "neg-query-non-ascii",
    unsignable_obs_text_in_covered_header => "unsignable-obs-text-in-covered-header",
    neg_obs_text_in_covered_header => "neg-obs-text-in-covered-header",
    pos_obs_text_in_uncovered_header => "pos-obs-text-in-uncovered-header",
    unsignable_two_host_lines => "unsignable-two-host-lines",
    unsignable_path_space => "unsignable-path-space",
    unsignable_port_out_of_range => "unsignable-port-out-of-range",
    unsignable_ipv6_zone_id => "unsignable-ipv6-zone-id",
    unsignable_userinfo => "unsignable-userinfo",
    neg_clock_skew_before_bad_path => "neg-clock-skew-before-bad-path",
    neg_expired_before_bad_authority => "neg-expired-before-bad-authority",
    neg_clock_skew_before_missing_host => "neg-clock-skew-before-missing-host",
    acc_origin_form_host => "acc-origin-form-host",
    acc_host_ows => "acc-host-ows",
    acc_absolute_form_ignores_host => "acc-absolute-form-ignores-host",
    acc_h2_cookie_crumbs_joined_with_semicolon => "acc-h2-cookie-crumbs-joined-with-semicolon",
    neg_h1_two_cookie_lines => "neg-h1-two-cookie-lines",
    neg_h1_cookie_line_split_after_signing => "neg-h1-cookie-line-split-after-signing",
    unsignable_two_cookie_lines => "unsignable-two-cookie-lines",
    neg_no_host => "neg-no-host",
    neg_empty_host => "neg-empty-host",
    neg_two_host_lines => "neg-two-host-lines",
    neg_two_identical_host_lines => "neg-two-identical-host-lines",
    neg_two_host_lines_absolute_form => "neg-two-host-lines-absolute-form",
    neg_host_port_out_of_range => "neg-host-port-out-of-range",
    neg_host_ipv6_bad => "neg-host-ipv6-bad",
    neg_host_non_ascii => "neg-host-non-ascii",
    neg_host_not_served => "neg-host-not-served",
    neg_authority_trailing_dot => "neg-authority-trailing-dot",
    neg_asterisk_form => "neg-asterisk-form",
    neg_authority_form => "neg-authority-form",
    neg_relative_target => "neg-relative-target",
    neg_fragment_in_target => "neg-fragment-in-target",
    acc_fixed_authority_ignores_host => "acc-fixed-authority-ignores-host",
    acc_fixed_authority_no_host_or_two => "acc-fixed-authority-no-host-or-two",
    neg_fixed_authority_bad_path => "neg-fixed-authority-bad-path",
    acc_fixed_authority_target_authority_not_used => "acc-fixed-authority-target-authority-not-used",
    neg_fixed_authority_target_fragment => "neg-fixed-authority-target-fragment",
    neg_fixed_authority_target_userinfo => "neg-fixed-authority-target-userinfo",
    neg_fixed_authority_target_empty_authority => "neg-fixed-authority-target-empty-authority",
    neg_fixed_authority_other_host_signed => "neg-fixed-authority-other-host-signed",
    neg_foreign_bare_item_17_params => "neg-foreign-bare-item-17-params",
    acc_foreign_bare_item_16_params => "acc-foreign-bare-item-16-params",
    neg_foreign_inner_list_17_params => "neg-foreign-inner-list-17-params",
    neg_foreign_item_17_params => "neg-foreign-item-17-params",
    neg_component_17_params => "neg-component-17-params",
    neg_tessera_member_17_params => "neg-tessera-member-17-params",
    acc_repeated_parameter_counts_once => "acc-repeated-parameter-counts-once",
    neg_17_members => "neg-17-members",
    acc_16_members => "acc-16-members",
    acc_16_members_one_repeated => "acc-16-members-one-repeated",
    neg_foreign_inner_list_65_items => "neg-foreign-inner-list-65-items",
    neg_signature_input_too_long_joined => "neg-signature-input-too-long-joined",
    acc_signature_input_split_lines => "acc-signature-input-split-lines",
    acc_signature_headers_ows => "acc-signature-headers-ows",
    neg_signature_input_empty_line => "neg-signature-input-empty-line",
    neg_signature_empty_line => "neg-signature-empty-line",
    acc_signature_unpadded => "acc-signature-unpadded",
    acc_signature_nonzero_pad_bits => "acc-signature-nonzero-pad-bits",
    acc_content_digest_unpadded => "acc-content-digest-unpadded",
    acc_content_digest_member_params => "acc-content-digest-member-params",
    acc_content_digest_nonzero_pad_bits => "acc-content-digest-nonzero-pad-bits",
    neg_signature_base64url => "neg-signature-base64url",
    acc_byte_sequences_short_padding => "acc-byte-sequences-short-padding",
    neg_signature_foreign_overpadded => "neg-signature-foreign-overpadded",
    neg_content_digest_foreign_overpadded => "neg-content-digest-foreign-overpadded",
    acc_duplicate_parameter => "acc-duplicate-parameter",
    acc_duplicate_signature_member => "acc-duplicate-signature-member",
    neg_duplicate_member_last_wins => "neg-duplicate-member-last-wins",
    acc_foreign_member_date => "acc-foreign-member-date",
    acc_foreign_member_display_string => "acc-foreign-member-display-string",
    acc_parameters_reordered => "acc-parameters-reordered",
    unsignable_keyid_bad_char => "unsignable-keyid-bad-char",
    unsignable_keyid_too_long => "unsignable-keyid-too-long",
    unsignable_nonce_too_short => "unsignable-nonce-too-short",
    unsignable_nonce_padded => "unsignable-nonce-padded",
    unsignable_secret_15_bytes => "unsignable-secret-15-bytes",
    unsignable_secret_129_bytes => "unsignable-secret-129-bytes",
    unsignable_floor_named_again => "unsignable-floor-named-again",
    unsignable_extra_derived_floor => "unsignable-extra-derived-floor",
    unsignable_extra_derived_forbidden => "unsignable-extra-derived-forbidden",
    neg_extra_derived_forbidden => "neg-extra-derived-forbidden",
    unsignable_extra_twice => "unsignable-extra-twice",
    unsignable_extra_uppercase => "unsignable-extra-uppercase",
    neg_extra_uppercase => "neg-extra-uppercase",
    unsignable_extra_forbidden => "unsignable-extra-forbidden",
    unsignable_extra_absent => "unsignable-extra-absent",
    unsignable_expires_not_after_created => "unsignable-expires-not-after-created",
    unsignable_created_too_large => "unsignable-created-too-large",
    neg_created_too_large => "neg-created-too-large",
    unsignable_expires_too_large => "unsignable-expires-too-large",
    neg_alg_before_unknown_parameter => "neg-alg-before-unknown-parameter",
    neg_unknown_parameter_before_alg => "neg-unknown-parameter-before-alg",
    neg_keyid_escaped_quote => "neg-keyid-escaped-quote",
    neg_inner_list_tab => "neg-inner-list-tab",
    neg_signature_input_only_empty_line => "neg-signature-input-only-empty-line",
    neg_absolute_form_empty_authority => "neg-absolute-form-empty-authority",
    neg_base_order_absent_before_obs_text => "neg-base-order-absent-before-obs-text",
    neg_base_order_obs_text_before_absent => "neg-base-order-obs-text-before-absent",
    unsignable_components_checked_before_count => "unsignable-components-checked-before-count",
    unsignable_count_before_repeats => "unsignable-count-before-repeats",
    unsignable_33_components => "unsignable-33-components",
    unsignable_scheme_ftp => "unsignable-scheme-ftp",
    neg_method_not_token => "neg-method-not-token",
    unsignable_method_not_token => "unsignable-method-not-token",
    pos_extra_32_components => "pos-extra-32-components",
}

#[test]
fn every_vector_directory_has_a_test() {
    let on_disk: BTreeSet<String> = case_dirs(&default_dir())
        .expect("spec/vectors is readable")
        .into_iter()
        .collect();
    let listed: BTreeSet<String> = LISTED.iter().map(|s| (*s).to_owned()).collect();
    let untested: Vec<_> = on_disk.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&on_disk).collect();
    assert!(
        untested.is_empty() && missing.is_empty(),
        "directories without a test: {untested:?}; tests without a directory: {missing:?} \
         (regenerate the list with `cargo run -p tessera-vectors -- test-list`)"
    );
    assert_eq!(listed.len(), LISTED.len(), "a case is listed twice");
}

#[test]
fn counts_meet_the_floor() {
    let dir = default_dir();
    let positive = LISTED
        .iter()
        .filter(|n| {
            matches!(
                load_case(&dir, n).map(|c| c.expected),
                Ok(Expected::Signed(_))
            )
        })
        .count();
    let negative = LISTED.len() - positive;
    assert!(positive >= 60, "only {positive} positive cases");
    assert!(negative >= 30, "only {negative} negative cases");
}

/// The README states how many vectors there are of each kind: those numbers
/// follow the directories, so adding a vector without updating the README
/// fails here.
#[test]
fn readme_counts_match_the_vectors() {
    let dir = default_dir();
    let mut counts = [0usize; 4];
    for name in LISTED {
        let kind = match load_case(&dir, name).map(|c| c.expected) {
            Ok(Expected::Signed(_)) => 0,
            Ok(Expected::Rejected(_)) => 1,
            Ok(Expected::Accepted(_)) => 2,
            Ok(Expected::Refused(_)) => 3,
            Err(e) => panic!("case {name}: stage load: {e}"),
        };
        counts[kind] += 1;
    }
    let [positive, negative, accepted, refused] = counts;
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md is readable");
    // The README wraps its prose, so compare with runs of whitespace folded.
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    for stated in [
        format!("{} in all: {positive} positive", LISTED.len()),
        format!("{negative} negative (a received request"),
        format!("{accepted} accepted (a received request"),
        format!("and {refused} refused by the signer"),
    ] {
        assert!(
            readme.contains(&stated),
            "README.md does not say {stated:?}: update its count of vectors \
             ({} in all: {positive} positive, {negative} negative, {accepted} accepted, {refused} refused)",
            LISTED.len()
        );
    }
}

#[test]
fn rfc9421_b25_signature_is_the_published_one() {
    let case = load_case(&default_dir(), "pos-rfc9421-b25-hmac").expect("case loads");
    let Expected::Signed(signed) = case.expected else {
        panic!("case pos-rfc9421-b25-hmac: stage load: not a positive case");
    };
    assert_eq!(signed.signature, RFC_B25_SIGNATURE);
    assert_eq!(
        signed.signature,
        "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:"
    );
}

fn files_under(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for name in case_dirs(root).expect("readable") {
        for entry in std::fs::read_dir(root.join(&name)).expect("readable") {
            let entry = entry.expect("readable");
            out.insert(format!("{name}/{}", entry.file_name().to_string_lossy()));
        }
    }
    out
}

#[test]
fn checked_in_vectors_match_the_generator() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tessera-vectors-regenerated");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).expect("clean temp dir");
    }
    let cases = tessera_vectors::all_cases().unwrap_or_else(|e| panic!("generation failed: {e}"));
    tessera_vectors::write_cases(&tmp, &cases).expect("write to temp dir");

    let checked_in = default_dir();
    let generated = files_under(&tmp);
    let existing = files_under(&checked_in);
    let mut problems = Vec::new();
    for extra in existing.difference(&generated) {
        problems.push(format!("{extra}: checked in but not generated"));
    }
    for missing in generated.difference(&existing) {
        problems.push(format!("{missing}: generated but not checked in"));
    }
    for file in generated.intersection(&existing) {
        let a = std::fs::read(tmp.join(file)).expect("readable");
        let b = std::fs::read(checked_in.join(file)).expect("readable");
        if a != b {
            problems.push(format!("{file}: differs from the generator's output"));
        }
    }
    assert!(
        problems.is_empty(),
        "spec/vectors is stale; run `cargo run -p tessera-vectors -- generate`:\n{}",
        problems.join("\n")
    );
}

#[test]
fn failures_name_the_case_and_the_stage() {
    let dir = default_dir();
    let mut case = load_case(&dir, "pos-json-body").expect("case loads");
    if let Expected::Signed(signed) = &mut case.expected {
        signed.signature_base.push('x');
    }
    let failure = check(&case).expect_err("a wrong base is reported");
    assert_eq!(
        (failure.case.as_str(), failure.stage),
        ("pos-json-body", "signature_base")
    );
    assert!(failure
        .to_string()
        .starts_with("case pos-json-body: stage signature_base:"));

    let mut case = load_case(&dir, "pos-json-body").expect("case loads");
    if let Expected::Signed(signed) = &mut case.expected {
        signed.content_digest =
            Some("sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:".to_owned());
    }
    assert_eq!(check(&case).expect_err("reported").stage, "content_digest");

    let mut case = load_case(&dir, "neg-tampered-path").expect("case loads");
    case.expected = Expected::Rejected(tessera_vectors::Rejected {
        error: "clock_skew".to_owned(),
    });
    let failure = check(&case).expect_err("a wrong code is reported");
    assert_eq!(failure.stage, "expected_error");
    assert!(failure.detail.contains("bad_signature"), "{failure}");
}
