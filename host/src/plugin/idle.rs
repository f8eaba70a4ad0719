//! The gateway-wide budget of idle instances. Every warm instance waiting in any filter's
//! pool holds a slot of the pooling allocator; past the budget the least recently used
//! idle instance, whichever filter it belongs to, is dropped, so that one busy filter
//! cannot keep the slots that other filters and reloads need.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Weak};

/// A pool that can give up one of its idle instances.
pub(crate) trait Evict: Send + Sync {
    /// Drops the idle instance stamped `stamp`, if it is still idle.
    fn evict(&self, stamp: u64);
}

/// The idle instances of all pools, oldest first.
pub(crate) struct IdleBudget {
    cap: usize,
    next: AtomicU64,
    order: Mutex<BTreeMap<u64, Weak<dyn Evict>>>,
}

impl IdleBudget {
    /// A budget of `cap` idle instances.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            next: AtomicU64::new(1),
            order: Mutex::new(BTreeMap::new()),
        }
    }

    /// A stamp for an instance about to go idle (later stamps are more recently used).
    pub(crate) fn stamp(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Records that `pool` now holds the idle instance `stamp`, then evicts the least
    /// recently used idle instances beyond the budget.
    pub(crate) fn idle(&self, stamp: u64, pool: Weak<dyn Evict>) {
        let mut victims = Vec::new();
        if let Ok(mut order) = self.order.lock() {
            order.insert(stamp, pool);
            while order.len() > self.cap {
                match order.pop_first() {
                    Some(victim) => victims.push(victim),
                    None => break,
                }
            }
        }
        // Outside the lock: evicting takes the victim pool's lock and drops a store.
        for (stamp, pool) in victims {
            if let Some(pool) = pool.upgrade() {
                pool.evict(stamp);
            }
        }
    }

    /// Drops the least recently used idle instance, if there is one.
    pub(crate) fn evict_oldest(&self) -> bool {
        let oldest = self
            .order
            .lock()
            .ok()
            .and_then(|mut order| order.pop_first());
        match oldest {
            Some((stamp, pool)) => {
                if let Some(pool) = pool.upgrade() {
                    pool.evict(stamp);
                }
                true
            }
            None => false,
        }
    }

    /// Forgets an instance that left its pool (taken for a call, or dropped).
    pub(crate) fn forget(&self, stamp: u64) {
        if let Ok(mut order) = self.order.lock() {
            order.remove(&stamp);
        }
    }

    /// Idle instances gateway-wide.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.lock().map_or(0, |order| order.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    struct Pool(Mutex<Vec<u64>>);

    impl Evict for Pool {
        fn evict(&self, stamp: u64) {
            self.0.lock().unwrap().retain(|&s| s != stamp);
        }
    }

    #[test]
    fn the_least_recently_used_idle_instance_is_evicted_whoever_owns_it() {
        let budget = IdleBudget::new(3);
        let busy = Arc::new(Pool(Mutex::new(Vec::new())));
        let quiet = Arc::new(Pool(Mutex::new(Vec::new())));
        let put = |pool: &Arc<Pool>| {
            let stamp = budget.stamp();
            pool.0.lock().unwrap().push(stamp);
            let weak: Weak<dyn Evict> = Arc::downgrade(pool) as Weak<dyn Evict>;
            budget.idle(stamp, weak);
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
    }
}
