//! `[bulkheads.<name>]`: how many requests the routes that name a bulkhead may have in at
//! once, and how many more may wait, for how long; one business line's overload then
//! cannot take another's share of the gateway.

use serde::Deserialize;

/// One bulkhead, shared by every route that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BulkheadConfig {
    /// Requests in at once (from routing to the response's head), at least 1.
    pub max_concurrent: u32,
    /// Requests that may wait for a place (default: as many as `max_concurrent`); beyond
    /// them a request is refused at once.
    pub max_queued: Option<u32>,
    /// How long a request waits for a place before it is refused (default 1000 ms).
    #[serde(default = "default_queue_timeout_ms")]
    pub queue_timeout_ms: u64,
}

fn default_queue_timeout_ms() -> u64 {
    1000
}

impl BulkheadConfig {
    /// The waiting room: `max_queued`, or `max_concurrent` when not given.
    pub fn queue(&self) -> u32 {
        self.max_queued.unwrap_or(self.max_concurrent)
    }
}
