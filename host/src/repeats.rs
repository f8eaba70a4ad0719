//! Warnings that repeat on the request path (an upstream that is down, a filter that keeps
//! failing) are aggregated, so that an outage is a few log lines and not one per request:
//! the first occurrence of each interval is logged, the others are only counted, and the
//! count is logged with the next occurrence logged or, once the trouble has stopped, by the
//! periodic sweep (`Metrics::log_repeats`). Metrics still count every occurrence.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::time::monotonic_ms;

/// One kind of warning at one place (a route, a filter on a route).
#[derive(Debug, Default)]
pub struct Repeats {
    /// Monotonic ms when the last logged occurrence opened its interval; 0 when none is open.
    opened_ms: AtomicU64,
    /// Occurrences counted, not logged, since then.
    unlogged: AtomicU64,
}

impl Repeats {
    /// An occurrence: `Some(n)` when it is to be logged, `n` being the occurrences left
    /// unlogged before it; `None` when it is only counted. An `interval_ms` of 0 logs all.
    pub fn occur(&self, interval_ms: u64) -> Option<u64> {
        let opened = self.opened_ms.load(Ordering::Acquire);
        let now = monotonic_ms();
        if opened != 0 && now < opened.saturating_add(interval_ms) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match self
            .opened_ms
            .compare_exchange(opened, now, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Some(self.unlogged.swap(0, Ordering::Relaxed)),
            // Another thread logs this interval's first occurrence.
            Err(_) => {
                self.unlogged.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// The sweep: once the open interval has passed, closes it and returns the occurrences
    /// left unlogged in it, if any (the next occurrence is then logged at once).
    pub fn sweep(&self, interval_ms: u64) -> Option<u64> {
        let opened = self.opened_ms.load(Ordering::Acquire);
        if opened == 0 || monotonic_ms() < opened.saturating_add(interval_ms) {
            return None;
        }
        self.opened_ms
            .compare_exchange(opened, 0, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some(self.unlogged.swap(0, Ordering::Relaxed)).filter(|&n| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_an_interval_is_logged_and_the_rest_counted() {
        let repeats = Repeats::default();
        assert_eq!(repeats.occur(60_000), Some(0));
        for _ in 0..99 {
            assert_eq!(repeats.occur(60_000), None);
        }
        // Within the interval the sweep leaves the count for later.
        assert_eq!(repeats.sweep(60_000), None);
        // With a zero interval (the interval has passed) the count comes out, once.
        assert_eq!(repeats.sweep(0), Some(99));
        assert_eq!(repeats.sweep(0), None);
        assert_eq!(
            repeats.occur(60_000),
            Some(0),
            "a closed interval logs at once"
        );
    }

    #[test]
    fn the_next_logged_occurrence_carries_the_count() {
        let repeats = Repeats::default();
        assert_eq!(repeats.occur(60_000), Some(0));
        assert_eq!(repeats.occur(60_000), None);
        assert_eq!(repeats.occur(60_000), None);
        assert_eq!(repeats.occur(0), Some(2));
        assert_eq!(
            repeats.occur(0),
            Some(0),
            "an interval of 0 logs every occurrence"
        );
    }
}
