//! The gateway-wide budget of idle instances. Every warm instance waiting in any filter's
//! pool holds a slot of the pooling allocator; past the budget the least recently used
//! idle instance, whichever filter it belongs to, is dropped, so that one busy filter
//! cannot keep the slots that other filters and reloads need.
//!
//! The hot path (an instance taken for a call, then put back) touches two atomics and
//! the worker's own pool; the pools are searched for the oldest instance only when the
//! budget overflows or the allocator is full.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, Weak};

/// A pool that can give up one of its idle instances.
pub(crate) trait Evict: Send + Sync {
    /// The stamp of the pool's least recently used idle instance.
    fn oldest(&self) -> Option<u64>;
    /// Drops the idle instance stamped `stamp`; false if it is no longer idle.
    fn evict(&self, stamp: u64) -> bool;
}

/// How many instances are idle gateway-wide, and the pools that hold them.
pub(crate) struct IdleBudget {
    cap: usize,
    next: AtomicU64,
    idle: AtomicUsize,
    pools: Mutex<Vec<Weak<dyn Evict>>>,
}

impl IdleBudget {
    /// A budget of `cap` idle instances.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            next: AtomicU64::new(1),
            idle: AtomicUsize::new(0),
            pools: Mutex::new(Vec::new()),
        }
    }

    /// Lets the budget evict from `pool` (dropped pools are forgotten on the next search).
    pub(crate) fn register(&self, pool: Weak<dyn Evict>) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.retain(|p| p.strong_count() > 0);
            pools.push(pool);
        }
    }

    /// A stamp for an instance about to go idle (later stamps are more recently used).
    pub(crate) fn stamp(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts an instance that went idle, then evicts the least recently used idle
    /// instances beyond the budget.
    pub(crate) fn idle(&self) {
        let mut over = (self.idle.fetch_add(1, Ordering::AcqRel) + 1).saturating_sub(self.cap);
        while over > 0 && self.evict_oldest() {
            over -= 1;
        }
    }

    /// Drops the least recently used idle instance, if there is one.
    pub(crate) fn evict_oldest(&self) -> bool {
        // An instance can be taken for a call between the search and the eviction; then
        // search again, a bounded number of times.
        for _ in 0..4 {
            let Some((stamp, pool)) = self.find_oldest() else {
                return false;
            };
            if pool.evict(stamp) {
                self.forget();
                return true;
            }
        }
        false
    }

    /// Counts an instance that left its pool (taken for a call, or dropped).
    pub(crate) fn forget(&self) {
        let _ = self
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// The oldest idle instance of any live pool.
    fn find_oldest(&self) -> Option<(u64, std::sync::Arc<dyn Evict>)> {
        let pools = self.pools.lock().ok()?;
        pools
            .iter()
            .filter_map(Weak::upgrade)
            .filter_map(|pool| Some((pool.oldest()?, pool)))
            .min_by_key(|(stamp, _)| *stamp)
    }

    /// Idle instances gateway-wide.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.idle.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    struct Pool(Mutex<Vec<u64>>);

    impl Evict for Pool {
        fn oldest(&self) -> Option<u64> {
            self.0.lock().unwrap().iter().copied().min()
        }
        fn evict(&self, stamp: u64) -> bool {
            let mut idle = self.0.lock().unwrap();
            let before = idle.len();
            idle.retain(|&s| s != stamp);
            idle.len() < before
        }
    }

    #[test]
    fn the_least_recently_used_idle_instance_is_evicted_whoever_owns_it() {
        let budget = IdleBudget::new(3);
        let busy = Arc::new(Pool(Mutex::new(Vec::new())));
        let quiet = Arc::new(Pool(Mutex::new(Vec::new())));
        for pool in [&busy, &quiet] {
            budget.register(Arc::downgrade(pool) as Weak<dyn Evict>);
        }
        let put = |pool: &Arc<Pool>| {
            let stamp = budget.stamp();
            pool.0.lock().unwrap().push(stamp);
            budget.idle();
            stamp
        };
        let oldest = put(&quiet);
        put(&busy);
        put(&busy);
        put(&busy);
        assert_eq!(budget.len(), 3);
        assert!(!quiet.0.lock().unwrap().contains(&oldest));
        put(&quiet);
        assert_eq!(busy.0.lock().unwrap().len(), 2);
        assert_eq!(quiet.0.lock().unwrap().len(), 1);
        assert_eq!(budget.len(), 3);
    }

    #[test]
    fn an_instance_taken_for_a_call_is_not_counted_or_evicted() {
        let budget = IdleBudget::new(1);
        let pool = Arc::new(Pool(Mutex::new(Vec::new())));
        budget.register(Arc::downgrade(&pool) as Weak<dyn Evict>);
        let stamp = budget.stamp();
        pool.0.lock().unwrap().push(stamp);
        budget.idle();
        pool.0.lock().unwrap().clear();
        budget.forget();
        assert_eq!(budget.len(), 0);
        assert!(!budget.evict_oldest());
    }
}
