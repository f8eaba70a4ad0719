//! Where host calls go: to the gateway's imports in a Wasm component, to the
//! [`crate::testing::FakeHost`] installed on the thread in native tests. Each public
//! function of [`crate::host`] is one call of this trait.

use crate::HostError;
use crate::bindings::weir::gateway::http::OutboundRequest;
use crate::bindings::weir::gateway::limits::{Decision, Policy};
use crate::bindings::weir::gateway::log::Level;
use crate::bindings::weir::gateway::types::Response;
use crate::bindings::weir::gateway::upstreams::{
    CircuitState, CircuitStatus, GatewayLoad, Scope, WindowStats,
};
use crate::bindings::weir::gateway::{clock, http, kv, limits, log, secrets, upstreams};

/// The host interfaces, one method per import function.
pub(crate) trait Host {
    fn log(&self, level: Level, message: &str);
    fn now_ms(&self) -> u64;
    fn monotonic_ns(&self) -> u64;
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError>;
    fn kv_set(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), HostError>;
    fn kv_delete(&self, key: &str) -> Result<bool, HostError>;
    fn kv_incr(&self, key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, HostError>;
    fn kv_set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<bool, HostError>;
    fn limits_take(&self, key: &str, policy: Policy, cost: u32) -> Result<Decision, HostError>;
    fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, HostError>;
    fn http_send(&self, request: &OutboundRequest) -> Result<Response, HostError>;
    fn stats(&self, scope: &Scope, window_ms: u32, slow_ms: u32) -> Result<WindowStats, HostError>;
    fn circuit(&self, scope: &Scope) -> Result<CircuitStatus, HostError>;
    fn transition(
        &self,
        scope: &Scope,
        from: CircuitState,
        to: CircuitState,
        reason: &str,
    ) -> Result<bool, HostError>;
    fn admit_probe(&self, scope: &Scope, max: u32) -> Result<bool, HostError>;
    fn probe_done(&self, scope: &Scope, success: bool) -> Result<u32, HostError>;
    fn load(&self) -> GatewayLoad;
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
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        kv::get(key)
    }
    fn kv_set(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), HostError> {
        kv::set(key, value, ttl_ms)
    }
    fn kv_delete(&self, key: &str) -> Result<bool, HostError> {
        kv::delete(key)
    }
    fn kv_incr(&self, key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, HostError> {
        kv::incr(key, delta, ttl_ms)
    }
    fn kv_set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<bool, HostError> {
        kv::set_if_absent(key, value, ttl_ms)
    }
    fn limits_take(&self, key: &str, policy: Policy, cost: u32) -> Result<Decision, HostError> {
        limits::take(key, policy, cost)
    }
    fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        secrets::get(name)
    }
    fn http_send(&self, request: &OutboundRequest) -> Result<Response, HostError> {
        http::send(request)
    }
    fn stats(&self, scope: &Scope, window_ms: u32, slow_ms: u32) -> Result<WindowStats, HostError> {
        upstreams::stats(scope, window_ms, slow_ms)
    }
    fn circuit(&self, scope: &Scope) -> Result<CircuitStatus, HostError> {
        upstreams::circuit(scope)
    }
    fn transition(
        &self,
        scope: &Scope,
        from: CircuitState,
        to: CircuitState,
        reason: &str,
    ) -> Result<bool, HostError> {
        upstreams::transition(scope, from, to, reason)
    }
    fn admit_probe(&self, scope: &Scope, max: u32) -> Result<bool, HostError> {
        upstreams::admit_probe(scope, max)
    }
    fn probe_done(&self, scope: &Scope, success: bool) -> Result<u32, HostError> {
        upstreams::probe_done(scope, success)
    }
    fn load(&self) -> GatewayLoad {
        upstreams::load()
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
