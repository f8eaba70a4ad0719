//! The filter's config, as operators write it, and its validation into [`Settings`].

use std::collections::BTreeSet;

use serde::Deserialize;
use weir_plugin_sdk::client_ip::TrustedProxies;

use crate::bucket::{self, BUCKETS};

/// The most consumers `canary_consumers` may list.
pub const MAX_CANARY_CONSUMERS: usize = 10_000;

/// The config as written in the gateway config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The canary's upstream (required).
    pub canary: String,
    /// The stable side's upstream (default: the route's own upstream).
    #[serde(default)]
    pub stable: Option<String>,
    /// The canary's share in percent, 0 to 100, to two decimals (required).
    pub weight: f64,
    /// What keeps a user on one side: `header:<name>`, `cookie:<name>`, `consumer` or
    /// `client_ip` (required).
    pub sticky: String,
    /// Mixed into the hash, so that rollouts slice users differently (default: the
    /// canary's name).
    #[serde(default)]
    pub salt: Option<String>,
    /// Where a request without a sticky key goes: `stable` (the default) or `random` (by
    /// weight, per request).
    #[serde(default)]
    pub unkeyed: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed, for `sticky = "client_ip"` (default
    /// none).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// A header and a cookie whose value (`stable` or `canary`) forces the side (default
    /// none).
    #[serde(default, rename = "override")]
    pub overrides: Overrides,
    /// Consumers (the `consumer` variable an auth filter sets) always sent to the canary
    /// (default none; at most [`MAX_CANARY_CONSUMERS`]).
    #[serde(default)]
    pub canary_consumers: Vec<String>,
    /// A response header that tells the client its side (default none: no header).
    #[serde(default)]
    pub response_header: Option<String>,
}

/// Where a request without a sticky key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unkeyed {
    /// To the stable side: the canary sees only users it can keep.
    Stable,
    /// To either side by weight, decided per request (from the request id).
    Random,
}

impl Unkeyed {
    /// Parses `stable` or `random`; `stable` when not given.
    fn parse(text: Option<&str>) -> Result<Self, String> {
        match text {
            None | Some("stable") => Ok(Self::Stable),
            Some("random") => Ok(Self::Random),
            Some(other) => Err(format!("unkeyed: {other:?} is not stable or random")),
        }
    }
}

/// The explicit overrides of the side.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// A request header whose value `stable` or `canary` forces the side.
    pub header: Option<String>,
    /// A cookie whose value `stable` or `canary` forces the side.
    pub cookie: Option<String>,
}

/// What keeps a user on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    /// A request header's value (lower-case name).
    Header(String),
    /// A cookie's value.
    Cookie(String),
    /// The `consumer` variable an auth filter set earlier in the chain.
    Consumer,
    /// The client's address, behind the trusted proxies.
    ClientIp,
}

impl Sticky {
    /// Parses `header:<name>`, `cookie:<name>`, `consumer` or `client_ip`.
    fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("sticky: {text:?} is not header:<name>, cookie:<name>, consumer or client_ip")
        };
        match text {
            "consumer" => Ok(Self::Consumer),
            "client_ip" => Ok(Self::ClientIp),
            _ => match text.split_once(':') {
                Some(("header", name)) => header_name("sticky", name).map(Self::Header),
                Some(("cookie", name)) => cookie_name("sticky", name).map(Self::Cookie),
                _ => Err(bad()),
            },
        }
    }
}

/// The config, checked and ready for requests.
#[derive(Debug)]
pub struct Settings {
    /// The canary's upstream.
    pub canary: String,
    /// The stable side's upstream; `None` leaves the route's own.
    pub stable: Option<String>,
    /// The canary's weight in basis points (0 to 10000).
    pub weight: u32,
    /// What keeps a user on one side.
    pub sticky: Sticky,
    /// The hash seed, from the salt.
    pub seed: u64,
    /// Where a request without a sticky key goes.
    pub unkeyed: Unkeyed,
    /// The trusted proxies, for [`Sticky::ClientIp`].
    pub trusted: TrustedProxies,
    /// The override header (lower-case), if any.
    pub override_header: Option<String>,
    /// The override cookie, if any.
    pub override_cookie: Option<String>,
    /// The consumers always on the canary.
    pub canary_consumers: BTreeSet<String>,
    /// The response header that tells the side (lower-case), if any.
    pub response_header: Option<String>,
}

impl Settings {
    /// Checks `config`; the error names the key at fault.
    pub fn from_config(config: Config) -> Result<Self, String> {
        let canary = upstream_name("canary", config.canary)?;
        let stable = (config.stable)
            .map(|name| upstream_name("stable", name))
            .transpose()?;
        if stable.as_deref() == Some(canary.as_str()) {
            return Err(format!("stable: {canary:?} is the canary's upstream too"));
        }
        let sticky = Sticky::parse(&config.sticky)?;
        if sticky != Sticky::ClientIp && !config.trusted_proxies.is_empty() {
            return Err("trusted_proxies: read only with sticky = \"client_ip\"".into());
        }
        if config.canary_consumers.len() > MAX_CANARY_CONSUMERS {
            return Err(format!(
                "canary_consumers: {} entries, at most {MAX_CANARY_CONSUMERS}",
                config.canary_consumers.len()
            ));
        }
        if config.canary_consumers.iter().any(String::is_empty) {
            return Err("canary_consumers: an empty consumer id".into());
        }
        let overrides = config.overrides;
        Ok(Self {
            weight: basis_points(config.weight)?,
            seed: bucket::seed(config.salt.as_deref().unwrap_or(&canary)),
            canary,
            stable,
            sticky,
            unkeyed: Unkeyed::parse(config.unkeyed.as_deref())?,
            trusted: TrustedProxies::parse(&config.trusted_proxies)?,
            override_header: (overrides.header.as_deref())
                .map(|name| header_name("override.header", name))
                .transpose()?,
            override_cookie: (overrides.cookie.as_deref())
                .map(|name| cookie_name("override.cookie", name))
                .transpose()?,
            canary_consumers: config.canary_consumers.into_iter().collect(),
            response_header: (config.response_header.as_deref())
                .map(|name| header_name("response_header", name))
                .transpose()?,
        })
    }
}

/// A weight in percent (`5`, `0.25`) as basis points; at most two decimals.
fn basis_points(percent: f64) -> Result<u32, String> {
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!(
            "weight: {percent} is not a percentage from 0 to 100"
        ));
    }
    let points = percent * 100.0;
    if (points - points.round()).abs() > 1e-6 {
        return Err(format!(
            "weight: {percent} has more than two decimals (the step is 0.01%)"
        ));
    }
    // In range by the check above: 0 to BUCKETS.
    Ok((points.round() as u32).min(BUCKETS))
}

/// An upstream name: not empty. Whether the gateway has it is known only when a request
/// goes there (see `docs/plugins/gray-release.md`).
fn upstream_name(key: &str, name: String) -> Result<String, String> {
    match name.trim().is_empty() {
        true => Err(format!("{key}: an upstream name is required")),
        false => Ok(name),
    }
}

/// A header name (RFC 9110 §5.1: a token), lower-cased.
fn header_name(key: &str, name: &str) -> Result<String, String> {
    match is_token(name) {
        true => Ok(name.to_ascii_lowercase()),
        false => Err(format!("{key}: {name:?} is not a header name")),
    }
}

/// A cookie name (RFC 6265 §4.1.1: a token).
fn cookie_name(key: &str, name: &str) -> Result<String, String> {
    match is_token(name) {
        true => Ok(name.to_string()),
        false => Err(format!("{key}: {name:?} is not a cookie name")),
    }
}

/// An RFC 9110 §5.6.2 token: one or more of `!#$%&'*+-.^_`|~`, digits and letters.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
