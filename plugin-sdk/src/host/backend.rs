//! Where host calls go: to the gateway's imports in a Wasm component, to the
//! [`crate::testing::FakeHost`] installed on the thread in native tests. Each public
//! function of [`crate::host`] is one call of this trait.

use crate::HostError;
use crate::bindings::weir::gateway::cache::Turn;
use crate::bindings::weir::gateway::http::OutboundRequest;
use crate::bindings::weir::gateway::limits::{Decision, Policy};
use crate::bindings::weir::gateway::log::Level;
use crate::bindings::weir::gateway::types::Response;
use crate::bindings::weir::gateway::upstreams::{
    CircuitState as State, CircuitStatus, GatewayLoad, Scope, WindowStats,
};
use crate::bindings::weir::gateway::{cache, clock, http, kv, limits, log, secrets, upstreams};

/// What a host call returns.
pub(crate) type HostResult<T> = Result<T, HostError>;

/// The host interfaces, one method per import function.
pub(crate) trait Host {
    fn log(&self, level: Level, message: &str);
    fn now_ms(&self) -> u64;
    fn monotonic_ns(&self) -> u64;
    fn kv_get(&self, key: &str) -> HostResult<Option<Vec<u8>>>;
    fn kv_set(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> HostResult<()>;
    fn kv_delete(&self, key: &str) -> HostResult<bool>;
    fn kv_incr(&self, key: &str, delta: i64, ttl_ms: Option<u64>) -> HostResult<i64>;
    fn kv_set_if_absent(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> HostResult<bool>;
    fn limits_take(&self, key: &str, policy: Policy, cost: u32) -> HostResult<Decision>;
    fn secret(&self, name: &str) -> HostResult<Option<Vec<u8>>>;
    fn http_send(&self, request: &OutboundRequest) -> HostResult<Response>;
    fn stats(&self, scope: &Scope, window_ms: u32, slow_ms: u32) -> HostResult<WindowStats>;
    fn circuit(&self, scope: &Scope) -> HostResult<CircuitStatus>;
    fn transition(&self, scope: &Scope, from: State, to: State, reason: &str) -> HostResult<bool>;
    fn admit_probe(&self, scope: &Scope, max: u32) -> HostResult<bool>;
    fn probe_done(&self, scope: &Scope, success: bool) -> HostResult<u32>;
    fn load(&self) -> GatewayLoad;
    fn cache_get(&self, key: &str) -> Option<Vec<u8>>;
    fn cache_fill(&self, key: &str, wait_ms: u32) -> Turn;
    fn cache_put(&self, key: &str, value: &[u8], ttl_ms: u64) -> HostResult<()>;
    fn cache_release(&self, key: &str, pass_ms: u32);
    fn cache_delete(&self, key: &str) -> HostResult<bool>;
}

/// The gateway's imports.
struct Imports;

impl Host for Imports {
    fn log(&self, level: Level, message: &str) {
        log::log(level, message);
    }
    fn now_ms(&self) -> u64 {
        clock::now_ms()
    }
    fn monotonic_ns(&self) -> u64 {
        clock::monotonic_ns()
    }
    fn kv_get(&self, key: &str) -> HostResult<Option<Vec<u8>>> {
        kv::get(key)
    }
    fn kv_set(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> HostResult<()> {
        kv::set(key, value, ttl_ms)
    }
    fn kv_delete(&self, key: &str) -> HostResult<bool> {
        kv::delete(key)
    }
    fn kv_incr(&self, key: &str, delta: i64, ttl_ms: Option<u64>) -> HostResult<i64> {
        kv::incr(key, delta, ttl_ms)
    }
    fn kv_set_if_absent(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> HostResult<bool> {
        kv::set_if_absent(key, value, ttl_ms)
    }
    fn limits_take(&self, key: &str, policy: Policy, cost: u32) -> HostResult<Decision> {
        limits::take(key, policy, cost)
    }
    fn secret(&self, name: &str) -> HostResult<Option<Vec<u8>>> {
        secrets::get(name)
    }
    fn http_send(&self, request: &OutboundRequest) -> HostResult<Response> {
        http::send(request)
    }
    fn stats(&self, scope: &Scope, window_ms: u32, slow_ms: u32) -> HostResult<WindowStats> {
        upstreams::stats(scope, window_ms, slow_ms)
    }
    fn circuit(&self, scope: &Scope) -> HostResult<CircuitStatus> {
        upstreams::circuit(scope)
    }
    fn transition(&self, scope: &Scope, from: State, to: State, reason: &str) -> HostResult<bool> {
        upstreams::transition(scope, from, to, reason)
    }
    fn admit_probe(&self, scope: &Scope, max: u32) -> HostResult<bool> {
        upstreams::admit_probe(scope, max)
    }
    fn probe_done(&self, scope: &Scope, success: bool) -> HostResult<u32> {
        upstreams::probe_done(scope, success)
    }
    fn load(&self) -> GatewayLoad {
        upstreams::load()
    }
    fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        cache::get(key)
    }
    fn cache_fill(&self, key: &str, wait_ms: u32) -> Turn {
        cache::fill(key, wait_ms)
    }
    fn cache_put(&self, key: &str, value: &[u8], ttl_ms: u64) -> HostResult<()> {
        cache::put(key, value, ttl_ms)
    }
    fn cache_release(&self, key: &str, pass_ms: u32) {
        cache::release(key, pass_ms)
    }
    fn cache_delete(&self, key: &str) -> HostResult<bool> {
        cache::delete(key)
    }
}

/// Runs `f` with the gateway's imports.
#[cfg(target_arch = "wasm32")]
pub(crate) fn with<R>(f: impl FnOnce(&dyn Host) -> R) -> R {
    f(&Imports)
}

/// Runs `f` with the fake host installed on this thread (native builds have no gateway).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn with<R>(f: impl FnOnce(&dyn Host) -> R) -> R {
    // The imports are compiled (and checked) natively too, though never called there.
    let _ = Imports;
    crate::testing::with_installed(f)
}
