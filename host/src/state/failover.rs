//! The shared backend with its outage policy: calls go to Redis while it answers; when it
//! does not — an error, its own timeout, or no answer by the time the calling filter
//! stops waiting — the backend is marked down (logged once), calls take the configured
//! policy (this instance's embedded backend, or `unavailable`) without waiting on Redis,
//! and a background probe marks it up again (logged once) when it answers a `PING`.
//!
//! `set-if-absent` is the exception: its answer must hold for every instance (a replay
//! nonce seen here must be refused everywhere), which this instance alone cannot promise,
//! so during an outage it is refused whatever the policy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::redis::RedisBackend;
use super::{
    BackendStatus, Key, LocalBackend, RateDecision, RatePolicy, Reply, StateBackend, StateError,
    Ttl,
};
use crate::config::state::LocalStateConfig;
use crate::config::{RedisConfig, Unavailable};
use crate::time::now_ms;

/// Redis with a fallback policy for its outages.
pub struct FailoverBackend {
    redis: RedisBackend,
    local: Arc<LocalBackend>,
    policy: Unavailable,
    up: AtomicBool,
    since_ms: AtomicU64,
    outages: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl FailoverBackend {
    /// Connects (lazily) to the configured Redis and starts the recovery probe, which ends
    /// when the backend is dropped. Redis being down at startup is not an error: the
    /// backend starts in its outage policy and recovers when the server comes up.
    /// `local` bounds the fallback; a namespace holds `max_entries` keys in either;
    /// `base_dir` resolves a relative `ca_file`; `workers` is the proxy's worker threads.
    pub async fn start(
        config: &RedisConfig,
        local: &LocalStateConfig,
        max_entries: u64,
        (base_dir, workers): (&std::path::Path, usize),
    ) -> anyhow::Result<Arc<Self>> {
        let backend = Arc::new(Self {
            redis: RedisBackend::new(config, max_entries, base_dir, workers)?,
            local: LocalBackend::new(local, max_entries),
            policy: config.on_unavailable,
            up: AtomicBool::new(true),
            since_ms: AtomicU64::new(now_ms()),
            outages: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        match backend.redis.ping().await {
            Ok(()) => tracing::info!("state backend: redis is reachable"),
            Err(StateError::Unavailable(reason) | StateError::Invalid(reason)) => {
                backend.mark_down(reason)
            }
        }
        let interval = Duration::from_millis(config.probe_interval_ms.max(10));
        tokio::spawn(probe(Arc::downgrade(&backend), interval));
        Ok(backend)
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    fn mark_down(&self, reason: String) {
        if self.up.swap(false, Ordering::AcqRel) {
            self.since_ms.store(now_ms(), Ordering::Relaxed);
            self.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                %reason,
                policy = ?self.policy,
                "state backend: redis is unreachable; serving plugins by the outage policy"
            );
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(reason);
        }
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            let down_ms = now_ms().saturating_sub(self.since_ms.load(Ordering::Relaxed));
            self.since_ms.store(now_ms(), Ordering::Relaxed);
            tracing::info!(
                down_ms,
                "state backend: redis is back; shared state resumes"
            );
        }
    }

    /// Runs one Redis call while Redis is up; `None` when it is down or this call finds
    /// it down (then it is marked down).
    async fn on_redis<'a, T>(
        &'a self,
        key: Key<'a>,
        call: Reply<'a, T>,
    ) -> Option<Result<T, StateError>> {
        if !self.is_up() {
            return None;
        }
        // A Redis slower than the caller's deadline is as good as down for that caller:
        // waiting longer would fail the filter on every call instead of taking the policy.
        let answer = match key.answer_by {
            Some(at) => tokio::time::timeout_at(at.into(), call)
                .await
                .unwrap_or_else(|_| {
                    Err(StateError::Unavailable(
                        "redis: no answer within the calling filter's deadline".into(),
                    ))
                }),
            None => call.await,
        };
        match answer {
            Err(StateError::Unavailable(reason)) => {
                self.mark_down(reason);
                None
            }
            done => Some(done),
        }
    }

    /// Runs `op` against Redis while it is up, else (or when this call finds it down)
    /// by the outage policy.
    fn call<'a, T: Send + 'a>(
        &'a self,
        key: Key<'a>,
        op: impl Fn(&'a dyn StateBackend) -> Reply<'a, T> + Send + 'a,
    ) -> Reply<'a, T> {
        Box::pin(async move {
            if let Some(done) = self.on_redis(key, op(&self.redis)).await {
                return done;
            }
            match self.policy {
                Unavailable::Local => op(self.local.as_ref()).await,
                Unavailable::Reject => Err(StateError::Unavailable(
                    "the shared state backend (redis) is unreachable".to_string(),
                )),
            }
        })
    }
}

/// Pings Redis while it is marked down, until the backend is dropped.
async fn probe(backend: Weak<FailoverBackend>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(backend) = backend.upgrade() else {
            return;
        };
        if !backend.is_up() {
            match backend.redis.ping().await {
                Ok(()) => backend.mark_up(),
                Err(StateError::Unavailable(reason) | StateError::Invalid(reason)) => {
                    backend.mark_down(reason)
                }
            }
        }
    }
}

impl StateBackend for FailoverBackend {
    fn get<'a>(&'a self, key: Key<'a>) -> Reply<'a, Option<Vec<u8>>> {
        self.call(key, move |b| b.get(key))
    }

    fn set<'a>(&'a self, key: Key<'a>, value: Vec<u8>, ttl: Ttl) -> Reply<'a, ()> {
        self.call(key, move |b| b.set(key, value.clone(), ttl))
    }

    fn delete<'a>(&'a self, key: Key<'a>) -> Reply<'a, bool> {
        self.call(key, move |b| b.delete(key))
    }

    fn incr<'a>(&'a self, key: Key<'a>, delta: i64, ttl: Ttl) -> Reply<'a, i64> {
        self.call(key, move |b| b.incr(key, delta, ttl))
    }

    /// Never answered by the fallback: see the module doc.
    fn set_if_absent<'a>(&'a self, key: Key<'a>, value: Vec<u8>, ttl: Ttl) -> Reply<'a, bool> {
        Box::pin(async move {
            let call = self.redis.set_if_absent(key, value, ttl);
            match self.on_redis(key, call).await {
                Some(done) => done,
                None => Err(StateError::Unavailable(
                    "the shared state backend (redis) is unreachable; set-if-absent is not \
                     answered for this instance alone"
                        .to_string(),
                )),
            }
        })
    }

    fn take<'a>(&'a self, key: Key<'a>, policy: RatePolicy, cost: u64) -> Reply<'a, RateDecision> {
        self.call(key, move |b| b.take(key, policy, cost))
    }

    fn name(&self) -> &'static str {
        "redis"
    }

    fn status(&self) -> BackendStatus {
        let up = self.is_up();
        BackendStatus {
            backend: "redis",
            healthy: up,
            serving: match (up, self.policy) {
                (true, _) => "redis",
                (false, Unavailable::Local) => "local_fallback",
                (false, Unavailable::Reject) => "rejecting",
            },
            since_ms: self.since_ms.load(Ordering::Relaxed),
            outages: self.outages.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}
