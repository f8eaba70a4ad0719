//! The outcomes of recent upstream calls: a bounded ring of (time, latency, failed), so
//! that a filter can ask for any window and any slow-call threshold.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::monotonic_ms;

/// How many calls a log keeps: windows reach back at most this many calls.
pub const CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    at_ms: u64,
    latency_ms: u32,
    failed: bool,
}

#[derive(Debug)]
struct Ring {
    entries: Box<[Outcome]>,
    /// Where the next outcome goes.
    next: usize,
    len: usize,
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
        let outcome = Outcome {
            at_ms: monotonic_ms(),
            latency_ms: u32::try_from(latency.as_millis()).unwrap_or(u32::MAX),
            failed,
        };
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
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
        // Newest first, so the scan stops at the first call older than the window.
        for back in 1..=ring.len {
            let outcome = ring.entries[(ring.next + CAPACITY - back) % CAPACITY];
            if outcome.at_ms < from {
                break;
            }
            stats.calls += 1;
            stats.failures += u32::from(outcome.failed);
            stats.slow += u32::from(u64::from(outcome.latency_ms) > slow_ms);
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
    fn an_empty_window_counts_nothing() {
        let log = OutcomeLog::default();
        log.record(MS(1), true);
        std::thread::sleep(MS(20));
        assert_eq!(log.stats(MS(5), MS(100)).calls, 0);
    }
}
