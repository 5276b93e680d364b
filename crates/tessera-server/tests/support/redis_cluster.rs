//! A real Redis Cluster for the tests: three local primaries on loopback.
//!
//! * [`shared_cluster`]: the nodes named by `TESSERA_TEST_REDIS_CLUSTER`
//!   (space separated; scripts/test starts one), else a cluster started by
//!   `scripts/redis-cluster.sh` for this test process (stopped when it exits).
//! * [`own_cluster`]: always a cluster of the caller's own, for tests that
//!   kill a node.
//!
//! Without a cluster the tests print a skip and pass, except with
//! `TESSERA_REQUIRE_REDIS_CLUSTER=1` or `CI=true`, where they fail.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const NODES_VAR: &str = "TESSERA_TEST_REDIS_CLUSTER";
const REQUIRE_VAR: &str = "TESSERA_REQUIRE_REDIS_CLUSTER";

fn required() -> bool {
    let set =
        |var: &str, values: &[&str]| std::env::var(var).is_ok_and(|v| values.contains(&v.as_str()));
    set(REQUIRE_VAR, &["1"]) || set("CI", &["1", "true"])
}

/// Reports a missing cluster: a panic when one is required, a skip message
/// otherwise.
fn skip(test: &str, why: &str) {
    let msg = format!(
        "skipped: no Redis Cluster ({test}): {why}; set {NODES_VAR} or install redis-server"
    );
    assert!(!required(), "{REQUIRE_VAR}=1 (or CI) and {msg}");
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Starts a cluster with scripts/redis-cluster.sh, stopped when this test
/// process exits; its node URLs.
fn start_cluster() -> Result<Vec<String>, String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/redis-cluster.sh"
    );
    let output = Command::new(script)
        .args(["start", "--watch", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{script} start failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let nodes: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if nodes.len() < 3 {
        return Err(format!("{script} printed {nodes:?}, not three node URLs"));
    }
    Ok(nodes)
}

/// The cluster shared by the tests of this process.
pub fn shared_cluster(test: &str) -> Option<Vec<String>> {
    if let Ok(nodes) = std::env::var(NODES_VAR) {
        let nodes: Vec<String> = nodes.split_whitespace().map(str::to_owned).collect();
        if !nodes.is_empty() {
            return Some(nodes);
        }
    }
    static SHARED: OnceLock<Result<Vec<String>, String>> = OnceLock::new();
    match SHARED.get_or_init(start_cluster) {
        Ok(nodes) => Some(nodes.clone()),
        Err(why) => {
            skip(test, why);
            None
        }
    }
}

/// A cluster of this test's own (for tests that kill a node).
pub fn own_cluster(test: &str) -> Option<Vec<String>> {
    match start_cluster() {
        Ok(nodes) => Some(nodes),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

/// The `redis+cluster://h1:p1,h2:p2,…` URL of `nodes` (`redis://h:p/` each).
pub fn cluster_url(nodes: &[String]) -> String {
    let hosts: Vec<&str> = nodes
        .iter()
        .map(|n| n.trim_start_matches("redis://").trim_end_matches('/'))
        .collect();
    format!("redis+cluster://{}", hosts.join(","))
}
