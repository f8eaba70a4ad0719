//! Shared state for plugins — the `kv` store and the atomic rate-limit primitive — behind
//! one trait, so that an embedded backend (the default) and a networked one (Redis, for
//! several gateway instances) are interchangeable. Every key lives in the namespace the
//! config gave the calling filter, and every namespace is held to its quotas.

mod failover;
mod key;
mod limiter;
mod local;
mod quota;
mod redis;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::{StateBackendKind, StateConfig};

pub use failover::FailoverBackend;
pub use key::Key;
pub use limiter::{Algorithm, RateDecision, RatePolicy};
pub use local::LocalBackend;
pub use quota::Quotas;

/// The backend a config asks for, held to the configured quotas. Redis being unreachable
/// at startup is not an error (its outage policy applies until it answers); a malformed
/// URL is.
/// `base_dir` resolves a relative `ca_file`; `workers` is the proxy's worker threads (a
/// Redis server gets a connection per worker).
pub async fn start(
    config: &StateConfig,
    (base_dir, workers): (&Path, usize),
) -> anyhow::Result<Arc<dyn StateBackend>> {
    let max_entries = config.kv.max_entries;
    let backend: Arc<dyn StateBackend> = match (config.backend, &config.redis) {
        (StateBackendKind::Redis, Some(redis)) => {
            FailoverBackend::start(redis, &config.local, max_entries, (base_dir, workers)).await?
        }
        (StateBackendKind::Redis, None) => {
            anyhow::bail!("state.backend = \"redis\" needs [state.redis]")
        }
        (StateBackendKind::Local, _) => LocalBackend::new(&config.local, max_entries),
    };
    Ok(Arc::new(Quotas::new(backend, config.kv.clone())))
}

/// What the admin API shows about the state backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendStatus {
    /// The configured backend: `local` or `redis`.
    pub backend: &'static str,
    /// Whether it answers.
    pub healthy: bool,
    /// What serves plugin calls now: `local`, `redis`, `local_fallback` or `rejecting`.
    pub serving: &'static str,
    /// When `healthy` last changed (ms since the Unix epoch).
    pub since_ms: u64,
    /// How many times it became unreachable since the gateway started.
    pub outages: u64,
    /// The last error seen, if any.
    pub last_error: Option<String>,
}

/// Why a state call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The backend cannot be reached or failed.
    Unavailable(String),
    /// The call does not fit the stored data (e.g. `incr` on text) or the namespace's
    /// quota.
    Invalid(String),
}

/// How long a written value lives: `None` keeps it until it is deleted (or evicted to
/// make room).
pub type Ttl = Option<Duration>;

/// A backend's reply to one call, later: the future every backend call returns (boxed at
/// this boundary to keep the trait object-safe and compile times flat).
pub type Reply<'a, T> = Pin<Box<dyn Future<Output = Result<T, StateError>> + Send + 'a>>;

/// A backend for `kv` and `limits`. Every call is atomic with respect to the others on
/// the same key, across all gateway instances that share the backend. `kv` keys and rate
/// limiters are separate spaces: the same [`Key`] names one of each.
pub trait StateBackend: Send + Sync + 'static {
    /// The value under `key`, if present and not expired.
    fn get<'a>(&'a self, key: Key<'a>) -> Reply<'a, Option<Vec<u8>>>;
    /// Stores `value`, expiring after `ttl` when given.
    fn set<'a>(&'a self, key: Key<'a>, value: Vec<u8>, ttl: Ttl) -> Reply<'a, ()>;
    /// Removes `key`; true if it was present.
    fn delete<'a>(&'a self, key: Key<'a>) -> Reply<'a, bool>;
    /// Adds `delta` to the decimal integer under `key` (missing is 0); `ttl` applies when
    /// the key is created.
    fn incr<'a>(&'a self, key: Key<'a>, delta: i64, ttl: Ttl) -> Reply<'a, i64>;
    /// Stores `value` only if `key` is absent; true if stored. The answer holds for every
    /// instance sharing the backend (replay nonces rely on it), so a shared backend in an
    /// outage refuses the call rather than answer for this instance alone.
    fn set_if_absent<'a>(&'a self, key: Key<'a>, value: Vec<u8>, ttl: Ttl) -> Reply<'a, bool>;
    /// Takes `cost` from the rate budget under `key`.
    fn take<'a>(&'a self, key: Key<'a>, policy: RatePolicy, cost: u64) -> Reply<'a, RateDecision>;
    /// The backend's name for the admin API (`local`, `redis`).
    fn name(&self) -> &'static str;
    /// Its health for the admin API; an embedded backend is always healthy.
    fn status(&self) -> BackendStatus {
        BackendStatus {
            backend: self.name(),
            healthy: true,
            serving: self.name(),
            since_ms: 0,
            outages: 0,
            last_error: None,
        }
    }
}
