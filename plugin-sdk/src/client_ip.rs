//! The client's IP address: the TCP peer, or, when the peer is a trusted proxy, the
//! right-most address in `X-Forwarded-For` that is not itself a trusted proxy (the usual
//! rule: every hop appends, so only entries added by trusted hops can be believed). One
//! rule for every filter that keys or decides on the client's address.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::Request;

/// The networks whose `X-Forwarded-For` entries are believed.
#[derive(Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`) or single addresses (`127.0.0.1`).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("trusted_proxies: {e:?} is not an address or CIDR"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether no proxy is trusted (then `X-Forwarded-For` is never read).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client address of `request`; `None` when its peer address is unparsable.
    pub fn of(&self, request: &Request) -> Option<IpAddr> {
        // Only read when some proxy is trusted: otherwise it is the client's claim.
        let forwarded = match self.is_empty() {
            true => Vec::new(),
            false => request.header_all("x-forwarded-for"),
        };
        let forwarded = forwarded.iter().filter_map(|v| std::str::from_utf8(v).ok());
        self.client_ip(request.client_addr(), forwarded)
    }

    fn trusts(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client address for a request from `peer` (`ip:port`) carrying these
    /// `X-Forwarded-For` values (in header order). `None` when the peer is unparsable.
    pub fn client_ip<'a>(
        &self,
        peer: &str,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        let mut client = peer.parse::<SocketAddr>().ok()?.ip();
        if !self.trusts(&client) {
            return Some(client);
        }
        let hops = forwarded_for.rev().flat_map(|v| v.rsplit(','));
        for hop in hops {
            let Some(ip) = parse_hop(hop.trim()) else {
                // A malformed entry ends the chain we can believe.
                break;
            };
            client = ip;
            if !self.trusts(&ip) {
                break;
            }
        }
        Some(client)
    }
}

/// An `X-Forwarded-For` entry: an address, optionally with a port (`[v6]:port`, `v4:port`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        TrustedProxies::parse(&entries).unwrap()
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let forwarded = ["198.51.100.7"].into_iter();
        assert_eq!(
            proxies.client_ip("203.0.113.5:4000", forwarded),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8", "127.0.0.1"]);
        // The client claims 203.0.113.9; the trusted proxy 10.0.0.2 appended the address
        // it saw, 198.51.100.7: that one is believed, the claim is not.
        let forwarded = ["203.0.113.9, 198.51.100.7", "10.0.0.2"].into_iter();
        assert_eq!(
            proxies.client_ip("127.0.0.1:80", forwarded),
            ip("198.51.100.7")
        );
        // Ports and IPv6 brackets in entries.
        let forwarded = ["[2001:db8::1]:443"].into_iter();
        assert_eq!(
            proxies.client_ip("10.1.1.1:80", forwarded),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn a_malformed_entry_ends_the_believed_chain() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let forwarded = ["198.51.100.7, junk, 10.0.0.3"].into_iter();
        assert_eq!(proxies.client_ip("10.0.0.1:80", forwarded), ip("10.0.0.3"));
        assert_eq!(proxies.client_ip("not an address", [].into_iter()), None);
    }

    #[test]
    fn entries_are_cidrs_or_addresses() {
        assert!(TrustedProxies::parse(&["10.0.0.0/33".to_string()]).is_err());
        assert!(TrustedProxies::parse(&["::1".to_string()]).is_ok());
    }
}
