//! Synthetic addresses for allowed names: the sandbox's DNS answers come from a private
//! pool, and each address maps back to the one name it was given for. A connection to a
//! pool address is decided by that name; any other address is a direct IP, refused
//! unless a rule names it.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// The pool: 198.18.0.0/15 is reserved for benchmarking (RFC 2544) and never routed on
/// the Internet, so a pool address cannot be confused with a real server.
pub(crate) const POOL_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
const POOL_BITS: u32 = 15;

/// Names and their pool addresses, for one sandbox.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    by_name: HashMap<String, Ipv4Addr>,
    by_addr: HashMap<Ipv4Addr, String>,
    next: u32,
}

impl Pool {
    /// Whether `ip` lies in the pool.
    pub(crate) fn contains(ip: Ipv4Addr) -> bool {
        u32::from(ip) >> (32 - POOL_BITS) == u32::from(POOL_BASE) >> (32 - POOL_BITS)
    }

    /// The address for `name` (normalized), given on first use; `None` once the pool is
    /// exhausted (131,070 names in one sandbox).
    pub(crate) fn address(&mut self, name: &str) -> Option<Ipv4Addr> {
        if let Some(a) = self.by_name.get(name) {
            return Some(*a);
        }
        // Skip .0 and .255 of each /24: some programs treat them as special.
        loop {
            self.next += 1;
            if self.next >= 1 << POOL_BITS {
                return None;
            }
            if !matches!(self.next & 0xff, 0 | 255) {
                break;
            }
        }
        let a = Ipv4Addr::from(u32::from(POOL_BASE) + self.next);
        self.by_name.insert(name.to_string(), a);
        self.by_addr.insert(a, name.to_string());
        Some(a)
    }

    /// The name an address was given for.
    pub(crate) fn name(&self, ip: Ipv4Addr) -> Option<&str> {
        self.by_addr.get(&ip).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_back() {
        let mut p = Pool::default();
        let a = p.address("a.com").unwrap();
        assert_eq!(p.address("a.com"), Some(a));
        let b = p.address("b.com").unwrap();
        assert_ne!(a, b);
        assert_eq!(p.name(b), Some("b.com"));
        assert!(Pool::contains(a) && Pool::contains("198.19.255.1".parse().unwrap()));
        assert!(!Pool::contains("198.20.0.1".parse().unwrap()));
        assert_eq!(p.name("198.18.9.9".parse().unwrap()), None);
    }
}
