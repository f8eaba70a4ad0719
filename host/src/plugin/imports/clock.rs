//! `clock`: wall-clock and monotonic time.

use super::HostState;
use crate::plugin::bindings::weir::gateway::clock::Host;
use crate::time::{monotonic_ns, now_ms};

impl HostState {
    fn check_clock(&self) -> wasmtime::Result<()> {
        if !self.caller.grants.clock {
            wasmtime::bail!(
                "plugin {} read the clock without the `clock` grant",
                self.caller.plugin
            );
        }
        Ok(())
    }
}

impl Host for HostState {
    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        self.check_clock()?;
        Ok(now_ms())
    }

    fn monotonic_ns(&mut self) -> wasmtime::Result<u64> {
        self.check_clock()?;
        Ok(monotonic_ns())
    }
}

/// The WASI clocks of a plugin without the `clock` grant: they stand still at zero (the
/// Unix epoch for the wall clock), so a plugin cannot read the time through `wasi:clocks`
/// either. Sleeping still takes real time, up to the call's wall-clock stop.
#[derive(Debug, Clone, Copy)]
pub(super) struct StoppedClock;

impl wasmtime_wasi::HostWallClock for StoppedClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}
