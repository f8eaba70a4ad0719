//! Retries of failed upstream calls: a route's policy (what is retried, how often, how
//! fast), and the retry budget of an upstream, which caps the retries in flight at a share
//! of its requests in flight, so that retries cannot multiply an outage (Envoy's retry
//! budget, and Finagle's before it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Method, StatusCode};

use crate::config::{RetryConfig, RetryOn};
use crate::error::{ErrorKind, GatewayError};

/// A route's retry policy, compiled from its config.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries after the first.
    pub retries: u32,
    on: Vec<RetryOn>,
    /// The timeout of one try, if shorter than the route's.
    pub per_try_timeout: Option<Duration>,
    non_idempotent: bool,
    backoff_base: Duration,
    backoff_max: Duration,
    budget_percent: u64,
    budget_min: u64,
    /// The largest request body held for sending again.
    pub buffer_body: usize,
}

/// Why a try failed, in the policy's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// What the config calls it.
    Of(RetryOn),
    /// A failure no policy retries (a client's fault, a 500).
    Other,
}

impl RetryPolicy {
    /// The policy `config` describes.
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            retries: config.retries,
            on: config.on.clone(),
            per_try_timeout: config.per_try_timeout_ms.map(Duration::from_millis),
            non_idempotent: config.non_idempotent,
            backoff_base: Duration::from_millis(config.backoff_base_ms),
            backoff_max: Duration::from_millis(config.backoff_max_ms),
            budget_percent: u64::from(config.budget_percent),
            budget_min: u64::from(config.budget_min),
            buffer_body: config.buffer_body_bytes,
        }
    }

    /// Whether a try of a `method` request that ended in `failure` may be tried again:
    /// the failure is one the policy names, and the request was never sent or may be sent
    /// twice (an idempotent method, RFC 9110 §9.2.2, or `non_idempotent`).
    pub fn retries(&self, method: &Method, failure: Failure) -> bool {
        let Failure::Of(kind) = failure else {
            return false;
        };
        let again =
            kind == RetryOn::ConnectFailure || self.non_idempotent || method.is_idempotent();
        again && self.on.contains(&kind)
    }

    /// The pause before retry number `n` (1 for the first retry): full jitter over an
    /// exponential ceiling.
    pub fn backoff(&self, n: u32) -> Duration {
        let ceiling = self
            .backoff_base
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.backoff_max);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(fastrand::u64(0..=ms))
    }
}

/// How a try ended, for the policy: a response's status, or the gateway's error.
pub fn failure_of<T>(
    result: &Result<T, GatewayError>,
    status: impl Fn(&T) -> StatusCode,
) -> Option<Failure> {
    match result {
        Ok(response) => match status(response).as_u16() {
            502 => Some(Failure::Of(RetryOn::BadGateway)),
            503 => Some(Failure::Of(RetryOn::Unavailable)),
            504 => Some(Failure::Of(RetryOn::GatewayTimeout)),
            _ => None,
        },
        Err(e) if e.unsent => Some(Failure::Of(RetryOn::ConnectFailure)),
        Err(e) => Some(match e.kind {
            ErrorKind::UpstreamTimeout => Failure::Of(RetryOn::Timeout),
            ErrorKind::UpstreamFailed => Failure::Of(RetryOn::Reset),
            _ => Failure::Other,
        }),
    }
}

/// An upstream's retry budget: its requests and retries in flight.
#[derive(Debug, Default)]
pub struct RetryBudget {
    requests: AtomicU64,
    retries: AtomicU64,
    /// Retries refused because the budget was spent.
    pub exhausted: AtomicU64,
}

/// A request in flight to the upstream, counted in its budget until dropped.
pub struct InBudget<'a> {
    budget: &'a RetryBudget,
    retrying: bool,
}

impl RetryBudget {
    /// Counts a request (its first try) in flight.
    pub fn request(&self) -> InBudget<'_> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        InBudget {
            budget: self,
            retrying: false,
        }
    }

    /// Counts `held` as retrying from now on, if `policy` lets one more retry be in flight:
    /// at most `budget_percent` of the requests in flight, or `budget_min`, whichever is
    /// more. False (and counted) when the budget is spent.
    pub fn retry(&self, held: &mut InBudget<'_>, policy: &RetryPolicy) -> bool {
        if held.retrying {
            return true;
        }
        let requests = self.requests.load(Ordering::Relaxed);
        let allowed = (requests * policy.budget_percent / 100).max(policy.budget_min);
        if self.retries.fetch_add(1, Ordering::Relaxed) >= allowed {
            self.retries.fetch_sub(1, Ordering::Relaxed);
            self.exhausted.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        held.retrying = true;
        true
    }

    /// Requests and retries in flight now.
    pub fn in_flight(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
        )
    }
}

impl Drop for InBudget<'_> {
    fn drop(&mut self) {
        self.budget.requests.fetch_sub(1, Ordering::Relaxed);
        if self.retrying {
            self.budget.retries.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(config: RetryConfig) -> RetryPolicy {
        RetryPolicy::new(&config)
    }

    #[test]
    fn only_named_failures_of_requests_that_may_be_sent_again_are_retried() {
        let p = policy(RetryConfig::default());
        let reset = Failure::Of(RetryOn::Reset);
        assert!(p.retries(&Method::GET, reset));
        assert!(p.retries(&Method::PUT, reset));
        assert!(
            !p.retries(&Method::POST, reset),
            "POST may not be sent twice"
        );
        assert!(
            p.retries(&Method::POST, Failure::Of(RetryOn::ConnectFailure)),
            "never sent"
        );
        assert!(!p.retries(&Method::GET, Failure::Other));
        let p = policy(RetryConfig {
            on: vec![RetryOn::Unavailable],
            non_idempotent: true,
            ..RetryConfig::default()
        });
        assert!(p.retries(&Method::POST, Failure::Of(RetryOn::Unavailable)));
        assert!(!p.retries(&Method::GET, Failure::Of(RetryOn::BadGateway)));
    }

    #[test]
    fn failures_are_told_from_the_status_or_the_error() {
        let status = |s: &u16| StatusCode::from_u16(*s).unwrap();
        assert_eq!(
            failure_of(&Ok(503), status),
            Some(Failure::Of(RetryOn::Unavailable))
        );
        assert_eq!(failure_of(&Ok(500), status), None);
        let timeout = GatewayError::new(ErrorKind::UpstreamTimeout, "t");
        assert_eq!(
            failure_of::<u16>(&Err(timeout), status),
            Some(Failure::Of(RetryOn::Timeout))
        );
        let refused = GatewayError::new(ErrorKind::UpstreamFailed, "c").unsent();
        assert_eq!(
            failure_of::<u16>(&Err(refused), status),
            Some(Failure::Of(RetryOn::ConnectFailure))
        );
        let reset = GatewayError::new(ErrorKind::UpstreamFailed, "r");
        assert_eq!(
            failure_of::<u16>(&Err(reset), status),
            Some(Failure::Of(RetryOn::Reset))
        );
    }

    #[test]
    fn back_off_is_jittered_under_a_doubling_ceiling() {
        let p = policy(RetryConfig::default());
        for n in 1..6 {
            let ceiling = Duration::from_millis((25u64 << (n - 1)).min(250));
            for _ in 0..50 {
                assert!(p.backoff(n) <= ceiling);
            }
        }
    }

    #[test]
    fn the_budget_holds_retries_to_a_share_of_the_requests_in_flight() {
        let p = policy(RetryConfig {
            budget_percent: 20,
            budget_min: 1,
            ..RetryConfig::default()
        });
        let budget = RetryBudget::default();
        let mut held: Vec<_> = (0..10).map(|_| budget.request()).collect();
        // 20% of 10 in flight: two retries at once.
        assert!(budget.retry(&mut held[0], &p));
        assert!(budget.retry(&mut held[1], &p));
        assert!(!budget.retry(&mut held[2], &p));
        assert_eq!(budget.exhausted.load(Ordering::Relaxed), 1);
        assert!(
            budget.retry(&mut held[0], &p),
            "a retrying request retries again"
        );
        held.remove(0);
        assert_eq!(budget.in_flight(), (9, 1));
        // 20% of 9 is one retry, taken.
        assert!(!budget.retry(&mut held[1], &p));
        held.remove(0);
        assert_eq!(budget.in_flight(), (8, 0));
        assert!(budget.retry(&mut held[0], &p), "a place came free");
        drop(held);
        assert_eq!(budget.in_flight(), (0, 0));
    }
}
