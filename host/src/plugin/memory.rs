//! The memory cap of one instance: wasmtime's `StoreLimits`, plus a record of a refused
//! grow, so that a failed call is told to be a memory-cap failure by what happened rather
//! than by the wording of the trap.

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// A store's limiter: `memory_bytes` of linear memory, a trap on a refused grow.
pub(crate) struct MemoryCap {
    limits: StoreLimits,
    refused: bool,
}

impl MemoryCap {
    /// A cap of `memory_bytes`.
    pub(crate) fn new(memory_bytes: usize) -> Self {
        Self {
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            refused: false,
        }
    }

    /// Whether a grow was refused since the last [`MemoryCap::clear`].
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }

    /// Forgets earlier refusals (at the start of a call).
    pub(crate) fn clear(&mut self) {
        self.refused = false;
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum);
        self.refused |= !matches!(allowed, Ok(true));
        allowed
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.refused = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
