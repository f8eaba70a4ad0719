//! The fake `upstreams` interface: stats set by the test, and circuit cells that move as
//! the WIT contract says (compare-and-set transitions, trips, probes).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::host::upstreams::{CircuitState, CircuitStatus, GatewayLoad, Scope, WindowStats};

/// The record of every scope, and the gateway's load.
pub(super) struct Upstreams {
    stats: RefCell<HashMap<Scope, WindowStats>>,
    circuits: RefCell<HashMap<Scope, CircuitStatus>>,
    load: Cell<GatewayLoad>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            stats: RefCell::default(),
            circuits: RefCell::default(),
            load: Cell::new(GatewayLoad {
                in_flight: 1,
                latency_ms: 0,
            }),
        }
    }
}

/// A closed circuit that never moved.
fn closed() -> CircuitStatus {
    CircuitStatus {
        state: CircuitState::Closed,
        since_ms: 0,
        trips: 0,
        probes: 0,
        probe_successes: 0,
    }
}

impl Upstreams {
    pub(super) fn set_stats(&self, scope: &Scope, stats: WindowStats) {
        self.stats.borrow_mut().insert(scope.clone(), stats);
    }

    pub(super) fn stats(&self, scope: &Scope) -> WindowStats {
        let stats = self.stats.borrow().get(scope).copied();
        stats.unwrap_or(WindowStats {
            calls: 0,
            failures: 0,
            slow: 0,
            consecutive_failures: 0,
        })
    }

    pub(super) fn set_load(&self, load: GatewayLoad) {
        self.load.set(load);
    }

    pub(super) fn load(&self) -> GatewayLoad {
        self.load.get()
    }

    pub(super) fn circuit(&self, scope: &Scope) -> CircuitStatus {
        self.circuits
            .borrow()
            .get(scope)
            .copied()
            .unwrap_or_else(closed)
    }

    /// Entering `open` counts a trip, entering `closed` clears them, every move clears
    /// the probes.
    pub(super) fn transition(
        &self,
        scope: &Scope,
        from: CircuitState,
        to: CircuitState,
        now_ms: u64,
    ) -> bool {
        let mut circuits = self.circuits.borrow_mut();
        let cell = circuits.entry(scope.clone()).or_insert_with(closed);
        if cell.state != from {
            return false;
        }
        *cell = CircuitStatus {
            state: to,
            since_ms: now_ms,
            trips: match to {
                CircuitState::Open => cell.trips + 1,
                CircuitState::Closed => 0,
                CircuitState::HalfOpen => cell.trips,
            },
            probes: 0,
            probe_successes: 0,
        };
        true
    }

    pub(super) fn admit_probe(&self, scope: &Scope, max: u32) -> bool {
        let mut circuits = self.circuits.borrow_mut();
        let cell = circuits.entry(scope.clone()).or_insert_with(closed);
        let admitted = cell.state == CircuitState::HalfOpen && cell.probes < max;
        if admitted {
            cell.probes += 1;
        }
        admitted
    }

    pub(super) fn probe_done(&self, scope: &Scope, success: bool) -> u32 {
        let mut circuits = self.circuits.borrow_mut();
        let cell = circuits.entry(scope.clone()).or_insert_with(closed);
        if success {
            cell.probe_successes += 1;
        }
        cell.probe_successes
    }
}
