//! The circuit breaker's policy over the gateway's record of upstream calls. The gateway
//! keeps the outcomes and the circuit cell (shared by every instance, moved by
//! compare-and-set); this module decides when to move it:
//!
//! ```text
//!            trip rule met                  cool-down over
//!   closed ─────────────────▶ open ─────────────────────────▶ half-open
//!     ▲                        ▲   a probe fails, or probes        │
//!     │                        └───────── time out (trips + 1) ────┤
//!     └────────────────── every probe succeeded ───────────────────┘
//! ```

use weir_plugin_sdk::HostError;
use weir_plugin_sdk::duration::{millis, millis_u32};
use weir_plugin_sdk::host::clock;
use weir_plugin_sdk::host::upstreams::{self, CircuitState, CircuitStatus, Scope, WindowStats};

use crate::config::{BreakerConfig, ScopeConfig};

/// What the breaker says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Call the upstream.
    Pass,
    /// Call the upstream as one of the half-open probes; report how it ended.
    Probe,
    /// Do not call the upstream; the circuit may let calls through after this many ms.
    Refuse {
        /// Milliseconds until the cool-down ends (0: when the probes have ended).
        retry_after_ms: u64,
    },
}

/// A validated breaker.
#[derive(Debug)]
pub struct Breaker {
    /// Whose calls it watches.
    pub scope: ScopeConfig,
    /// The window, in ms.
    pub window_ms: u32,
    /// Calls needed before a rate counts.
    pub min_calls: u32,
    /// Failure rate that trips.
    pub failure_rate: f64,
    /// The slow-call rule: threshold in ms and rate that trips.
    pub slow: Option<(u32, f64)>,
    /// Failures in a row that trip.
    pub consecutive_failures: Option<u32>,
    /// First cool-down, in ms.
    pub open_ms: u64,
    /// Longest cool-down, in ms.
    pub max_open_ms: u64,
    /// Probes in half-open.
    pub half_open_probes: u32,
    /// How long probes may take, in ms.
    pub probe_timeout_ms: u64,
}

impl Breaker {
    /// Validates the `breaker` section; `None` when disabled.
    pub fn from_config(c: BreakerConfig) -> Result<Option<Self>, String> {
        if !c.enabled {
            return Ok(None);
        }
        let rate = |key: &str, value: f64| match value > 0.0 && value <= 1.0 {
            true => Ok(value),
            false => Err(format!("breaker.{key} must be in (0, 1], not {value}")),
        };
        let at_least_one = |key: &str, value: u64| match value >= 1 {
            true => Ok(()),
            false => Err(format!("breaker.{key} must be at least 1")),
        };
        let (window_ms, open_ms) = (millis_u32(c.sliding_window), millis(c.cool_down));
        let (max_open_ms, probe_timeout_ms) = (millis(c.max_cool_down), millis(c.probe_timeout));
        at_least_one("sliding_window (window_ms)", window_ms.into())?;
        at_least_one("min_calls", c.min_calls.into())?;
        at_least_one("cool_down (open_ms)", open_ms)?;
        at_least_one("half_open_probes", c.half_open_probes.into())?;
        at_least_one("probe_timeout (probe_timeout_ms)", probe_timeout_ms)?;
        if let Some(n) = c.consecutive_failures {
            at_least_one("consecutive_failures", n.into())?;
        }
        if max_open_ms < open_ms {
            return Err(
                "breaker.max_cool_down (max_open_ms) must be at least cool_down (open_ms)"
                    .to_string(),
            );
        }
        let slow_call_rate = rate("slow_call_rate", c.slow_call_rate)?;
        Ok(Some(Self {
            scope: c.scope,
            window_ms,
            min_calls: c.min_calls,
            failure_rate: rate("failure_rate", c.failure_rate)?,
            slow: c.slow_call.map(|d| (millis_u32(d), slow_call_rate)),
            consecutive_failures: c.consecutive_failures,
            open_ms,
            max_open_ms,
            half_open_probes: c.half_open_probes,
            probe_timeout_ms,
        }))
    }

    /// Decides whether a request may call the upstream of `scope`, moving the circuit when
    /// a trip rule is met or the cool-down is over.
    pub fn admit(&self, scope: &Scope) -> Result<Admission, HostError> {
        let circuit = upstreams::circuit(scope)?;
        let now = clock::now_ms();
        match circuit.state {
            CircuitState::Closed => match self.trip_rule(scope, &circuit, now)? {
                None => Ok(Admission::Pass),
                Some(reason) => {
                    upstreams::transition(
                        scope,
                        CircuitState::Closed,
                        CircuitState::Open,
                        &reason,
                    )?;
                    Ok(Admission::Refuse {
                        retry_after_ms: self.cool_down(1),
                    })
                }
            },
            CircuitState::Open => {
                let until = circuit
                    .since_ms
                    .saturating_add(self.cool_down(circuit.trips));
                if now < until {
                    return Ok(Admission::Refuse {
                        retry_after_ms: until - now,
                    });
                }
                // Whoever wins the move, the probes are taken from the same cell.
                upstreams::transition(
                    scope,
                    CircuitState::Open,
                    CircuitState::HalfOpen,
                    "cool-down over",
                )?;
                self.probe(scope, now, circuit.trips)
            }
            CircuitState::HalfOpen => self.probe(scope, circuit.since_ms, circuit.trips),
        }
    }

    /// Records how a probe ended, and closes the circuit when every probe succeeded or
    /// opens it again when one failed.
    pub fn probe_done(&self, scope: &Scope, success: bool) -> Result<(), HostError> {
        let successes = upstreams::probe_done(scope, success)?;
        if !success {
            upstreams::transition(
                scope,
                CircuitState::HalfOpen,
                CircuitState::Open,
                "a probe failed",
            )?;
        } else if successes >= self.half_open_probes {
            upstreams::transition(
                scope,
                CircuitState::HalfOpen,
                CircuitState::Closed,
                "every probe succeeded",
            )?;
        }
        Ok(())
    }

    /// In half-open since `since_ms`: a probe slot if one is left; once the probes have
    /// had `probe_timeout_ms` without settling the circuit, it opens again.
    fn probe(&self, scope: &Scope, since_ms: u64, trips: u32) -> Result<Admission, HostError> {
        if upstreams::admit_probe(scope, self.half_open_probes)? {
            return Ok(Admission::Probe);
        }
        let now = clock::now_ms();
        if now.saturating_sub(since_ms) < self.probe_timeout_ms {
            return Ok(Admission::Refuse { retry_after_ms: 0 });
        }
        upstreams::transition(
            scope,
            CircuitState::HalfOpen,
            CircuitState::Open,
            "the probes did not end in time",
        )?;
        Ok(Admission::Refuse {
            retry_after_ms: self.cool_down(trips.saturating_add(1)),
        })
    }

    /// The reason to trip a closed circuit, if a rule is met by the calls since it closed
    /// (at most `window_ms` back, so that the failures that opened it last time do not
    /// open it again).
    fn trip_rule(
        &self,
        scope: &Scope,
        circuit: &CircuitStatus,
        now: u64,
    ) -> Result<Option<String>, HostError> {
        let window = match circuit.since_ms {
            0 => self.window_ms,
            since => u32::try_from(now.saturating_sub(since))
                .unwrap_or(u32::MAX)
                .min(self.window_ms),
        };
        let slow_ms = self.slow.map_or(u32::MAX, |(ms, _)| ms);
        let stats = upstreams::stats(scope, window, slow_ms)?;
        Ok(self.rule_met(&stats))
    }

    /// Which trip rule `stats` meets, if any: failures in a row, or (with at least
    /// `min_calls` calls) a failure or slow-call rate at or above its limit.
    fn rule_met(&self, stats: &WindowStats) -> Option<String> {
        if let Some(limit) = self.consecutive_failures
            && stats.consecutive_failures >= limit
        {
            return Some(format!("{} failures in a row", stats.consecutive_failures));
        }
        if stats.calls < self.min_calls {
            return None;
        }
        let calls = f64::from(stats.calls);
        let failure_rate = f64::from(stats.failures) / calls;
        if failure_rate >= self.failure_rate {
            return Some(format!(
                "{} of {} calls failed",
                stats.failures, stats.calls
            ));
        }
        match self.slow {
            Some((ms, limit)) if f64::from(stats.slow) / calls >= limit => Some(format!(
                "{} of {} calls took over {ms} ms",
                stats.slow, stats.calls
            )),
            _ => None,
        }
    }

    /// The cool-down after the `trips`-th trip: `open_ms`, doubled for each trip after the
    /// first, at most `max_open_ms`.
    fn cool_down(&self, trips: u32) -> u64 {
        let doublings = trips.saturating_sub(1).min(63);
        self.open_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_open_ms)
    }
}
