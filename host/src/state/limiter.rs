//! The rate-limit arithmetic, as pure functions of the stored state and the time, so that
//! every backend (and its tests) computes the same decisions.

/// Rate-limit algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Capacity `limit`, refilled continuously at `limit` per window.
    TokenBucket,
    /// At most `limit` in any window, estimated from the current and previous window.
    SlidingWindow,
    /// At most `limit` per window aligned to the clock.
    FixedWindow,
}

/// A rate policy: `limit` per `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Units per window.
    pub limit: u64,
    /// The window in milliseconds (at least 1).
    pub window_ms: u64,
}

/// The outcome of one `take`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the units were taken.
    pub allowed: bool,
    /// Units left now.
    pub remaining: u64,
    /// Milliseconds until the budget is whole again (or the window resets).
    pub reset_ms: u64,
    /// When refused: milliseconds until the same cost may pass.
    pub retry_after_ms: u64,
}

/// The state stored per key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimiterState {
    /// Token bucket: tokens left at `updated_ms`.
    Bucket {
        /// Tokens left.
        tokens: f64,
        /// When `tokens` was computed.
        updated_ms: u64,
    },
    /// Window counters.
    Window {
        /// Start of the current window.
        start_ms: u64,
        /// Units taken in the current window.
        count: u64,
        /// Units taken in the window before.
        previous: u64,
    },
}

impl RatePolicy {
    /// Takes `cost` units at `now_ms`, updating `state` (created on first use).
    pub fn take(&self, state: &mut Option<LimiterState>, cost: u64, now_ms: u64) -> RateDecision {
        match self.algorithm {
            Algorithm::TokenBucket => self.take_bucket(state, cost, now_ms),
            Algorithm::FixedWindow | Algorithm::SlidingWindow => {
                self.take_window(state, cost, now_ms)
            }
        }
    }

    /// The window, at least 1 ms.
    fn window(&self) -> u64 {
        self.window_ms.max(1)
    }

    fn take_bucket(&self, state: &mut Option<LimiterState>, cost: u64, now: u64) -> RateDecision {
        let window = self.window();
        let limit = self.limit as f64;
        let rate = limit / window as f64; // tokens per ms
        let tokens = match *state {
            Some(LimiterState::Bucket { tokens, updated_ms }) => {
                (tokens + now.saturating_sub(updated_ms) as f64 * rate).min(limit)
            }
            _ => limit,
        };
        let cost_f = cost as f64;
        let allowed = tokens >= cost_f;
        let left = if allowed { tokens - cost_f } else { tokens };
        *state = Some(LimiterState::Bucket {
            tokens: left,
            updated_ms: now,
        });
        let retry_after_ms = match (allowed, cost > self.limit || rate == 0.0) {
            (true, _) => 0,
            (false, true) => window,
            (false, false) => ((cost_f - left) / rate).ceil() as u64,
        };
        RateDecision {
            allowed,
            remaining: left.floor() as u64,
            reset_ms: if rate == 0.0 {
                window
            } else {
                ((limit - left) / rate).ceil() as u64
            },
            retry_after_ms,
        }
    }

    fn take_window(&self, state: &mut Option<LimiterState>, cost: u64, now: u64) -> RateDecision {
        let window = self.window();
        let start = now - now % window;
        let (count, previous) = match *state {
            Some(LimiterState::Window {
                start_ms,
                count,
                previous,
            }) if start_ms == start => (count, previous),
            Some(LimiterState::Window {
                start_ms, count, ..
            }) if start_ms + window == start => (0, count),
            _ => (0, 0),
        };
        let elapsed = now - start;
        let reset_ms = window - elapsed;
        // Fixed windows count only the current window; sliding windows also count the part
        // of the previous window that still overlaps `[now - window, now]`.
        let carried = match self.algorithm {
            Algorithm::SlidingWindow => previous * reset_ms / window,
            _ => 0,
        };
        let used = count + carried;
        let allowed = used + cost <= self.limit;
        let count = if allowed { count + cost } else { count };
        *state = Some(LimiterState::Window {
            start_ms: start,
            count,
            previous,
        });
        let used = count + carried;
        RateDecision {
            allowed,
            remaining: self.limit.saturating_sub(used),
            reset_ms,
            retry_after_ms: if allowed {
                0
            } else {
                self.retry_after(count, previous, cost, elapsed, window)
            },
        }
    }

    /// The wait until `cost` fits, for a refused window decision.
    fn retry_after(&self, count: u64, previous: u64, cost: u64, elapsed: u64, window: u64) -> u64 {
        let reset = window - elapsed;
        if self.algorithm == Algorithm::FixedWindow || count + cost > self.limit || previous == 0 {
            // Only the next window helps (for sliding, its carried share keeps shrinking).
            return reset.max(1);
        }
        // Sliding: wait until previous * (window - elapsed - t) / window + count + cost <= limit.
        let room = self.limit - count - cost;
        let t = reset.saturating_sub(room * window / previous);
        t.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A limiter under test: its policy and its state.
    struct Tested {
        policy: RatePolicy,
        state: Option<LimiterState>,
    }

    impl Tested {
        fn new(algorithm: Algorithm, limit: u64, window_ms: u64) -> Self {
            let policy = RatePolicy {
                algorithm,
                limit,
                window_ms,
            };
            Self {
                policy,
                state: None,
            }
        }

        fn take(&mut self, cost: u64, now_ms: u64) -> RateDecision {
            self.policy.take(&mut self.state, cost, now_ms)
        }

        /// Takes 1 at `now_ms`, `times` times, each allowed.
        fn allows(&mut self, times: usize, now_ms: u64) {
            for _ in 0..times {
                assert!(self.take(1, now_ms).allowed);
            }
        }

        /// Takes `cost` at `now_ms`, refused; the wait it is told.
        fn refuses(&mut self, cost: u64, now_ms: u64) -> u64 {
            let refused = self.take(cost, now_ms);
            assert!(!refused.allowed);
            refused.retry_after_ms
        }
    }

    #[test]
    fn token_bucket_allows_burst_then_refills() {
        let mut l = Tested::new(Algorithm::TokenBucket, 3, 3000);
        l.allows(3, 1000);
        assert_eq!(l.refuses(1, 1000), 1000);
        l.allows(1, 2000);
        assert!(!l.take(1, 2000).allowed);
    }

    #[test]
    fn fixed_window_resets_on_boundary() {
        let mut l = Tested::new(Algorithm::FixedWindow, 2, 1000);
        l.allows(1, 10_100);
        l.allows(1, 10_200);
        assert_eq!(l.refuses(1, 10_900), 100);
        l.allows(1, 11_000);
    }

    #[test]
    fn sliding_window_counts_overlap_of_previous() {
        let mut l = Tested::new(Algorithm::SlidingWindow, 10, 1000);
        l.allows(10, 500);
        // Half-way into the next window half of the previous 10 still count.
        let d = l.take(1, 1500);
        assert!(d.allowed);
        assert_eq!(d.remaining, 4);
        l.allows(4, 1500);
        assert!(!l.take(1, 1500).allowed);
    }

    #[test]
    fn cost_above_limit_is_never_allowed() {
        let mut l = Tested::new(Algorithm::TokenBucket, 2, 1000);
        assert_eq!(l.refuses(5, 0), 1000);
    }
}
