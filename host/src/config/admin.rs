//! The admin API's settings: which `Host` names it answers to (a DNS-rebinding defence),
//! its token, and which of its settings only a restart may change.

use std::net::IpAddr;

use anyhow::bail;
use ipnet::IpNet;

use super::ServerConfig;

/// The host names the admin API answers to when `server.admin_hosts` is not set (the admin
/// listen address is always allowed as well).
pub const DEFAULT_ADMIN_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// One allowed `Host`: a name, and a port when the entry gave one (any port otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses `name`, `name:port`, `[v6]` or `[v6]:port`; `None` when malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?.parse().ok()?),
            };
            if inside.is_empty()
                || !inside
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return None;
            }
            (format!("[{}]", inside.to_ascii_lowercase()), port)
        } else {
            let (host, port) = match text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port.parse().ok()?)),
                None => (text, None),
            };
            let host = host.strip_suffix('.').unwrap_or(host);
            let valid = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
            if !valid {
                return None;
            }
            (host.to_ascii_lowercase(), port)
        };
        Some(Self { host, port })
    }

    /// Whether a presented authority (a `Host` value, already parsed) is allowed by this
    /// pattern.
    fn allows(&self, presented: &HostPattern) -> bool {
        self.host == presented.host && self.port.is_none_or(|p| presented.port == Some(p))
    }
}

/// One entry of the allow-list: a host (with or without a port), or a network whose
/// addresses are allowed when a client names one as its `Host` (such as the pod addresses
/// a scraper in a cluster uses). An address literal cannot be rebound, so a network opens
/// nothing to DNS rebinding.
#[derive(Debug, Clone)]
enum Allowed {
    Host(HostPattern),
    Network(IpNet),
}

impl Allowed {
    fn parse(text: &str) -> Option<Self> {
        match text.trim().parse::<IpNet>() {
            Ok(network) => Some(Self::Network(network)),
            Err(_) => HostPattern::parse(text).map(Self::Host),
        }
    }

    fn allows(&self, presented: &HostPattern) -> bool {
        match self {
            Self::Host(pattern) => pattern.allows(presented),
            Self::Network(network) => {
                let literal = presented.host.trim_start_matches('[').trim_end_matches(']');
                literal
                    .parse::<IpAddr>()
                    .is_ok_and(|address| network.contains(&address))
            }
        }
    }
}

/// The `Host` allow-list of the admin API.
#[derive(Debug, Clone)]
pub struct AdminHosts(Vec<Allowed>);

impl AdminHosts {
    /// The allow-list of a server config: `admin_hosts` (or the defaults) plus the admin
    /// listen address with its port.
    pub fn of(server: &ServerConfig) -> Self {
        let mut patterns: Vec<Allowed> = match &server.admin_hosts {
            Some(hosts) => hosts.iter().filter_map(|h| Allowed::parse(h)).collect(),
            None => DEFAULT_ADMIN_HOSTS
                .iter()
                .filter_map(|h| Allowed::parse(h))
                .collect(),
        };
        let admin = server.admin;
        if !admin.ip().is_unspecified() {
            let host = match admin.ip() {
                std::net::IpAddr::V4(ip) => ip.to_string(),
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            };
            // Port 0 asks the OS for a port: the one it gave is not known here.
            let port = (admin.port() != 0).then_some(admin.port());
            patterns.push(Allowed::Host(HostPattern { host, port }));
        }
        Self(patterns)
    }

    /// Whether an authority a client presented (`Host`, `:authority`, or an `Origin`'s
    /// host) is allowed.
    pub fn allows(&self, authority: &str) -> bool {
        HostPattern::parse(authority)
            .is_some_and(|presented| self.0.iter().any(|p| p.allows(&presented)))
    }
}

/// Checks the admin settings of `[server]` when a config loads.
pub fn validate(server: &ServerConfig) -> anyhow::Result<()> {
    match &server.admin_token {
        None if !server.admin.ip().is_loopback() => bail!(
            "server.admin {} is not a loopback address: set server.admin_token",
            server.admin
        ),
        Some(token) => {
            let value = token
                .resolve("server.admin_token")
                .map_err(anyhow::Error::msg)?;
            if value.iter().all(u8::is_ascii_whitespace) {
                bail!("server.admin_token is empty: give a token, or remove the key");
            }
            if value.iter().any(|b| !b.is_ascii_graphic()) {
                bail!("server.admin_token must be printable ASCII without spaces");
            }
        }
        None => {}
    }
    if let Some(hosts) = &server.admin_hosts {
        for host in hosts {
            if Allowed::parse(host).is_none() {
                bail!(
                    "server.admin_hosts: {host:?} is not a host name, `host:port`, `[v6]` or a network (`10.0.0.0/8`)"
                );
            }
        }
    }
    Ok(())
}

/// Why a reload from `live` to `new` cannot be applied without a restart, if it cannot:
/// the admin listener and its token are fixed for the life of the process, so that whoever
/// can write the config file cannot open the admin API to the network or swap its token
/// underneath the operator.
pub fn restart_required(live: &ServerConfig, new: &ServerConfig) -> Option<String> {
    if live.admin != new.admin {
        return Some(format!(
            "server.admin changed ({} to {}): restart the gateway to apply it",
            live.admin, new.admin
        ));
    }
    if live.admin_token != new.admin_token {
        return Some("server.admin_token changed: restart the gateway to apply it".to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: Option<&[&str]>, admin: &str) -> AdminHosts {
        let mut server = crate::config::Config::empty().server;
        server.admin = admin.parse().unwrap();
        server.admin_hosts = list.map(|l| l.iter().map(|s| s.to_string()).collect());
        AdminHosts::of(&server)
    }

    #[test]
    fn default_hosts_are_loopback_names_on_any_port() {
        let allowed = hosts(None, "127.0.0.1:9901");
        for ok in [
            "localhost",
            "LOCALHOST:9901",
            "127.0.0.1:1234",
            "[::1]:9901",
            "localhost.",
        ] {
            assert!(allowed.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "127.0.0.1.nip.io",
            "localhost.evil",
            "",
            "[::1",
            "a b",
        ] {
            assert!(!allowed.allows(bad), "{bad}");
        }
    }

    #[test]
    fn a_network_allows_the_address_literals_in_it_and_no_names() {
        let allowed = hosts(
            Some(&["10.0.0.0/8", "fd00::/8", "weir.internal"]),
            "0.0.0.0:9901",
        );
        for ok in [
            "10.1.2.3:9901",
            "10.255.0.1",
            "[fd00::1]:9901",
            "weir.internal",
        ] {
            assert!(allowed.allows(ok), "{ok}");
        }
        for bad in [
            "11.0.0.1:9901",
            "[fe80::1]",
            "10.1.2.3.nip.io",
            "localhost",
            "0.0.0.0",
        ] {
            assert!(!allowed.allows(bad), "{bad}");
        }
    }

    #[test]
    fn an_empty_token_is_refused() {
        let parse = |extra: &str| {
            let text =
                format!("[server]\nlisten = [\"127.0.0.1:1\"]\nplugins_dir = \".\"\n{extra}");
            crate::config::Config::parse(&text, ".".into())
        };
        for token in ["\"\"", "\"  \"", "\"two words\"", "\"line\\n\""] {
            let refused = parse(&format!("admin_token = {{ value = {token} }}\n")).unwrap_err();
            assert!(
                refused.to_string().contains("admin_token"),
                "{token}: {refused}"
            );
        }
        assert!(parse("admin_token = { value = \"s3cret-Token\" }\n").is_ok());
        let bad_host = parse("admin_hosts = [\"evil host\"]\n").unwrap_err();
        assert!(bad_host.to_string().contains("admin_hosts"), "{bad_host}");
    }

    #[test]
    fn admin_and_its_token_need_a_restart() {
        let live = crate::config::Config::empty().server;
        let mut new = live.clone();
        assert_eq!(restart_required(&live, &new), None);
        new.admin_hosts = Some(vec!["admin.internal".into()]);
        assert_eq!(restart_required(&live, &new), None, "admin_hosts reloads");
        new.admin_token = Some(crate::config::SecretConfig::Value("t".into()));
        assert!(restart_required(&live, &new).is_some_and(|m| m.contains("admin_token")));
        let mut moved = live.clone();
        moved.admin = "127.0.0.1:9902".parse().unwrap();
        assert!(restart_required(&live, &moved).is_some_and(|m| m.contains("server.admin")));
    }

    #[test]
    fn the_admin_address_is_allowed_with_its_port() {
        let allowed = hosts(Some(&["admin.internal"]), "10.0.0.5:9901");
        assert!(allowed.allows("10.0.0.5:9901"));
        assert!(!allowed.allows("10.0.0.5:80"));
        assert!(allowed.allows("admin.internal:443"));
        assert!(
            !allowed.allows("localhost"),
            "a configured list replaces the defaults"
        );
    }
}
