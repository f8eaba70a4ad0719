//! The embedded backend: one process, lock-free per key (`dashmap` shards), idle keys
//! swept in the background.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::limiter::LimiterState;
use super::{RateDecision, RatePolicy, StateBackend, StateError, StateFuture};
use crate::upstream::health::now_ms;

/// How often expired keys are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Value {
    bytes: Vec<u8>,
    expires: Option<Instant>,
}

impl Value {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

#[derive(Debug)]
struct Limiter {
    state: Option<LimiterState>,
    /// Dropped after two idle windows: by then the budget is whole again.
    expires: Instant,
}

/// The embedded `kv` and `limits` backend.
#[derive(Debug, Default)]
pub struct LocalBackend {
    values: DashMap<String, Value>,
    limiters: DashMap<String, Limiter>,
}

impl LocalBackend {
    /// A new backend with a background sweeper that ends when the backend is dropped.
    pub fn new() -> Arc<Self> {
        let backend = Arc::new(Self::default());
        let weak: Weak<Self> = Arc::downgrade(&backend);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                let Some(backend) = weak.upgrade() else {
                    return;
                };
                backend.sweep(Instant::now());
            }
        });
        backend
    }

    fn sweep(&self, now: Instant) {
        self.values.retain(|_, v| v.live(now));
        self.limiters.retain(|_, l| l.expires > now);
    }

    fn ready<T: Send + 'static>(value: Result<T, StateError>) -> StateFuture<'static, T> {
        Box::pin(std::future::ready(value))
    }
}

impl StateBackend for LocalBackend {
    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<Vec<u8>>> {
        let now = Instant::now();
        let value = self
            .values
            .get(key)
            .filter(|v| v.live(now))
            .map(|v| v.bytes.clone());
        Self::ready(Ok(value))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, ()> {
        let expires = ttl.map(|t| Instant::now() + t);
        self.values.insert(
            key.to_string(),
            Value {
                bytes: value,
                expires,
            },
        );
        Self::ready(Ok(()))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        let now = Instant::now();
        let removed = self.values.remove(key).is_some_and(|(_, v)| v.live(now));
        Self::ready(Ok(removed))
    }

    fn incr<'a>(&'a self, key: &'a str, delta: i64, ttl: Option<Duration>) -> StateFuture<'a, i64> {
        let now = Instant::now();
        let result = match self.values.entry(key.to_string()) {
            Entry::Occupied(mut e) if e.get().live(now) => {
                let current = std::str::from_utf8(&e.get().bytes)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| {
                        StateError::Invalid(format!("value under {key:?} is not an integer"))
                    });
                current.and_then(|n| {
                    let next = n
                        .checked_add(delta)
                        .ok_or_else(|| StateError::Invalid("integer overflow".into()))?;
                    e.get_mut().bytes = next.to_string().into_bytes();
                    Ok(next)
                })
            }
            entry => {
                let value = Value {
                    bytes: delta.to_string().into_bytes(),
                    expires: ttl.map(|t| now + t),
                };
                entry.insert_entry(value);
                Ok(delta)
            }
        };
        Self::ready(result)
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, bool> {
        let now = Instant::now();
        let stored = match self.values.entry(key.to_string()) {
            Entry::Occupied(e) if e.get().live(now) => false,
            entry => {
                entry.insert_entry(Value {
                    bytes: value,
                    expires: ttl.map(|t| now + t),
                });
                true
            }
        };
        Self::ready(Ok(stored))
    }

    fn take<'a>(
        &'a self,
        key: &'a str,
        policy: RatePolicy,
        cost: u64,
    ) -> StateFuture<'a, RateDecision> {
        let idle_ttl = Duration::from_millis(policy.window_ms.saturating_mul(2).max(1000));
        let mut limiter = self
            .limiters
            .entry(key.to_string())
            .or_insert_with(|| Limiter {
                state: None,
                expires: Instant::now() + idle_ttl,
            });
        let decision = policy.take(&mut limiter.state, cost, now_ms());
        limiter.expires = Instant::now() + idle_ttl;
        Self::ready(Ok(decision))
    }

    fn name(&self) -> &'static str {
        "local"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kv_semantics() {
        let b = LocalBackend::new();
        assert_eq!(b.get("k").await, Ok(None));
        assert_eq!(b.incr("n", 2, None).await, Ok(2));
        assert_eq!(b.incr("n", 3, None).await, Ok(5));
        assert_eq!(b.set_if_absent("once", b"a".to_vec(), None).await, Ok(true));
        assert_eq!(
            b.set_if_absent("once", b"b".to_vec(), None).await,
            Ok(false)
        );
        assert_eq!(b.get("once").await, Ok(Some(b"a".to_vec())));
        b.set("t", b"x".to_vec(), Some(Duration::from_millis(1)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(b.get("t").await, Ok(None));
        assert_eq!(b.set_if_absent("t", b"y".to_vec(), None).await, Ok(true));
        assert_eq!(b.delete("t").await, Ok(true));
        assert!(matches!(
            b.incr("once", 1, None).await,
            Err(StateError::Invalid(_))
        ));
    }
}
