//! The gateway config: one TOML file. Every limit, timeout and size has a documented
//! default here (see `docs/configuration.md`); none is buried in the request path.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

pub mod admin;
pub mod bounds;
mod limits;
mod paths;
pub mod sandbox;
pub mod state;

pub use limits::LimitsConfig;
pub use paths::{EscapedSlashes, PathParameters, PathPolicy};

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners, admin address, plugins directory.
    pub server: ServerConfig,
    /// Defaults and limits of the plugin runtime.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Named upstreams.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Routes, matched in order; the first match wins.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Named secrets that plugins may be granted.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretConfig>,
    /// Where plugin state (`kv`, `limits`) lives. Changing it needs a restart.
    #[serde(default)]
    pub state: StateConfig,
    /// The directory the config file lives in; relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Listeners and process-wide settings. Changing `listen` or `admin` needs a restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Addresses to serve HTTP/1.1 and HTTP/2 (h2c) on.
    pub listen: Vec<SocketAddr>,
    /// The admin listener's address (default `127.0.0.1:9901`).
    #[serde(default = "defaults::admin")]
    pub admin: SocketAddr,
    /// A bearer token the admin API requires; mandatory when `admin` is not loopback.
    pub admin_token: Option<SecretConfig>,
    /// The `Host` names the admin API answers to (default `localhost`, `127.0.0.1`, `[::1]`;
    /// the admin address itself is always allowed).
    pub admin_hosts: Option<Vec<String>>,
    /// The directory of `.wasm` filter plugins, watched for changes.
    pub plugins_dir: PathBuf,
    /// Where compiled plugins are cached (default `<config dir>/.weir-cache`; never inside
    /// `plugins_dir`, see [`sandbox::cache_dir`]).
    pub cache_dir: Option<PathBuf>,
    /// The per-install key that authenticates cached artifacts (default `<cache_dir>.key`).
    pub cache_key_file: Option<PathBuf>,
    /// Also serve the built-in echo upstream at this address (for demos and benchmarks).
    pub demo_upstream: Option<SocketAddr>,
    /// How long in-flight requests may take to finish after SIGTERM (default 30 s).
    #[serde(default = "defaults::shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Keep a client's `x-request-id` when it sends one (default false: a client could
    /// otherwise make its requests hard to tell apart in the logs).
    #[serde(default)]
    pub trust_request_id: bool,
    /// Watch the config file and the plugins directory and reload on change (default true).
    #[serde(default = "defaults::yes")]
    pub watch: bool,
    /// Proxy worker threads, each with its own runtime, listener (`SO_REUSEPORT`) and
    /// upstream connections (default: one per core).
    pub workers: Option<usize>,
    /// How request paths are normalised before routing (`[server.paths]`).
    #[serde(default)]
    pub paths: PathPolicy,
    /// Connections, timeouts and buffered bytes (`[server.limits]`).
    #[serde(default)]
    pub limits: LimitsConfig,
}

impl ServerConfig {
    /// The number of proxy worker threads.
    pub fn workers(&self) -> usize {
        self.workers
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// Defaults for filters and limits of the Wasm runtime.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Default wall-clock budget of one filter call, host calls included (default 20 ms).
    #[serde(default = "defaults::deadline_ms")]
    pub deadline_ms: u64,
    /// Default linear-memory cap of one filter instance (default 32 MiB).
    #[serde(default = "defaults::memory_mib")]
    pub memory_mib: u64,
    /// Default largest body buffered for a filter that asked for it (default 1 MiB).
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Warm instances kept per configured filter (default 64).
    #[serde(default = "defaults::pool_max_idle")]
    pub pool_max_idle: usize,
    /// Instance slots of the pooling allocator, shared by all filters (default 1000).
    #[serde(default = "defaults::max_instances")]
    pub max_instances: u32,
    /// The largest memory cap any filter may ask for (default 512 MiB).
    #[serde(default = "defaults::max_memory_mib")]
    pub max_memory_mib: u64,
    /// The shortest wall-clock stop of any plugin call (default 1 s; ten deadlines if longer).
    #[serde(default = "sandbox::default_wall_clock_ms")]
    pub wall_clock_ms: u64,
    /// Idle instances kept by all filters together (default `max_instances / 2`).
    pub max_idle_instances: Option<u32>,
    /// Bounds on what a plugin call returns.
    #[serde(default)]
    pub results: sandbox::ResultLimits,
    /// Back-off of filters that keep failing.
    #[serde(default)]
    pub backoff: sandbox::BackoffConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            deadline_ms: defaults::deadline_ms(),
            memory_mib: defaults::memory_mib(),
            max_body_bytes: defaults::max_body_bytes(),
            pool_max_idle: defaults::pool_max_idle(),
            max_instances: defaults::max_instances(),
            max_memory_mib: defaults::max_memory_mib(),
            wall_clock_ms: sandbox::default_wall_clock_ms(),
            max_idle_instances: None,
            results: Default::default(),
            backoff: Default::default(),
        }
    }
}

/// Where plugin state lives: in the process (the default), or in Redis so that several
/// gateway instances share rate-limit budgets, replay nonces and other `kv` data.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `local` (embedded, the default) or `redis`.
    #[serde(default)]
    pub backend: StateBackendKind,
    /// The Redis server, required when `backend = "redis"`.
    pub redis: Option<RedisConfig>,
    /// Per-namespace `kv` quotas.
    #[serde(default)]
    pub kv: state::KvQuotaConfig,
    /// Bounds of the embedded backend.
    #[serde(default)]
    pub local: state::LocalStateConfig,
}

/// The state backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateBackendKind {
    /// In this process: lock-free per key, nothing to install.
    #[default]
    Local,
    /// A Redis server shared by all gateway instances.
    Redis,
}

/// How to reach Redis and what to do when it cannot be reached.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`; a secret (`{ env = "REDIS_URL" }`) keeps a
    /// password out of the file.
    pub url: SecretConfig,
    /// Connect and response timeout of one call (default 100 ms).
    #[serde(default = "defaults::redis_timeout_ms")]
    pub timeout_ms: u64,
    /// What plugins get while Redis is unreachable (default `local`).
    #[serde(default)]
    pub on_unavailable: Unavailable,
    /// Prefix of every key the gateway writes (default `weir:`), to share a server safely.
    #[serde(default = "defaults::redis_key_prefix")]
    pub key_prefix: String,
    /// How often an unreachable Redis is probed for recovery (default 500 ms).
    #[serde(default = "defaults::redis_probe_interval_ms")]
    pub probe_interval_ms: u64,
}

/// The policy while the shared backend is down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    /// Serve `kv` and `limits` from the embedded backend of this instance: limits hold per
    /// instance instead of globally until Redis is back.
    #[default]
    Local,
    /// Fail the call with `unavailable`; the plugin decides (the rate-limit filter answers 503).
    Reject,
}

/// A named upstream: targets and how to pick one.
#[derive(Debug, Clone, Deserialize)]
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
}

/// One target of an upstream.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge.
    H2c,
}

/// Active health checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
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

/// Passive ejection: a target that fails this many requests in a row (connect errors,
/// timeouts, 5xx when `on_5xx`) is taken out for `ejection_ms`.
#[derive(Debug, Clone, Deserialize)]
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

/// A route: what it matches, where it goes, which filters run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A unique name, used in logs, metrics and by filters.
    pub name: String,
    /// What requests the route takes.
    #[serde(default, rename = "match")]
    pub matches: MatchConfig,
    /// The upstream that serves it.
    pub upstream: String,
    /// Overrides the upstream's request timeout.
    pub timeout_ms: Option<u64>,
    /// The `Host` sent upstream (default: the authority the client addressed, canonical).
    pub host_rewrite: Option<String>,
    /// The filter chain, in order.
    #[serde(default)]
    pub filters: Vec<FilterConfig>,
}

/// Match conditions; all given conditions must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// The host (without port); `*.example.com` matches any subdomain.
    pub host: Option<String>,
    /// A path prefix (`/api` matches `/api` and `/api/...`, not `/apix`).
    pub path_prefix: Option<String>,
    /// An exact path.
    pub path: Option<String>,
    /// Allowed methods.
    pub methods: Option<Vec<String>>,
    /// Headers that must be present with exactly these values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// One filter in a route's chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The plugin file in the plugins directory (`headers.wasm`).
    pub plugin: String,
    /// The filter's config, handed to `configure` as JSON.
    #[serde(default)]
    pub config: Option<toml::Value>,
    /// Host interfaces granted: `log`, `clock`, `kv`, `limits`, `secrets:<name>`,
    /// `http:<upstream>`.
    #[serde(default)]
    pub grants: Vec<String>,
    /// What a failure of this filter does to the request (default fail closed).
    #[serde(default)]
    pub failure: FailurePolicy,
    /// Overrides the runtime's default deadline.
    pub deadline_ms: Option<u64>,
    /// Overrides the runtime's default memory cap.
    pub memory_mib: Option<u64>,
    /// Overrides the runtime's default body buffer limit.
    pub max_body_bytes: Option<usize>,
    /// The `kv`/`limits` namespace (default: the plugin file name).
    pub namespace: Option<String>,
}

/// What happens to a request when its filter traps, runs out of time or memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Answer 500 (trap) or 503 (deadline) with the request id.
    #[default]
    FailClosed,
    /// Go on as if the filter had said continue.
    FailOpen,
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretConfig {
    /// Written in the config.
    Value(String),
    /// Read from this environment variable when the config loads.
    Env(String),
}

impl SecretConfig {
    /// The value; `what` names the secret in the error.
    pub fn resolve(&self, what: &str) -> Result<Vec<u8>, String> {
        match self {
            Self::Value(v) => Ok(v.clone().into_bytes()),
            Self::Env(var) => std::env::var(var)
                .map(String::into_bytes)
                .map_err(|_| format!("{what}: environment variable {var} is not set")),
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file. Errors name the file and the reason.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Self::parse(&text, base_dir).with_context(|| format!("invalid config {}", path.display()))
    }

    /// A config with no listener, route or upstream (the state before the first load).
    pub fn empty() -> Self {
        Self {
            server: ServerConfig {
                listen: Vec::new(),
                admin: defaults::admin(),
                admin_token: None,
                admin_hosts: None,
                plugins_dir: PathBuf::new(),
                cache_dir: None,
                cache_key_file: None,
                demo_upstream: None,
                shutdown_grace_ms: defaults::shutdown_grace_ms(),
                trust_request_id: false,
                watch: false,
                workers: None,
                paths: PathPolicy::default(),
                limits: LimitsConfig::default(),
            },
            runtime: RuntimeConfig::default(),
            upstreams: BTreeMap::new(),
            routes: Vec::new(),
            secrets: BTreeMap::new(),
            state: StateConfig::default(),
            base_dir: PathBuf::new(),
        }
    }

    /// Parses and validates config text; relative paths resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: PathBuf) -> anyhow::Result<Self> {
        let mut config: Config = toml::from_str(text)?;
        config.base_dir = base_dir;
        config.validate()?;
        Ok(config)
    }

    /// The plugins directory, resolved.
    pub fn plugins_dir(&self) -> PathBuf {
        self.base_dir.join(&self.server.plugins_dir)
    }

    /// The compiled-plugin cache directory and its key file, resolved.
    pub fn cache_paths(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        let (base, plugins) = (&self.base_dir, self.plugins_dir());
        let dir = sandbox::cache_dir(self.server.cache_dir.as_deref(), base, &plugins)?;
        let key = self.server.cache_key_file.as_deref();
        let key = sandbox::cache_key_file(key, base, &dir, &plugins)?;
        Ok((dir, key))
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.server.listen.is_empty() {
            bail!("server.listen needs at least one address");
        }
        self.server.limits.validate()?;
        admin::validate(&self.server)?;
        bounds::validate(self)?;
        let rt = &self.runtime;
        sandbox::validate(
            &rt.results,
            &rt.backoff,
            rt.max_idle_instances,
            rt.max_instances,
        )?;
        self.cache_paths()?;
        match (self.state.backend, &self.state.redis) {
            (StateBackendKind::Redis, None) => {
                bail!("state.backend = \"redis\" needs a [state.redis] table with a url")
            }
            (_, Some(redis)) => {
                let url = redis
                    .url
                    .resolve("state.redis.url")
                    .map_err(anyhow::Error::msg)?;
                let url = String::from_utf8(url).context("state.redis.url is not UTF-8")?;
                if !url.starts_with("redis://") && !url.starts_with("redis+unix://") {
                    bail!("state.redis.url must start with redis:// (TLS is not supported yet)");
                }
            }
            (StateBackendKind::Local, None) => {}
        }
        state::validate(&self.state.kv, &self.state.local)?;
        let mut names = BTreeSet::new();
        for route in &self.routes {
            if !names.insert(route.name.as_str()) {
                bail!("route name {:?} is used twice", route.name);
            }
            if !self.upstreams.contains_key(&route.upstream) {
                bail!(
                    "route {:?}: unknown upstream {:?}",
                    route.name,
                    route.upstream
                );
            }
            if route.matches.path.is_some() && route.matches.path_prefix.is_some() {
                bail!("route {:?}: give path or path_prefix, not both", route.name);
            }
            for path in [&route.matches.path, &route.matches.path_prefix]
                .into_iter()
                .flatten()
            {
                if !path.starts_with('/') {
                    bail!("route {:?}: path {path:?} must start with /", route.name);
                }
            }
            if let Some(host) = &route.host_rewrite {
                http::HeaderValue::from_str(host)
                    .ok()
                    .filter(|_| http::uri::Authority::try_from(host.as_str()).is_ok())
                    .with_context(|| {
                        format!(
                            "route {:?}: host_rewrite {host:?} is not an authority",
                            route.name
                        )
                    })?;
            }
            for filter in &route.filters {
                self.validate_filter(&route.name, filter)?;
            }
        }
        Ok(())
    }

    fn validate_filter(&self, route: &str, filter: &FilterConfig) -> anyhow::Result<()> {
        let plugin = &filter.plugin;
        if let Some(namespace) = &filter.namespace {
            state::validate_namespace(route, namespace)?;
        }
        if plugin.contains('/') || plugin.contains('\\') || !plugin.ends_with(".wasm") {
            bail!("route {route:?}: plugin {plugin:?} must be a .wasm file name in plugins_dir");
        }
        if filter.memory_mib.unwrap_or(self.runtime.memory_mib) > self.runtime.max_memory_mib {
            bail!(
                "route {route:?}: plugin {plugin:?} asks for more memory than runtime.max_memory_mib"
            );
        }
        for grant in &filter.grants {
            match grant.split_once(':') {
                None if ["log", "clock", "kv", "limits", "upstreams"].contains(&grant.as_str()) => {
                }
                Some(("files", dir)) => {
                    let path = self.base_dir.join(dir);
                    if dir.is_empty() || !path.is_dir() {
                        bail!(
                            "route {route:?}: plugin {plugin:?}: grant {grant:?}: {} is not a directory",
                            path.display()
                        );
                    }
                }
                Some(("secrets", name)) if self.secrets.contains_key(name) => {}
                Some(("http", name)) if self.upstreams.contains_key(name) => {}
                Some(("secrets" | "http", name)) => {
                    bail!(
                        "route {route:?}: plugin {plugin:?}: grant {grant:?} names unknown {name:?}"
                    )
                }
                _ => bail!(
                    "route {route:?}: plugin {plugin:?}: unknown grant {grant:?} \
                     (log, clock, kv, limits, upstreams, secrets:<name>, http:<upstream>, files:<dir>)"
                ),
            }
        }
        Ok(())
    }
}

/// Converts milliseconds from the config.
pub fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

mod defaults {
    use std::net::SocketAddr;

    pub fn admin() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9901))
    }
    pub fn yes() -> bool {
        true
    }
    pub fn shutdown_grace_ms() -> u64 {
        30_000
    }
    pub fn deadline_ms() -> u64 {
        20
    }
    pub fn memory_mib() -> u64 {
        32
    }
    pub fn max_body_bytes() -> usize {
        1 << 20
    }
    pub fn pool_max_idle() -> usize {
        64
    }
    pub fn max_instances() -> u32 {
        1000
    }
    pub fn max_memory_mib() -> u64 {
        512
    }
    pub fn redis_timeout_ms() -> u64 {
        100
    }
    pub fn redis_key_prefix() -> String {
        "weir:".to_string()
    }
    pub fn redis_probe_interval_ms() -> u64 {
        500
    }
    pub fn weight() -> u32 {
        1
    }
    pub fn connect_timeout_ms() -> u64 {
        1_000
    }
    pub fn request_timeout_ms() -> u64 {
        30_000
    }
    pub fn pool_idle_per_target() -> usize {
        256
    }
    pub fn pool_idle_timeout_ms() -> u64 {
        90_000
    }
    pub fn health_path() -> String {
        "/health".to_string()
    }
    pub fn health_interval_ms() -> u64 {
        2_000
    }
    pub fn healthy_threshold() -> u32 {
        2
    }
    pub fn unhealthy_threshold() -> u32 {
        3
    }
    pub fn consecutive_failures() -> u32 {
        5
    }
    pub fn ejection_ms() -> u64 {
        10_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(server_extra: &str) -> anyhow::Result<Config> {
        let text =
            format!("[server]\nlisten = [\"127.0.0.1:1\"]\nplugins_dir = \".\"\n{server_extra}");
        Config::parse(&text, ".".into())
    }

    #[test]
    fn admin_off_loopback_needs_a_token() {
        let refused = parse("admin = \"0.0.0.0:9901\"\n").unwrap_err();
        assert!(refused.to_string().contains("admin_token"), "{refused}");
        assert!(parse("admin = \"0.0.0.0:9901\"\nadmin_token = { value = \"t\" }\n").is_ok());
        let missing = parse("admin_token = { env = \"WEIR_TEST_SURELY_UNSET\" }\n").unwrap_err();
        assert!(
            missing.to_string().contains("WEIR_TEST_SURELY_UNSET"),
            "{missing}"
        );
    }
}
