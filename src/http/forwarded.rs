//! Who made a request: the client's address, and whether the request came
//! over TLS. Without a reverse proxy that is the TCP peer, over plain
//! HTTP. Behind one, every peer is the proxy, so the proxy's word is taken
//! instead (`X-Forwarded-For`, `X-Forwarded-Proto`), but only from a peer
//! in `--trusted-proxy`: from anyone else those headers are whatever the
//! client chose to write, and are ignored.
//!
//! Each proxy appends the address it received the request from to
//! `X-Forwarded-For`, so the list reads oldest hop first and only its right
//! end was written by proxies we trust. The client is the rightmost entry
//! that is not itself a trusted proxy; everything to its left is the
//! client's own say and never looked at. Pure, so tested without sockets.

use std::net::IpAddr;

use super::request::Request;
use crate::cidr::Cidr;

/// The client of one request, as the rest of the server sees it: the
/// address that the access log shows, login throttling counts and
/// sessions record, and whether the request came over TLS (which earns the
/// cookie its `Secure` flag and makes `https://` the server's own origin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    pub addr: IpAddr,
    pub tls: bool,
}

impl Client {
    /// The client of `request`, received from the TCP peer `peer`.
    pub fn of(peer: IpAddr, request: &Request, trusted: &[Cidr]) -> Client {
        let peer = peer.to_canonical();
        let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
        if !is_trusted(peer) {
            return Client { addr: peer, tls: false };
        }
        // Walk back from the hop nearest to us. An entry that is no address
        // stops the walk: the trusted hop that wrote it is the best known.
        let mut addr = peer;
        for entry in list(request, "x-forwarded-for").rev() {
            let Some(ip) = parse_entry(entry) else {
                break;
            };
            addr = ip;
            if !is_trusted(ip) {
                break;
            }
        }
        // The nearest proxy's say: the last value of the header.
        let tls = list(request, "x-forwarded-proto")
            .next_back()
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
        Client { addr, tls }
    }
}

/// The comma-separated values of every `name` header, in order, trimmed.
fn list<'r>(request: &'r Request, name: &'r str) -> impl DoubleEndedIterator<Item = &'r str> + 'r {
    request
        .headers
        .iter()
        .filter(move |(n, _)| n == name)
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
}

/// One `X-Forwarded-For` entry: an address, bracketed IPv6 (`[::1]`), or
/// either with a port (`192.0.2.1:4711`, `[::1]:4711`), as proxies write
/// them.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let host = match entry.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => entry.rsplit_once(':')?.0,
    };
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &str) -> Request {
        crate::http::request::parse(format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes()).unwrap()
    }

    fn ranges(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn client(peer: &str, headers: &str, trusted: &[&str]) -> (String, bool) {
        let client = Client::of(peer.parse().unwrap(), &request(headers), &ranges(trusted));
        (client.addr.to_string(), client.tls)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let headers = "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n";
        assert_eq!(client("198.51.100.1", headers, &[]), ("198.51.100.1".into(), false));
        assert_eq!(
            client("198.51.100.1", headers, &["10.0.0.0/8"]),
            ("198.51.100.1".into(), false)
        );
    }

    #[test]
    fn the_client_is_the_rightmost_entry_that_is_not_a_trusted_proxy() {
        let trusted = ["10.0.0.0/8", "2001:db8::/32"];
        let cases = [
            ("X-Forwarded-For: 203.0.113.7\r\n", "203.0.113.7"),
            ("X-Forwarded-For: 1.1.1.1, 203.0.113.7, 10.0.0.2\r\n", "203.0.113.7"),
            (
                "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.3\r\n",
                "203.0.113.7",
            ),
            ("X-Forwarded-For: 203.0.113.7:4711\r\n", "203.0.113.7"),
            ("X-Forwarded-For: [2001:db9::5]:4711, 2001:db8::1\r\n", "2001:db9::5"),
            ("X-Forwarded-For: ::ffff:203.0.113.7\r\n", "203.0.113.7"),
            // Every entry a proxy of ours: the farthest one is the client.
            ("X-Forwarded-For: 10.0.0.9, 10.0.0.2\r\n", "10.0.0.9"),
            // A garbled entry stops the walk at the proxy that wrote it.
            ("X-Forwarded-For: 203.0.113.7, unknown, 10.0.0.2\r\n", "10.0.0.2"),
            ("X-Forwarded-For: \r\n", "10.0.0.1"),
            ("", "10.0.0.1"),
        ];
        for (headers, expected) in cases {
            assert_eq!(client("10.0.0.1", headers, &trusted).0, expected, "{headers:?}");
        }
        assert_eq!(
            client("::ffff:10.0.0.1", "X-Forwarded-For: 203.0.113.7\r\n", &trusted).0,
            "203.0.113.7"
        );
    }

    #[test]
    fn tls_is_the_nearest_trusted_proxys_word() {
        let trusted = ["127.0.0.1"];
        let tls = |headers: &str| client("127.0.0.1", headers, &trusted).1;
        assert!(tls("X-Forwarded-Proto: https\r\n"));
        assert!(tls("X-Forwarded-Proto: HTTPS\r\n"));
        assert!(tls("X-Forwarded-Proto: http, https\r\n"));
        assert!(!tls("X-Forwarded-Proto: https, http\r\n"));
        assert!(!tls("X-Forwarded-Proto: http\r\n"));
        assert!(!tls(""));
    }
}
