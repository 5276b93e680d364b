//! Loopback ports for servers the tests start themselves.
#![allow(dead_code, unreachable_pub)]

use std::hash::BuildHasher;
use std::net::TcpListener;

/// A free loopback port below the kernel's ephemeral range.
///
/// Outgoing connections take their local ports from the ephemeral range, so
/// a server that a test stops and starts again on the same port could lose
/// an ephemeral port to any client's connection in between (and a port
/// checked free can be taken before the server binds it). Ports below the
/// range are only taken by listeners; the random choice keeps concurrent
/// tests apart. Falls back to an ephemeral port when the range starts too
/// low to leave room.
pub fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(32_768);
    if low > 21_000 {
        let span = low - 20_000;
        for _ in 0..200 {
            let random = std::collections::hash_map::RandomState::new().hash_one(0u8);
            let Ok(port) = u16::try_from(20_000 + random % span) else {
                continue;
            };
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free loopback port")
        .port()
}
