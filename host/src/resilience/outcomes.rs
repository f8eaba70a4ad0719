//! The outcomes of recent upstream calls: a bounded ring of (time, latency, failed), so
//! that a filter can ask for any window and any slow-call threshold. A breaker asks on
//! every request, so the common question is cheap: the entries are in time order (stamped
//! under the lock) and carry a running failure count, so the calls and failures of a window
//! take a binary search; only a slow-call threshold needs a scan of the window.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::time::monotonic_ms;

/// How many calls a log keeps: windows reach back at most this many calls.
pub const CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    at_ms: u64,
    latency_ms: u32,
    failed: bool,
    /// Failures recorded up to and including this one, since the log began.
    failures_through: u64,
}

#[derive(Debug)]
struct Ring {
    entries: Box<[Outcome]>,
    /// Where the next outcome goes.
    next: usize,
    len: usize,
    failures: u64,
}

impl Ring {
    /// The `i`-th outcome kept, oldest first.
    fn nth(&self, i: usize) -> &Outcome {
        &self.entries[(self.next + CAPACITY - self.len + i) % CAPACITY]
    }

    /// The index (oldest first) of the first outcome at or after `from_ms`.
    fn first_since(&self, from_ms: u64) -> usize {
        let (mut low, mut high) = (0, self.len);
        while low < high {
            let mid = (low + high) / 2;
            if self.nth(mid).at_ms < from_ms {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }
}

/// The recent calls of one upstream or route.
#[derive(Debug)]
pub struct OutcomeLog {
    ring: Mutex<Ring>,
    consecutive_failures: AtomicU32,
}

impl Default for OutcomeLog {
    fn default() -> Self {
        Self {
            ring: Mutex::new(Ring {
                entries: vec![Outcome::default(); CAPACITY].into_boxed_slice(),
                next: 0,
                len: 0,
                failures: 0,
            }),
            consecutive_failures: AtomicU32::new(0),
        }
    }
}

/// What a window of calls looked like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Calls that ended in the window.
    pub calls: u32,
    /// Of those, failures.
    pub failures: u32,
    /// Of those, calls slower than the threshold.
    pub slow: u32,
    /// Failures in a row up to now.
    pub consecutive_failures: u32,
}

impl OutcomeLog {
    /// Records one call: how long it took to the response headers and whether it failed.
    pub fn record(&self, latency: Duration, failed: bool) {
        if failed {
            self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        } else {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        let latency_ms = u32::try_from(latency.as_millis()).unwrap_or(u32::MAX);
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.failures += u64::from(failed);
        let outcome = Outcome {
            // Stamped under the lock, so that the ring stays in time order.
            at_ms: monotonic_ms(),
            latency_ms,
            failed,
            failures_through: ring.failures,
        };
        let next = ring.next;
        ring.entries[next] = outcome;
        ring.next = (next + 1) % CAPACITY;
        ring.len = (ring.len + 1).min(CAPACITY);
    }

    /// The calls of the last `window`, counting as slow those that took longer than `slow`.
    pub fn stats(&self, window: Duration, slow: Duration) -> WindowStats {
        let now = monotonic_ms();
        let from = now.saturating_sub(window.as_millis() as u64);
        let slow_ms = slow.as_millis() as u64;
        let mut stats = WindowStats {
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            ..WindowStats::default()
        };
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let first = ring.first_since(from);
        if first == ring.len {
            return stats;
        }
        let (oldest, newest) = (ring.nth(first), ring.nth(ring.len - 1));
        let before_window = oldest.failures_through - u64::from(oldest.failed);
        stats.calls = (ring.len - first) as u32;
        stats.failures = (newest.failures_through - before_window) as u32;
        // No latency reaches u32::MAX ms: the scan is needed only for a real threshold.
        if slow_ms < u64::from(u32::MAX) {
            stats.slow = (first..ring.len)
                .filter(|&i| u64::from(ring.nth(i).latency_ms) > slow_ms)
                .count() as u32;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn counts_failures_slow_calls_and_the_streak() {
        let log = OutcomeLog::default();
        log.record(MS(5), false);
        log.record(MS(300), false);
        log.record(MS(1), true);
        log.record(MS(1), true);
        let stats = log.stats(MS(60_000), MS(100));
        assert_eq!(
            stats,
            WindowStats {
                calls: 4,
                failures: 2,
                slow: 1,
                consecutive_failures: 2
            }
        );
        log.record(MS(1), false);
        assert_eq!(log.stats(MS(60_000), MS(100)).consecutive_failures, 0);
    }

    #[test]
    fn keeps_the_last_capacity_calls() {
        let log = OutcomeLog::default();
        for i in 0..CAPACITY + 10 {
            log.record(MS(1), i < 10);
        }
        let stats = log.stats(MS(60_000), MS(100));
        assert_eq!(stats.calls as usize, CAPACITY);
        assert_eq!(
            stats.failures, 0,
            "the ten oldest calls, the failures, fell out"
        );
    }

    #[test]
    fn a_window_counts_only_its_own_calls() {
        let log = OutcomeLog::default();
        log.record(MS(500), true);
        log.record(MS(1), true);
        std::thread::sleep(MS(60));
        log.record(MS(1), false);
        log.record(MS(200), true);
        let recent = log.stats(MS(40), MS(100));
        assert_eq!((recent.calls, recent.failures, recent.slow), (2, 1, 1));
        let all = log.stats(MS(60_000), MS(100));
        assert_eq!((all.calls, all.failures, all.slow), (4, 3, 2));
        let no_threshold = log.stats(MS(60_000), Duration::from_millis(u32::MAX.into()));
        assert_eq!(no_threshold.slow, 0);
    }

    #[test]
    fn an_empty_window_counts_nothing() {
        let log = OutcomeLog::default();
        log.record(MS(1), true);
        std::thread::sleep(MS(20));
        assert_eq!(log.stats(MS(5), MS(100)).calls, 0);
    }
}
