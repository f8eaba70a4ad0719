//! A circuit cell: the state a breaker filter moves with compare-and-set transitions, so
//! that of many instances deciding at once exactly one moves it. Every move is logged and
//! counted here, whoever made it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::time::now_ms;

/// The states of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls are refused (the filter serves its fallback).
    Open,
    /// A few probe calls go through.
    HalfOpen,
}

impl CircuitState {
    /// The state's name in logs, metrics and the admin API.
    pub fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A circuit's state and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CircuitStatus {
    /// The state.
    pub state: CircuitState,
    /// When it entered the state, in ms since the Unix epoch (0: never moved).
    pub since_ms: u64,
    /// Trips since the circuit was last closed.
    pub trips: u32,
    /// Probes let through in this half-open period.
    pub probes: u32,
    /// Of those, probes that succeeded.
    pub probe_successes: u32,
}

/// One circuit.
#[derive(Debug)]
pub struct Circuit {
    status: Mutex<CircuitStatus>,
    /// Transitions into each state, by `CircuitState::index`.
    entered: [AtomicU64; 3],
}

impl Default for Circuit {
    fn default() -> Self {
        Self {
            status: Mutex::new(CircuitStatus {
                state: CircuitState::Closed,
                since_ms: 0,
                trips: 0,
                probes: 0,
                probe_successes: 0,
            }),
            entered: Default::default(),
        }
    }
}

impl Circuit {
    /// The current status.
    pub fn status(&self) -> CircuitStatus {
        *self.lock()
    }

    /// Moves from `from` to `to` if the circuit is still in `from`; false otherwise.
    pub fn transition(&self, from: CircuitState, to: CircuitState) -> bool {
        let mut status = self.lock();
        if status.state != from || from == to {
            return false;
        }
        status.state = to;
        status.since_ms = now_ms();
        status.probes = 0;
        status.probe_successes = 0;
        match to {
            CircuitState::Open => status.trips = status.trips.saturating_add(1),
            CircuitState::Closed => status.trips = 0,
            CircuitState::HalfOpen => {}
        }
        self.entered[to.index()].fetch_add(1, Ordering::Relaxed);
        true
    }

    /// In half-open, takes a probe slot if fewer than `max` are taken.
    pub fn admit_probe(&self, max: u32) -> bool {
        let mut status = self.lock();
        if status.state != CircuitState::HalfOpen || status.probes >= max {
            return false;
        }
        status.probes += 1;
        true
    }

    /// Counts a probe's result; returns the probe successes of this half-open period.
    pub fn probe_done(&self, success: bool) -> u32 {
        let mut status = self.lock();
        if success && status.state == CircuitState::HalfOpen {
            status.probe_successes += 1;
        }
        status.probe_successes
    }

    /// Transitions into `state` so far.
    pub fn entered(&self, state: CircuitState) -> u64 {
        self.entered[state.index()].load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CircuitStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::CircuitState::*;
    use super::*;

    #[test]
    fn one_transition_wins() {
        let circuit = Circuit::default();
        assert!(circuit.transition(Closed, Open));
        assert!(!circuit.transition(Closed, Open), "already moved");
        assert_eq!(circuit.status().trips, 1);
        assert!(circuit.transition(Open, HalfOpen));
        assert!(circuit.admit_probe(2));
        assert!(circuit.admit_probe(2));
        assert!(!circuit.admit_probe(2), "two probes only");
        assert_eq!(circuit.probe_done(true), 1);
        assert!(circuit.transition(HalfOpen, Open));
        assert_eq!(circuit.status().trips, 2, "a re-trip counts");
        assert_eq!(circuit.status().probes, 0, "a move clears the probes");
        assert!(circuit.transition(Open, HalfOpen));
        assert!(circuit.transition(HalfOpen, Closed));
        assert_eq!(circuit.status().trips, 0);
        assert_eq!(circuit.entered(Open), 2);
        assert_eq!(circuit.entered(Closed), 1);
    }
}
