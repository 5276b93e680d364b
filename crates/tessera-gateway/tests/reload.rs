//! Configuration reloads on SIGHUP, through a real gateway process: the
//! new routes, scopes and upstream apply to the next requests, on
//! connections already open too (none is dropped); a file that is invalid,
//! or that changes what only a restart applies, is refused with an error in
//! the log and the running configuration stays.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use support::*;

/// The configuration: `upstream`, the keys file, and `routes` (TOML).
fn write_config(path: &Path, upstream: &str, keys: &Path, tail: &str) {
    std::fs::write(
        path,
        format!(
            "upstream = \"{upstream}\"\n[keys]\nfile = \"{}\"\n{tail}",
            keys.display()
        ),
    )
    .unwrap();
}

const ADMIN_ROUTE: &str = "[[routes]]\nprefix = \"/v1/admin\"\nscopes = [\"admin\"]\n";

/// A signed keep-alive GET on `stream`: the status and the upstream's
/// record of it (for a 200).
fn ask(stream: &mut TcpStream, key: &Key, addr: SocketAddr, path: &str) -> Reply {
    stream.write_all(&keep_alive_get(key, addr, path)).unwrap();
    read_reply(stream)
}

#[test]
fn sighup_applies_routes_and_upstream_to_open_connections() {
    let dir = temp_dir("reload");
    let alice = Key::random("alice-reload");
    let keys = keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let first = Upstream::start(&dir);
    let second = Upstream::start(&dir);
    let config = dir.join("reload.toml");
    write_config(&config, &first.url(), &keys, ADMIN_ROUTE);
    let gateway = Gateway::start(&dir, &["--config", config.to_str().unwrap()]);
    let mut open = TcpStream::connect(gateway.addr).unwrap();
    assert_eq!(
        ask(&mut open, &alice, gateway.addr, "/v1/admin/a").status,
        403
    );
    assert_eq!(ask(&mut open, &alice, gateway.addr, "/v1/me").status, 200);

    // The admin route goes and the second upstream takes over.
    write_config(&config, &second.url(), &keys, "");
    gateway.signal("HUP");
    gateway.await_log("configuration reloaded", 1);
    // The connection opened before the reload is still served, under the
    // new configuration and on the new upstream.
    assert_eq!(
        ask(&mut open, &alice, gateway.addr, "/v1/admin/b").status,
        200
    );
    let mut fresh = TcpStream::connect(gateway.addr).unwrap();
    assert_eq!(
        ask(&mut fresh, &alice, gateway.addr, "/v1/admin/c").status,
        200
    );
    assert_eq!(first.paths(), ["/v1/me"]);
    assert_eq!(second.paths(), ["/v1/admin/b", "/v1/admin/c"]);

    // What only a restart applies is refused, and nothing changes.
    write_config(
        &config,
        &first.url(),
        &keys,
        &format!("{ADMIN_ROUTE}[limits]\nmax_connections = 7\n"),
    );
    gateway.signal("HUP");
    gateway.await_log("limits changed, which only a restart applies", 1);
    assert_eq!(
        ask(&mut open, &alice, gateway.addr, "/v1/admin/d").status,
        200
    );
    // So is a file that does not parse, with the reason.
    std::fs::write(&config, "upstream = \n").unwrap();
    gateway.signal("HUP");
    gateway.await_log("configuration NOT reloaded", 2);
    assert_eq!(
        ask(&mut fresh, &alice, gateway.addr, "/v1/admin/e").status,
        200
    );
    assert_eq!(
        second.paths(),
        ["/v1/admin/b", "/v1/admin/c", "/v1/admin/d", "/v1/admin/e"]
    );

    // A valid file again: the admin route is back, for open connections too.
    write_config(&config, &second.url(), &keys, ADMIN_ROUTE);
    gateway.signal("HUP");
    gateway.await_log("configuration reloaded", 2);
    assert_eq!(
        ask(&mut open, &alice, gateway.addr, "/v1/admin/f").status,
        403
    );
    assert!(!second.paths().contains(&"/v1/admin/f".to_owned()));
}

/// The error code of a refusal, from `WWW-Authenticate`.
fn refusal(reply: &Reply) -> String {
    let header = reply.header("www-authenticate").unwrap_or_default();
    header
        .split("error=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

/// A key revoked in the keys file is refused within a second, with no
/// signal; SIGHUP reads the file again with the configuration (a removed
/// key is then unknown at once); a keys file that cannot be loaded keeps
/// the keys loaded before, and makes SIGHUP refuse the whole reload.
#[test]
fn the_keys_file_is_followed_and_read_again_on_sighup() {
    let dir = temp_dir("reload-keys");
    let alice = Key::random("alice-keys");
    let bob = Key::random("bob-keys");
    let keys = keys_file(
        &dir,
        &[
            (&alice, "alice", &["read"], false),
            (&bob, "bob", &["read"], false),
        ],
    );
    let upstream = Upstream::start(&dir);
    let config = dir.join("keys-reload.toml");
    write_config(&config, &upstream.url(), &keys, "");
    let gateway = Gateway::start(&dir, &["--config", config.to_str().unwrap()]);
    let get = |key: &Key, path: &str| {
        let mut stream = TcpStream::connect(gateway.addr).unwrap();
        ask(&mut stream, key, gateway.addr, path)
    };
    assert_eq!(get(&bob, "/v1/a").status, 200);

    // Revoked in the file: no signal needed.
    keys_file(
        &dir,
        &[
            (&alice, "alice", &["read"], false),
            (&bob, "bob", &["read"], true),
        ],
    );
    assert!(
        eventually(Duration::from_secs(3), || {
            let reply = get(&bob, "/v1/b");
            reply.status == 401 && refusal(&reply) == "key_revoked"
        }),
        "{}",
        gateway.stderr()
    );
    assert!(gateway.stderr().contains("the keys file changed"));

    // Removed, and SIGHUP: unknown from the reload on.
    keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    gateway.signal("HUP");
    gateway.await_log("configuration reloaded", 1);
    let reply = get(&bob, "/v1/c");
    assert_eq!(
        (reply.status, refusal(&reply).as_str()),
        (401, "unknown_key")
    );

    // A keys file that is not one: the keys stay, SIGHUP is refused.
    std::fs::write(&keys, "not json").unwrap();
    gateway.signal("HUP");
    gateway.await_log("configuration NOT reloaded", 1);
    gateway.await_log("the keys file changed but cannot be used", 1);
    assert_eq!(get(&alice, "/v1/d").status, 200);
    // (`/v1/b` went through until the follower saw the revocation.)
    let paths = upstream.paths();
    assert_eq!(paths.last().map(String::as_str), Some("/v1/d"), "{paths:?}");
    assert!(!paths.contains(&"/v1/c".to_owned()), "{paths:?}");
}
