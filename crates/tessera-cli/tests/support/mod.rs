//! What every test of the `tessera` binary needs: running it, a scratch
//! directory, and keys from `tessera keygen`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// Runs `tessera` with these arguments (bytes as the OS passes them), no
/// standard input and no `TESSERA_SECRET`.
pub fn run(args: &[&OsStr]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TESSERA_SECRET")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// [`run`] with UTF-8 arguments.
pub fn tessera(args: &[&str]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run(&args)
}

/// Output bytes as text, for messages and matching.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory under the target tmp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cli-{name}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A key from `keygen --json`, with its secret written to a file.
pub struct Key {
    /// The whole `keygen --json` entry, usable in a keys file.
    pub json: Value,
    /// The key id.
    pub id: String,
    /// The file holding the secret as hex.
    pub secret_file: PathBuf,
}

/// A new key for `user` with these comma-separated scopes.
pub fn keygen(dir: &Path, user: &str, scopes: &str) -> Key {
    let out = tessera(&["keygen", "--user", user, "--scopes", scopes, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let id = json["key_id"].as_str().unwrap().to_owned();
    let secret_file = dir.join(format!("{user}.hex"));
    std::fs::write(&secret_file, json["secret_hex"].as_str().unwrap()).unwrap();
    Key {
        json,
        id,
        secret_file,
    }
}

/// A `tessera serve` keys file holding `keys`.
pub fn keys_file(keys: &[&Key], dir: &Path) -> PathBuf {
    let file = dir.join("keys.json");
    let entries: Vec<Value> = keys.iter().map(|k| k.json.clone()).collect();
    std::fs::write(&file, serde_json::json!({ "keys": entries }).to_string()).unwrap();
    file
}
