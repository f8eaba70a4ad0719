//! The filter's config as operators write it (serde, with defaults), and [`Settings`], the
//! validated whole; each section is validated by the module that runs it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use weir_plugin_sdk::duration;

use crate::breaker::Breaker;
use crate::fallback::Fallback;
use crate::shedding::Shedding;

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

/// The circuit breaker's policy. Durations are written `"10s"`, `"500ms"`; each older
/// `*_ms` spelling still works and reads a number of milliseconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Whether the breaker runs at all (default true).
    pub enabled: bool,
    /// Whose calls it watches: `upstream` (the request's upstream, from every route;
    /// default) or `route` (this route's calls only).
    pub scope: ScopeConfig,
    /// The sliding window the rates are taken over (default 10s; `window_ms`).
    #[serde(alias = "window_ms", with = "duration::ms")]
    pub sliding_window: Duration,
    /// Calls the window must hold before a rate can trip the circuit (default 10).
    pub min_calls: u32,
    /// Failure rate (0..1] that trips the circuit (default 0.5).
    pub failure_rate: f64,
    /// A call slower than this (to the response headers) is slow (default: none, no
    /// slow-call rule; `slow_call_ms`).
    #[serde(alias = "slow_call_ms", with = "duration::ms_opt")]
    pub slow_call: Option<Duration>,
    /// Slow-call rate (0..1] that trips the circuit when `slow_call_ms` is set (default 0.5).
    pub slow_call_rate: f64,
    /// Failures in a row that trip the circuit whatever the window (default: none).
    pub consecutive_failures: Option<u32>,
    /// The first cool-down before probing (default 5s; `open_ms`); it doubles with each
    /// trip until the circuit closes again.
    #[serde(alias = "open_ms", with = "duration::ms")]
    pub cool_down: Duration,
    /// The longest cool-down (default 60s; `max_open_ms`).
    #[serde(alias = "max_open_ms", with = "duration::ms")]
    pub max_cool_down: Duration,
    /// Probes let through in half-open; the circuit closes when all succeed (default 3).
    pub half_open_probes: u32,
    /// A half-open circuit whose probes have not all ended after this long opens again
    /// (default 30s; `probe_timeout_ms`): a probe whose client went away never reports.
    #[serde(alias = "probe_timeout_ms", with = "duration::ms")]
    pub probe_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            scope: ScopeConfig::Upstream,
            sliding_window: Duration::from_secs(10),
            min_calls: 10,
            failure_rate: 0.5,
            slow_call: None,
            slow_call_rate: 0.5,
            consecutive_failures: None,
            cool_down: Duration::from_secs(5),
            max_cool_down: Duration::from_secs(60),
            half_open_probes: 3,
            probe_timeout: Duration::from_secs(30),
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
    /// How long a stored response may be served (default 5m; `ttl_ms`).
    #[serde(default = "default_ttl", alias = "ttl_ms", with = "duration::ms")]
    pub ttl: Duration,
    /// What makes two requests the same: `method`, `path`, `query`, `header:<name>`
    /// (default `["method", "path", "query"]`; the route always is).
    #[serde(default = "default_key")]
    pub key: Vec<String>,
    /// Larger responses are not stored (default 65 536).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Store responses to requests with `Authorization` even when the response does not
    /// say it may be shared (`public`, `s-maxage`, `must-revalidate`); default false.
    #[serde(default)]
    pub store_authorized: bool,
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
    /// Shed when the gateway's recent upstream latency is above this (`max_latency_ms`).
    #[serde(default, alias = "max_latency_ms", with = "duration::ms_opt")]
    pub max_latency: Option<Duration>,
    /// `Retry-After` of a shed 503, in whole seconds (default 1s; `retry_after_s`, a
    /// number of seconds).
    #[serde(default = "retry_1s", alias = "retry_after_s", with = "duration::secs")]
    pub retry_after: Duration,
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

fn default_ttl() -> Duration {
    Duration::from_secs(300)
}

fn default_key() -> Vec<String> {
    ["method", "path", "query"].map(String::from).to_vec()
}

fn default_max_body_bytes() -> usize {
    65_536
}

fn retry_1s() -> Duration {
    Duration::from_secs(1)
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

/// A field name is a `token` (RFC 9110 §5.6.2).
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
