//! The shared backend with its outage policy: calls go to Redis while it answers; when it
//! does not, the backend is marked down (logged once), calls take the configured policy
//! (this instance's embedded backend, or `unavailable`) without waiting on Redis, and a
//! background probe marks it up again (logged once) when it answers a `PING`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::redis::RedisBackend;
use super::{
    BackendStatus, LocalBackend, RateDecision, RatePolicy, StateBackend, StateError, StateFuture,
};
use crate::config::{RedisConfig, Unavailable};
use crate::upstream::health::now_ms;

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
    pub async fn start(config: &RedisConfig) -> anyhow::Result<Arc<Self>> {
        let backend = Arc::new(Self {
            redis: RedisBackend::new(config)?,
            local: LocalBackend::new(),
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

    /// Runs `op` against Redis while it is up, else (or when this call finds it down)
    /// by the outage policy.
    fn call<'a, T: Send + 'a>(
        &'a self,
        op: impl Fn(&'a dyn StateBackend) -> StateFuture<'a, T> + Send + 'a,
    ) -> StateFuture<'a, T> {
        Box::pin(async move {
            if self.is_up() {
                match op(&self.redis).await {
                    Err(StateError::Unavailable(reason)) => self.mark_down(reason),
                    done => return done,
                }
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
    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<Vec<u8>>> {
        self.call(move |b| b.get(key))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, ()> {
        self.call(move |b| b.set(key, value.clone(), ttl))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        self.call(move |b| b.delete(key))
    }

    fn incr<'a>(&'a self, key: &'a str, delta: i64, ttl: Option<Duration>) -> StateFuture<'a, i64> {
        self.call(move |b| b.incr(key, delta, ttl))
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, bool> {
        self.call(move |b| b.set_if_absent(key, value.clone(), ttl))
    }

    fn take<'a>(
        &'a self,
        key: &'a str,
        policy: RatePolicy,
        cost: u64,
    ) -> StateFuture<'a, RateDecision> {
        self.call(move |b| b.take(key, policy, cost))
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
