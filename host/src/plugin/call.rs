//! Calling into an instance: a fresh store with a memory cap and a bound on what may be
//! lifted out of the guest, an execution budget checked on every epoch tick (which also
//! yields the worker to other tasks), a wall-clock stop on every call whatever the grants,
//! and bounds on the result checked before the gateway touches it. An instance whose call
//! failed must be dropped.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Resource;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::{FilterInfo, FilterPlugin, FilterPluginPre, RequestAction, ResponseAction};
use super::failure::{FailureKind, FilterFailure};
use super::imports::{Caller, HostState};
use super::results::{check_request, check_response};
use super::view::{RequestView, ResponseView};
use crate::config::RuntimeConfig;
use crate::config::sandbox::ResultLimits;

/// The limits of every call of a filter, from `[runtime]`.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// The shortest wall-clock stop of a call.
    pub wall_clock_min: Duration,
    /// What a call may return.
    pub results: ResultLimits,
}

impl CallLimits {
    /// The limits `[runtime]` sets.
    pub fn from_runtime(runtime: &RuntimeConfig) -> Self {
        Self {
            wall_clock_min: Duration::from_millis(runtime.wall_clock_ms),
            results: runtime.results,
        }
    }

    /// The wall-clock stop of a call with `deadline`: ten deadlines (a call that yields
    /// waits its turn behind other tasks, which its budget does not count), at least
    /// `wall_clock_min`.
    pub(crate) fn stop(&self, deadline: Duration) -> Duration {
        deadline.saturating_mul(10).max(self.wall_clock_min)
    }
}

/// An instance with its store, ready for a call.
pub(crate) struct Warm {
    pub(crate) store: Store<HostState>,
    plugin: FilterPlugin,
}

/// One call into the guest's `filter` export; the handles are lent for the call.
pub(crate) enum Call<'r> {
    Metadata,
    Configure(&'r str),
    OnRequest(Resource<RequestView>),
    OnResponse(Resource<RequestView>, Resource<ResponseView>),
}

/// What a [`Call`] returned.
pub(crate) enum Returned {
    Metadata(FilterInfo),
    Configure(Result<(), String>),
    OnRequest(RequestAction),
    OnResponse(ResponseAction),
}

/// A fresh store and instance with a memory cap, a cap on the bytes lifted out of the guest
/// in one go, and an epoch callback that, every tick, traps when the call's execution
/// budget is spent and otherwise yields to the reactor, so that a busy plugin never holds a
/// worker thread for long. Instantiation itself is under the wall-clock stop too.
pub(crate) async fn new_instance(
    pre: &FilterPluginPre<HostState>,
    caller: Arc<Caller>,
    memory_bytes: usize,
    limits: &CallLimits,
) -> anyhow::Result<Warm> {
    let mut store = Store::new(pre.engine(), HostState::new(caller, memory_bytes)?);
    store.limiter(|state| &mut state.limits);
    store.set_hostcall_fuel(limits.results.max_lifted_bytes);
    store.epoch_deadline_callback(|ctx| {
        let budget = ctx.data().budget.clone();
        if budget.spent() {
            return Err(Trap::Interrupt.into());
        }
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                tokio::task::yield_now().await;
                budget.resumed();
            }),
        ))
    });
    store.data().budget.start(limits.wall_clock_min);
    store.set_epoch_deadline(1);
    let stop = limits.wall_clock_min;
    let plugin = tokio::time::timeout(stop, pre.instantiate_async(&mut store))
        .await
        .map_err(|_| anyhow::anyhow!("instantiation took longer than {} ms", stop.as_millis()))??;
    Ok(Warm { store, plugin })
}

/// Tags the instance's log lines with the request they serve.
pub(crate) fn set_request_id(warm: &mut Warm, request_id: &str) {
    let id = &mut warm.store.data_mut().request_id;
    id.clear();
    id.push_str(request_id);
}

/// Calls into the instance. The epoch callback stops Wasm that has run for longer than
/// `deadline`; the wall-clock stop ends a call stuck anywhere else (a host call waiting on
/// the network, a WASI sleep), whatever the filter was granted. Then the result is held to
/// the limits. Either way the caller must drop the instance on error.
pub(crate) async fn call(
    warm: &mut Warm,
    deadline: Duration,
    limits: &CallLimits,
    call: Call<'_>,
) -> Result<Returned, FilterFailure> {
    warm.store.data().budget.start(deadline);
    warm.store.set_epoch_deadline(1);
    let returned = match tokio::time::timeout(limits.stop(deadline), invoke(warm, call)).await {
        Ok(outcome) => outcome.map_err(|e| FilterFailure::classify(e, deadline))?,
        Err(_) => return Err(FilterFailure::deadline(deadline)),
    };
    let checked = match &returned {
        Returned::OnRequest(action) => check_request(action, &limits.results),
        Returned::OnResponse(action) => check_response(action, &limits.results),
        Returned::Metadata(_) | Returned::Configure(_) => Ok(()),
    };
    match checked {
        Ok(()) => Ok(returned),
        Err(message) => Err(FilterFailure {
            kind: FailureKind::Oversized,
            message: format!("the filter returned too much: {message}"),
        }),
    }
}

async fn invoke(warm: &mut Warm, call: Call<'_>) -> wasmtime::Result<Returned> {
    let filter = warm.plugin.weir_gateway_filter();
    let store = &mut warm.store;
    Ok(match call {
        Call::Metadata => Returned::Metadata(filter.call_metadata(store).await?),
        Call::Configure(config) => Returned::Configure(filter.call_configure(store, config).await?),
        Call::OnRequest(request) => {
            Returned::OnRequest(filter.call_on_request(store, request).await?)
        }
        Call::OnResponse(request, response) => {
            Returned::OnResponse(filter.call_on_response(store, request, response).await?)
        }
    })
}
