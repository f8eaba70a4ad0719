//! The gateway config: one TOML file. Every limit, timeout and size has a documented
//! default here (see `docs/configuration.md`); none is buried in the request path.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

mod access_log;
pub mod admin;
pub mod bounds;
pub mod buffer;
mod bulkhead;
mod cache;
mod defaults;
pub mod httpdns;
mod lifecycle;
mod limits;
mod paths;
pub mod push;
mod redact;
mod retry;
mod route;
pub mod sandbox;
pub mod state;
mod tcp;
mod telemetry;
#[cfg(test)]
mod tests;
pub mod tls;
mod upstream;

pub use access_log::AccessLogConfig;
pub use bulkhead::BulkheadConfig;
pub use cache::CacheConfig;
pub use lifecycle::{DeprecationConfig, DeprecationFields};
pub use limits::LimitsConfig;
pub use paths::{EscapedSlashes, PathParameters, PathPolicy};
pub use retry::{RetryConfig, RetryOn};
pub use route::{FailurePolicy, FilterConfig, MatchConfig, RouteConfig};
pub use state::{RedisConfig, StateBackendKind, StateConfig, Unavailable};
pub use tcp::{ProxyProtocol, TcpConfig};
pub use telemetry::TracingConfig;
pub use upstream::{
    HashOn, HealthCheckConfig, HealthCheckKind, LbPolicy, PassiveConfig, TargetConfig,
    UpstreamConfig, UpstreamProtocol, UpstreamTlsConfig,
};

/// The whole config file.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
    /// Push: the message store and the bounds of delivery. Changing `store` needs a
    /// restart.
    #[serde(default)]
    pub push: push::PushConfig,
    /// Named bulkheads that routes share: concurrency caps with a bounded wait.
    #[serde(default)]
    pub bulkheads: BTreeMap<String, BulkheadConfig>,
    /// The response cache's bounds. Changing them needs a restart.
    #[serde(default)]
    pub cache: CacheConfig,
    /// What routes with `httpdns = true` answer: services, regions, signing keys.
    #[serde(default)]
    pub httpdns: httpdns::HttpDnsConfig,
    /// TCP listeners proxied to upstreams (L4). Read at startup: changing them needs a
    /// restart.
    #[serde(default)]
    pub tcp: Vec<TcpConfig>,
    /// HTTPS listeners and their certificates. The listeners are bound at start; the
    /// certificates are read again on every reload.
    #[serde(default)]
    pub tls: tls::TlsConfig,
    /// Where buffered routes keep their requests (`[buffer]`). Changing `store` needs a
    /// restart.
    #[serde(default)]
    pub buffer: buffer::BufferStoreConfig,
    /// The access log: one JSON object per request.
    #[serde(default)]
    pub access_log: AccessLogConfig,
    /// Spans exported over OTLP (`[tracing]`).
    #[serde(default)]
    pub tracing: TracingConfig,
    /// The directory the config file lives in; relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Listeners and process-wide settings. Changing `listen` or `admin` needs a restart.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Addresses to serve HTTP/1.1 and HTTP/2 (h2c) on, in clear text (HTTPS: `tls.listen`).
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
    /// How often a warning that repeats on the request path is logged: the first of each
    /// interval, then the count of the others (default 10 s; 0 logs every one).
    #[serde(default = "defaults::log_repeat_interval_ms")]
    pub log_repeat_interval_ms: u64,
    /// Keep a client's `x-request-id` when it sends one (default false: a client could
    /// otherwise make its requests hard to tell apart in the logs).
    #[serde(default)]
    pub trust_request_id: bool,
    /// Watch the config file and the plugins directory and reload on change (default true).
    #[serde(default = "defaults::yes")]
    pub watch: bool,
    /// Generations (config and plugins, compiled) kept for `GET /generations` and
    /// `POST /rollback` (default 10, at least 1).
    #[serde(default = "defaults::keep_generations")]
    pub keep_generations: usize,
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
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
    /// The shortest execution budget of a filter's `metadata` and `configure` calls
    /// (default 250 ms; the filter's deadline if longer).
    #[serde(default = "sandbox::default_setup_deadline_ms")]
    pub setup_deadline_ms: u64,
    /// Idle instances kept by all filters together (default `max_instances / 2`).
    pub max_idle_instances: Option<u32>,
    /// Bounds on what a plugin call returns.
    #[serde(default)]
    pub results: sandbox::ResultLimits,
    /// Back-off of filters that keep failing.
    #[serde(default)]
    pub backoff: sandbox::BackoffConfig,
    /// The pooling allocator's slot sizes.
    #[serde(default)]
    pub pool: sandbox::PoolLimits,
    /// The largest upstream response body the `http` import hands a plugin (default 4 MiB);
    /// a larger one is the plugin's `unavailable` error.
    #[serde(default = "sandbox::default_http_max_response_bytes")]
    pub http_max_response_bytes: usize,
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
            setup_deadline_ms: sandbox::default_setup_deadline_ms(),
            max_idle_instances: None,
            results: Default::default(),
            backoff: Default::default(),
            pool: Default::default(),
            http_max_response_bytes: sandbox::default_http_max_response_bytes(),
        }
    }
}

/// Where a secret's value comes from. Serialized (for `GET /config`) with a written value
/// redacted; an environment variable's name is kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretConfig {
    /// Written in the config.
    Value(String),
    /// Read from this environment variable when the config loads.
    Env(String),
}

impl serde::Serialize for SecretConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Self::Value(_) => map.serialize_entry("value", REDACTED)?,
            Self::Env(var) => map.serialize_entry("env", var)?,
        }
        map.end()
    }
}

/// What `GET /config` shows in place of a secret.
pub const REDACTED: &str = "[redacted]";

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
                log_repeat_interval_ms: defaults::log_repeat_interval_ms(),
                trust_request_id: false,
                watch: false,
                keep_generations: defaults::keep_generations(),
                workers: None,
                paths: PathPolicy::default(),
                limits: LimitsConfig::default(),
            },
            runtime: RuntimeConfig::default(),
            upstreams: BTreeMap::new(),
            routes: Vec::new(),
            secrets: BTreeMap::new(),
            state: StateConfig::default(),
            push: push::PushConfig::default(),
            bulkheads: BTreeMap::new(),
            cache: CacheConfig::default(),
            httpdns: httpdns::HttpDnsConfig::default(),
            tcp: Vec::new(),
            tls: tls::TlsConfig::default(),
            buffer: buffer::BufferStoreConfig::default(),
            access_log: AccessLogConfig::default(),
            tracing: TracingConfig::default(),
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
        if self.server.listen.is_empty() && self.tls.listen.is_empty() {
            bail!("server.listen (or tls.listen) needs at least one address");
        }
        self.tls.validate(&self.server)?;
        self.access_log.validate()?;
        self.tracing.validate()?;
        self.server.limits.validate()?;
        admin::validate(&self.server)?;
        bounds::validate(self)?;
        tcp::validate(self)?;
        self.cache.validate()?;
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
                redis.validate(&url)?;
            }
            (StateBackendKind::Local, None) => {}
        }
        state::validate(&self.state.kv, &self.state.local)?;
        self.push.validate()?;
        let (upstreams, secrets) = self.push.references();
        for (what, name) in upstreams {
            if !self.upstreams.contains_key(name) {
                bail!("{what}: unknown upstream {name:?}");
            }
        }
        for (what, name) in secrets {
            if !self.secrets.contains_key(name) {
                bail!("{what}: unknown secret {name:?}");
            }
        }
        if let Some(apns) = &self.push.vendors.apns {
            let upstream = &self.upstreams[&apns.upstream];
            if upstream.protocol != UpstreamProtocol::H2 {
                bail!(
                    "push.vendors.apns: APNs speaks HTTP/2 only: upstream {:?} needs protocol = \"h2\" (and tls)",
                    apns.upstream
                );
            }
        }
        self.httpdns.validate(
            |name| self.upstreams.contains_key(name),
            |name| self.secrets.contains_key(name),
        )?;
        let mut names = BTreeSet::new();
        for route in &self.routes {
            if !names.insert(route.name.as_str()) {
                bail!("route name {:?} is used twice", route.name);
            }
            match (&route.upstream, route.push, route.httpdns) {
                (Some(upstream), None, false) if !self.upstreams.contains_key(upstream) => {
                    bail!("route {:?}: unknown upstream {upstream:?}", route.name)
                }
                (Some(_), None, false) | (None, Some(_), false) | (None, None, true) => {}
                _ => bail!(
                    "route {:?}: give upstream, push or httpdns = true, one of them",
                    route.name
                ),
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
            if let Some(name) = &route.bulkhead
                && !self.bulkheads.contains_key(name)
            {
                bail!("route {:?}: unknown bulkhead {name:?}", route.name);
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
            if let Some(buffer) = &route.buffer {
                buffer.validate(route)?;
            }
            for filter in &route.filters {
                self.validate_filter(&route.name, filter)?;
            }
            if let Some(router) = &route.push_router {
                if route.push != Some(push::PushEndpoint::Publish) {
                    bail!(
                        "route {:?}: push_router is for push = \"publish\" routes",
                        route.name
                    );
                }
                self.validate_filter(&route.name, router)?;
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
        Ok(())
    }
}

/// Converts milliseconds from the config.
pub fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}
