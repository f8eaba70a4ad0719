//! [`FakeHost`]: the host interfaces, in memory, for native tests.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use super::upstreams::Upstreams;
use crate::HostError;
use crate::host::backend::{Host, HostResult};
use crate::host::cache::Turn;
use crate::host::http::{OutboundRequest, Response};
use crate::host::limits::{Decision, Policy};
use crate::host::log::Level;
use crate::host::upstreams::{
    CircuitState as State, CircuitStatus, GatewayLoad, Scope, WindowStats,
};

thread_local! {
    /// The host the SDK's host calls reach on this thread.
    static INSTALLED: RefCell<Option<Rc<FakeHost>>> = const { RefCell::new(None) };
}

/// Runs `f` with the host installed on this thread.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn with_installed<R>(f: impl FnOnce(&dyn Host) -> R) -> R {
    let host = INSTALLED.with(|h| h.borrow().clone()).expect(
        "a host call outside the gateway: install a weir_plugin_sdk::testing::FakeHost first",
    );
    f(&*host)
}

/// The answer of the fake `http` interface to a request.
type HttpHandler = Box<dyn Fn(&OutboundRequest) -> Result<Response, HostError>>;

/// The host interfaces in memory: a clock that moves only when told, a kv store with
/// expiry on that clock, secrets, fixed-window limits, an `http` handler, the upstream
/// record with its circuit cells, and the log lines written. Built with chained calls,
/// then [`installed`](FakeHost::install) on the test's thread.
pub struct FakeHost {
    now_ms: Cell<u64>,
    secrets: RefCell<HashMap<String, Vec<u8>>>,
    kv: RefCell<HashMap<String, (Vec<u8>, Option<u64>)>>,
    cache: RefCell<HashMap<String, (Vec<u8>, Option<u64>)>>,
    /// Cache keys being filled (by the one request a native test plays), or passed until.
    fills: RefCell<HashMap<String, Option<u64>>>,
    windows: RefCell<HashMap<String, (u64, u64)>>,
    failures: RefCell<HashMap<&'static str, HostError>>,
    http: RefCell<Option<HttpHandler>>,
    sent: RefCell<Vec<OutboundRequest>>,
    logs: RefCell<Vec<(Level, String)>>,
    upstreams: Upstreams,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHost {
    /// A host at 1 000 000 000 000 ms since the epoch (2001), with nothing stored.
    pub fn new() -> Self {
        Self {
            now_ms: Cell::new(1_000_000_000_000),
            secrets: RefCell::default(),
            kv: RefCell::default(),
            cache: RefCell::default(),
            fills: RefCell::default(),
            windows: RefCell::default(),
            failures: RefCell::default(),
            http: RefCell::default(),
            sent: RefCell::default(),
            logs: RefCell::default(),
            upstreams: Upstreams::default(),
        }
    }

    /// Sets the clock.
    pub fn at_ms(self, now_ms: u64) -> Self {
        self.now_ms.set(now_ms);
        self
    }

    /// Defines a secret (readable whatever the grants: grants are the gateway's).
    pub fn secret(self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.secrets
            .borrow_mut()
            .insert(name.to_string(), value.into());
        self
    }

    /// Answers `http` calls with `handler`.
    pub fn http(
        self,
        handler: impl Fn(&OutboundRequest) -> Result<Response, HostError> + 'static,
    ) -> Self {
        *self.http.borrow_mut() = Some(Box::new(handler));
        self
    }

    /// Installs the host on this thread until the returned guard is dropped.
    pub fn install(self) -> Installed {
        let host = Rc::new(self);
        INSTALLED.with(|h| *h.borrow_mut() = Some(host.clone()));
        Installed(host)
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.now_ms.set(self.now_ms.get() + ms);
    }

    /// Makes every call of `interface` (`kv`, `limits`, `secrets`, `http`, `upstreams`)
    /// fail with `error` from now on.
    pub fn fail(&self, interface: &'static str, error: HostError) {
        self.failures.borrow_mut().insert(interface, error);
    }

    /// Lets the calls of `interface` succeed again.
    pub fn recover(&self, interface: &'static str) {
        self.failures.borrow_mut().remove(interface);
    }

    /// The value under `key` in kv, if present and not expired.
    pub fn kv_value(&self, key: &str) -> Option<Vec<u8>> {
        self.kv_get(key).ok().flatten()
    }

    /// The value under `key` in the cache, if present and not expired.
    pub fn cached(&self, key: &str) -> Option<Vec<u8>> {
        self.cache_get(key)
    }

    /// Whether a fill of `key` is open (led, and neither put nor released).
    pub fn filling(&self, key: &str) -> bool {
        matches!(self.fills.borrow().get(key), Some(None))
    }

    /// The requests sent through `http`, in order.
    pub fn sent(&self) -> Vec<OutboundRequest> {
        self.sent.borrow().clone()
    }

    /// The log lines written, in order.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }

    /// Sets what `upstreams::stats` answers for `scope`, whatever the window.
    pub fn set_stats(&self, scope: &Scope, stats: WindowStats) {
        self.upstreams.set_stats(scope, stats);
    }

    /// Sets what `upstreams::load` answers.
    pub fn set_load(&self, in_flight: u32, latency_ms: u32) {
        self.upstreams.set_load(GatewayLoad {
            in_flight,
            latency_ms,
        });
    }

    /// The circuit of `scope`, as the filter left it.
    pub fn circuit_of(&self, scope: &Scope) -> CircuitStatus {
        self.upstreams.circuit(scope)
    }

    fn check(&self, interface: &'static str) -> Result<(), HostError> {
        match self.failures.borrow().get(interface) {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    fn expiry(&self, ttl_ms: Option<u64>) -> Option<u64> {
        ttl_ms.map(|ttl| self.now_ms.get().saturating_add(ttl))
    }
}

/// The guard of an installed [`FakeHost`]: it reads like the host, and uninstalls it when
/// dropped.
pub struct Installed(Rc<FakeHost>);

impl std::ops::Deref for Installed {
    type Target = FakeHost;

    fn deref(&self) -> &FakeHost {
        &self.0
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        INSTALLED.with(|h| h.borrow_mut().take());
    }
}

impl Host for FakeHost {
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }

    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    fn monotonic_ns(&self) -> u64 {
        self.now_ms.get().saturating_mul(1_000_000)
    }

    fn kv_get(&self, key: &str) -> HostResult<Option<Vec<u8>>> {
        self.check("kv")?;
        let now = self.now_ms.get();
        let kv = self.kv.borrow();
        let live = kv
            .get(key)
            .filter(|(_, expires)| expires.is_none_or(|e| e > now));
        Ok(live.map(|(value, _)| value.clone()))
    }

    fn kv_set(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> HostResult<()> {
        self.check("kv")?;
        let entry = (value.to_vec(), self.expiry(ttl_ms));
        self.kv.borrow_mut().insert(key.to_string(), entry);
        Ok(())
    }

    fn kv_delete(&self, key: &str) -> HostResult<bool> {
        let present = self.kv_get(key)?.is_some();
        self.kv.borrow_mut().remove(key);
        Ok(present)
    }

    fn kv_incr(&self, key: &str, delta: i64, ttl_ms: Option<u64>) -> HostResult<i64> {
        let current = self.kv_get(key)?;
        let value = match &current {
            None => 0,
            Some(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| HostError::Invalid("not an integer".into()))?,
        };
        let next = value.saturating_add(delta);
        let expires = match current {
            None => self.expiry(ttl_ms),
            Some(_) => self.kv.borrow().get(key).and_then(|(_, e)| *e),
        };
        let entry = (next.to_string().into_bytes(), expires);
        self.kv.borrow_mut().insert(key.to_string(), entry);
        Ok(next)
    }

    fn kv_set_if_absent(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> HostResult<bool> {
        if self.kv_get(key)?.is_some() {
            return Ok(false);
        }
        self.kv_set(key, value, ttl_ms)?;
        Ok(true)
    }

    /// Every algorithm as a fixed window aligned on the clock: enough to see a filter
    /// admit, refuse and report.
    fn limits_take(&self, key: &str, policy: Policy, cost: u32) -> HostResult<Decision> {
        self.check("limits")?;
        let now = self.now_ms.get();
        let window = policy.window_ms.max(1);
        let start = now - now % window;
        let mut windows = self.windows.borrow_mut();
        let (at, used) = windows.entry(key.to_string()).or_insert((start, 0));
        if *at != start {
            (*at, *used) = (start, 0);
        }
        let reset_ms = start + window - now;
        let allowed = *used + u64::from(cost) <= policy.limit;
        if allowed {
            *used += u64::from(cost);
        }
        Ok(Decision {
            allowed,
            remaining: policy.limit.saturating_sub(*used),
            reset_ms,
            retry_after_ms: if allowed { 0 } else { reset_ms },
        })
    }

    fn secret(&self, name: &str) -> HostResult<Option<Vec<u8>>> {
        self.check("secrets")?;
        Ok(self.secrets.borrow().get(name).cloned())
    }

    fn http_send(&self, request: &OutboundRequest) -> HostResult<Response> {
        self.check("http")?;
        self.sent.borrow_mut().push(request.clone());
        match &*self.http.borrow() {
            Some(handler) => handler(request),
            None => Err(HostError::Unavailable(
                "no http handler in the fake host".into(),
            )),
        }
    }

    fn stats(&self, scope: &Scope, _: u32, _: u32) -> HostResult<WindowStats> {
        self.check("upstreams")?;
        Ok(self.upstreams.stats(scope))
    }

    fn circuit(&self, scope: &Scope) -> HostResult<CircuitStatus> {
        self.check("upstreams")?;
        Ok(self.upstreams.circuit(scope))
    }

    fn transition(&self, scope: &Scope, from: State, to: State, _reason: &str) -> HostResult<bool> {
        self.check("upstreams")?;
        Ok(self
            .upstreams
            .transition(scope, from, to, self.now_ms.get()))
    }

    fn admit_probe(&self, scope: &Scope, max: u32) -> HostResult<bool> {
        self.check("upstreams")?;
        Ok(self.upstreams.admit_probe(scope, max))
    }

    fn probe_done(&self, scope: &Scope, success: bool) -> HostResult<u32> {
        self.check("upstreams")?;
        Ok(self.upstreams.probe_done(scope, success))
    }

    fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        let now = self.now_ms.get();
        let cache = self.cache.borrow();
        let live = cache
            .get(key)
            .filter(|(_, expires)| expires.is_none_or(|e| e > now));
        live.map(|(value, _)| value.clone())
    }

    /// Plays the one request of a native test and the gateway's other requests: a key
    /// nobody fills is led (and marked filling); a key being filled answers with its
    /// stored value, as a waiter would get it, or `Pass`; a passed key passes.
    fn cache_fill(&self, key: &str, _wait_ms: u32) -> Turn {
        let now = self.now_ms.get();
        let filling = self.fills.borrow().get(key).copied();
        match filling {
            Some(None) => self.cache_get(key).map_or(Turn::Pass, Turn::Filled),
            Some(Some(until)) if until > now => Turn::Pass,
            _ => {
                self.fills.borrow_mut().insert(key.to_string(), None);
                Turn::Lead
            }
        }
    }

    fn cache_put(&self, key: &str, value: &[u8], ttl_ms: u64) -> HostResult<()> {
        self.check("cache")?;
        let entry = (value.to_vec(), self.expiry(Some(ttl_ms)));
        self.cache.borrow_mut().insert(key.to_string(), entry);
        self.fills.borrow_mut().remove(key);
        Ok(())
    }

    fn cache_release(&self, key: &str, pass_ms: u32) {
        let until = self.now_ms.get() + u64::from(pass_ms);
        let mut fills = self.fills.borrow_mut();
        match pass_ms {
            0 => fills.remove(key),
            _ => fills.insert(key.to_string(), Some(until)),
        };
    }

    fn cache_delete(&self, key: &str) -> HostResult<bool> {
        self.check("cache")?;
        Ok(self.cache.borrow_mut().remove(key).is_some())
    }

    fn load(&self) -> GatewayLoad {
        self.upstreams.load()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{clock, kv, limits, secrets};

    #[test]
    fn kv_expires_on_the_fake_clock() {
        let host = FakeHost::new().install();
        kv::set("a", b"1", Some(1_000)).unwrap();
        assert!(!kv::set_if_absent("a", b"2", None).unwrap());
        host.advance_ms(999);
        assert_eq!(kv::get("a").unwrap(), Some(b"1".to_vec()));
        host.advance_ms(1);
        assert_eq!(kv::get("a").unwrap(), None);
        assert_eq!(kv::incr("n", 2, None).unwrap(), 2);
        assert_eq!(kv::incr("n", -1, None).unwrap(), 1);
        assert!(kv::delete("n").unwrap());
        assert!(!kv::delete("n").unwrap());
    }

    #[test]
    fn json_values_round_trip_and_odd_values_read_as_absent() {
        let _host = FakeHost::new().install();
        kv::set_json("k", &vec![1, 2, 3], None).unwrap();
        assert_eq!(kv::get_json::<Vec<u32>>("k").unwrap(), Some(vec![1, 2, 3]));
        assert_eq!(kv::get_json::<String>("k").unwrap(), None);
    }

    #[test]
    fn limits_refuse_past_the_limit_until_the_window_turns() {
        let host = FakeHost::new().at_ms(10_000).install();
        let policy = limits::Policy {
            algorithm: limits::Algorithm::FixedWindow,
            limit: 2,
            window_ms: 1_000,
        };
        assert!(limits::take("k", policy, 1).unwrap().allowed);
        let second = limits::take("k", policy, 1).unwrap();
        assert_eq!((second.allowed, second.remaining), (true, 0));
        let third = limits::take("k", policy, 1).unwrap();
        assert_eq!((third.allowed, third.retry_after_ms), (false, 1_000));
        host.advance_ms(1_000);
        assert!(limits::take("k", policy, 1).unwrap().allowed);
        assert_eq!(clock::now_ms(), 11_000);
    }

    #[test]
    fn secrets_say_what_to_fix() {
        let host = FakeHost::new().secret("s", b"v").install();
        assert_eq!(secrets::require("s"), Ok(b"v".to_vec()));
        assert!(secrets::require("t").unwrap_err().contains("not defined"));
        host.fail("secrets", HostError::AccessDenied);
        let error = secrets::require("s").unwrap_err();
        assert!(error.contains("add \"secrets:s\""), "{error}");
    }

    #[test]
    fn log_lines_are_kept() {
        let host = FakeHost::new().install();
        crate::log!(Warn, "{} and {}", 1, 2);
        assert_eq!(host.logs(), [(Level::Warn, "1 and 2".to_string())]);
    }
}
