//! `tessera-gateway --check FILE` on the committed example and on broken
//! files: exit status 0 or 2, and errors naming the key path.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

fn check(file: &Path) -> (i32, String) {
    check_with(file, &[])
}

/// `--check FILE` with more flags, which apply as they would at a start.
fn check_with(file: &Path, flags: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("--check")
        .arg(file)
        .args(flags)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

#[test]
fn the_example_configuration_is_valid() {
    let dir = temp_dir("check");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.example.toml");
    let copy = dir.join("gateway.toml");
    std::fs::copy(&example, &copy).unwrap();
    let key = Key::random("k1");
    keys_file(&dir, &[(&key, "alice", &["read"], false)]);
    let (code, text) = check(&copy);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(": ok"), "{text}");
}

/// A secret file others can read is said by `--check` (exit 0: it starts),
/// not only in the running gateway's log.
#[cfg(unix)]
#[test]
fn secret_files_readable_by_others_are_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("check-modes");
    let key = Key::random("k1");
    let keys = keys_file(&dir, &[(&key, "alice", &["read"], false)]);
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        "upstream = \"http://127.0.0.1:5000\"\n[keys]\nfile = \"keys.json\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, text) = check(&config);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("warning: keys.file") && text.contains("(mode 644); chmod 600 it"),
        "{text}"
    );
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, text) = check(&config);
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("warning"), "{text}");
}

#[test]
fn bad_configurations_name_the_key_and_what_was_expected() {
    let dir = temp_dir("check-bad");
    let key = Key::random("k1");
    keys_file(&dir, &[(&key, "alice", &["read"], false)]);
    let base = "upstream = \"http://127.0.0.1:5000\"\n[keys]\nfile = \"keys.json\"\n";
    for (extra, needle) in [
        (
            "[limits]\nmax_headers = 0\n",
            "limits.max_headers: 0 is out of range",
        ),
        (
            "[limits]\nmax_connections = 100\nmax_connections_per_client = 101\n",
            "limits.max_connections_per_client: 101 is out of range (expected a count from 1 to limits.max_connections, 100)",
        ),
        (
            "[limits]\nmin_send_bytes_per_sec = 2000000000\n",
            "limits.min_send_bytes_per_sec: 2000000000 is out of range (expected bytes per second from 0, no minimum, to 1073741824)",
        ),
        (
            "[limits]\nheader_timeout_secs = \"ten\"\n",
            "limits.header_timeout_secs",
        ),
        ("[limitz]\n", "unknown field `limitz`"),
        (
            "[[routes]]\nprefix = \"v1\"\nscopes = [\"a\"]\n",
            "routes[0].prefix: \"v1\" must start with '/'",
        ),
        (
            "[[routes]]\nprefix = \"/v1\"\npath = \"/v2\"\nscopes = [\"a\"]\n",
            "routes[0]: expected exactly one of `prefix`",
        ),
        (
            "[[public]]\nmethod = \"get\"\nprefix = \"/h\"\n",
            "public[0].method",
        ),
        ("[nonce_store]\nredis = \"http://x\"\n", "nonce_store.redis"),
        (
            "[nonce_store]\nallow_evicting_policy = true\n",
            "`allow_lossy_persistence` need `redis` or `cluster`",
        ),
        (
            "[nonce_store]\nallow_lossy_persistence = true\n",
            "`allow_lossy_persistence` need `redis` or `cluster`",
        ),
        (
            "[nonce_store]\nredis = \"redis://127.0.0.1:6379\"\nallow_lossy_persistence = 1\n",
            "nonce_store.allow_lossy_persistence: invalid type",
        ),
        (
            "[nonce_store]\nredis = \"redis://127.0.0.1:6379\"\nallow_evicting_policy = \"yes\"\n",
            "nonce_store.allow_evicting_policy: invalid type",
        ),
        (
            "trusted_proxies = [\"10.0.0.0/40\"]\n",
            "trusted_proxies[0]",
        ),
        ("[rate_limit]\nrate = \"fast\"\n", "rate_limit.rate"),
        (
            "[rate_limit]\nrate = \"1/s\"\nredis = \"http://x\"\n",
            "rate_limit.redis",
        ),
        (
            "[rate_limit]\nrate = \"1/s\"\non_store_failure = \"maybe\"\n",
            "rate_limit.on_store_failure",
        ),
        (
            "[rate_limit]\nrate = \"1/s\"\nprefix = \"gw\"\n",
            "`prefix` and `timeout_ms` need `redis`",
        ),
        ("scheme = \"ftp\"\n", "scheme: \"ftp\" is not a scheme"),
        // Values that would start but could never work.
        (
            "[identity_headers]\nowner = \"host\"\n",
            "identity_headers.owner: \"host\" is a field the forwarded request needs",
        ),
        (
            "[identity_headers]\nscopes = \"X-Forwarded-For\"\n",
            "identity_headers.scopes: \"x-forwarded-for\" is a field",
        ),
        (
            "[identity_headers]\nowner = \"X-HTTP-Method-Override\"\n",
            "identity_headers.owner: \"x-http-method-override\" is a field",
        ),
        (
            "[identity_headers]\nkey_id = \"Content-Type\"\n",
            "identity_headers.key_id: \"content-type\" is a field",
        ),
        (
            "[identity_headers]\nowner = \"Tessera-Key-Id\"\n",
            "identity_headers.owner: \"tessera-key-id\" is already the name of another identity header",
        ),
        (
            "[rate_limit]\nrate = \"10/s\"\nburst = 0\n",
            "rate_limit.burst: 0 is out of range",
        ),
        (
            "[rate_limit]\n[[rate_limit.routes]]\nprefix = \"/v1\"\nrate = \"1/s\"\nburst = 0\n",
            "rate_limit.routes[0].burst: 0 is out of range",
        ),
        (
            "authorities = [\"api.example.com:99999\"]\n",
            "authorities[0]: \"api.example.com:99999\" is not an authority",
        ),
        (
            "authorities = [\"api.example.com\", \"api.example.com:0\"]\n",
            "authorities[1]: \"api.example.com:0\" is not an authority",
        ),
        (
            "authorities = [\"user@api.example.com\"]\n",
            "authorities[0]: \"user@api.example.com\" is not an authority",
        ),
        (
            "authorities = [\"\u{e1}pi.example.com\"]\n",
            "authorities[0]",
        ),
        (
            "fixed_authority = \"\"\n",
            "fixed_authority: \"\" is not an authority",
        ),
        ("window = 0\n", "window: 0 is out of range"),
        (
            "drop_client_fields = [\"X-Internal-User\", \"bad name\"]\n",
            "drop_client_fields[1]: \"bad name\" is not a field name",
        ),
        (
            "drop_client_fields = [\"Content-Type\"]\n",
            "drop_client_fields[0]: \"content-type\" is a field the forwarded request needs as it is",
        ),
        (
            "[[routes]]\npath = \"/v1/\u{fc}\"\nscopes = [\"a\"]\n",
            "routes[0].path: \"/v1/\u{fc}\" is not a path the gateway accepts",
        ),
        (
            "[[public]]\nprefix = \"/health/../admin\"\n",
            "public[0].prefix: \"/health/../admin\" is not a path the gateway accepts: it has a '.' or '..' segment",
        ),
        // Rules that could never match would leave a route unprotected.
        (
            "[[routes]]\nprefix = \"/v1/admin?debug=1\"\nscopes = [\"admin\"]\n",
            "routes[0].prefix: \"/v1/admin?debug=1\" holds a '?' or '#'",
        ),
        (
            "[rate_limit]\n[[rate_limit.routes]]\nprefix = \"/v1//orders\"\nrate = \"1/s\"\n",
            "rate_limit.routes[0].prefix: \"/v1//orders\" is not a path the gateway accepts: it has an empty segment",
        ),
        // A misspelled method would be an extension method no client sends:
        // the rule would never match and the route would go unprotected.
        (
            "[[routes]]\nmethod = \"DELET\"\nprefix = \"/v1/admin/\"\nscopes = [\"admin\"]\n",
            "routes[0].method: \"DELET\" is not a standard method (did you mean \"DELETE\"?)",
        ),
        (
            "[rate_limit]\n[[rate_limit.routes]]\nmethod = \"PROPFIND\"\nprefix = \"/v1\"\nrate = \"1/s\"\n",
            "rate_limit.routes[0].method: \"PROPFIND\" is not a standard method: expected one of GET",
        ),
        (
            "authorities = [\"https://api.example.com\"]\n",
            "it has a scheme; write the host and port alone",
        ),
        (
            "listen = \"localhost:8080\"\n",
            "\"localhost:8080\" is not a listening address: expected IP:PORT",
        ),
        (
            "[admin]\nlisten = \"127.0.0.1:99999\"\n",
            "\"127.0.0.1:99999\" is not a listening address",
        ),
        // The gateway's own address, which --check used to pass and the
        // start then failed on ("address in use"). (A `listen = ...` line
        // ahead of `base`; the `[admin]` table after it.)
        (
            "listen = \"127.0.0.1:9095\"\n\u{0}[admin]\nlisten = \"127.0.0.1:9095\"\n",
            "admin.listen: 127.0.0.1:9095 is where the gateway itself listens",
        ),
        (
            "listen = \"0.0.0.0:9095\"\n\u{0}[admin]\nlisten = \"127.0.0.1:9095\"\n",
            "give the admin listener another port",
        ),
        (
            "[rate_limit]\nrate = \"5/s\"\non_store_failure = \"shut\"\n",
            "or \"closed\": refuse with 503 store_unavailable",
        ),
    ] {
        let file = dir.join("bad.toml");
        // Top-level keys must come before the tables of `base`.
        let text = if let Some((top, tables)) = extra.split_once('\u{0}') {
            format!("{top}{base}{tables}")
        } else if extra.starts_with('[') {
            format!("{base}{extra}")
        } else {
            format!("{extra}{base}")
        };
        std::fs::write(&file, text).unwrap();
        let (code, text) = check(&file);
        assert_eq!(code, 2, "{extra}: {text}");
        assert!(
            text.contains(needle),
            "{extra}: {text:?} should contain {needle:?}"
        );
    }
    // A keys file that is missing is found by --check too.
    let file = dir.join("nokeys.toml");
    std::fs::write(
        &file,
        "upstream = \"http://127.0.0.1:5000\"\n[keys]\nfile = \"missing.json\"\n",
    )
    .unwrap();
    let (code, text) = check(&file);
    assert_eq!(code, 2);
    assert!(
        text.contains("keys.file") && text.contains("missing.json"),
        "{text}"
    );
}

#[test]
fn unverified_benchmark_mode_refuses_non_loopback_addresses() {
    let dir = temp_dir("bench-mode");
    let key = Key::random("k1");
    let keys = keys_file(&dir, &[(&key, "alice", &["read"], false)]);
    let out = Command::new(BIN)
        .args([
            "--listen",
            "0.0.0.0:0",
            "--upstream",
            "http://127.0.0.1:9",
            "--keys",
        ])
        .arg(&keys)
        .arg("--unverified-benchmark-mode")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only listens on loopback"));
}

#[test]
fn unverified_benchmark_mode_forwards_without_a_signature_and_says_so() {
    let dir = temp_dir("bench-mode-run");
    let key = Key::random("k1");
    let keys = keys_file(&dir, &[(&key, "alice", &["read"], false)]);
    let upstream = Upstream::start(&dir);
    let gateway = Gateway::start(
        &dir,
        &[
            "--upstream",
            &upstream.url(),
            "--keys",
            keys.to_str().unwrap(),
            "--unverified-benchmark-mode",
        ],
    );
    let request = format!(
        "GET /plain HTTP/1.1\r\nhost: {}\r\ntessera-owner: x\r\nconnection: close\r\n\r\n",
        gateway.addr
    );
    let reply = raw(
        gateway.addr,
        request.as_bytes(),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.echoed("tessera-owner").is_empty());
    assert!(gateway.stderr().contains("NO SIGNATURE IS VERIFIED"));
}

#[test]
fn tessera_gateway_starts_like_tessera_serve() {
    let dir = temp_dir("cli");
    let alice = Key::random("alice-phone");
    let keys = keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let upstream = Upstream::start(&dir);
    let mut command = Command::new(tessera_cli());
    command.arg("gateway");
    let gateway = Gateway::start_command(
        command,
        &dir,
        &[
            "--addr",
            "127.0.0.1:0",
            "--keys",
            keys.to_str().unwrap(),
            "--upstream",
            &upstream.url(),
            "--rate-limit",
            "1/s",
            "--burst",
            "1",
        ],
        &[],
    );
    let reply = send_signed(&gateway, &alice, "GET", "/via/cli", b"", &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.echoed("tessera-owner"), ["alice"]);
    let limited = send_signed(&gateway, &alice, "GET", "/via/cli/2", b"", &[]);
    assert_eq!(
        limited.status,
        429,
        "{}",
        String::from_utf8_lossy(&limited.body)
    );
    assert_eq!(limited.json()["code"], "rate_limited");
    assert_eq!(upstream.paths(), ["/via/cli"]);
}

/// `--rate-limit` replaces the file's default plan and keeps the rest of
/// `[rate_limit]`: a budget per owner stays one per owner, and a route's
/// plan stays the route's.
#[test]
fn rate_limit_flag_keeps_the_files_owner_budgets_and_routes() {
    let dir = temp_dir("rate-flag");
    let (a1, a2, bob) = (Key::random("a1"), Key::random("a2"), Key::random("b1"));
    keys_file(
        &dir,
        &[
            (&a1, "alice", &["read"], false),
            (&a2, "alice", &["read"], false),
            (&bob, "bob", &["read"], false),
        ],
    );
    let upstream = Upstream::start(&dir);
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\n[keys]\nfile = \"keys.json\"\n[rate_limit]\nrate = \"100/s\"\nper = \"owner\"\n\
             [[rate_limit.routes]]\nname = \"strict\"\nprefix = \"/strict\"\nrate = \"1/m\"\nburst = 1\n",
            upstream.url()
        ),
    )
    .unwrap();
    let gateway = Gateway::start(
        &dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--rate-limit",
            "1/m",
            "--burst",
            "1",
        ],
    );
    let status = |key: &Key, path: &str| send_signed(&gateway, key, "GET", path, b"", &[]);
    let first = status(&a1, "/a");
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("ratelimit-policy"),
        Some("\"default\";q=1;w=60")
    );
    // Another key of the same owner shares the owner's budget.
    let second = status(&a2, "/b");
    assert_eq!(
        second.status,
        429,
        "{}",
        String::from_utf8_lossy(&second.body)
    );
    // The route keeps its own plan.
    let routed = status(&bob, "/strict/1");
    assert_eq!(routed.status, 200);
    assert_eq!(
        routed.header("ratelimit-policy"),
        Some("\"strict\";q=1;w=60")
    );
    assert_eq!(status(&bob, "/strict/2").status, 429);
}

/// `--check` opens a SQL key store as start-up does: a relative SQLite file
/// is relative to the configuration (whatever the working directory), and
/// a missing database or a wrong or missing master key is an invalid
/// configuration (exit 2) that names what to fix.
#[test]
fn check_opens_the_sql_key_store_with_its_master_key() {
    let dir = temp_dir("check-sql");
    let master: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let migrate = Command::new(tessera_cli())
        .args(["keys", "migrate", "--db"])
        .arg(format!("sqlite://{}", dir.join("keys.db").display()))
        .env("TESSERA_MASTER_KEY", &master)
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{migrate:?}");
    std::fs::write(dir.join("master.hex"), format!("1:{master}\n")).unwrap();
    std::fs::write(
        dir.join("wrong.hex"),
        "1:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\n",
    )
    .unwrap();
    let check_from_root = |name: &str, keys: &str| {
        let file = keys_config(&dir, name, keys);
        let mut command = Command::new(BIN);
        command
            .arg("--check")
            .arg(&file)
            .current_dir("/")
            .env_remove("TESSERA_MASTER_KEY")
            .env_remove("TESSERA_MASTER_KEY_FILE");
        run_to_exit(command)
    };
    // A start with the same file fails as `--check` says.
    let start_from_root = |name: &str| {
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(dir.join(name))
            .current_dir("/")
            .env_remove("TESSERA_MASTER_KEY")
            .env_remove("TESSERA_MASTER_KEY_FILE");
        run_to_exit(command)
    };
    let (code, text) = check_from_root(
        "good.toml",
        "db = \"sqlite://keys.db\"\nmaster_key_file = \"master.hex\"\n",
    );
    assert_eq!(code, 0, "{text}");
    for (name, keys, needle) in [
        (
            "missing-db.toml",
            "db = \"sqlite://nope.db\"\nmaster_key_file = \"master.hex\"\n",
            "nope.db",
        ),
        (
            "wrong-master.toml",
            "db = \"sqlite://keys.db\"\nmaster_key_file = \"wrong.hex\"\n",
            "does not open this database's canary row",
        ),
        (
            "no-master-file.toml",
            "db = \"sqlite://keys.db\"\nmaster_key_file = \"absent.hex\"\n",
            "keys.master_key_file",
        ),
        (
            "no-master.toml",
            "db = \"sqlite://keys.db\"\n",
            "or name a file of them in `keys.master_key_file`",
        ),
    ] {
        let (code, text) = check_from_root(name, keys);
        assert_eq!(code, 2, "{name}: {text}");
        assert!(
            text.contains(needle),
            "{name}: {text:?} should contain {needle:?}"
        );
        let (code, text) = start_from_root(name);
        assert_eq!(code, 2, "a start with {name}: {text}");
        assert!(
            text.contains("invalid configuration") && text.contains(needle),
            "a start with {name}: {text:?} should contain {needle:?}"
        );
    }
    // A key database that does not answer may answer later: exit 1.
    let closed = free_port();
    let (code, text) = check_from_root(
        "down.toml",
        &format!(
            "db = \"postgres://tessera@127.0.0.1:{closed}/tessera\"\nmaster_key_file = \"master.hex\"\n"
        ),
    );
    assert_eq!(code, 2, "--check cannot vouch for it: {text}");
    let (code, text) = start_from_root("down.toml");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&format!("127.0.0.1:{closed}")), "{text}");
}

/// A start whose key source does not load exits with 2, as `--check` does
/// for the same file, so that a service manager can tell a configuration
/// to fix (not worth a restart) from a store that may answer later (1).
#[test]
fn a_start_exits_as_check_does_for_key_sources_that_do_not_load() {
    let dir = temp_dir("start-exit");
    std::fs::write(dir.join("keys.json"), "{ not json").unwrap();
    std::fs::write(dir.join("master.hex"), "ab".repeat(32)).unwrap();
    for (name, keys, needle) in [
        ("keys-file.toml", "file = \"keys.json\"\n", "keys.json"),
        (
            "derived.toml",
            "derived_master_file = \"master.hex\"\n",
            "keys.derived_master_file",
        ),
    ] {
        let file = keys_config(&dir, name, keys);
        let (code, text) = check(&file);
        assert_eq!(code, 2, "--check {name}: {text}");
        let mut command = Command::new(BIN);
        command.arg("--config").arg(&file);
        let (code, text) = run_to_exit(command);
        assert_eq!(code, 2, "a start with {name}: {text}");
        assert!(text.contains(needle), "a start with {name}: {text}");
    }
}

/// `dir/name`: a configuration on a loopback port whose `[keys]` section is `keys`.
fn keys_config(dir: &Path, name: &str, keys: &str) -> std::path::PathBuf {
    let file = dir.join(name);
    std::fs::write(
        &file,
        format!("upstream = \"http://127.0.0.1:5000\"\nlisten = \"127.0.0.1:0\"\n[keys]\n{keys}"),
    )
    .unwrap();
    file
}

/// Runs `command` to its exit (killed after 20 s: a gateway that started
/// when it should have refused fails the test); its exit status and output.
fn run_to_exit(mut command: Command) -> (i32, String) {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Flags given with `--check` are checked as a start would check them.
#[test]
fn flags_given_with_check_apply() {
    let dir = temp_dir("check-flags");
    let key = Key::random("k1");
    keys_file(&dir, &[(&key, "alice", &["read"], false)]);
    let config = dir.join("gateway.toml");
    std::fs::write(&config, "upstream = \"http://127.0.0.1:5000\"\n").unwrap();
    let keys = dir.join("keys.json");
    let keys = keys.to_str().unwrap();
    let (code, text) = check_with(&config, &["--keys", keys]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = check_with(
        &config,
        &[
            "--keys",
            keys,
            "--unverified-benchmark-mode",
            "--listen",
            "0.0.0.0:0",
        ],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("only listens on loopback"), "{text}");

    // A secret given where a store's URL or the keys file's path belongs is
    // refused and not shown.
    let secret = "27b722d490c7a93a2fa25bf0f764c18cc8093711efc79732d5429f9101a7eedb";
    for flags in [
        vec!["--keys-db", secret],
        vec!["--keys", keys, "--nonce-store", secret],
        vec![
            "--keys",
            keys,
            "--rate-limit",
            "1/s",
            "--rate-limit-store",
            secret,
        ],
        vec!["--keys", secret],
    ] {
        let (code, text) = check_with(&config, &flags);
        assert_eq!(code, 2, "{flags:?}: {text}");
        assert!(!text.contains(&secret[..16]), "{flags:?}: {text}");
        assert!(text.contains("not shown"), "{flags:?}: {text}");
    }
}
