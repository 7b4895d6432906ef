//! Who is logging in, as far as the network says: the client address login throttling keys on.
//!
//! The client is the TCP peer, unless the peer is a configured trusted proxy
//! (`IDENTITY_TRUSTED_PROXIES`): then it is the rightmost `X-Forwarded-For` entry that is not a
//! trusted proxy itself (each proxy appends the address it saw, so entries to the left of the last
//! trusted hop were written by the client and prove nothing). An address from anyone else's
//! `X-Forwarded-For` is ignored. IPv6 clients are keyed by their /64 (one subscriber's network),
//! so walking through the addresses of one prefix buys no extra guesses.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr, SocketAddr},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};

use crate::AppState;

/// An address range: `10.0.0.0/8`, `::1/128`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => masked(u32::from(n).into(), self.prefix, 32) == masked(u32::from(a).into(), self.prefix, 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => masked(u128::from(n), self.prefix, 128) == masked(u128::from(a), self.prefix, 128),
            _ => false,
        }
    }
}

fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    let keep = u32::from(prefix.min(width));
    if keep == 0 { 0 } else { bits >> (u32::from(width) - keep) }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| format!("{s:?} is not an address or CIDR range"))?;
        let net = canonical(net);
        let width = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= width).ok_or_else(|| format!("{s:?}: the prefix length must be 0-{width}"))?,
            None => width,
        };
        Ok(Self { net, prefix })
    }
}

/// `IDENTITY_TRUSTED_PROXIES`: comma-separated addresses or ranges.
pub fn parse_cidrs(raw: &str) -> Result<Vec<Cidr>, String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect()
}

/// An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client of a request from `peer` carrying the `X-Forwarded-For` values `forwarded_for` (each
/// header's value; several headers are one list), given the trusted proxies.
pub fn client_address<'a>(peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.into_iter().flat_map(|v| v.split(',')).map(str::trim).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // A malformed entry ends what can be believed: the last trusted hop is the client.
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip())).map(canonical)
}

/// The throttling key of a client address: the IPv4 address, or the IPv6 address's /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                Self(IpAddr::V6(Ipv6Addr::from(bits)))
            }
            v4 => Self(v4),
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V6(_) => write!(f, "{}/64", self.0),
            v4 => write!(f, "{v4}"),
        }
    }
}

/// The client of this request (an extractor). Without connection information (a router driven
/// without a socket) the client is the unspecified address: all such requests are one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client(pub IpAddr);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let forwarded = parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        Ok(Self(client_address(peer, forwarded, &app.trusted_proxies)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_what_their_prefix_covers() {
        let lan: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(lan.contains(ip("10.1.200.3")) && !lan.contains(ip("10.2.0.1")));
        assert!(lan.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped is IPv4");
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")) && !v6.contains(ip("10.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "gateway", "::/129", "1.2.3.4/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(parse_cidrs(" 127.0.0.1, 10.0.0.0/8 ,").unwrap().len(), 2);
    }

    #[test]
    fn an_untrusted_peers_forwarded_for_is_ignored() {
        let trusted = parse_cidrs("10.0.0.5").unwrap();
        assert_eq!(client_address(ip("203.0.113.7"), ["198.51.100.1"], &trusted), ip("203.0.113.7"));
        assert_eq!(client_address(ip("203.0.113.7"), ["198.51.100.1"], &[]), ip("203.0.113.7"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client_as_the_rightmost_untrusted_hop() {
        let trusted = parse_cidrs("10.0.0.0/24").unwrap();
        // The client wrote "1.1.1.1" itself; the proxy appended the address it saw.
        assert_eq!(client_address(ip("10.0.0.5"), ["1.1.1.1, 203.0.113.7"], &trusted), ip("203.0.113.7"));
        // Two proxies, as two headers.
        assert_eq!(client_address(ip("10.0.0.5"), ["1.1.1.1, 203.0.113.7", "10.0.0.9"], &trusted), ip("203.0.113.7"));
        assert_eq!(client_address(ip("10.0.0.5"), ["[2001:db8::1]:443"], &trusted), ip("2001:db8::1"));
        // No header: the proxy itself; garbage: the last believable hop.
        assert_eq!(client_address(ip("10.0.0.5"), [], &trusted), ip("10.0.0.5"));
        assert_eq!(client_address(ip("10.0.0.5"), ["1.1.1.1, not-an-ip"], &trusted), ip("10.0.0.5"));
        // Only trusted hops: the leftmost.
        assert_eq!(client_address(ip("10.0.0.5"), ["10.0.0.7, 10.0.0.8"], &trusted), ip("10.0.0.7"));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(ClientKey::of(ip("2001:db8:1:2:aaaa::1")), ClientKey::of(ip("2001:db8:1:2:bbbb::9")));
        assert_ne!(ClientKey::of(ip("2001:db8:1:2::1")), ClientKey::of(ip("2001:db8:1:3::1")));
        assert_eq!(ClientKey::of(ip("2001:db8:1:2:aaaa::1")).to_string(), "2001:db8:1:2::/64");
        assert_eq!(ClientKey::of(ip("::ffff:192.0.2.1")).to_string(), "192.0.2.1");
        assert_ne!(ClientKey::of(ip("192.0.2.1")), ClientKey::of(ip("192.0.2.2")));
    }
}
