//! The host interfaces a filter may call. Each must be granted to the plugin in the
//! gateway config; an ungranted call returns [`crate::HostError::AccessDenied`] (or traps, for
//! `log`, `clock` and `upstreams::load`, which have no error result).
//!
//! In a Wasm component every function here is the gateway's import; in a native build
//! (`cargo test`) it is answered by the [`crate::testing::FakeHost`] installed on the
//! thread.

pub(crate) mod backend;
pub mod cache;
pub mod kv;
pub mod secrets;

use backend::with;

/// Structured logging into the gateway's log (grant `log`); see also [`crate::log!`].
pub mod log {
    pub use crate::bindings::weir::gateway::log::Level;

    /// Writes one log line, tagged by the gateway with the plugin and the request id.
    pub fn log(level: Level, message: &str) {
        super::with(|h| h.log(level, message));
    }
}

/// Time (grant `clock`).
pub mod clock {
    /// Wall-clock time in milliseconds since the Unix epoch.
    pub fn now_ms() -> u64 {
        super::with(|h| h.now_ms())
    }

    /// A monotonic clock in nanoseconds, for measuring intervals.
    pub fn monotonic_ns() -> u64 {
        super::with(|h| h.monotonic_ns())
    }
}

/// Atomic rate limiting (grant `limits`).
pub mod limits {
    pub use crate::bindings::weir::gateway::limits::{Algorithm, Decision, Policy};

    use crate::HostError;

    /// Takes `cost` units from the budget under `key` (namespaced per plugin).
    pub fn take(key: &str, policy: Policy, cost: u32) -> Result<Decision, HostError> {
        super::with(|h| h.limits_take(key, policy, cost))
    }
}

/// Outbound HTTP to named upstreams of the gateway config (grant `http:<upstream>`).
pub mod http {
    pub use crate::bindings::weir::gateway::http::OutboundRequest;
    pub use crate::bindings::weir::gateway::types::Response;

    use crate::HostError;

    /// Sends the request and waits for the whole response.
    pub fn send(request: &OutboundRequest) -> Result<Response, HostError> {
        super::with(|h| h.http_send(request))
    }
}

/// The gateway's record of upstream calls, the circuit cells and its load (grant
/// `upstreams`).
pub mod upstreams {
    pub use crate::bindings::weir::gateway::upstreams::{
        CircuitState, CircuitStatus, GatewayLoad, Scope, WindowStats,
    };

    use crate::HostError;

    /// The outcomes of the calls of `scope` in the last `window_ms`, counting as slow the
    /// calls that took longer than `slow_ms`.
    pub fn stats(scope: &Scope, window_ms: u32, slow_ms: u32) -> Result<WindowStats, HostError> {
        super::with(|h| h.stats(scope, window_ms, slow_ms))
    }

    /// The circuit of `scope`.
    pub fn circuit(scope: &Scope) -> Result<CircuitStatus, HostError> {
        super::with(|h| h.circuit(scope))
    }

    /// Moves the circuit from `from` to `to` if it is still in `from`; false when another
    /// call moved it first.
    pub fn transition(
        scope: &Scope,
        from: CircuitState,
        to: CircuitState,
        reason: &str,
    ) -> Result<bool, HostError> {
        super::with(|h| h.transition(scope, from, to, reason))
    }

    /// In half-open, lets one more probe through if fewer than `max` were.
    pub fn admit_probe(scope: &Scope, max: u32) -> Result<bool, HostError> {
        super::with(|h| h.admit_probe(scope, max))
    }

    /// Records how a probe ended; returns the probe successes of this half-open period.
    pub fn probe_done(scope: &Scope, success: bool) -> Result<u32, HostError> {
        super::with(|h| h.probe_done(scope, success))
    }

    /// The gateway's load now.
    pub fn load() -> GatewayLoad {
        super::with(|h| h.load())
    }
}
