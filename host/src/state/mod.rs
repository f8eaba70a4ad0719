//! Shared state for plugins — the `kv` store and the atomic rate-limit primitive — behind
//! one trait, so that an embedded backend (the default) and a networked one (Redis, for
//! several gateway instances) are interchangeable.

mod limiter;
mod local;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use limiter::{Algorithm, RateDecision, RatePolicy};
pub use local::LocalBackend;

/// Why a state call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The backend cannot be reached or failed.
    Unavailable(String),
    /// The call does not fit the stored data (e.g. `incr` on text).
    Invalid(String),
}

/// The future every backend call returns (boxed at this boundary to keep the trait
/// object-safe and compile times flat).
pub type StateFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StateError>> + Send + 'a>>;

/// A backend for `kv` and `limits`. Every call is atomic with respect to the others on
/// the same key, across all gateway instances that share the backend.
pub trait StateBackend: Send + Sync + 'static {
    /// The value under `key`, if present and not expired.
    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<Vec<u8>>>;
    /// Stores `value`, expiring after `ttl` when given.
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, ()>;
    /// Removes `key`; true if it was present.
    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool>;
    /// Adds `delta` to the decimal integer under `key` (missing is 0); `ttl` applies when
    /// the key is created.
    fn incr<'a>(&'a self, key: &'a str, delta: i64, ttl: Option<Duration>) -> StateFuture<'a, i64>;
    /// Stores `value` only if `key` is absent; true if stored.
    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, bool>;
    /// Takes `cost` from the rate budget under `key`.
    fn take<'a>(
        &'a self,
        key: &'a str,
        policy: RatePolicy,
        cost: u64,
    ) -> StateFuture<'a, RateDecision>;
    /// The backend's name for the admin API (`local`, `redis`).
    fn name(&self) -> &'static str;
}
