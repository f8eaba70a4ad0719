//! `[httpdns]`: the names a route with `httpdns = true` answers, where their addresses come
//! from, per-client regions and request signing. Every value has a documented default
//! (`docs/httpdns.md`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, ensure};
use ipnet::IpNet;
use serde::Deserialize;

/// `[httpdns]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpDnsConfig {
    /// Service name → where its addresses come from (an upstream, or the fleet).
    pub services: BTreeMap<String, ServiceConfig>,
    /// The TTL every answer carries, in seconds (default 60; 1 to 86 400).
    pub ttl_s: u64,
    /// Names one request may ask for (default 8, Tencent's batch cap; 1 to 64).
    pub max_names: usize,
    /// The gateway fleet's own public addresses (`ip` or `ip:port`; ports are dropped), the
    /// answer for a service with `fleet = true`. Not health-checked by this instance: list
    /// them in an upstream with a health check for that (default empty).
    pub fleet: Vec<String>,
    /// CIDR → region: the client's region is that of the longest prefix holding its
    /// address (default none).
    pub regions: BTreeMap<String, String>,
    /// Key id → the `[secrets]` entry whose value signs requests (default none).
    pub keys: BTreeMap<String, String>,
    /// Refuse requests without a valid signature (default false: an open resolver tells
    /// anyone who asks the addresses of the upstreams it serves).
    pub require_signature: bool,
    /// The latest expiry a signature may carry, in seconds from now (default 86 400, a
    /// day; 1 to 2 592 000): a signature cannot be made to live for ever.
    pub max_expiry_s: u64,
    /// Proxies whose `X-Forwarded-For` is believed for the client's address (CIDRs or
    /// addresses; default none: the TCP peer is the client).
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpDnsConfig {
    fn default() -> Self {
        Self {
            services: BTreeMap::new(),
            ttl_s: 60,
            max_names: 8,
            fleet: Vec::new(),
            regions: BTreeMap::new(),
            keys: BTreeMap::new(),
            require_signature: false,
            max_expiry_s: 86_400,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Where a service's addresses come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum ServiceConfig {
    /// The healthy targets of this upstream.
    Upstream(String),
    /// An upstream or the fleet, with region-specific upstreams.
    Table(ServiceTable),
}

/// `[httpdns.services.<name>]` as a table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceTable {
    /// The upstream answered by default.
    pub upstream: Option<String>,
    /// Answer the fleet's addresses (`[httpdns] fleet`) by default instead.
    #[serde(default)]
    pub fleet: bool,
    /// Region → the upstream answered to clients of that region (when it has a healthy
    /// target; the default otherwise).
    #[serde(default)]
    pub regions: BTreeMap<String, String>,
}

impl ServiceConfig {
    /// The default upstream (`None`: the fleet) and the region-specific upstreams.
    pub fn sources(&self) -> (Option<&str>, Vec<(&str, &str)>) {
        match self {
            Self::Upstream(name) => (Some(name), Vec::new()),
            Self::Table(t) => (
                t.upstream.as_deref(),
                (t.regions.iter())
                    .map(|(r, u)| (r.as_str(), u.as_str()))
                    .collect(),
            ),
        }
    }
}

/// The longest service name (a DNS name's limit, RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 253;

/// Whether `name` is a service name: lowercase letters, digits, `-`, `_` and `.`, at most
/// [`MAX_NAME_LEN`] bytes, no trailing dot (so that it can be echoed in any answer form).
pub fn is_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.ends_with('.')
        && (name.bytes()).all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'))
}

/// Parses a fleet entry: `ip` or `ip:port`.
pub fn fleet_address(entry: &str) -> Option<IpAddr> {
    (entry.parse::<IpAddr>().ok()).or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Parses a CIDR (`10.0.0.0/8`) or a single address.
pub fn network(entry: &str) -> Option<IpNet> {
    (entry.parse::<IpNet>().ok()).or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

impl HttpDnsConfig {
    /// Refuses values that cannot work; `upstreams` and `secrets` are the config's names.
    pub fn validate(
        &self,
        has_upstream: impl Fn(&str) -> bool,
        has_secret: impl Fn(&str) -> bool,
    ) -> anyhow::Result<()> {
        ensure!(
            (1..=86_400).contains(&self.ttl_s),
            "httpdns.ttl_s must be between 1 and 86400"
        );
        ensure!(
            (1..=64).contains(&self.max_names),
            "httpdns.max_names must be between 1 and 64"
        );
        ensure!(
            (1..=2_592_000).contains(&self.max_expiry_s),
            "httpdns.max_expiry_s must be between 1 and 2592000"
        );
        for entry in &self.fleet {
            if fleet_address(entry).is_none() {
                bail!("httpdns.fleet: {entry:?} is not an address");
            }
        }
        for entry in self.regions.keys().chain(&self.trusted_proxies) {
            if network(entry).is_none() {
                bail!("httpdns.regions/trusted_proxies: {entry:?} is not an address or CIDR");
            }
        }
        for (id, secret) in &self.keys {
            if !has_secret(secret) {
                bail!("httpdns.keys.{id}: unknown secret {secret:?}");
            }
        }
        if self.require_signature && self.keys.is_empty() {
            bail!("httpdns.require_signature needs at least one key in httpdns.keys");
        }
        for (name, service) in &self.services {
            if !is_service_name(name) {
                bail!(
                    "httpdns.services: {name:?} is not a service name (lowercase letters, digits, '-', '_', '.')"
                );
            }
            let (default, regions) = service.sources();
            match (service, default) {
                (ServiceConfig::Table(t), Some(_)) if t.fleet => {
                    bail!("httpdns.services.{name}: give upstream or fleet = true, not both")
                }
                (ServiceConfig::Table(t), None) if !t.fleet => {
                    bail!("httpdns.services.{name}: give upstream or fleet = true")
                }
                (_, None) if self.fleet.is_empty() => {
                    bail!("httpdns.services.{name}: fleet = true needs httpdns.fleet addresses")
                }
                _ => {}
            }
            let named = default.into_iter().map(|u| ("upstream".to_string(), u));
            let by_region = regions.iter().map(|&(r, u)| (format!("regions.{r}"), u));
            for (key, upstream) in named.chain(by_region) {
                if !has_upstream(upstream) {
                    bail!("httpdns.services.{name}.{key}: unknown upstream {upstream:?}");
                }
            }
            for (region, _) in regions {
                if !self.regions.values().any(|r| r == region) {
                    bail!(
                        "httpdns.services.{name}.regions: no httpdns.regions entry names region {region:?}"
                    );
                }
            }
        }
        Ok(())
    }
}
