//! `upstreams`: the gateway's record of upstream calls, the circuit cells breaker filters
//! move, and the gateway's load. The policy is the filter's; the record, the cells and the
//! account of every transition (log, metrics, admin API) are the gateway's.

use std::sync::Arc;
use std::time::Duration;

use super::HostState;
use crate::plugin::bindings::weir::gateway::types::HostError;
use crate::plugin::bindings::weir::gateway::upstreams::{
    CircuitState as WitState, CircuitStatus as WitStatus, GatewayLoad, Host, Scope, WindowStats,
};
use crate::resilience::{CircuitState, Record, ScopeKind};

type UpstreamsResult<T> = wasmtime::Result<Result<T, HostError>>;

impl HostState {
    /// The record of `scope`, if the plugin holds the `upstreams` grant and the scope exists.
    fn record(&self, scope: &Scope) -> Result<Arc<Record>, HostError> {
        if !self.caller.grants.upstreams {
            return Err(HostError::AccessDenied);
        }
        let (kind, name) = match scope {
            Scope::Upstream(name) => (ScopeKind::Upstream, name),
            Scope::Route(name) => (ScopeKind::Route, name),
        };
        self.caller
            .services
            .resilience
            .find(kind, name)
            .ok_or_else(|| HostError::Invalid(format!("no {} named {name:?}", kind.label())))
    }
}

impl From<WitState> for CircuitState {
    fn from(state: WitState) -> Self {
        match state {
            WitState::Closed => Self::Closed,
            WitState::Open => Self::Open,
            WitState::HalfOpen => Self::HalfOpen,
        }
    }
}

impl From<CircuitState> for WitState {
    fn from(state: CircuitState) -> Self {
        match state {
            CircuitState::Closed => Self::Closed,
            CircuitState::Open => Self::Open,
            CircuitState::HalfOpen => Self::HalfOpen,
        }
    }
}

impl Host for HostState {
    fn stats(
        &mut self,
        scope: Scope,
        window_ms: u32,
        slow_ms: u32,
    ) -> UpstreamsResult<WindowStats> {
        Ok(self.record(&scope).map(|record| {
            let stats = record.outcomes.stats(
                Duration::from_millis(window_ms.into()),
                Duration::from_millis(slow_ms.into()),
            );
            WindowStats {
                calls: stats.calls,
                failures: stats.failures,
                slow: stats.slow,
                consecutive_failures: stats.consecutive_failures,
            }
        }))
    }

    fn circuit(&mut self, scope: Scope) -> UpstreamsResult<WitStatus> {
        Ok(self.record(&scope).map(|record| {
            let status = record.circuit.status();
            WitStatus {
                state: status.state.into(),
                since_ms: status.since_ms,
                trips: status.trips,
                probes: status.probes,
                probe_successes: status.probe_successes,
            }
        }))
    }

    fn transition(
        &mut self,
        scope: Scope,
        from: WitState,
        to: WitState,
        reason: String,
    ) -> UpstreamsResult<bool> {
        let record = match self.record(&scope) {
            Ok(record) => record,
            Err(e) => return Ok(Err(e)),
        };
        let (from, to) = (CircuitState::from(from), CircuitState::from(to));
        let moved = record.circuit.transition(from, to);
        if moved {
            let (scope, name) = (record.kind.label(), record.name.as_str());
            let (plugin, request_id) = (self.caller.plugin.as_str(), self.request_id.as_str());
            let trips = record.circuit.status().trips;
            let (from, to) = (from.label(), to.label());
            // One set of fields, at the level the move deserves.
            macro_rules! moved {
                ($level:ident, $message:literal) => {
                    tracing::$level!(
                        scope, name, from, to, trips, reason, plugin, request_id, $message
                    )
                };
            }
            if to == CircuitState::Open.label() {
                moved!(warn, "circuit opened");
            } else {
                moved!(info, "circuit moved");
            }
        }
        Ok(Ok(moved))
    }

    fn admit_probe(&mut self, scope: Scope, max: u32) -> UpstreamsResult<bool> {
        Ok(self
            .record(&scope)
            .map(|record| record.circuit.admit_probe(max)))
    }

    fn probe_done(&mut self, scope: Scope, success: bool) -> UpstreamsResult<u32> {
        Ok(self
            .record(&scope)
            .map(|record| record.circuit.probe_done(success)))
    }

    fn load(&mut self) -> wasmtime::Result<GatewayLoad> {
        if !self.caller.grants.upstreams {
            wasmtime::bail!("plugin {} was not granted `upstreams`", self.caller.plugin);
        }
        let load = &self.caller.services.resilience.load;
        Ok(GatewayLoad {
            in_flight: load.in_flight(),
            latency_ms: u32::try_from(load.latency().as_millis()).unwrap_or(u32::MAX),
        })
    }
}
