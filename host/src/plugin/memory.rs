//! The memory cap of one instance: wasmtime's `StoreLimits`, plus a record of a refused
//! grow, so that a failed call is told to be a memory-cap failure by what happened rather
//! than by the wording of the trap, and of how far its memory has grown, so that an
//! instance whose memory only ever grows (a guest that leaks a little per call; linear
//! memory never shrinks) is retired between calls before it reaches the cap in one.

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// A store's limiter: `memory_bytes` of linear memory, a trap on a refused grow.
pub(crate) struct MemoryCap {
    limits: StoreLimits,
    refused: bool,
    cap: usize,
    /// The largest linear memory granted so far.
    grown: usize,
    /// Its size when the instance was ready (instantiated and configured).
    baseline: usize,
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
            cap: memory_bytes,
            grown: 0,
            baseline: 0,
        }
    }

    /// Marks the memory the instance has now as what it starts its calls with.
    pub(crate) fn ready(&mut self) {
        self.baseline = self.grown;
    }

    /// Whether the instance has used up half of the headroom it started with: a memory
    /// that grew that far is retired rather than kept for the next call.
    pub(crate) fn worn(&self) -> bool {
        let headroom = self.cap.saturating_sub(self.baseline);
        self.grown > self.baseline + headroom / 2
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
        match allowed {
            Ok(true) => self.grown = self.grown.max(desired),
            _ => self.refused = true,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_worn_once_it_has_grown_through_half_its_headroom() {
        let mut cap = MemoryCap::new(64 << 20);
        assert!(matches!(cap.memory_growing(0, 16 << 20, None), Ok(true)));
        cap.ready();
        assert!(!cap.worn(), "its starting memory is not wear");
        assert!(matches!(
            cap.memory_growing(16 << 20, 40 << 20, None),
            Ok(true)
        ));
        assert!(!cap.worn(), "24 MiB of 48 MiB of headroom");
        assert!(matches!(
            cap.memory_growing(40 << 20, 41 << 20, None),
            Ok(true)
        ));
        assert!(cap.worn());
        assert!(!matches!(
            cap.memory_growing(41 << 20, 65 << 20, None),
            Ok(true)
        ));
        assert!(cap.refused());
    }
}
