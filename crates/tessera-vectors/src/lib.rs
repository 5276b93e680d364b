//! # tessera-vectors
//!
//! Conformance test vectors for the tessera-v1 profile: the case model
//! ([`Case`]), the named cases ([`all_cases`]), the writer of
//! `spec/vectors/<name>/case.json`, and [`check`], which runs one case
//! against `tessera_core` stage by stage.
//!
//! Positive cases store the request before signing and every expected
//! output (signature base, `Signature-Input`, `Signature`,
//! `Content-Digest`); the checker signs, compares each stage, then verifies
//! the signed request. Negative cases store the request as received, after
//! tampering, and the error code verification must report.
//!
//! ## Example
//!
//! Running every case against `tessera_core`, as the named tests do one by one:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cases = tessera_vectors::all_cases().map_err(|f| f.to_string())?;
//! for case in &cases {
//!     tessera_vectors::check(case).map_err(|f| f.to_string())?;
//! }
//! assert!(cases.len() > 200);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod cases;
mod check;
mod conformance;
mod model;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use cases::{all_cases, CREATED, KEY_ID, RFC_B25_SIGNATURE, WINDOW};
pub use check::{
    body, check, header_octets, octets, produce, sign_refused, signing_key, verify_external,
    verify_received, ExternalSignature, Failure,
};
pub use model::{
    Accepted, Case, Expected, Generic, Key, Kind, Refused, Rejected, Request, Sign, Signed,
    Verifier,
};

/// The file name of a case inside its directory.
pub const CASE_FILE: &str = "case.json";

/// `spec/vectors` of the workspace this crate was built in.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors")
}

/// Whether a directory name is a case name (`pos-`, `neg-`, `acc-` or `unsignable-` prefix).
pub fn is_case_name(name: &str) -> bool {
    ["pos-", "neg-", "acc-", "unsignable-"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Names of the case directories under `dir` (those holding a `case.json`), sorted.
///
/// # Errors
/// I/O errors reading `dir`.
pub fn case_dirs(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() && is_case_name(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Reads `dir/<name>/case.json`.
///
/// # Errors
/// I/O errors, or invalid JSON (as `InvalidData`).
pub fn load_case(dir: &Path, name: &str) -> io::Result<Case> {
    let text = fs::read_to_string(dir.join(name).join(CASE_FILE))?;
    serde_json::from_str(&text)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {e}")))
}

/// Writes every case to `dir/<name>/case.json` and removes case directories
/// under `dir` that are no longer generated. Other files in `dir` are left alone.
///
/// # Errors
/// I/O errors.
pub fn write_cases(dir: &Path, cases: &[Case]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for stale in case_dirs(dir)? {
        if !cases.iter().any(|c| c.name == stale) {
            fs::remove_dir_all(dir.join(&stale))?;
        }
    }
    for case in cases {
        let case_dir = dir.join(&case.name);
        fs::create_dir_all(&case_dir)?;
        let json = case.to_json().map_err(io::Error::other)?;
        let path = case_dir.join(CASE_FILE);
        // Rewrite only on change so timestamps stay put for unchanged vectors.
        if fs::read_to_string(&path).ok().as_deref() != Some(json.as_str()) {
            fs::write(&path, json)?;
        }
    }
    Ok(())
}
