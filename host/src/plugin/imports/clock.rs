//! `clock`: wall-clock and monotonic time.

use std::sync::LazyLock;
use std::time::Instant;

use super::HostState;
use crate::plugin::bindings::weir::gateway::clock::Host;
use crate::upstream::health::now_ms;

static START: LazyLock<Instant> = LazyLock::new(Instant::now);

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
    #[tracing::instrument(name = "weir.clock.now_ms", level = "trace", skip_all)]
    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        self.check_clock()?;
        Ok(now_ms())
    }

    #[tracing::instrument(name = "weir.clock.monotonic_ns", level = "trace", skip_all)]
    fn monotonic_ns(&mut self) -> wasmtime::Result<u64> {
        self.check_clock()?;
        Ok(START.elapsed().as_nanos() as u64)
    }
}
