//! IP address ranges in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or a
//! single address), as `--trusted-proxy` names them: parsed once at
//! start-up, matched against every request's peer. Pure, so that every edge
//! (prefix 0, a full-length prefix, IPv4 peers seen through an IPv6 socket)
//! is tested without a network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network: its first address and the length of its prefix in bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a range was refused, worded for the one line of a bad flag.
#[derive(Debug, PartialEq, Eq)]
pub struct CidrError(pub String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// An address alone is a range of one. A range with bits set past its
    /// prefix (`10.1.2.3/8`) is refused rather than silently widened: the
    /// writer may have meant the one address or the whole network.
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (address, prefix) = match s.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (s, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| CidrError(format!("'{s}' is not an IP address or a CIDR range")))?;
        let bits = max_prefix(address);
        let prefix = match prefix {
            None => bits,
            Some(p) => match p.parse::<u8>() {
                // Digits only, without a sign or a leading zero.
                Ok(n) if n <= bits && p == n.to_string() => n,
                _ => {
                    return Err(CidrError(format!(
                        "'{s}': the prefix must be a number from 0 to {bits}"
                    )))
                }
            },
        };
        // An IPv4 range written as IPv6 (`::ffff:10.0.0.0/104`) is the IPv4
        // range, as peers are matched in their IPv4 form.
        let (address, prefix) = match address.to_canonical() {
            v4 @ IpAddr::V4(_) if address.is_ipv6() => match prefix.checked_sub(96) {
                Some(prefix) => (v4, prefix),
                None => {
                    return Err(CidrError(format!(
                        "'{s}': an IPv4-mapped range needs a prefix of at least 96"
                    )))
                }
            },
            same => (same, prefix),
        };
        let cidr = Cidr {
            network: address,
            prefix,
        };
        if cidr.masked(address) != address {
            return Err(CidrError(format!(
                "'{s}' has bits set past its /{prefix} prefix; write the network's first address"
            )));
        }
        Ok(cidr)
    }
}

impl Cidr {
    /// Whether `ip` lies in this range. An IPv4 address written as IPv6
    /// (`::ffff:10.0.0.1`, as a dual-stack socket reports IPv4 peers) is the
    /// IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == self.network
    }

    /// `ip` with every bit past the prefix cleared (same family as `ip`).
    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
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

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_their_addresses_and_nothing_else() {
        let private = cidr("10.0.0.0/8");
        assert!(private.contains(ip("10.0.0.0")));
        assert!(private.contains(ip("10.255.255.255")));
        assert!(!private.contains(ip("11.0.0.0")));
        assert!(!private.contains(ip("9.255.255.255")));
        let one = cidr("192.168.1.7");
        assert!(one.contains(ip("192.168.1.7")));
        assert!(!one.contains(ip("192.168.1.6")));
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(cidr("::1").contains(ip("::1")));
        assert!(!cidr("::1").contains(ip("::2")));
    }

    #[test]
    fn prefix_zero_is_the_whole_family_and_families_never_mix() {
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(!cidr("::/0").contains(ip("203.0.113.9")));
    }

    #[test]
    fn ipv4_peers_on_a_dual_stack_socket_match_ipv4_ranges() {
        assert!(cidr("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.1.2.3")));
        assert_eq!(cidr("::ffff:10.0.0.1"), cidr("10.0.0.1"));
    }

    #[test]
    fn malformed_ranges_are_refused_with_a_reason() {
        for bad in [
            "",
            "10.0.0",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/08",
            "::/129",
            "10.1.2.3/8",
            "2001:db8::1/32",
            "example.com",
            "10.0.0.0/8/8",
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(err.0.contains(bad) || bad.is_empty(), "{bad}: {err}");
        }
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("fd00::").to_string(), "fd00::/128");
    }
}
