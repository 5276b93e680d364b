//! Derived keys (`[keys] derived_master_file`, `--keys-derived`): a key
//! issued with tessera-server's `KeyIssuer::derived` from the same master
//! secret verifies through the gateway with the identity its id carries; a
//! key id with its metadata changed is refused; a bad master file is a
//! configuration error naming `keys.derived_master_file`; ids listed in
//! `derived_revoked_file` are refused as revoked.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::SecretKey;
use tessera_server::{DerivedKeyStore, KeyIssuer, KeyRequest};

use support::*;

/// A random 32-byte master secret, as hex, written to `dir/master.hex` (0600).
fn master_file(dir: &Path) -> (String, std::path::PathBuf) {
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join("master.hex");
    std::fs::write(&path, format!("{hex}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    (hex, path)
}

/// Issues a key the way `DerivedKeyStore` documents: `KeyIssuer::derived`.
fn issue(master_hex: &str, owner: &str, scopes: &[&str]) -> Key {
    let store = Arc::new(DerivedKeyStore::new(SecretKey::from_hex(master_hex).unwrap()).unwrap());
    let issued = KeyIssuer::derived(store)
        .issue(
            &KeyRequest::new(owner)
                .with_client("web")
                .with_scopes(scopes.iter().copied())
                .with_lifetime(Duration::from_secs(3600)),
        )
        .unwrap();
    Key {
        id: issued.key_id().to_string(),
        secret_hex: issued.expose_secret().expose_hex().to_string(),
    }
}

#[test]
fn derived_keys_verify_and_tampered_ids_are_refused() {
    let dir = temp_dir("derived");
    let (master, master_path) = master_file(&dir);
    let upstream = Upstream::start(&dir);
    // Bob's key is on the revocation list the gateway reads at start-up.
    let bob = issue(&master, "bob", &["read"]);
    std::fs::write(
        dir.join("revoked.txt"),
        format!("# lost phone\n{}\n\n", bob.id),
    )
    .unwrap();
    let config = dir.join("derived.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\n[keys]\nderived_master_file = \"master.hex\"\nderived_revoked_file = \"revoked.txt\"\n[[routes]]\nprefix = \"/v1/admin\"\nscopes = [\"admin\"]\n",
            upstream.url()
        ),
    )
    .unwrap();
    let gateway = Gateway::start(&dir, &["--config", config.to_str().unwrap()]);
    let alice = issue(&master, "alice", &["read"]);
    assert!(alice.id.starts_with("d1.alice.web.read."), "{}", alice.id);

    let ok = send_signed(&gateway, &alice, "GET", "/v1/me", b"", &[]);
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.echoed("tessera-key-id"), std::slice::from_ref(&alice.id));
    assert_eq!(ok.echoed("tessera-owner"), ["alice"]);
    assert_eq!(ok.echoed("tessera-scopes"), ["read"]);
    // The id's scopes decide: `read` is not `admin`.
    let forbidden = send_signed(&gateway, &alice, "GET", "/v1/admin/x", b"", &[]);
    assert_eq!(forbidden.status, 403);

    // The same secret under ids whose owner or scopes were changed: the
    // secret of such an id is another one, so the signature fails.
    for tampered_id in [
        alice.id.replacen("d1.alice.", "d1.mallory.", 1),
        alice.id.replacen(".read.", ".admin+read.", 1),
    ] {
        let tampered = Key {
            id: tampered_id.clone(),
            secret_hex: alice.secret_hex.clone(),
        };
        for path in ["/v1/me", "/v1/admin/x"] {
            let refused = send_signed(&gateway, &tampered, "GET", path, b"", &[]);
            assert_eq!(
                refused.status,
                401,
                "{tampered_id} {path}: {}",
                String::from_utf8_lossy(&refused.body)
            );
            assert_eq!(refused.json()["code"], "bad_signature", "{tampered_id}");
        }
    }
    let revoked = send_signed(&gateway, &bob, "GET", "/v1/me", b"", &[]);
    assert_eq!(revoked.status, 401);
    assert_eq!(revoked.json()["code"], "key_revoked");
    // A key derived from another master secret is refused too.
    let (other_master, _) = master_file(&temp_dir("derived-other"));
    let stranger = issue(&other_master, "alice", &["read"]);
    assert_eq!(
        send_signed(&gateway, &stranger, "GET", "/v1/me", b"", &[]).status,
        401
    );
    assert_eq!(upstream.paths(), ["/v1/me"]);
    // A key listed while the gateway runs is refused within about a
    // second, without a restart.
    let carol = issue(&master, "carol", &["read"]);
    assert_eq!(
        send_signed(&gateway, &carol, "GET", "/v1/carol", b"", &[]).status,
        200
    );
    std::fs::write(
        dir.join("revoked.txt"),
        format!("# lost phone\n{}\n# stolen laptop\n{}\n", bob.id, carol.id),
    )
    .unwrap();
    let listed = std::time::Instant::now();
    assert!(
        eventually(std::time::Duration::from_secs(3), || {
            send_signed(&gateway, &carol, "GET", "/v1/carol", b"", &[]).json()["code"]
                == "key_revoked"
        }),
        "carol's key still accepted 3 s after it was listed: {}",
        gateway.stderr()
    );
    assert!(listed.elapsed() < std::time::Duration::from_millis(2500));
    // Lines that name no key (not a key id, an owner alone, a secret
    // pasted by mistake) are reported without their text and skipped; the
    // other lines apply (a leaked key listed with a typo elsewhere is still
    // refused); the ids taken off the list stay revoked.
    let dave = issue(&master, "dave", &["read"]);
    assert_eq!(
        send_signed(&gateway, &dave, "GET", "/v1/dave", b"", &[]).status,
        200
    );
    std::fs::write(
        dir.join("revoked.txt"),
        format!(
            "\u{feff}not a key id\nd1.eve\n{master}\n  {}  # lost phone\n",
            dave.id
        ),
    )
    .unwrap();
    assert!(eventually(std::time::Duration::from_secs(3), || {
        send_signed(&gateway, &dave, "GET", "/v1/dave", b"", &[]).json()["code"] == "key_revoked"
    }));
    let stderr = gateway.stderr();
    assert!(
        stderr.contains("line 3") && stderr.contains("names no key and was skipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&dave.id),
        "the newly revoked id is logged: {stderr}"
    );
    for key in [&bob, &carol] {
        assert_eq!(
            send_signed(&gateway, key, "GET", "/v1/after", b"", &[]).json()["code"],
            "key_revoked"
        );
    }
    // Only carol's requests before her key was refused reached the upstream.
    let after_start = upstream.paths();
    assert!(
        after_start[1..]
            .iter()
            .all(|p| p == "/v1/carol" || p == "/v1/dave"),
        "{after_start:?}"
    );
    // The master secret never reaches the logs.
    let stderr = gateway.stderr();
    assert!(!stderr.contains(&master), "master secret logged");
    assert!(!stderr.contains(&alice.secret_hex), "derived secret logged");

    // The flag is the same store.
    let by_flag = Gateway::start(
        &dir,
        &[
            "--upstream",
            &upstream.url(),
            "--keys-derived",
            master_path.to_str().unwrap(),
        ],
    );
    assert_eq!(
        send_signed(&by_flag, &alice, "GET", "/v1/flag", b"", &[]).status,
        200
    );
    assert!(
        by_flag.stderr().contains("without a revocation list"),
        "{}",
        by_flag.stderr()
    );
    // The flag given with the file keeps the file's revocation list, and
    // --keys-derived-revoked names one without a file.
    std::fs::write(
        dir.join("revoked.txt"),
        format!(
            "{}
{}
",
            bob.id, carol.id
        ),
    )
    .unwrap();
    let master_arg = master_path.to_str().unwrap();
    let over_file = Gateway::start(
        &dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--keys-derived",
            master_arg,
        ],
    );
    let revoked_arg = dir.join("revoked.txt");
    let flags_only = Gateway::start(
        &dir,
        &[
            "--upstream",
            &upstream.url(),
            "--keys-derived",
            master_arg,
            "--keys-derived-revoked",
            revoked_arg.to_str().unwrap(),
        ],
    );
    for gateway in [&over_file, &flags_only] {
        assert_eq!(
            send_signed(gateway, &alice, "GET", "/v1/flag", b"", &[]).status,
            200
        );
        for key in [&bob, &carol] {
            assert_eq!(
                send_signed(gateway, key, "GET", "/v1/flag", b"", &[]).json()["code"],
                "key_revoked",
                "{}",
                gateway.stderr()
            );
        }
    }
}

/// `tessera-gateway --check` on a configuration of `keys` (a `[keys]`
/// table body) in `dir`: the exit code and standard error.
fn check_keys(dir: &Path, keys: &str) -> (Option<i32>, String) {
    check_keys_with(dir, keys, &[])
}

/// [`check_keys`] with more flags, which `--check` applies as a start would.
fn check_keys_with(dir: &Path, keys: &str, flags: &[&str]) -> (Option<i32>, String) {
    let config = dir.join("check.toml");
    std::fs::write(
        &config,
        format!("upstream = \"http://127.0.0.1:1\"\n[keys]\n{keys}"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--check", config.to_str().unwrap()])
        .args(flags)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_master_files_name_the_key() {
    let dir = temp_dir("derived-bad");
    let master_only = "derived_master_file = \"master.hex\"\n";
    let check = |master: Option<&str>| {
        let path = dir.join("master.hex");
        let _ = std::fs::remove_file(&path);
        if let Some(text) = master {
            std::fs::write(&path, text).unwrap();
        }
        check_keys(&dir, master_only)
    };
    let secret_like = "zz".repeat(32);
    for (master, expected) in [
        (None, "cannot read"),
        (Some("\n"), "is empty"),
        (Some(secret_like.as_str()), "does not hold a hex secret"),
        (Some("00112233"), "at least 32 are required"),
    ] {
        let (code, stderr) = check(master);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("keys.derived_master_file"), "{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(
            !stderr.contains(&secret_like),
            "the file's text leaked: {stderr}"
        );
    }
    // A placeholder (one byte repeated, the spec's example) is no master
    // secret.
    let spec_example: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
    for placeholder in ["ab".repeat(32), spec_example] {
        let (code, stderr) = check(Some(&placeholder));
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("placeholder"), "{stderr}");
    }
    let (code, stderr) = check(Some(&"0123456789abcdef".repeat(4)));
    assert_eq!(code, Some(0), "{stderr}");
    // Valid, but a derived key could not be refused before it expires.
    assert!(
        stderr.contains("warning") && stderr.contains("without a revocation list"),
        "{stderr}"
    );

    // A secret where the file's path belongs is not echoed.
    let pasted = "0f1e2d3c4b5a6978".repeat(4);
    let (code, stderr) = check_keys(&dir, &format!("derived_master_file = \"{pasted}\"\n"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("looks like a hex key"), "{stderr}");
    assert!(!stderr.contains(&pasted), "the secret was echoed: {stderr}");

    // Revocation list entries that name no key as issued: scopes out of
    // order, an owner alone, an id that is not a derived one.
    // The lines are not echoed: a secret file named as the list by
    // mistake would be.
    for (line, entry) in [
        (2, "d1.ok.web.write+read..AAAAAAAAAAAAAAAAAAAAAA"),
        (2, "d1.alice"),
        (2, "user-1"),
        (2, pasted.as_str()),
    ] {
        std::fs::write(
            dir.join("revoked.txt"),
            format!("d1.ok.web.read+write..AAAAAAAAAAAAAAAAAAAAAA\n{entry}\n"),
        )
        .unwrap();
        let (code, stderr) = check_keys(
            &dir,
            &format!("{master_only}derived_revoked_file = \"revoked.txt\"\n"),
        );
        assert_eq!(code, Some(2), "{entry}: {stderr}");
        assert!(
            stderr.contains(&format!("line {line}")) && stderr.contains("not a derived key id"),
            "{entry}: {stderr}"
        );
        assert!(!stderr.contains(entry), "the line was echoed: {stderr}");
    }

    // --keys-derived-revoked applies to derived keys named by the file too,
    // under --check as at a start; with another key source it is refused.
    std::fs::write(dir.join("revoked.txt"), "d1.eve\n").unwrap();
    let revoked = dir.join("revoked.txt");
    let with_flag = |keys: &str| {
        check_keys_with(
            &dir,
            keys,
            &["--keys-derived-revoked", revoked.to_str().unwrap()],
        )
    };
    let (code, stderr) = with_flag(master_only);
    assert_eq!(code, Some(2), "the flag's list is read: {stderr}");
    assert!(stderr.contains("line 1"), "{stderr}");
    let (code, stderr) = with_flag("file = \"k.json\"\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--keys-derived-revoked"), "{stderr}");

    // A revocation list line that is not a key id.
    std::fs::write(
        dir.join("revoked.txt"),
        "d1.ok.web.read..AAAAAAAAAAAAAAAAAAAAAA\nnot a key id\n",
    )
    .unwrap();
    let (code, stderr) = check_keys(
        &dir,
        &format!("{master_only}derived_revoked_file = \"revoked.txt\"\n"),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("keys.derived_revoked_file") && stderr.contains("line 2"),
        "{stderr}"
    );

    // Exactly one key store.
    let (code, stderr) = check_keys(&dir, &format!("file = \"k.json\"\n{master_only}"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("derived_master_file"), "{stderr}");
}
