//! `[upstreams.<name>]`: targets, load balancing, health checks and passive ejection.

use serde::Deserialize;

use super::defaults;

/// A named upstream: targets and how to pick one.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The targets, `ip:port` or `host:port` (resolved when the config loads).
    pub targets: Vec<TargetConfig>,
    /// The load-balancing policy (default round robin).
    #[serde(default)]
    pub policy: LbPolicy,
    /// For `consistent_hash`: what to hash (default the client IP).
    #[serde(default)]
    pub hash_on: HashOn,
    /// HTTP/1.1 or HTTP/2 with prior knowledge (h2c) to the targets (default http1).
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Connect timeout (default 1 s).
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time to the response headers (default 30 s); a route may override it.
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Idle keep-alive connections kept per target (default 256).
    #[serde(default = "defaults::pool_idle_per_target")]
    pub pool_idle_per_target: usize,
    /// How long an idle connection is kept (default 90 s).
    #[serde(default = "defaults::pool_idle_timeout_ms")]
    pub pool_idle_timeout_ms: u64,
    /// Active health checks; none when absent.
    pub health_check: Option<HealthCheckConfig>,
    /// Passive ejection of targets that fail in a row.
    #[serde(default)]
    pub passive: PassiveConfig,
    /// TLS to the targets; plain TCP when absent.
    pub tls: Option<UpstreamTlsConfig>,
    /// Requests in flight to the upstream at once, from every route (HTTP/1: its
    /// connections in use); no cap when absent.
    pub max_requests: Option<u32>,
    /// Requests that may wait for one of those places (default: as many as
    /// `max_requests`); beyond them a request is refused at once (503 `overloaded`).
    pub max_pending: Option<u32>,
    /// How long a request waits for a place (default 1000 ms).
    #[serde(default = "defaults::pending_timeout_ms")]
    pub pending_timeout_ms: u64,
    /// When no target is available (every one ejected or failing its health checks),
    /// spread the requests over all of them as if healthy rather than refuse them with 503
    /// (default true: Envoy's panic routing at 0% healthy, nginx's retry of every server
    /// when all have failed), so that a burst of failures on a lone target is no outage.
    #[serde(default = "defaults::yes")]
    pub panic_routing: bool,
}

impl UpstreamConfig {
    /// The cap on requests in flight, as a bulkhead, when `max_requests` is given.
    pub fn bulkhead(&self) -> Option<super::BulkheadConfig> {
        self.max_requests.map(|max| super::BulkheadConfig {
            max_concurrent: max,
            max_queued: self.max_pending,
            queue_timeout_ms: self.pending_timeout_ms,
        })
    }
}

/// One target of an upstream.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum TargetConfig {
    /// Just an address, weight 1.
    Address(String),
    /// An address with a weight.
    Weighted {
        /// `host:port`.
        address: String,
        /// Relative weight (default 1, at most `bounds::MAX_WEIGHT`).
        #[serde(default = "defaults::weight")]
        weight: u32,
    },
}

impl TargetConfig {
    /// The address as written.
    pub fn address(&self) -> &str {
        match self {
            Self::Address(a) | Self::Weighted { address: a, .. } => a,
        }
    }

    /// The weight.
    pub fn weight(&self) -> u32 {
        match self {
            Self::Address(_) => 1,
            Self::Weighted { weight, .. } => *weight,
        }
    }
}

/// Load-balancing policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Each target in turn.
    #[default]
    RoundRobin,
    /// Each target in turn, as often as its weight says (smooth, nginx-style).
    WeightedRoundRobin,
    /// The target with the fewest requests in flight.
    LeastConnections,
    /// A random target, weighted.
    Random,
    /// The same key always goes to the same target while it is healthy.
    ConsistentHash,
}

/// What `consistent_hash` hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashOn {
    /// The client's IP address.
    #[default]
    ClientIp,
    /// The value of a request header (the client IP when absent).
    Header(String),
    /// The value of a cookie (the client IP when absent).
    Cookie(String),
}

/// Protocol spoken to the upstream's targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge.
    H2c,
    /// HTTP/2 over TLS (ALPN `h2`); needs `tls`.
    H2,
}

/// `[upstreams.<name>.tls]`: TLS to the targets (rustls). The targets' certificates are
/// verified against the public web roots and `ca_file`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// The name the targets' certificate must carry, also sent as SNI (default: the
    /// first target's host).
    pub server_name: Option<String>,
    /// A PEM file of CA certificates to trust as well (relative to the config's directory).
    pub ca_file: Option<std::path::PathBuf>,
    /// Whether the public web roots are trusted (default true).
    #[serde(default = "defaults::yes")]
    pub web_roots: bool,
}

/// Active health checks.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// What a check is: an HTTP GET of `path` (default), or a TCP connect (for targets
    /// that speak no HTTP, behind a `[[tcp]]` listener).
    #[serde(default)]
    pub kind: HealthCheckKind,
    /// The path to GET (default `/health`).
    #[serde(default = "defaults::health_path")]
    pub path: String,
    /// Time between checks (default 2 s).
    #[serde(default = "defaults::health_interval_ms")]
    pub interval_ms: u64,
    /// Timeout of one check (default 1 s).
    #[serde(default = "defaults::connect_timeout_ms")]
    pub timeout_ms: u64,
    /// Successes in a row that make an unhealthy target healthy (default 2).
    #[serde(default = "defaults::healthy_threshold")]
    pub healthy_threshold: u32,
    /// Failures in a row that make a healthy target unhealthy (default 3).
    #[serde(default = "defaults::unhealthy_threshold")]
    pub unhealthy_threshold: u32,
}

/// What an active health check does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// GET `path`: a 2xx or 3xx answer within the timeout is healthy.
    #[default]
    Http,
    /// Connect: a connection established within the timeout is healthy (it is closed at
    /// once).
    Tcp,
}

/// Passive ejection: a target that fails this many requests in a row (connect errors,
/// timeouts, 5xx when `on_5xx`) is taken out for `ejection_ms`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PassiveConfig {
    /// Failures in a row that eject a target (default 5; 0 turns ejection off).
    #[serde(default = "defaults::consecutive_failures")]
    pub consecutive_failures: u32,
    /// How long an ejected target stays out (default 10 s).
    #[serde(default = "defaults::ejection_ms")]
    pub ejection_ms: u64,
    /// Count 5xx answers as failures (default true).
    #[serde(default = "defaults::yes")]
    pub on_5xx: bool,
}

impl Default for PassiveConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: defaults::consecutive_failures(),
            ejection_ms: defaults::ejection_ms(),
            on_5xx: true,
        }
    }
}
