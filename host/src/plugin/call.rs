//! Calling into an instance: a fresh store with a memory cap and a bound on what may be
//! lifted out of the guest, an execution budget (`budget.rs`), a wall-clock stop on every
//! call whatever the grants, and bounds on the result checked before the gateway touches
//! it. Every export goes through one generic path, [`call`]. An instance whose call failed
//! must be dropped.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::Resource;

use super::bindings::exports::weir::gateway::filter;
use super::bindings::router::exports::weir::gateway::push_routing;
use super::bindings::router::{
    Delivery, DeviceFacts, MessageFacts, PushRouter, PushRouterPre, RouterInfo,
};
use super::bindings::{FilterInfo, FilterPlugin, FilterPluginPre, RequestAction, ResponseAction};
use super::budget::{self, CallBudget};
use super::failure::{FailureKind, FilterFailure};
use super::imports::{Caller, HostState};
use super::results::Bounded;
use super::view::{RequestView, ResponseView};
use crate::config::RuntimeConfig;
use crate::config::sandbox::ResultLimits;

/// The limits of every call of a filter, from `[runtime]`.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// The shortest wall-clock stop of a call.
    pub wall_clock_min: Duration,
    /// The shortest execution budget of `metadata` and `configure`.
    pub setup_min: Duration,
    /// What a call may return.
    pub results: ResultLimits,
}

impl CallLimits {
    /// The limits `[runtime]` sets.
    pub fn from_runtime(runtime: &RuntimeConfig) -> Self {
        Self {
            wall_clock_min: Duration::from_millis(runtime.wall_clock_ms),
            setup_min: Duration::from_millis(runtime.setup_deadline_ms),
            results: runtime.results,
        }
    }

    /// The execution budget of `metadata` and `configure` for a filter with `deadline`:
    /// setting up (parsing a descriptor set, say) happens once per instance, not per
    /// request, and must not fail on a busy machine for want of the per-request budget.
    pub(crate) fn setup(&self, deadline: Duration) -> Duration {
        deadline.max(self.setup_min)
    }

    /// The wall-clock stop of a call with `deadline`: ten deadlines (a call that yields
    /// waits its turn behind other tasks, which its budget does not count), at least
    /// `wall_clock_min`.
    pub(crate) fn stop(&self, deadline: Duration) -> Duration {
        deadline.saturating_mul(10).max(self.wall_clock_min)
    }
}

/// A plugin ready to instantiate, by the world it implements (settled once, at load time).
pub(crate) enum PluginPre {
    /// `filter-plugin`.
    Filter(FilterPluginPre<HostState>),
    /// `push-router`.
    Router(PushRouterPre<HostState>),
}

/// An instance's exports, by world.
enum Exports {
    Filter(FilterPlugin),
    Router(PushRouter),
}

/// An instance with its store, ready for a call.
pub(crate) struct Warm {
    pub(crate) store: Store<HostState>,
    exports: Exports,
}

/// A fresh store and instance with a memory cap, a cap on the bytes lifted out of the guest
/// in one go, and the execution budget enforced on every epoch tick. Instantiation itself
/// is under the wall-clock stop too.
pub(crate) async fn new_instance(
    pre: &PluginPre,
    caller: Arc<Caller>,
    memory_bytes: usize,
    limits: &CallLimits,
) -> anyhow::Result<Warm> {
    let engine = match pre {
        PluginPre::Filter(pre) => pre.engine(),
        PluginPre::Router(pre) => pre.engine(),
    };
    let mut store = Store::new(engine, HostState::new(caller, memory_bytes)?);
    store.limiter(|state| &mut state.memory);
    store.set_hostcall_fuel(limits.results.max_lifted_bytes);
    budget::enforce(&mut store);
    budget::start(&mut store, limits.wall_clock_min);
    let stop = limits.wall_clock_min;
    let instantiated = async {
        Ok::<_, wasmtime::Error>(match pre {
            PluginPre::Filter(pre) => Exports::Filter(pre.instantiate_async(&mut store).await?),
            PluginPre::Router(pre) => Exports::Router(pre.instantiate_async(&mut store).await?),
        })
    };
    let exports = tokio::time::timeout(stop, instantiated)
        .await
        .map_err(|_| anyhow::anyhow!("instantiation took longer than {} ms", stop.as_millis()))??;
    Ok(Warm { store, exports })
}

impl Exports {
    /// The `filter` export. Slots check a plugin's kind when they are built, so the error
    /// (a router called as a filter) would be a bug in the gateway, not in the plugin.
    fn filter(&self) -> wasmtime::Result<&filter::Guest> {
        match self {
            Self::Filter(p) => Ok(p.weir_gateway_filter()),
            Self::Router(_) => Err(wasmtime::Error::msg("a push router has no filter export")),
        }
    }

    /// The `push-routing` export (likewise).
    fn router(&self) -> wasmtime::Result<&push_routing::Guest> {
        match self {
            Self::Router(p) => Ok(p.weir_gateway_push_routing()),
            Self::Filter(_) => Err(wasmtime::Error::msg("a filter has no push-routing export")),
        }
    }
}

impl Warm {
    /// Marks the instance ready: the memory it has now is what it starts its calls with.
    pub(crate) fn ready(&mut self) {
        self.store.data_mut().memory.ready();
    }

    /// Whether its memory has grown through half the headroom it started with (see
    /// [`MemoryCap::worn`](super::memory::MemoryCap::worn)).
    pub(crate) fn worn(&self) -> bool {
        self.store.data().memory.worn()
    }

    /// Tags the instance's log lines with the request they serve.
    pub(crate) fn serve(&mut self, request_id: &str) {
        let id = &mut self.store.data_mut().request_id;
        id.clear();
        id.push_str(request_id);
    }

    /// `metadata`.
    pub(crate) async fn metadata(
        &mut self,
        deadline: Duration,
        limits: &CallLimits,
    ) -> Result<FilterInfo, FilterFailure> {
        call(self, deadline, limits, async |w: &mut Warm| {
            w.exports.filter()?.call_metadata(&mut w.store).await
        })
        .await
    }

    /// A router's `metadata`.
    pub(crate) async fn router_metadata(
        &mut self,
        deadline: Duration,
        limits: &CallLimits,
    ) -> Result<RouterInfo, FilterFailure> {
        call(self, deadline, limits, async |w: &mut Warm| {
            w.exports.router()?.call_metadata(&mut w.store).await
        })
        .await
    }

    /// `configure`: the filter's answer to its config.
    pub(crate) async fn configure(
        &mut self,
        deadline: Duration,
        limits: &CallLimits,
        config: &str,
    ) -> Result<Result<(), String>, FilterFailure> {
        call(self, deadline, limits, async |w: &mut Warm| {
            match &w.exports {
                Exports::Filter(p) => {
                    let filter = p.weir_gateway_filter();
                    filter.call_configure(&mut w.store, config).await
                }
                Exports::Router(p) => {
                    let router = p.weir_gateway_push_routing();
                    router.call_configure(&mut w.store, config).await
                }
            }
        })
        .await
    }

    /// `on-request`, with the request lent as `request`.
    pub(crate) async fn on_request(
        &mut self,
        deadline: Duration,
        limits: &CallLimits,
        request: Resource<RequestView>,
    ) -> Result<RequestAction, FilterFailure> {
        call(self, deadline, limits, async |w: &mut Warm| {
            let filter = w.exports.filter()?;
            filter.call_on_request(&mut w.store, request).await
        })
        .await
    }

    /// `on-response`, with the request and the response lent.
    pub(crate) async fn on_response(
        &mut self,
        deadline: Duration,
        limits: &CallLimits,
        (request, response): (Resource<RequestView>, Resource<ResponseView>),
    ) -> Result<ResponseAction, FilterFailure> {
        call(self, deadline, limits, async |w: &mut Warm| {
            let filter = w.exports.filter()?;
            filter
                .call_on_response(&mut w.store, request, response)
                .await
        })
        .await
    }

    /// A router's `decide`.
    pub(crate) async fn decide(
        &mut self,
        deadline: Duration,
        limits: &CallLimits,
        (message, device): (&MessageFacts, &DeviceFacts),
    ) -> Result<Delivery, FilterFailure> {
        call(self, deadline, limits, async |w: &mut Warm| {
            let router = w.exports.router()?;
            router.call_decide(&mut w.store, message, device).await
        })
        .await
    }
}

/// Calls one export. The execution budget stops Wasm that has run for longer than
/// `deadline`; the wall-clock stop ends a call stuck anywhere else (a host call waiting on
/// the network, a WASI sleep), whatever the filter was granted. Then the result is held to
/// the limits. Either way the caller must drop the instance on error.
async fn call<R: Bounded>(
    warm: &mut Warm,
    deadline: Duration,
    limits: &CallLimits,
    export: impl AsyncFnOnce(&mut Warm) -> wasmtime::Result<R>,
) -> Result<R, FilterFailure> {
    warm.store.data_mut().memory.clear();
    budget::start(&mut warm.store, deadline);
    let budget = warm.store.data().budget.clone();
    let returned = match within_stop(limits.stop(deadline), &budget, export(warm)).await {
        Some(Ok(returned)) => returned,
        Some(Err(error)) => {
            let memory_refused = warm.store.data().memory.refused();
            return Err(FilterFailure::classify(error, deadline, memory_refused));
        }
        None => return Err(FilterFailure::deadline(deadline)),
    };
    match returned.check(&limits.results) {
        Ok(()) => Ok(returned),
        Err(message) => Err(FilterFailure {
            kind: FailureKind::Oversized,
            message: format!("the filter returned too much: {message}"),
        }),
    }
}

/// Runs `call` under a wall-clock stop of `stop` (moved out by the waits `budget` excused);
/// `None` when it did not end in time. Most calls end in their first poll, without waiting
/// on anything: the stop's timer is armed only for a call that has to wait, so that they
/// pay nothing for it.
async fn within_stop<F: Future>(stop: Duration, budget: &CallBudget, call: F) -> Option<F::Output> {
    let started = tokio::time::Instant::now();
    let mut call = std::pin::pin!(call);
    let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
    if let Poll::Ready(output) = first {
        return Some(output);
    }
    loop {
        let until = started + stop + budget.excused();
        match tokio::time::timeout_at(until, call.as_mut()).await {
            Ok(output) => return Some(output),
            // A wait excused meanwhile moved the stop.
            Err(_) if started + stop + budget.excused() > until => {}
            Err(_) => return None,
        }
    }
}
