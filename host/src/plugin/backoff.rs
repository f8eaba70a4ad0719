//! Back-off of a filter that keeps failing (as Envoy backs off a failing extension): after
//! `after_failures` failed calls in a row the filter is not run until a back-off elapses;
//! its failure policy answers at once meanwhile. Then one call probes it: a success resets
//! everything, a failure doubles the back-off (up to `max_ms`).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::config::sandbox::BackoffConfig;
use crate::time::monotonic_ms;

/// What `GET /plugins` and `/routes` show of a filter's back-off.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackoffStatus {
    /// Failed calls in a row.
    pub consecutive_failures: u32,
    /// Until when (Unix ms) the filter is not run; `None` when it runs.
    pub backed_off_until_ms: Option<u64>,
    /// Calls answered by the failure policy without running the filter.
    pub answered_without_running: u64,
}

/// The back-off state of one configured filter.
#[derive(Debug)]
pub(crate) struct Backoff {
    config: BackoffConfig,
    consecutive: AtomicU32,
    /// How many times in a row the probe failed: the back-off is `initial << level`.
    level: AtomicU32,
    /// Monotonic ms until which the filter is not run; 0 when it runs.
    until_ms: AtomicU64,
    /// A probe call is running.
    probing: AtomicBool,
    skipped: AtomicU64,
}

impl Backoff {
    pub(crate) fn new(config: BackoffConfig) -> Self {
        Self {
            config,
            consecutive: AtomicU32::new(0),
            level: AtomicU32::new(0),
            until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            skipped: AtomicU64::new(0),
        }
    }

    /// Whether this call may run the filter. Once a back-off has elapsed exactly one caller
    /// gets to probe; the others are held off for another period meanwhile.
    pub(crate) fn admit(&self) -> bool {
        let until = self.until_ms.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = monotonic_ms();
        let hold = now + self.period();
        if now >= until
            && self
                .until_ms
                .compare_exchange(until, hold, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.probing.store(true, Ordering::Release);
            return true;
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// A call succeeded: the filter runs normally again.
    pub(crate) fn success(&self) {
        if self.consecutive.swap(0, Ordering::Relaxed) != 0 {
            self.level.store(0, Ordering::Relaxed);
            self.probing.store(false, Ordering::Relaxed);
            self.until_ms.store(0, Ordering::Release);
        }
    }

    /// A call failed: counts it, and backs the filter off after enough in a row (or for
    /// twice as long after a failed probe).
    pub(crate) fn failure(&self) {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if self.config.after_failures == 0 {
            return;
        }
        if self.probing.swap(false, Ordering::AcqRel) {
            self.level.fetch_add(1, Ordering::Relaxed);
        } else if n < self.config.after_failures || self.until_ms.load(Ordering::Acquire) != 0 {
            // Not enough yet, or already backed off (a call that started before).
            return;
        }
        self.until_ms
            .store(monotonic_ms() + self.period(), Ordering::Release);
    }

    /// The current back-off period in ms.
    fn period(&self) -> u64 {
        let level = self.level.load(Ordering::Relaxed).min(32);
        self.config
            .initial_ms
            .saturating_mul(1 << level)
            .min(self.config.max_ms)
    }

    /// The state for the admin API.
    pub(crate) fn status(&self) -> BackoffStatus {
        let until = self.until_ms.load(Ordering::Acquire);
        let now = monotonic_ms();
        BackoffStatus {
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            backed_off_until_ms: (until > now).then(|| crate::time::now_ms() + (until - now)),
            answered_without_running: self.skipped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_after_failures_in_a_row_and_a_success_resets() {
        let b = Backoff::new(BackoffConfig {
            after_failures: 3,
            initial_ms: 60_000,
            max_ms: 120_000,
        });
        b.failure();
        b.failure();
        b.success();
        b.failure();
        b.failure();
        assert!(b.admit(), "two failures in a row are not enough");
        b.failure();
        assert!(!b.admit(), "three in a row back it off");
        assert!(!b.admit());
        let status = b.status();
        assert_eq!(status.consecutive_failures, 3);
        assert_eq!(status.answered_without_running, 2);
        assert!(status.backed_off_until_ms.is_some());
        b.success();
        assert!(b.admit());
    }

    #[test]
    fn one_probe_after_the_back_off_and_a_failed_probe_doubles_it() {
        let b = Backoff::new(BackoffConfig {
            after_failures: 1,
            initial_ms: 20,
            max_ms: 50_000,
        });
        b.failure();
        // The back-off is a time: there is no event to wait on.
        std::thread::sleep(std::time::Duration::from_millis(25));
        assert!(b.admit(), "the back-off elapsed: one probe");
        assert!(!b.admit(), "only one probe at a time");
        b.failure();
        assert_eq!(b.period(), 40);
        b.success();
        assert_eq!(b.period(), 20);
    }
}
