//! The per-namespace quotas a backend is held to: the size of a key and of a value, and
//! the longest TTL (a key stored without one gets the longest). The number of live keys
//! per namespace is counted by the backends themselves, which know what is stored.

use std::sync::Arc;

use super::{BackendStatus, Key, RateDecision, RatePolicy, Reply, StateBackend, StateError, Ttl};
use crate::config::state::KvQuotaConfig;

/// A backend behind the configured quotas.
pub struct Quotas {
    inner: Arc<dyn StateBackend>,
    config: KvQuotaConfig,
}

impl Quotas {
    /// `inner`, held to `config`.
    pub fn new(inner: Arc<dyn StateBackend>, config: KvQuotaConfig) -> Self {
        Self { inner, config }
    }

    fn check_key(&self, key: Key<'_>) -> Result<(), StateError> {
        if key.name.len() > self.config.max_key_bytes {
            return Err(quota(format!(
                "a key of {} bytes is over state.kv.max_key_bytes ({})",
                key.name.len(),
                self.config.max_key_bytes
            )));
        }
        Ok(())
    }

    /// Checks a write; the TTL it gets.
    fn check_write(&self, key: Key<'_>, value: Option<&[u8]>, ttl: Ttl) -> Result<Ttl, StateError> {
        self.check_key(key)?;
        if let Some(value) = value
            && value.len() > self.config.max_value_bytes
        {
            return Err(quota(format!(
                "a value of {} bytes is over state.kv.max_value_bytes ({})",
                value.len(),
                self.config.max_value_bytes
            )));
        }
        match (ttl, self.config.max_ttl()) {
            (Some(ttl), Some(max)) if ttl > max => Err(quota(format!(
                "a TTL of {} ms is over state.kv.max_ttl_ms ({})",
                ttl.as_millis(),
                max.as_millis()
            ))),
            (Some(ttl), _) => Ok(Some(ttl)),
            (None, max) => Ok(max),
        }
    }
}

fn quota(message: String) -> StateError {
    StateError::Invalid(format!("quota: {message}"))
}

/// A future that fails at once.
fn refused<'a, T: Send + 'a>(error: StateError) -> Reply<'a, T> {
    Box::pin(std::future::ready(Err(error)))
}

impl StateBackend for Quotas {
    fn get<'a>(&'a self, key: Key<'a>) -> Reply<'a, Option<Vec<u8>>> {
        match self.check_key(key) {
            Ok(()) => self.inner.get(key),
            Err(e) => refused(e),
        }
    }

    fn set<'a>(&'a self, key: Key<'a>, value: Vec<u8>, ttl: Ttl) -> Reply<'a, ()> {
        match self.check_write(key, Some(&value), ttl) {
            Ok(ttl) => self.inner.set(key, value, ttl),
            Err(e) => refused(e),
        }
    }

    fn delete<'a>(&'a self, key: Key<'a>) -> Reply<'a, bool> {
        match self.check_key(key) {
            Ok(()) => self.inner.delete(key),
            Err(e) => refused(e),
        }
    }

    fn incr<'a>(&'a self, key: Key<'a>, delta: i64, ttl: Ttl) -> Reply<'a, i64> {
        match self.check_write(key, None, ttl) {
            Ok(ttl) => self.inner.incr(key, delta, ttl),
            Err(e) => refused(e),
        }
    }

    fn set_if_absent<'a>(&'a self, key: Key<'a>, value: Vec<u8>, ttl: Ttl) -> Reply<'a, bool> {
        match self.check_write(key, Some(&value), ttl) {
            Ok(ttl) => self.inner.set_if_absent(key, value, ttl),
            Err(e) => refused(e),
        }
    }

    fn take<'a>(&'a self, key: Key<'a>, policy: RatePolicy, cost: u64) -> Reply<'a, RateDecision> {
        match self.check_key(key) {
            Ok(()) => self.inner.take(key, policy, cost),
            Err(e) => refused(e),
        }
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn status(&self) -> BackendStatus {
        self.inner.status()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::state::LocalStateConfig;
    use crate::state::LocalBackend;

    fn quotas() -> Quotas {
        let config = KvQuotaConfig {
            max_entries: 2,
            max_key_bytes: 8,
            max_value_bytes: 4,
            max_ttl_ms: 1000,
        };
        let local = LocalBackend::new(&LocalStateConfig::default(), config.max_entries);
        Quotas::new(local, config)
    }

    fn is_quota<T: std::fmt::Debug>(result: Result<T, StateError>) -> bool {
        matches!(result, Err(StateError::Invalid(m)) if m.starts_with("quota:"))
    }

    #[tokio::test]
    async fn oversized_keys_values_and_ttls_are_refused() {
        let q = quotas();
        let key = Key::new("ns", "k");
        assert!(is_quota(q.get(Key::new("ns", "123456789")).await));
        assert!(is_quota(q.set(key, vec![0; 5], None).await));
        let long = Some(Duration::from_millis(1001));
        assert!(is_quota(q.set(key, vec![0; 4], long).await));
        assert!(is_quota(q.set_if_absent(key, vec![0; 4], long).await));
        assert!(is_quota(q.incr(key, 1, long).await));
        assert_eq!(
            q.set(key, vec![0; 4], Some(Duration::from_millis(1000)))
                .await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn too_many_entries_are_refused_per_namespace() {
        let q = quotas();
        q.set(Key::new("a", "1"), vec![1], None).await.unwrap();
        q.set(Key::new("a", "2"), vec![1], None).await.unwrap();
        assert!(is_quota(q.set(Key::new("a", "3"), vec![1], None).await));
        assert!(is_quota(q.incr(Key::new("a", "3"), 1, None).await));
        assert!(is_quota(
            q.set_if_absent(Key::new("a", "3"), vec![1], None).await
        ));
        // Overwriting an existing key is not a new entry; another namespace has its own.
        assert_eq!(q.set(Key::new("a", "2"), vec![2], None).await, Ok(()));
        assert_eq!(q.set(Key::new("b", "3"), vec![1], None).await, Ok(()));
        // A deleted key makes room.
        assert_eq!(q.delete(Key::new("a", "1")).await, Ok(true));
        assert_eq!(q.set(Key::new("a", "3"), vec![1], None).await, Ok(()));
    }
}
