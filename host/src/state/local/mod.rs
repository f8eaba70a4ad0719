//! The embedded backend: one process, lock-free per key (`dashmap` shards). Both maps are
//! bounded: expired keys and idle limiters are swept in the background, and when a map is
//! full anyway the entries closest to expiry are evicted. `kv` keys are also counted per
//! namespace, for the namespace quota.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::limiter::LimiterState;
use super::{Key, Reply, StateError};
use crate::config::state::LocalStateConfig;

/// The shortest time between two sweeps that a full map asks for: a namespace at its
/// quota must not turn every refused write into a walk over the whole map.
const ON_DEMAND_SWEEP_GAP: Duration = Duration::from_millis(250);

/// When a full map evicts, it evicts this share of its entries at once (1/16), so that
/// the walk to find them is paid once per many writes.
const EVICT_SHARE: usize = 16;

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
#[derive(Debug)]
pub struct LocalBackend {
    /// `kv` values by encoded key.
    values: DashMap<String, Value>,
    /// Rate limiters by encoded key.
    limiters: DashMap<String, Limiter>,
    /// Stored `kv` entries (live or not yet swept) per namespace.
    per_namespace: DashMap<String, u64>,
    /// Bytes of `kv` keys and values.
    bytes: AtomicUsize,
    /// Live keys a namespace may hold.
    max_per_namespace: u64,
    config: LocalStateConfig,
    /// When the last sweep ran (ms since the backend started).
    swept_at_ms: AtomicU64,
    started: Instant,
}

impl LocalBackend {
    /// A backend bounded by `config`, whose namespaces hold at most `max_per_namespace`
    /// keys each, with a background sweeper that ends when the backend is dropped.
    pub fn new(config: &LocalStateConfig, max_per_namespace: u64) -> Arc<Self> {
        let backend = Arc::new(Self::unswept(config, max_per_namespace));
        let weak: Weak<Self> = Arc::downgrade(&backend);
        let every = Duration::from_millis(config.sweep_interval_ms.max(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(backend) = weak.upgrade() else {
                    return;
                };
                backend.sweep(Instant::now());
            }
        });
        backend
    }

    /// A backend without the background sweeper (for one that is never written to).
    pub fn unswept(config: &LocalStateConfig, max_per_namespace: u64) -> Self {
        Self {
            values: DashMap::new(),
            limiters: DashMap::new(),
            per_namespace: DashMap::new(),
            bytes: AtomicUsize::new(0),
            max_per_namespace,
            config: config.clone(),
            swept_at_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// `kv` entries stored (live or not yet swept).
    pub fn kv_len(&self) -> usize {
        self.values.len()
    }

    /// Rate limiters kept.
    pub fn limiters_len(&self) -> usize {
        self.limiters.len()
    }

    /// Removes expired keys and idle limiters.
    fn sweep(&self, now: Instant) {
        self.swept_at_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.values.retain(|key, v| {
            let keep = v.live(now);
            if !keep {
                self.forget(key, v);
            }
            keep
        });
        self.limiters.retain(|_, l| l.expires > now);
    }

    /// Sweeps unless a sweep ran very recently.
    fn sweep_soon(&self, now: Instant) {
        let elapsed = self.started.elapsed().as_millis() as u64;
        let last = self.swept_at_ms.load(Ordering::Relaxed);
        if elapsed.saturating_sub(last) >= ON_DEMAND_SWEEP_GAP.as_millis() as u64 {
            self.sweep(now);
        }
    }

    /// Accounts for an entry that left the map. Called with the value's shard locked:
    /// it takes only `per_namespace` locks (always in that order).
    fn forget(&self, key: &str, value: &Value) {
        self.bytes
            .fetch_sub(key.len() + value.bytes.len(), Ordering::Relaxed);
        let namespace = Key::namespace_of(key);
        if let Some(mut count) = self.per_namespace.get_mut(namespace) {
            *count = count.saturating_sub(1);
        }
        self.per_namespace
            .remove_if(namespace, |_, count| *count == 0);
    }

    /// Accounts for an entry that joined the map.
    fn count_new(&self, key: &str, size: usize) {
        self.bytes.fetch_add(size, Ordering::Relaxed);
        *self
            .per_namespace
            .entry(Key::namespace_of(key).to_string())
            .or_insert(0) += 1;
    }

    fn namespace_len(&self, namespace: &str) -> u64 {
        self.per_namespace.get(namespace).map_or(0, |c| *c)
    }

    /// Makes room before writing `size` bytes under `encoded`: a new key must fit its
    /// namespace's quota (after a sweep), and a full map evicts. Runs with no lock held.
    fn make_room(&self, key: Key<'_>, encoded: &str, size: usize) -> Result<(), StateError> {
        let now = Instant::now();
        if self.values.get(encoded).is_some_and(|v| v.live(now)) {
            return self.fit(size, now);
        }
        if self.namespace_len(key.namespace) >= self.max_per_namespace {
            self.sweep_soon(now);
            if self.namespace_len(key.namespace) >= self.max_per_namespace {
                return Err(StateError::Invalid(format!(
                    "quota: the namespace holds state.kv.max_entries ({}) keys",
                    self.max_per_namespace
                )));
            }
        }
        self.fit(size, now)
    }

    fn full(&self, size: usize) -> bool {
        self.values.len() >= self.config.max_entries
            || self.bytes.load(Ordering::Relaxed) + size > self.config.max_bytes
    }

    /// Sweeps, then evicts the keys closest to expiry (keys without a TTL last), until
    /// `size` more bytes and one more key fit.
    fn fit(&self, size: usize, now: Instant) -> Result<(), StateError> {
        if !self.full(size) {
            return Ok(());
        }
        self.sweep_soon(now);
        for _ in 0..=EVICT_SHARE {
            if !self.full(size) {
                return Ok(());
            }
            // Values without a TTL go last.
            let expiry = |v: &Value| (v.expires.is_none(), v.expires);
            if !evict_soonest(&self.values, expiry, |key, v| self.forget(key, v)) {
                break;
            }
        }
        if self.bytes.load(Ordering::Relaxed) + size > self.config.max_bytes {
            return Err(StateError::Invalid(
                "the value does not fit state.local.max_bytes".into(),
            ));
        }
        Ok(())
    }

    /// Makes room for one more limiter: sweeps, then evicts the limiters closest to
    /// expiry.
    fn fit_limiter(&self, encoded: &str) {
        if self.limiters.len() < self.config.max_limiters || self.limiters.contains_key(encoded) {
            return;
        }
        let now = Instant::now();
        self.sweep_soon(now);
        if self.limiters.len() < self.config.max_limiters {
            return;
        }
        evict_soonest(&self.limiters, |l| l.expires, |_, _| ());
    }

    fn ready<T: Send + 'static>(value: Result<T, StateError>) -> Reply<'static, T> {
        Box::pin(std::future::ready(value))
    }

    /// Stores `value` under `encoded` (room already made), replacing what is there.
    fn store(&self, encoded: String, value: Value) {
        let size = encoded.len() + value.bytes.len();
        match self.values.entry(encoded) {
            Entry::Occupied(mut e) => {
                let old = e.get().bytes.len();
                self.bytes.fetch_add(value.bytes.len(), Ordering::Relaxed);
                self.bytes.fetch_sub(old, Ordering::Relaxed);
                e.insert(value);
            }
            Entry::Vacant(e) => {
                self.count_new(e.key(), size);
                e.insert(value);
            }
        }
    }
}

/// Evicts from `map` its `1/EVICT_SHARE` share (at least one) of the entries whose
/// `expiry` comes soonest, telling `evicted` of each; false if `map` is empty.
fn evict_soonest<V, E: Ord + Copy>(
    map: &DashMap<String, V>,
    expiry: impl Fn(&V) -> E,
    mut evicted: impl FnMut(&String, &V),
) -> bool {
    let mut expiries: Vec<E> = map.iter().map(|entry| expiry(entry.value())).collect();
    if expiries.is_empty() {
        return false;
    }
    let batch = (expiries.len() / EVICT_SHARE).max(1);
    let (_, &mut threshold, _) = expiries.select_nth_unstable(batch - 1);
    let mut count = 0;
    map.retain(|key, v| {
        let evict = count < batch && expiry(v) <= threshold;
        if evict {
            count += 1;
            evicted(key, v);
        }
        !evict
    });
    true
}

impl Default for LocalBackend {
    /// An unswept backend with the default bounds.
    fn default() -> Self {
        let quota = crate::config::state::KvQuotaConfig::default();
        Self::unswept(&LocalStateConfig::default(), quota.max_entries)
    }
}

mod ops;
#[cfg(test)]
mod tests;
