//! Redis users for the tests of the nonce store's permissions.
#![allow(dead_code, unreachable_pub)]

/// The rights the nonce store's Redis user needs on one Redis, as the
/// store's documentation lists them (a cluster adds `+cluster|slots`).
pub const NONCE_STORE_RIGHTS: [&str; 7] = [
    "+evalsha",
    "+eval",
    "+script|load",
    "+get",
    "+set",
    "+exists",
    "+ping",
];

/// Creates (or resets) user `name`, password `pw-<name>`, with `rights` on
/// keys under `prefix` only and no channels.
pub async fn set_user(
    conn: &redis::aio::MultiplexedConnection,
    name: &str,
    prefix: &str,
    rights: &[&str],
) {
    let mut acl = redis::cmd("ACL");
    acl.arg("SETUSER")
        .arg(name)
        .arg("reset")
        .arg("on")
        .arg(format!(">pw-{name}"))
        .arg(format!("~{prefix}:*"))
        .arg("resetchannels")
        .arg("-@all");
    for right in rights {
        acl.arg(*right);
    }
    let _: () = acl
        .query_async(&mut conn.clone())
        .await
        .expect("ACL SETUSER");
}

/// `rights` without `missing`.
pub fn without<'a>(rights: &[&'a str], missing: &str) -> Vec<&'a str> {
    rights.iter().filter(|r| **r != missing).copied().collect()
}
