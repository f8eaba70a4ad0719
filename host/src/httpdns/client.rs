//! Who asks, and from where: the client's address (the TCP peer, or behind trusted
//! proxies the right-most `X-Forwarded-For` entry that is not a trusted proxy — the rule
//! the SDK's `client_ip` gives every filter) and its region (the longest CIDR holding it).

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The networks whose `X-Forwarded-For` entries are believed.
#[derive(Debug, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    fn trusts(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client address of a request from `peer` with these headers.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        if !self.trusts(&client) {
            return client;
        }
        let lines = headers.get_all("x-forwarded-for").iter().rev();
        let hops = (lines.filter_map(|v| v.to_str().ok())).flat_map(|v| v.rsplit(','));
        for hop in hops {
            let hop = hop.trim();
            let Some(ip) = (hop.parse::<IpAddr>().ok())
                .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
            else {
                // A malformed entry ends the chain that can be believed.
                break;
            };
            client = ip;
            if !self.trusts(&ip) {
                break;
            }
        }
        client
    }
}

/// CIDR → region, longest prefix first.
#[derive(Debug, Default)]
pub struct Regions(Vec<(IpNet, String)>);

impl Regions {
    /// From `(network, region)` pairs in any order.
    pub fn new(mut entries: Vec<(IpNet, String)>) -> Self {
        entries.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Self(entries)
    }

    /// The region of `ip`, if a network holds it.
    pub fn of(&self, ip: IpAddr) -> Option<&str> {
        let ip = match ip {
            // An IPv4 client seen on a dual-stack socket.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        (self.0.iter())
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, region)| region.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(entries: &[&str]) -> Vec<IpNet> {
        entries.iter().map(|e| e.parse().unwrap()).collect()
    }

    #[test]
    fn only_trusted_hops_are_believed() {
        let proxies = TrustedProxies(nets(&["10.0.0.0/8", "127.0.0.1/32"]));
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7".parse().unwrap(),
        );
        headers.append("x-forwarded-for", "10.0.0.2".parse().unwrap());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &headers),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_ip(ip("192.0.2.1"), &headers),
            ip("192.0.2.1")
        );
        headers.insert(
            "x-forwarded-for",
            "198.51.100.7, junk, 10.0.0.3".parse().unwrap(),
        );
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &headers), ip("10.0.0.3"));
    }

    #[test]
    fn the_longest_prefix_names_the_region() {
        let regions = Regions::new(vec![
            ("10.0.0.0/8".parse().unwrap(), "wide".into()),
            ("10.1.0.0/16".parse().unwrap(), "narrow".into()),
        ]);
        assert_eq!(regions.of("10.1.2.3".parse().unwrap()), Some("narrow"));
        assert_eq!(regions.of("10.2.2.3".parse().unwrap()), Some("wide"));
        assert_eq!(regions.of("::ffff:10.2.2.3".parse().unwrap()), Some("wide"));
        assert_eq!(regions.of("192.0.2.1".parse().unwrap()), None);
    }
}
