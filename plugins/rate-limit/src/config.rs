//! The filter's config, as operators write it, and its validation.

use std::time::Duration;

use serde::Deserialize;
use weir_plugin_sdk::duration;
use weir_plugin_sdk::host::limits::{Algorithm, Policy};

use crate::key::KeyPart;
use weir_plugin_sdk::client_ip::TrustedProxies;

/// The config as written in the gateway config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The limits; a request must fit all of them.
    pub limits: Vec<LimitConfig>,
    /// What identifies a caller: any of `client_ip`, `consumer`, `route`, `header:<name>`,
    /// combined (default `["client_ip"]`).
    #[serde(default = "default_key")]
    pub key: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed (CIDRs or addresses; default none).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Budgets are shared by the routes that give the same namespace (default: the route).
    pub namespace: Option<String>,
    /// Units each request costs (default 1).
    #[serde(default = "default_cost")]
    pub cost: u32,
    /// Send `RateLimit-Policy` and `RateLimit` on every response (default true).
    #[serde(default = "yes")]
    pub headers: bool,
    /// When the state backend refuses (Redis down with `on_unavailable = "reject"`):
    /// `deny` answers 503 (the default), `allow` lets the request through.
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
}

/// One limit: `limit` units per `window`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Units per window.
    pub limit: u64,
    /// The window, in the SDK's duration format: `1s`, `500ms`, `1m`, `1h`, `1d`.
    pub window: String,
    /// `token_bucket` (default), `sliding_window` or `fixed_window`.
    #[serde(default)]
    pub algorithm: AlgorithmConfig,
    /// The policy's name in the `RateLimit` fields (default `<limit>-per-<window>`).
    pub name: Option<String>,
}

/// The algorithms, as written in config.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmConfig {
    /// Bursts up to `limit`, refilled continuously.
    #[default]
    TokenBucket,
    /// At most `limit` in any window.
    SlidingWindow,
    /// At most `limit` per clock-aligned window.
    FixedWindow,
}

/// What to do when the backend cannot decide.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// 503 with `Retry-After`.
    #[default]
    Deny,
    /// Let the request through unlimited.
    Allow,
}

fn default_key() -> Vec<String> {
    vec!["client_ip".to_string()]
}

fn default_cost() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// A validated limit.
#[derive(Debug)]
pub struct Limit {
    /// Its name in the fields and in the budget key.
    pub name: String,
    /// What the host's `limits` interface is asked.
    pub policy: Policy,
}

/// The validated config.
#[derive(Debug)]
pub struct Settings {
    /// The limits, in config order.
    pub limits: Vec<Limit>,
    /// Indices into `limits`, shortest window first: the order budgets are taken in.
    pub evaluation_order: Vec<usize>,
    /// The caller key's parts.
    pub key: Vec<KeyPart>,
    /// Trusted proxies for the client IP.
    pub trusted: TrustedProxies,
    /// The budget namespace (`None`: the route).
    pub namespace: Option<String>,
    /// Units per request.
    pub cost: u32,
    /// Whether to send the `RateLimit` fields.
    pub headers: bool,
    /// The outage policy.
    pub on_unavailable: OnUnavailable,
    /// The `RateLimit-Policy` value, rendered once.
    pub policy_field: String,
}

impl Settings {
    /// Validates `config`, naming the offending entry in the error.
    pub fn from_config(config: Config) -> Result<Self, String> {
        if config.limits.is_empty() {
            return Err("limits: give at least one limit".to_string());
        }
        if config.cost == 0 {
            return Err("cost must be at least 1".to_string());
        }
        let mut limits = Vec::new();
        for (i, limit) in config.limits.iter().enumerate() {
            let window =
                duration::parse(&limit.window).map_err(|e| format!("limits[{i}].window: {e}"))?;
            limits.push(Limit::new(limit, window).map_err(|e| format!("limits[{i}]: {e}"))?);
        }
        let key = config
            .key
            .iter()
            .map(|k| KeyPart::parse(k))
            .collect::<Result<Vec<_>, _>>()?;
        if key.is_empty() {
            return Err("key: give at least one part".to_string());
        }
        let policy_field = crate::fields::policy_field(&limits);
        let mut evaluation_order: Vec<usize> = (0..limits.len()).collect();
        evaluation_order.sort_by_key(|&i| limits[i].policy.window_ms);
        Ok(Self {
            limits,
            evaluation_order,
            key,
            trusted: TrustedProxies::parse(&config.trusted_proxies)?,
            namespace: config.namespace,
            cost: config.cost,
            headers: config.headers,
            on_unavailable: config.on_unavailable,
            policy_field,
        })
    }
}

impl Limit {
    fn new(config: &LimitConfig, window: Duration) -> Result<Self, String> {
        let window_ms = duration::millis(window);
        if window_ms == 0 {
            return Err("window must be at least 1ms".to_string());
        }
        if config.limit == 0 {
            return Err("limit must be at least 1".to_string());
        }
        let name = match &config.name {
            Some(name) if name.is_empty() || !name.bytes().all(|b| (0x20..0x7f).contains(&b)) => {
                return Err(format!("name {name:?} must be printable ASCII"));
            }
            Some(name) => name.clone(),
            None => format!("{}-per-{}", config.limit, config.window.replace(' ', "")),
        };
        let algorithm = match config.algorithm {
            AlgorithmConfig::TokenBucket => Algorithm::TokenBucket,
            AlgorithmConfig::SlidingWindow => Algorithm::SlidingWindow,
            AlgorithmConfig::FixedWindow => Algorithm::FixedWindow,
        };
        Ok(Self {
            name,
            policy: Policy {
                algorithm,
                limit: config.limit,
                window_ms,
            },
        })
    }
}
