//! CIDR blocks (`10.0.0.0/8`, `fd00::/8`) for `ipBlock.cidr` and `ipBlock.except`, with std's
//! address types: parse, mask, contain.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address with its host bits cleared, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network `ip/prefix` (host bits of `ip` are cleared); `None` when `prefix` is too long.
    pub fn new(ip: IpAddr, prefix: u8) -> Option<Self> {
        let max = max_prefix(ip);
        (prefix <= max).then(|| Self {
            network: mask(ip, prefix),
            prefix,
        })
    }

    /// The single address `ip` (/32 or /128).
    pub fn host(ip: IpAddr) -> Self {
        Self {
            network: ip,
            prefix: max_prefix(ip),
        }
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this network (an address of the other family never does).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.network.is_ipv4() == ip.is_ipv4() && mask(ip, self.prefix) == self.network
    }

    /// Whether `other` lies entirely inside this network (same family, longer or equal prefix).
    pub fn covers(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network)
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// Parses `ADDRESS/PREFIX` as Go's `net.ParseCIDR` does (the API server's check); host bits
    /// may be set and are cleared.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR: use ADDRESS/PREFIX, e.g. 10.0.0.0/8"))?;
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not a CIDR: {addr:?} is not an IP address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p: &u8| prefix.bytes().all(|b| b.is_ascii_digit()) && *p <= max_prefix(ip))
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a CIDR: the prefix length must be 0 to {}",
                    max_prefix(ip)
                )
            })?;
        Ok(Self {
            network: mask(ip, prefix),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_masks_and_contains() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.0")));
        assert!(!c.contains(ip("::a01:203")), "other family never matches");
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("255.255.255.255")));
        assert!(!all.contains(ip("::1")));
        let v6: Cidr = "fd30:1319:f1e:230b::1/128".parse().unwrap();
        assert!(v6.contains(ip("fd30:1319:f1e:230b::1")));
        assert!(!v6.contains(ip("fd30:1319:f1e:230b::2")));
        let v6net: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6net.contains(ip("2001:db8:ffff::1")));
        assert!(!v6net.contains(ip("2001:db9::1")));
        assert!(v6net.covers(&"2001:db8:1::/48".parse().unwrap()));
        assert!(!v6net.covers(&"2001::/16".parse().unwrap()));
    }

    #[test]
    fn refuses_what_is_not_a_cidr() {
        for bad in [
            "10.0.0.1",
            "10.0.0.0/33",
            "::/129",
            "x/8",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
