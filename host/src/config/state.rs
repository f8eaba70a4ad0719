//! Bounds on plugin state: the quotas each `kv` namespace gets, and the size of the
//! embedded backend's maps. Every value has a documented default (`docs/configuration.md`).

use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

use super::{SecretConfig, defaults};

/// `[state.kv]`: what one namespace (one plugin file, or one configured `namespace`) may
/// keep in `kv`. The same quota applies to every namespace.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvQuotaConfig {
    /// Live keys per namespace (default 10 000); a new key beyond it is refused.
    pub max_entries: u64,
    /// Bytes of one key as the plugin names it (default 512), for `kv` and `limits`.
    pub max_key_bytes: usize,
    /// Bytes of one value (default 131 072).
    pub max_value_bytes: usize,
    /// The longest TTL a plugin may ask for, in ms (default 86 400 000, one day); a key
    /// stored without a TTL gets this one. 0 lifts the cap (keys may then live forever).
    pub max_ttl_ms: u64,
}

impl Default for KvQuotaConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_key_bytes: 512,
            max_value_bytes: 128 << 10,
            max_ttl_ms: 86_400_000,
        }
    }
}

impl KvQuotaConfig {
    /// The TTL cap, if there is one.
    pub fn max_ttl(&self) -> Option<Duration> {
        (self.max_ttl_ms > 0).then(|| Duration::from_millis(self.max_ttl_ms))
    }
}

/// `[state.local]`: bounds of the embedded backend (also the Redis outage fallback).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalStateConfig {
    /// `kv` keys across all namespaces (default 1 000 000); when full, expired keys are
    /// swept and then the keys closest to expiry are evicted.
    pub max_entries: usize,
    /// Bytes of `kv` keys and values across all namespaces (default 268 435 456).
    pub max_bytes: usize,
    /// Rate limiters (default 1 000 000); when full, idle ones are swept and then the
    /// ones closest to expiry are evicted (an evicted budget starts whole again).
    pub max_limiters: usize,
    /// How often expired keys and idle limiters are removed, in ms (default 10 000).
    pub sweep_interval_ms: u64,
}

impl Default for LocalStateConfig {
    fn default() -> Self {
        Self {
            max_entries: 1_000_000,
            max_bytes: 256 << 20,
            max_limiters: 1_000_000,
            sweep_interval_ms: 10_000,
        }
    }
}

/// Checks the state bounds.
pub fn validate(kv: &KvQuotaConfig, local: &LocalStateConfig) -> anyhow::Result<()> {
    if kv.max_entries == 0 || kv.max_key_bytes == 0 || kv.max_value_bytes == 0 {
        bail!("state.kv: max_entries, max_key_bytes and max_value_bytes must be at least 1");
    }
    if local.max_entries == 0 || local.max_limiters == 0 || local.max_bytes == 0 {
        bail!("state.local: max_entries, max_bytes and max_limiters must be at least 1");
    }
    if local.sweep_interval_ms == 0 {
        bail!("state.local.sweep_interval_ms must be at least 1");
    }
    Ok(())
}

/// Checks a filter's explicit `namespace`: 1 to 128 printable ASCII characters.
pub fn validate_namespace(route: &str, namespace: &str) -> anyhow::Result<()> {
    if namespace.is_empty()
        || namespace.len() > 128
        || !namespace.bytes().all(|b| b.is_ascii_graphic())
    {
        bail!(
            "route {route:?}: namespace {namespace:?} must be 1 to 128 printable ASCII characters"
        );
    }
    Ok(())
}

/// Where plugin state lives: in the process (the default), or in Redis so that several
/// gateway instances share rate-limit budgets, replay nonces and other `kv` data.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `local` (embedded, the default) or `redis`.
    #[serde(default)]
    pub backend: StateBackendKind,
    /// The Redis server, required when `backend = "redis"`.
    pub redis: Option<RedisConfig>,
    /// Per-namespace `kv` quotas.
    #[serde(default)]
    pub kv: KvQuotaConfig,
    /// Bounds of the embedded backend.
    #[serde(default)]
    pub local: LocalStateConfig,
}

/// The state backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateBackendKind {
    /// In this process: lock-free per key, nothing to install.
    #[default]
    Local,
    /// A Redis server shared by all gateway instances.
    Redis,
}

/// How to reach Redis and what to do when it cannot be reached.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (`rediss://` for TLS); a secret
    /// (`{ env = "REDIS_URL" }`) keeps a password out of the file. With `cluster`, one or
    /// more seed nodes separated by commas.
    pub url: SecretConfig,
    /// Whether `url` names nodes of a Redis Cluster (default false): the cluster's slot
    /// map is read from them and each call goes to the node that holds its keys.
    #[serde(default)]
    pub cluster: bool,
    /// The master name Redis Sentinel monitors: `url` then lists the sentinels (separated
    /// by commas), the master is asked of them, and asked again when it stops answering or
    /// turns replica (a failover). The first URL's user, password and database are the
    /// master's.
    #[serde(default)]
    pub sentinel_master: Option<String>,
    /// With `rediss://` URLs (TLS), a PEM file of the CA certificates the servers'
    /// certificates are verified against, instead of the system's roots (relative to the
    /// config's directory).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
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

impl RedisConfig {
    /// Checks the settings with the resolved `url`: its schemes, the shape it names (one
    /// server, a cluster or Sentinel) and what that shape supports.
    pub fn validate(&self, url: &str) -> anyhow::Result<()> {
        let urls: Vec<&str> = url.split(',').map(str::trim).collect();
        let schemes = ["redis://", "rediss://", "redis+unix://"];
        if !urls
            .iter()
            .all(|url| schemes.iter().any(|s| url.starts_with(s)))
        {
            bail!("state.redis.url must start with redis:// or rediss:// (TLS)");
        }
        let tls = urls
            .iter()
            .filter(|url| url.starts_with("rediss://"))
            .count();
        if self.ca_file.is_some() && tls < urls.len() {
            bail!("state.redis.ca_file is for rediss:// (TLS) URLs only");
        }
        if self.cluster && self.sentinel_master.is_some() {
            bail!("state.redis: cluster and sentinel_master exclude each other");
        }
        // The sentinels' scheme is the master's too: all TLS, or none.
        if self.sentinel_master.is_some() && tls > 0 && tls < urls.len() {
            bail!(
                "state.redis: with sentinel_master, the sentinels' URLs are all rediss:// (TLS) or none"
            );
        }
        // A brace would move the Redis Cluster hash tag of a value and of its namespace's
        // index into the prefix, apart: every kv write would then fail.
        if self.key_prefix.contains(['{', '}']) {
            bail!("state.redis.key_prefix must not contain {{ or }}");
        }
        Ok(())
    }
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
