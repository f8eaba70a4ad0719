//! The filter's config, as operators write it, and its validation into [`Settings`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::cache::KeyPart;

/// The config as written in the gateway config. Every section has defaults: `{}` is a
/// circuit breaker per upstream with no fallback and no shedding.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The circuit breaker (on by default).
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// What to answer with while degraded (default none: a 503 while the circuit is open).
    pub fallback: Option<FallbackConfig>,
    /// Load shedding (default none: the route is never shed).
    pub shedding: Option<SheddingConfig>,
    /// The header that marks a degraded answer (default `x-weir-degraded`).
    #[serde(default = "default_degraded_header")]
    pub degraded_header: String,
}

/// The circuit breaker's policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Whether the breaker runs at all (default true).
    pub enabled: bool,
    /// Whose calls it watches: `upstream` (the request's upstream, from every route;
    /// default) or `route` (this route's calls only).
    pub scope: ScopeConfig,
    /// The sliding window the rates are taken over, in ms (default 10 000).
    pub window_ms: u32,
    /// Calls the window must hold before a rate can trip the circuit (default 10).
    pub min_calls: u32,
    /// Failure rate (0..1] that trips the circuit (default 0.5).
    pub failure_rate: f64,
    /// A call slower than this (to the response headers) is slow (default: none, no
    /// slow-call rule).
    pub slow_call_ms: Option<u32>,
    /// Slow-call rate (0..1] that trips the circuit when `slow_call_ms` is set (default 0.5).
    pub slow_call_rate: f64,
    /// Failures in a row that trip the circuit whatever the window (default: none).
    pub consecutive_failures: Option<u32>,
    /// The first cool-down before probing, in ms (default 5 000); it doubles with each trip
    /// until the circuit closes again.
    pub open_ms: u64,
    /// The longest cool-down, in ms (default 60 000).
    pub max_open_ms: u64,
    /// Probes let through in half-open; the circuit closes when all succeed (default 3).
    pub half_open_probes: u32,
    /// A half-open circuit whose probes have not all ended after this long opens again, in
    /// ms (default 30 000): a probe whose client went away never reports.
    pub probe_timeout_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            scope: ScopeConfig::Upstream,
            window_ms: 10_000,
            min_calls: 10,
            failure_rate: 0.5,
            slow_call_ms: None,
            slow_call_rate: 0.5,
            consecutive_failures: None,
            open_ms: 5_000,
            max_open_ms: 60_000,
            half_open_probes: 3,
            probe_timeout_ms: 30_000,
        }
    }
}

/// Whose calls a breaker watches.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeConfig {
    /// The request's upstream, whichever route called it.
    #[default]
    Upstream,
    /// This route's upstream calls.
    Route,
}

/// The fallback: a fixed response, or the last good response for the same key.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FallbackConfig {
    /// Always this response.
    Static(StaticConfig),
    /// The last 2xx response for the same cache key.
    Cache(CacheConfig),
}

/// A fixed response.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// Its status (default 200).
    #[serde(default = "default_status")]
    pub status: u16,
    /// Its headers (default none).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Its body (default empty).
    #[serde(default)]
    pub body: String,
}

/// The last-good-response cache.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long a stored response may be served, in ms (default 300 000).
    #[serde(default = "default_ttl_ms")]
    pub ttl_ms: u64,
    /// What makes two requests the same: `method`, `path`, `query`, `header:<name>`
    /// (default `["method", "path", "query"]`; the route always is).
    #[serde(default = "default_key")]
    pub key: Vec<String>,
    /// Larger responses are not stored (default 65 536).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// What to serve when nothing is stored (default none: a 503 while the circuit is
    /// open, the upstream's error as it is otherwise).
    pub when_empty: Option<StaticConfig>,
}

/// Load shedding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SheddingConfig {
    /// `core` (never shed) or `non-core` (shed under load).
    pub class: RouteClass,
    /// Shed when more requests than this are in flight gateway-wide, this one included.
    pub max_in_flight: Option<u32>,
    /// Shed when the gateway's recent upstream latency is above this, in ms.
    pub max_latency_ms: Option<u32>,
    /// `Retry-After` of a shed 503, in seconds (default 1).
    #[serde(default = "default_retry_after_s")]
    pub retry_after_s: u32,
}

/// How a route fares under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteClass {
    /// Always served.
    Core,
    /// Shed when the gateway is overloaded.
    NonCore,
}

fn default_degraded_header() -> String {
    "x-weir-degraded".to_string()
}

fn default_status() -> u16 {
    200
}

fn default_ttl_ms() -> u64 {
    300_000
}

fn default_key() -> Vec<String> {
    ["method", "path", "query"].map(String::from).to_vec()
}

fn default_max_body_bytes() -> usize {
    65_536
}

fn default_retry_after_s() -> u32 {
    1
}

/// A validated breaker.
#[derive(Debug)]
pub struct Breaker {
    /// Whose calls it watches.
    pub scope: ScopeConfig,
    /// The window, in ms.
    pub window_ms: u32,
    /// Calls needed before a rate counts.
    pub min_calls: u32,
    /// Failure rate that trips.
    pub failure_rate: f64,
    /// The slow-call rule: threshold in ms and rate that trips.
    pub slow: Option<(u32, f64)>,
    /// Failures in a row that trip.
    pub consecutive_failures: Option<u32>,
    /// First cool-down, in ms.
    pub open_ms: u64,
    /// Longest cool-down, in ms.
    pub max_open_ms: u64,
    /// Probes in half-open.
    pub half_open_probes: u32,
    /// How long probes may take, in ms.
    pub probe_timeout_ms: u64,
}

/// A validated fallback.
#[derive(Debug)]
pub enum Fallback {
    /// A fixed response.
    Static(StaticConfig),
    /// The last good response.
    Cache(Cache),
}

/// A validated cache fallback.
#[derive(Debug)]
pub struct Cache {
    /// TTL of a stored response, in ms.
    pub ttl_ms: u64,
    /// The key's parts.
    pub key: Vec<KeyPart>,
    /// The largest body stored.
    pub max_body_bytes: usize,
    /// Served when nothing is stored.
    pub when_empty: Option<StaticConfig>,
}

/// Validated shedding of a non-core route (a core route needs nothing at run time).
#[derive(Debug)]
pub struct Shedding {
    /// In-flight limit.
    pub max_in_flight: Option<u32>,
    /// Latency limit, in ms.
    pub max_latency_ms: Option<u32>,
    /// `Retry-After` of a shed 503.
    pub retry_after_s: u32,
}

/// The validated config.
#[derive(Debug)]
pub struct Settings {
    /// The breaker, unless disabled.
    pub breaker: Option<Breaker>,
    /// The fallback, if any.
    pub fallback: Option<Fallback>,
    /// Shedding, for a non-core route.
    pub shedding: Option<Shedding>,
    /// The marking header's name, lower case.
    pub degraded_header: String,
}

impl Settings {
    /// Validates `config`, naming the offending key in the error.
    pub fn from_config(config: Config) -> Result<Self, String> {
        if !is_token(&config.degraded_header) {
            return Err(format!(
                "degraded_header {:?} is not a header name",
                config.degraded_header
            ));
        }
        Ok(Self {
            breaker: Breaker::from_config(config.breaker)?,
            fallback: config.fallback.map(Fallback::from_config).transpose()?,
            shedding: config
                .shedding
                .map(Shedding::from_config)
                .transpose()?
                .flatten(),
            degraded_header: config.degraded_header.to_ascii_lowercase(),
        })
    }
}

impl Breaker {
    fn from_config(c: BreakerConfig) -> Result<Option<Self>, String> {
        if !c.enabled {
            return Ok(None);
        }
        let rate = |key: &str, value: f64| match value > 0.0 && value <= 1.0 {
            true => Ok(value),
            false => Err(format!("breaker.{key} must be in (0, 1], not {value}")),
        };
        let at_least_one = |key: &str, value: u64| match value >= 1 {
            true => Ok(()),
            false => Err(format!("breaker.{key} must be at least 1")),
        };
        at_least_one("window_ms", c.window_ms.into())?;
        at_least_one("min_calls", c.min_calls.into())?;
        at_least_one("open_ms", c.open_ms)?;
        at_least_one("half_open_probes", c.half_open_probes.into())?;
        at_least_one("probe_timeout_ms", c.probe_timeout_ms)?;
        if let Some(n) = c.consecutive_failures {
            at_least_one("consecutive_failures", n.into())?;
        }
        if c.max_open_ms < c.open_ms {
            return Err("breaker.max_open_ms must be at least open_ms".to_string());
        }
        let slow_call_rate = rate("slow_call_rate", c.slow_call_rate)?;
        Ok(Some(Self {
            scope: c.scope,
            window_ms: c.window_ms,
            min_calls: c.min_calls,
            failure_rate: rate("failure_rate", c.failure_rate)?,
            slow: c.slow_call_ms.map(|ms| (ms, slow_call_rate)),
            consecutive_failures: c.consecutive_failures,
            open_ms: c.open_ms,
            max_open_ms: c.max_open_ms,
            half_open_probes: c.half_open_probes,
            probe_timeout_ms: c.probe_timeout_ms,
        }))
    }
}

impl Fallback {
    fn from_config(config: FallbackConfig) -> Result<Self, String> {
        match config {
            FallbackConfig::Static(s) => Ok(Self::Static(checked_static("fallback", s)?)),
            FallbackConfig::Cache(c) => {
                if c.ttl_ms == 0 {
                    return Err("fallback.ttl_ms must be at least 1".to_string());
                }
                let key = c
                    .key
                    .iter()
                    .map(|k| KeyPart::parse(k))
                    .collect::<Result<Vec<_>, _>>()?;
                let when_empty = c
                    .when_empty
                    .map(|s| checked_static("fallback.when_empty", s))
                    .transpose()?;
                Ok(Self::Cache(Cache {
                    ttl_ms: c.ttl_ms,
                    key,
                    max_body_bytes: c.max_body_bytes,
                    when_empty,
                }))
            }
        }
    }
}

impl Shedding {
    fn from_config(c: SheddingConfig) -> Result<Option<Self>, String> {
        if c.class == RouteClass::Core {
            return Ok(None);
        }
        if c.max_in_flight.is_none() && c.max_latency_ms.is_none() {
            return Err(
                "shedding: a non-core route needs max_in_flight or max_latency_ms".to_string(),
            );
        }
        Ok(Some(Self {
            max_in_flight: c.max_in_flight,
            max_latency_ms: c.max_latency_ms,
            retry_after_s: c.retry_after_s,
        }))
    }
}

/// A static response with a real status and headers the gateway can send.
fn checked_static(at: &str, s: StaticConfig) -> Result<StaticConfig, String> {
    if !(200..=599).contains(&s.status) {
        return Err(format!("{at}.status must be 200..=599, not {}", s.status));
    }
    for (name, value) in &s.headers {
        if !is_token(name) {
            return Err(format!("{at}.headers: {name:?} is not a header name"));
        }
        // RFC 9110 §5.5: visible ASCII, spaces and tabs (no CR, LF or NUL).
        if !value
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            return Err(format!(
                "{at}.headers.{name}: the value has control characters"
            ));
        }
    }
    Ok(s)
}

/// A field name is a `token` (RFC 9110 §5.6.2).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
