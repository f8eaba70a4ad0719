//! `ip-restriction`: refuses clients by network. The client's address is the peer's, or
//! behind `trusted_proxies` the right-most untrusted `X-Forwarded-For` hop (the rule
//! `rate-limit` uses). A client in `deny` is refused; with `allow` given, a client outside
//! it is refused too; a client whose address cannot be told is refused (fail closed).
//! Refusals are 403 with the code `ip_forbidden`.
//!
//! ```json
//! { "allow": ["10.0.0.0/8", "2001:db8::/32"], "deny": ["10.6.6.0/24"],
//!   "trusted_proxies": ["127.0.0.1"] }
//! ```
//! See `docs/plugins/ip-restriction.md`.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use weir_plugin_sdk::client_ip::TrustedProxies;
use weir_plugin_sdk::prelude::*;

/// The filter's config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Networks (CIDRs or single addresses) whose clients may pass; everyone when empty.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Networks whose clients are refused, even inside `allow`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Proxies whose `X-Forwarded-For` entries are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// The filter: its lists, parsed.
struct IpRestriction {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    trusted: TrustedProxies,
}

/// Parses CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses; `what` names the list.
fn networks(what: &str, entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|e| {
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| format!("{what}: {e:?} is not an address or CIDR"))
        })
        .collect()
}

/// Whether `ip` is in one of `nets`; an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) counts
/// as its IPv4 address.
fn within(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    nets.iter().any(|net| net.contains(&ip))
}

impl IpRestriction {
    /// Why the client at `ip` is refused, if it is.
    fn refusal(&self, ip: Option<IpAddr>) -> Option<&'static str> {
        let Some(ip) = ip else {
            return Some("the client's address cannot be told");
        };
        if within(&self.deny, ip) {
            return Some("the client's network is denied");
        }
        if !self.allow.is_empty() && !within(&self.allow, ip) {
            return Some("the client's network is not allowed");
        }
        None
    }
}

impl Filter for IpRestriction {
    type Config = Config;
    const NAME: &'static str = "ip-restriction";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::RequestHeaders];

    fn new(config: Config) -> Result<Self, String> {
        let filter = Self {
            allow: networks("allow", &config.allow)?,
            deny: networks("deny", &config.deny)?,
            trusted: TrustedProxies::parse(&config.trusted_proxies)?,
        };
        if filter.allow.is_empty() && filter.deny.is_empty() {
            return Err("give allow, deny or both: an empty filter restricts nothing".into());
        }
        Ok(filter)
    }

    fn on_request(&self, request: &Request) -> RequestDecision {
        match self.refusal(self.trusted.of(request)) {
            None => RequestDecision::proceed(),
            Some(why) => {
                RequestDecision::Respond(Response::error(403, "ip_forbidden", why, request))
            }
        }
    }
}

export_filter!(IpRestriction);

#[cfg(test)]
mod tests {
    use serde_json::json;
    use weir_plugin_sdk::testing::{FakeRequest, refused};

    use super::*;

    fn filter(config: serde_json::Value) -> Result<IpRestriction, String> {
        IpRestriction::new(serde_json::from_value(config).map_err(|e| e.to_string())?)
    }

    fn passes(filter: &IpRestriction, request: &FakeRequest) -> bool {
        filter.on_request(&request.view()).changes().is_some()
    }

    #[test]
    fn deny_refuses_its_networks_in_both_families() {
        let f = filter(json!({ "deny": ["203.0.113.0/24", "2001:db8:bad::/48"] })).unwrap();
        for client in [
            "203.0.113.9:1000",
            "[2001:db8:bad::1]:443",
            "[::ffff:203.0.113.7]:80",
        ] {
            refused(
                &f,
                &FakeRequest::get("/").client(client),
                403,
                "ip_forbidden",
            );
        }
        for client in ["198.51.100.1:1000", "[2001:db8:900d::1]:443"] {
            assert!(
                passes(&f, &FakeRequest::get("/").client(client)),
                "{client}"
            );
        }
    }

    #[test]
    fn allow_lets_only_its_networks_in_and_deny_wins_inside_it() {
        let f = filter(json!({ "allow": ["10.0.0.0/8", "::1"], "deny": ["10.6.6.0/24"] })).unwrap();
        assert!(passes(&f, &FakeRequest::get("/").client("10.1.2.3:80")));
        assert!(passes(&f, &FakeRequest::get("/").client("[::1]:80")));
        refused(
            &f,
            &FakeRequest::get("/").client("10.6.6.6:80"),
            403,
            "ip_forbidden",
        );
        refused(
            &f,
            &FakeRequest::get("/").client("192.0.2.1:80"),
            403,
            "ip_forbidden",
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_forwarded_client_is_judged() {
        let f = filter(json!({ "deny": ["203.0.113.0/24"], "trusted_proxies": ["127.0.0.1"] }))
            .unwrap();
        let via_proxy = FakeRequest::get("/")
            .client("127.0.0.1:5000")
            .header("x-forwarded-for", "203.0.113.5");
        refused(&f, &via_proxy, 403, "ip_forbidden");
        // An untrusted peer's claim is not believed, either way.
        let claimed = FakeRequest::get("/")
            .client("198.51.100.1:5000")
            .header("x-forwarded-for", "203.0.113.5");
        assert!(passes(&f, &claimed));
        let f = filter(json!({ "allow": ["198.51.100.0/24"] })).unwrap();
        let hiding = FakeRequest::get("/")
            .client("203.0.113.5:5000")
            .header("x-forwarded-for", "198.51.100.1");
        refused(&f, &hiding, 403, "ip_forbidden");
    }

    #[test]
    fn an_unreadable_peer_is_refused_and_bad_lists_are_refused_at_load() {
        let f = filter(json!({ "deny": ["192.0.2.0/24"] })).unwrap();
        refused(
            &f,
            &FakeRequest::get("/").client("nonsense"),
            403,
            "ip_forbidden",
        );
        assert!(filter(json!({ "allow": ["10.0.0.0/33"] })).is_err());
        assert!(filter(json!({ "deny": ["not-an-ip"] })).is_err());
        assert!(filter(json!({})).is_err(), "an empty filter is a mistake");
        assert!(
            filter(json!({ "allowed": [] })).is_err(),
            "unknown keys are refused"
        );
    }
}
