//! The gateway's clocks, in one place: the wall clock (milliseconds since the Unix epoch,
//! for what operators and plugins read) and one monotonic clock (for intervals, back-off
//! and moving averages, which a wall-clock step must not disturb).

use std::sync::LazyLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The monotonic clock's origin: the first time anything read it.
static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// Milliseconds since the Unix epoch at `t` (0 before the epoch).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Milliseconds on the monotonic clock, from 1: a stored 0 can mean "never".
pub fn monotonic_ms() -> u64 {
    START.elapsed().as_millis() as u64 + 1
}

/// Nanoseconds on the monotonic clock (from its origin).
pub fn monotonic_ns() -> u64 {
    START.elapsed().as_nanos() as u64
}
