//! `[routes.retry]`: which failed upstream calls a route tries again, how often, how fast,
//! and within what share of the upstream's traffic (a retry budget), so that retries ride
//! out a target's failure without multiplying an outage.

use anyhow::bail;
use serde::Deserialize;

/// A failure a route may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    /// The target could not be connected to: the request was never sent, so any method is
    /// retried.
    ConnectFailure,
    /// The connection broke, or the exchange failed otherwise, after the request was sent.
    Reset,
    /// No response head within the try's timeout.
    Timeout,
    /// A 502 from the target.
    #[serde(rename = "502")]
    BadGateway,
    /// A 503 from the target.
    #[serde(rename = "503")]
    Unavailable,
    /// A 504 from the target.
    #[serde(rename = "504")]
    GatewayTimeout,
}

/// A route's retry policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Tries after the first (default 2); each goes to another target when there is one.
    pub retries: u32,
    /// What is retried (default: every failure above).
    pub on: Vec<RetryOn>,
    /// The timeout of one try, within the route's timeout (default: the route's timeout).
    pub per_try_timeout_ms: Option<u64>,
    /// Retry methods that are not idempotent (POST, PATCH) too, after the request was sent
    /// (default false: only GET, HEAD, OPTIONS, TRACE, PUT, DELETE, and any method whose
    /// request never reached a target).
    pub non_idempotent: bool,
    /// The first back-off before a retry (default 25 ms); each retry doubles it, up to
    /// `backoff_max_ms` (default 250 ms), and waits a random time up to it (full jitter).
    pub backoff_base_ms: u64,
    /// The longest back-off.
    pub backoff_max_ms: u64,
    /// Retries in flight may be at most this percentage of the upstream's requests in
    /// flight (default 20)...
    pub budget_percent: u32,
    /// ...or this many (default 3), whichever is more.
    pub budget_min: u32,
    /// A request body of a declared length up to this is held in memory before the first
    /// try, so that a retry can send it again (default 65536); a larger or streamed
    /// (chunked) body is sent once, and its request not retried once sent.
    pub buffer_body_bytes: usize,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            retries: 2,
            on: vec![
                RetryOn::ConnectFailure,
                RetryOn::Reset,
                RetryOn::Timeout,
                RetryOn::BadGateway,
                RetryOn::Unavailable,
                RetryOn::GatewayTimeout,
            ],
            per_try_timeout_ms: None,
            non_idempotent: false,
            backoff_base_ms: 25,
            backoff_max_ms: 250,
            budget_percent: 20,
            budget_min: 3,
            buffer_body_bytes: 64 << 10,
        }
    }
}

impl RetryConfig {
    /// Checks the values; `route` names the route in the message.
    pub fn validate(&self, route: &str) -> anyhow::Result<()> {
        let key = |k: &str| format!("route {route:?}: retry.{k}");
        if self.retries > 10 {
            bail!("{} must be at most 10", key("retries"));
        }
        if self.per_try_timeout_ms == Some(0) {
            bail!("{} must be at least 1", key("per_try_timeout_ms"));
        }
        if self.backoff_base_ms == 0 || self.backoff_max_ms < self.backoff_base_ms {
            bail!(
                "{} must be at least 1 and at most {}",
                key("backoff_base_ms"),
                key("backoff_max_ms")
            );
        }
        if self.backoff_max_ms > 60_000 {
            bail!("{} must be at most 60000", key("backoff_max_ms"));
        }
        if self.buffer_body_bytes > 16 << 20 {
            bail!("{} must be at most 16 MiB", key("buffer_body_bytes"));
        }
        if self.budget_percent > 100 {
            bail!("{} must be at most 100", key("budget_percent"));
        }
        Ok(())
    }
}
