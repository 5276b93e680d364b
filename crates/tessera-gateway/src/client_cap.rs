//! The cap on connections from one client address
//! (`limits.max_connections_per_client`): without it, one client that opens
//! `limits.max_connections` idle connections holds every place, and the
//! accept loop stops taking anyone else's.
//!
//! An IPv6 client is counted by its /64: a single host is usually given a
//! whole /64, so counting full addresses would cap nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Open connections per client address, up to a limit.
#[derive(Debug)]
pub struct ClientCap {
    limit: usize,
    open: Mutex<HashMap<ClientAddress, usize>>,
}

/// The part of a peer address that identifies a client: an IPv4 address
/// (IPv4-mapped IPv6 included), or an IPv6 /64 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAddress {
    /// An IPv4 client.
    V4(u32),
    /// The first 64 bits of an IPv6 client's address.
    V6(u64),
}

impl From<IpAddr> for ClientAddress {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientAddress::V4(u32::from(v4)),
            IpAddr::V6(v6) => ClientAddress::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// One connection's place under the cap, given back when dropped.
#[derive(Debug)]
pub struct ClientSlot {
    cap: Arc<ClientCap>,
    client: ClientAddress,
}

impl ClientCap {
    /// A cap of `limit` connections per client address.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(ClientCap {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection from `ip`, or `None` when that client
    /// already holds `limit` connections.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let client = ClientAddress::from(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(client).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            cap: Arc::clone(self),
            client,
        })
    }

    /// Connections open now from `ip`'s client address.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&ClientAddress::from(ip)).copied().unwrap_or(0)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.cap.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Only addresses with open connections take memory.
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn a_client_gets_at_most_limit_places_and_gets_them_back() {
        let cap = ClientCap::new(2);
        let a = cap.admit(ip("192.0.2.1")).expect("first");
        let _b = cap.admit(ip("192.0.2.1")).expect("second");
        assert!(cap.admit(ip("192.0.2.1")).is_none(), "third refused");
        // Another client is not affected.
        assert!(cap.admit(ip("192.0.2.2")).is_some());
        drop(a);
        assert_eq!(cap.open_from(ip("192.0.2.1")), 1);
        assert!(cap.admit(ip("192.0.2.1")).is_some(), "a place came back");
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_bit_prefix() {
        let cap = ClientCap::new(1);
        let _a = cap.admit(ip("2001:db8:1:2::1")).expect("first");
        assert!(cap.admit(ip("2001:db8:1:2:ffff::9")).is_none(), "same /64");
        assert!(cap.admit(ip("2001:db8:1:3::1")).is_some(), "another /64");
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_the_ipv4_client() {
        let cap = ClientCap::new(1);
        let _a = cap.admit(ip("198.51.100.7")).expect("first");
        assert!(cap.admit(ip("::ffff:198.51.100.7")).is_none());
    }

    #[test]
    fn addresses_without_connections_are_forgotten() {
        let cap = ClientCap::new(3);
        for i in 0..100u8 {
            drop(cap.admit(IpAddr::from([10, 0, 0, i])).expect("place"));
        }
        let open = cap.open.lock().expect("lock");
        assert!(open.is_empty());
    }
}
