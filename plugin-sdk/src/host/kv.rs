//! The key/value store (grant `kv`): keys are namespaced per plugin, values are bytes, and
//! [`get_json`] / [`set_json`] keep typed values as JSON.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::with;
use crate::HostError;

/// The value under `key`, if present and not expired.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, HostError> {
    with(|h| h.kv_get(key))
}

/// Stores `value` under `key`, expiring after `ttl_ms` when given.
pub fn set(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), HostError> {
    with(|h| h.kv_set(key, value, ttl_ms))
}

/// Removes `key`; true if it was present.
pub fn delete(key: &str) -> Result<bool, HostError> {
    with(|h| h.kv_delete(key))
}

/// Atomically adds `delta` to the integer under `key` (missing counts as 0) and returns
/// the new value; `ttl_ms` applies when the key is created.
pub fn incr(key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, HostError> {
    with(|h| h.kv_incr(key, delta, ttl_ms))
}

/// Stores `value` only if `key` is absent; true if it was stored.
pub fn set_if_absent(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<bool, HostError> {
    with(|h| h.kv_set_if_absent(key, value, ttl_ms))
}

/// The value under `key` read as JSON into `T`; a value that is not a `T` (written by an
/// older version of the filter, say) reads as absent.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, HostError> {
    Ok(get(key)?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// Stores `value` as JSON under `key`, expiring after `ttl_ms` when given. A value
/// `serde_json` cannot write (a map with non-string keys) is `invalid`.
pub fn set_json<T: Serialize>(key: &str, value: &T, ttl_ms: Option<u64>) -> Result<(), HostError> {
    let bytes = serde_json::to_vec(value).map_err(|e| HostError::Invalid(e.to_string()))?;
    set(key, &bytes, ttl_ms)
}
