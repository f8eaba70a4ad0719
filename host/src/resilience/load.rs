//! The gateway's load: requests in flight, and a moving average of upstream latency that
//! decays while there are no calls (so that a route shed for latency is not shed forever
//! once the calls that measured it stop).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::time::monotonic_ms;

/// Each new call moves the average by 1/`WEIGHT` of the difference: it follows about the
/// last hundred calls.
const WEIGHT: u64 = 64;
/// With no calls, the average halves every this many milliseconds.
const HALF_LIFE_MS: u64 = 1000;

/// Gateway-wide load.
#[derive(Debug, Default)]
pub struct Load {
    in_flight: AtomicU32,
    latency_us: AtomicU64,
    updated_ms: AtomicU64,
}

/// Counts a request in flight until dropped.
#[derive(Debug)]
pub struct LoadGuard<'a>(&'a Load);

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Load {
    /// Counts a request from now until the guard is dropped.
    pub fn enter(&self) -> LoadGuard<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        LoadGuard(self)
    }

    /// Folds one upstream call's latency into the average. Concurrent updates may lose
    /// one another's step; the average stays an average.
    pub fn observe(&self, latency: Duration) {
        let sample = latency.as_micros() as u64;
        let now = monotonic_ms();
        let current = self.decayed(now);
        let next = if sample >= current {
            current + (sample - current) / WEIGHT
        } else {
            current - (current - sample) / WEIGHT
        };
        self.latency_us.store(next, Ordering::Relaxed);
        self.updated_ms.store(now, Ordering::Relaxed);
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The recent upstream latency.
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.decayed(monotonic_ms()))
    }

    /// The average as of `now`, halved for every half-life without a call.
    fn decayed(&self, now: u64) -> u64 {
        let idle = now.saturating_sub(self.updated_ms.load(Ordering::Relaxed));
        let halvings = (idle / HALF_LIFE_MS).min(63);
        self.latency_us.load(Ordering::Relaxed) >> halvings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_in_flight() {
        let load = Load::default();
        let a = load.enter();
        let b = load.enter();
        assert_eq!(load.in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(load.in_flight(), 0);
    }

    #[test]
    fn the_average_follows_the_calls() {
        let load = Load::default();
        for _ in 0..1000 {
            load.observe(Duration::from_millis(200));
        }
        let latency = load.latency().as_millis();
        assert!((190..=200).contains(&latency), "{latency} ms");
    }
}
