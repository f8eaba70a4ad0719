//! The gateway's response cache (grant `cache`): entries in the gateway's memory and, in a
//! fleet, in Redis; keys namespaced per plugin; values are the filter's own bytes.
//! Concurrent misses on one key are coalesced with [`fill`]: one request fills the key
//! (and must [`put`] or [`release`] it), the others wait for its value.

use super::with;
use crate::HostError;
pub use crate::bindings::weir::gateway::cache::Turn;

/// The value under `key`, if the gateway holds one (a Redis that cannot be reached reads
/// as absent).
pub fn get(key: &str) -> Option<Vec<u8>> {
    with(|h| h.cache_get(key))
}

/// A turn at filling `key`: [`Turn::Lead`] when no other request fills it, otherwise a wait
/// of at most `wait_ms` for the filler's value ([`Turn::Filled`]) or [`Turn::Pass`].
pub fn fill(key: &str, wait_ms: u32) -> Turn {
    with(|h| h.cache_fill(key, wait_ms))
}

/// Stores `value` under `key` for `ttl_ms`, ending this request's fill of it.
pub fn put(key: &str, value: &[u8], ttl_ms: u64) -> Result<(), HostError> {
    with(|h| h.cache_put(key, value, ttl_ms))
}

/// Ends this request's fill of `key` without a value; turns at it answer [`Turn::Pass`]
/// for `pass_ms` after.
pub fn release(key: &str, pass_ms: u32) {
    with(|h| h.cache_release(key, pass_ms))
}

/// Removes `key` from the cache; true if it was there.
pub fn delete(key: &str) -> Result<bool, HostError> {
    with(|h| h.cache_delete(key))
}
