//! The client's IP address: the TCP peer, or, when the peer is a trusted proxy, the
//! right-most address in `X-Forwarded-For` that is not itself a trusted proxy (the usual
//! rule: every hop appends, so only entries added by trusted hops can be believed).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

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
