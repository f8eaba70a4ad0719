//! The allocator's tuning. The binary allocates with mimalloc, which by default keeps the
//! memory it freed for a second before giving it back to the OS, and only gives it back
//! while the thread is busy allocating: after a burst of requests, a worker left serving
//! idle keep-alive connections kept the burst's memory: 243–246 MB of RSS with 5,000
//! idle connections against 66–88 MB with a 100 ms delay (`docs/benchmarks.md`). The
//! shorter delay costs no CPU per request (15.5–15.8 µs both ways, passthrough); no delay
//! at all costs 3–5 µs.

/// How long freed memory stays with the allocator before it goes back to the OS, unless
/// `MIMALLOC_PURGE_DELAY` says otherwise.
pub const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (v3, as built by `libmimalloc-sys`
/// 0.1.49: the enum keeps deprecated entries so that its values do not move); the binding
/// crate has no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the purge delay to [`PURGE_DELAY_MS`], unless the environment sets
/// `MIMALLOC_PURGE_DELAY` (or `MIMALLOC_RESET_DELAY`). Called first thing in `main`,
/// before any other thread runs (mimalloc's option setters are not thread-safe).
#[allow(unsafe_code)]
pub fn tune() {
    // (`MIMALLOC_RESET_DELAY` is its older name, which mimalloc still reads.)
    if ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some())
    {
        return;
    }
    // SAFETY: takes no pointer; called while the process has one thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is the purge delay's: its documented default, 1 000 ms, until
    /// [`tune`] sets it. (No other test touches the option; the other test threads only
    /// allocate, which reads it at worst.)
    #[test]
    #[allow(unsafe_code)]
    fn the_option_set_is_the_purge_delay() {
        // SAFETY: reads an option; takes no pointer.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        let set = ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"];
        if set.iter().all(|name| std::env::var_os(name).is_none()) {
            assert_eq!(get(), 1000, "mimalloc's default purge delay");
            tune();
            assert_eq!(get(), PURGE_DELAY_MS);
        }
    }
}
