//! Bulkheads: at most `max_concurrent` requests of the routes that share one are in at
//! once; up to `max_queued` more wait for a place, each at most `queue_timeout_ms`; the
//! rest are refused at once (503 with `Retry-After`). A bulkhead outlives snapshots while
//! its limits stay the same, so a reload neither forgets who is in nor lets twice as many
//! in; new limits start a new one (the requests in the old one finish there).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::config::BulkheadConfig;

/// One bulkhead.
#[derive(Debug)]
pub struct Bulkhead {
    /// Its name in the config.
    pub name: String,
    /// Its limits.
    pub limits: BulkheadConfig,
    places: Semaphore,
    waiting: AtomicUsize,
    /// What it did, kept across new limits.
    pub counts: Arc<BulkheadCounts>,
}

/// What a bulkhead did since the gateway started.
#[derive(Debug, Default)]
pub struct BulkheadCounts {
    /// Requests let in, at once or after waiting.
    pub admitted: AtomicU64,
    /// Requests that waited for a place.
    pub queued: AtomicU64,
    /// Requests refused: the waiting room was full, or the wait timed out.
    pub rejected: AtomicU64,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every place and every waiting place was taken.
    Full,
    /// No place came free within the queue timeout.
    TimedOut,
}

/// A place in a bulkhead, given back when dropped.
pub type Place<'a> = SemaphorePermit<'a>;

impl Bulkhead {
    fn new(name: &str, limits: BulkheadConfig, counts: Arc<BulkheadCounts>) -> Self {
        Self {
            name: name.to_string(),
            limits,
            places: Semaphore::new(limits.max_concurrent as usize),
            waiting: AtomicUsize::new(0),
            counts,
        }
    }

    /// A place at once, if one is free.
    pub fn try_enter(&self) -> Option<Place<'_>> {
        let place = self.places.try_acquire().ok()?;
        self.counts.admitted.fetch_add(1, Ordering::Relaxed);
        Some(place)
    }

    /// A place: at once if one is free, else after a wait (boxed: the rare path, kept out
    /// of every caller's future).
    pub async fn enter(&self) -> Result<Place<'_>, Refused> {
        match self.try_enter() {
            Some(place) => Ok(place),
            None => Box::pin(self.wait()).await,
        }
    }

    /// A place after waiting for one (call after [`Bulkhead::try_enter`] found none).
    pub async fn wait(&self) -> Result<Place<'_>, Refused> {
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        // Leaves the waiting room however the wait ends (the client may go meanwhile).
        let _waiting = Waiting(&self.waiting);
        if queued >= self.limits.queue() as usize {
            self.counts.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::Full);
        }
        self.counts.queued.fetch_add(1, Ordering::Relaxed);
        let wait = Duration::from_millis(self.limits.queue_timeout_ms);
        match tokio::time::timeout(wait, self.places.acquire()).await {
            Ok(Ok(place)) => {
                self.counts.admitted.fetch_add(1, Ordering::Relaxed);
                Ok(place)
            }
            _ => {
                self.counts.rejected.fetch_add(1, Ordering::Relaxed);
                Err(Refused::TimedOut)
            }
        }
    }

    /// Requests in now.
    pub fn active(&self) -> usize {
        (self.limits.max_concurrent as usize).saturating_sub(self.places.available_permits())
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// The `Retry-After` a refused request is given, in seconds: the queue timeout,
    /// rounded up.
    pub fn retry_after_secs(&self) -> u64 {
        self.limits.queue_timeout_ms.div_ceil(1000).max(1)
    }
}

/// A request's presence in the waiting room.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The bulkheads by name, kept across snapshots.
#[derive(Debug, Default)]
pub struct Bulkheads(dashmap::DashMap<String, Arc<Bulkhead>>);

impl Bulkheads {
    /// The bulkhead `name` with `limits`: the one in use if its limits are the same, else
    /// a new one (with the old one's counts).
    pub fn get(&self, name: &str, limits: BulkheadConfig) -> Arc<Bulkhead> {
        let mut entry = self
            .0
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Bulkhead::new(name, limits, Arc::default())));
        if entry.limits != limits {
            let counts = entry.counts.clone();
            *entry = Arc::new(Bulkhead::new(name, limits, counts));
        }
        entry.clone()
    }

    /// Every bulkhead, by name (for metrics).
    pub fn all(&self) -> Vec<Arc<Bulkhead>> {
        let mut all: Vec<_> = self.0.iter().map(|b| b.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_concurrent: u32, max_queued: u32, queue_timeout_ms: u64) -> BulkheadConfig {
        BulkheadConfig {
            max_concurrent,
            max_queued: Some(max_queued),
            queue_timeout_ms,
        }
    }

    #[tokio::test]
    async fn places_then_a_bounded_wait_then_refusal() {
        let bulkheads = Bulkheads::default();
        let b = bulkheads.get("b", limits(2, 1, 50));
        let (one, _two) = (
            b.try_enter().expect("a place"),
            b.try_enter().expect("a place"),
        );
        assert!(b.try_enter().is_none());
        assert_eq!(b.active(), 2);
        // One may wait; a second waiter finds the waiting room full.
        let waiter = b.wait();
        let full = {
            let mut waiter = Box::pin(waiter);
            assert!(
                futures_util::future::poll_immediate(&mut waiter)
                    .await
                    .is_none()
            );
            assert_eq!(b.waiting(), 1);
            assert_eq!(b.wait().await.err(), Some(Refused::Full));
            drop(one);
            waiter.await
        };
        assert!(full.is_ok(), "a freed place goes to the waiter");
        // Nobody frees a place: the wait times out.
        let _held = full;
        assert_eq!(b.wait().await.err(), Some(Refused::TimedOut));
        assert_eq!(b.waiting(), 0);
        assert_eq!(b.counts.rejected.load(Ordering::Relaxed), 2);
        assert_eq!(b.counts.admitted.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn the_same_limits_keep_the_bulkhead_and_new_ones_keep_its_counts() {
        let bulkheads = Bulkheads::default();
        let first = bulkheads.get("b", limits(1, 0, 10));
        let _in = first.try_enter();
        let same = bulkheads.get("b", limits(1, 0, 10));
        assert!(Arc::ptr_eq(&first, &same));
        assert!(same.try_enter().is_none(), "the place taken stays taken");
        let changed = bulkheads.get("b", limits(2, 0, 10));
        assert!(!Arc::ptr_eq(&first, &changed));
        assert!(Arc::ptr_eq(&first.counts, &changed.counts));
        assert_eq!(bulkheads.all().len(), 1);
    }
}
