//! Which proxy worker thread runs the current code. Per-worker pools (upstream clients,
//! warm plugin instances) are indexed by it, so a request never shares them across threads.

use std::cell::Cell;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The proxy worker running this code: `1..=workers` on worker threads, `0` elsewhere.
pub fn index() -> usize {
    WORKER.get()
}

/// Marks the current thread as proxy worker `index` (called once, when the thread starts).
pub(crate) fn enter(index: usize) {
    WORKER.set(index);
}
