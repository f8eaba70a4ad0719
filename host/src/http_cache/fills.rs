//! Request coalescing: while one request fills a key (it missed, and went to the upstream),
//! the others that miss the same key wait for it instead of going upstream too. The
//! filler holds a lease: it ends with the filler's `put` or `release`, or lapses, and
//! then the next asker fills. A filler that found the response not storable may say so
//! for a while (`pass`), so that the askers of that time go upstream at once, side by side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Who holds a key now.
enum Holder {
    /// A request fills it, until the lease lapses; the waiters wait on `done`.
    Filling {
        request: String,
        until: Instant,
        done: Arc<Notify>,
    },
    /// Not worth waiting for, until then.
    Passing { until: Instant },
}

/// What a turn at a key gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Turn {
    /// The asker fills the key.
    Lead,
    /// Another request fills it: wait on this, until `until` at the latest.
    Wait(WaitFor),
    /// Do not wait: go upstream without filling.
    Pass,
}

/// A wait for another request's fill.
#[derive(Debug)]
pub(super) struct WaitFor {
    pub(super) done: Arc<Notify>,
    pub(super) until: Instant,
}

impl PartialEq for WaitFor {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.done, &other.done) && self.until == other.until
    }
}

impl Eq for WaitFor {}

/// The keys being filled or passed, bounded.
pub(super) struct Fills {
    holders: Mutex<HashMap<String, Holder>>,
    max: usize,
    lease: Duration,
}

impl Fills {
    /// At most `max` keys at once; a filler's lease lasts `lease`.
    pub(super) fn new(max: usize, lease: Duration) -> Self {
        Self {
            holders: Mutex::default(),
            max,
            lease,
        }
    }

    fn holders(&self) -> std::sync::MutexGuard<'_, HashMap<String, Holder>> {
        self.holders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `request`'s turn at `key` now.
    pub(super) fn turn(&self, key: &str, request: &str, now: Instant) -> Turn {
        let mut holders = self.holders();
        match holders.get(key) {
            Some(Holder::Passing { until }) if *until > now => return Turn::Pass,
            Some(Holder::Filling {
                request: filler,
                until,
                done,
            }) if *until > now => {
                if filler == request {
                    return Turn::Lead;
                }
                return Turn::Wait(WaitFor {
                    done: done.clone(),
                    until: *until,
                });
            }
            // Free, or lapsed.
            _ => {}
        }
        if holders.len() >= self.max && !holders.contains_key(key) {
            holders.retain(|_, h| match h {
                Holder::Filling { until, .. } | Holder::Passing { until } => *until > now,
            });
            if holders.len() >= self.max {
                return Turn::Pass;
            }
        }
        let lapsed = holders.insert(
            key.to_string(),
            Holder::Filling {
                request: request.to_string(),
                until: now + self.lease,
                done: Arc::new(Notify::new()),
            },
        );
        // Those who waited for a filler whose lease lapsed look again.
        if let Some(Holder::Filling { done, .. }) = lapsed {
            done.notify_waiters();
        }
        Turn::Lead
    }

    /// Ends `request`'s fill of `key` (if it holds it), waking the waiters; with `pass`,
    /// the key is passed for that long.
    pub(super) fn end(&self, key: &str, request: &str, pass: Option<Duration>, now: Instant) {
        let mut holders = self.holders();
        let held =
            matches!(holders.get(key), Some(Holder::Filling { request: r, .. }) if r == request);
        if !held {
            return;
        }
        let next = pass.map(|pass| Holder::Passing { until: now + pass });
        let ended = match next {
            Some(passing) => holders.insert(key.to_string(), passing),
            None => holders.remove(key),
        };
        if let Some(Holder::Filling { done, .. }) = ended {
            done.notify_waiters();
        }
    }

    /// Keys being filled or passed now.
    pub(super) fn len(&self) -> usize {
        self.holders().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_fills_and_the_others_wait_until_it_ends() {
        let fills = Fills::new(10, Duration::from_secs(5));
        let now = Instant::now();
        assert_eq!(fills.turn("k", "r1", now), Turn::Lead);
        assert_eq!(fills.turn("k", "r1", now), Turn::Lead, "asking again");
        let Turn::Wait(wait) = fills.turn("k", "r2", now) else {
            panic!("r2 waits");
        };
        assert_eq!(wait.until, now + Duration::from_secs(5));
        // Someone else cannot end r1's fill.
        fills.end("k", "r2", None, now);
        assert!(matches!(fills.turn("k", "r3", now), Turn::Wait(_)));
        fills.end("k", "r1", None, now);
        assert_eq!(fills.turn("k", "r2", now), Turn::Lead, "free again");
        assert_eq!(fills.len(), 1);
    }

    #[test]
    fn a_lapsed_lease_passes_the_fill_on_and_a_pass_sends_everyone_upstream() {
        let fills = Fills::new(10, Duration::from_millis(100));
        let now = Instant::now();
        assert_eq!(fills.turn("k", "r1", now), Turn::Lead);
        let later = now + Duration::from_millis(101);
        assert_eq!(
            fills.turn("k", "r2", later),
            Turn::Lead,
            "r1's lease lapsed"
        );
        fills.end("k", "r2", Some(Duration::from_secs(1)), later);
        assert_eq!(fills.turn("k", "r3", later), Turn::Pass);
        let after = later + Duration::from_secs(1);
        assert_eq!(fills.turn("k", "r3", after), Turn::Lead, "the pass ended");
    }

    #[test]
    fn the_table_is_bounded_and_sheds_lapsed_entries_first() {
        let fills = Fills::new(2, Duration::from_millis(10));
        let now = Instant::now();
        assert_eq!(fills.turn("a", "r", now), Turn::Lead);
        assert_eq!(fills.turn("b", "r", now), Turn::Lead);
        assert_eq!(fills.turn("c", "r", now), Turn::Pass, "full");
        let later = now + Duration::from_millis(11);
        assert_eq!(
            fills.turn("c", "r", later),
            Turn::Lead,
            "lapsed ones made room"
        );
        assert_eq!(fills.len(), 1);
    }
}
