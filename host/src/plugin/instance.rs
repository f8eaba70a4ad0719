//! Configured filters and their warm instance pools, and calling into a plugin under a
//! deadline and a memory cap. An instance that traps or runs out of time is dropped,
//! never reused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use wasmtime::{Store, Trap, UpdateDeadline};

use wasmtime::component::Resource;

use super::bindings::{
    FilterInfo, FilterPlugin, FilterPluginPre, Phase, RequestAction, ResponseAction,
};
use super::engine::PluginRuntime;
use super::imports::{Caller, Grants, HostServices, HostState};
use super::loader::{LoadedPlugin, PluginInfo, phase_name};
use super::view::{RequestView, ResponseView};
use crate::config::FailurePolicy;
use crate::metrics::FilterMetrics;

/// The phases a configured filter takes part in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Phases {
    /// `on-request` is called.
    pub request: bool,
    /// The request body is buffered for it.
    pub request_body: bool,
    /// `on-response` is called.
    pub response: bool,
    /// The response body is buffered for it.
    pub response_body: bool,
}

impl Phases {
    fn from_wit(phases: &[Phase]) -> Self {
        let has = |p| phases.contains(&p);
        Self {
            request: has(Phase::RequestHeaders) || has(Phase::RequestBody),
            request_body: has(Phase::RequestBody),
            response: has(Phase::ResponseHeaders) || has(Phase::ResponseBody),
            response_body: has(Phase::ResponseBody),
        }
    }
}

/// Why a filter call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The call ran past its deadline and was stopped.
    Deadline,
    /// The instance tried to grow its memory past its cap.
    Memory,
    /// The plugin trapped (a panic, an abort, a bad host call).
    Trap,
    /// A fresh instance could not be created or configured.
    Instantiate,
}

impl FailureKind {
    /// A label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::Memory => "memory",
            Self::Trap => "trap",
            Self::Instantiate => "instantiate",
        }
    }
}

/// A failed filter call.
#[derive(Debug, Clone)]
pub struct FilterFailure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The runtime's message.
    pub message: String,
}

/// Per-filter settings from the config, defaults applied.
#[derive(Debug, Clone)]
pub struct FilterSettings {
    /// The JSON handed to `configure`.
    pub config_json: String,
    /// What the filter may call.
    pub grants: Grants,
    /// What a failure does.
    pub failure: FailurePolicy,
    /// The wall-clock budget of one call.
    pub deadline: Duration,
    /// The linear-memory cap of one instance.
    pub memory_bytes: usize,
    /// The largest body buffered for it.
    pub max_body: usize,
    /// Warm instances kept.
    pub max_idle: usize,
}

/// An instance with its store, ready for a call.
struct Warm {
    store: Store<HostState>,
    plugin: FilterPlugin,
}

/// One filter of one route: a plugin, its config, and a pool of configured instances.
pub struct FilterSlot {
    /// The plugin.
    pub plugin: Arc<LoadedPlugin>,
    /// The phases the configured filter asked for.
    pub phases: Phases,
    /// The settings.
    pub settings: FilterSettings,
    /// Call counts and times.
    pub metrics: Arc<FilterMetrics>,
    caller: Arc<Caller>,
    /// Warm instances, one pool per proxy worker: an instance stays on the core that last
    /// ran it, where its memory is in cache (a worker takes from another's pool only when
    /// its own is empty).
    idle: Box<[Mutex<Vec<Warm>>]>,
}

/// One call into the guest's `filter` export; the handles are lent for the call.
enum Call<'r> {
    Metadata,
    Configure(&'r str),
    OnRequest(Resource<RequestView>),
    OnResponse(Resource<RequestView>, Resource<ResponseView>),
}

/// What a [`Call`] returned.
enum Returned {
    Metadata(FilterInfo),
    Configure(Result<(), String>),
    OnRequest(RequestAction),
    OnResponse(ResponseAction),
}

impl FilterSlot {
    /// Configures the plugin with `settings` on a first instance, which is kept warm, for
    /// a route (its name and its upstream's). An error here refuses the snapshot.
    pub async fn new(
        plugin: Arc<LoadedPlugin>,
        (route, route_upstream): (&str, &str),
        settings: FilterSettings,
        services: Arc<HostServices>,
        metrics: Arc<FilterMetrics>,
    ) -> anyhow::Result<Self> {
        let caller = Arc::new(Caller {
            plugin: plugin.info.name.clone(),
            route: route.to_string(),
            route_upstream: route_upstream.to_string(),
            grants: settings.grants.clone(),
            services,
        });
        let mut slot = Self {
            plugin,
            phases: Phases::default(),
            settings,
            metrics,
            caller,
            idle: idle_pools(),
        };
        let mut warm = slot
            .instantiate()
            .await
            .map_err(|f| anyhow::anyhow!(f.message))?;
        set_request_id(&mut warm, "(configure)");
        let info = match call(&mut warm, slot.settings.deadline, Call::Metadata).await {
            Ok(Returned::Metadata(info)) => info,
            Ok(_) => unreachable!("metadata returns metadata"),
            Err(f) => anyhow::bail!("metadata after configure: {}", f.message),
        };
        slot.phases = Phases::from_wit(&info.phases);
        slot.release(warm);
        Ok(slot)
    }

    /// Calls `on-request` with `request` lent to the filter; the request comes back with
    /// the outcome, whatever it is.
    pub async fn on_request(
        &self,
        request: RequestView,
    ) -> (RequestView, Result<RequestAction, FilterFailure>) {
        let mut warm = match self.checkout().await {
            Ok(warm) => warm,
            Err(failure) => return (request, Err(failure)),
        };
        set_request_id(&mut warm, &request.request_id);
        let data = warm.store.data_mut();
        let lent = data.lend_request(request).rep();
        let call_kind = Call::OnRequest(Resource::new_borrow(lent));
        let result = call(&mut warm, self.settings.deadline, call_kind).await;
        let request = warm.store.data_mut().take_request(Resource::new_own(lent));
        let result = self.finish(warm, result).map(|returned| match returned {
            Returned::OnRequest(action) => action,
            _ => unreachable!("on-request returns a request action"),
        });
        (request, result)
    }

    /// Calls `on-response` with `request` and `response` lent to the filter; both come back
    /// with the outcome.
    pub async fn on_response(
        &self,
        request: RequestView,
        response: ResponseView,
    ) -> (
        RequestView,
        ResponseView,
        Result<ResponseAction, FilterFailure>,
    ) {
        let mut warm = match self.checkout().await {
            Ok(warm) => warm,
            Err(failure) => return (request, response, Err(failure)),
        };
        set_request_id(&mut warm, &request.request_id);
        let data = warm.store.data_mut();
        let lent_request = data.lend_request(request).rep();
        let lent_response = data.lend_response(response).rep();
        let call_kind = Call::OnResponse(
            Resource::new_borrow(lent_request),
            Resource::new_borrow(lent_response),
        );
        let result = call(&mut warm, self.settings.deadline, call_kind).await;
        let data = warm.store.data_mut();
        let request = data.take_request(Resource::new_own(lent_request));
        let response = data.take_response(Resource::new_own(lent_response));
        let result = self.finish(warm, result).map(|returned| match returned {
            Returned::OnResponse(action) => action,
            _ => unreachable!("on-response returns a response action"),
        });
        (request, response, result)
    }

    /// Warm instances waiting in the pools.
    pub fn idle_instances(&self) -> usize {
        self.idle
            .iter()
            .map(|pool| pool.lock().map_or(0, |idle| idle.len()))
            .sum()
    }

    /// Returns the instance to the pool after a good call; drops it after a failed one.
    fn finish<R>(&self, warm: Warm, result: Result<R, FilterFailure>) -> Result<R, FilterFailure> {
        match &result {
            Ok(_) => self.release(warm),
            Err(failure) => {
                self.metrics.record_failure(failure.kind);
                drop(warm);
            }
        }
        result
    }

    /// This worker's pool.
    fn own_pool(&self) -> &Mutex<Vec<Warm>> {
        &self.idle[crate::server::worker_index() % self.idle.len()]
    }

    /// A warm instance: this worker's, else another worker's, else a new one.
    async fn checkout(&self) -> Result<Warm, FilterFailure> {
        let pop = |pool: &Mutex<Vec<Warm>>| pool.lock().ok().and_then(|mut idle| idle.pop());
        let pooled = pop(self.own_pool()).or_else(|| self.idle.iter().find_map(pop));
        match pooled {
            Some(warm) => Ok(warm),
            None => self.instantiate().await,
        }
    }

    fn release(&self, warm: Warm) {
        if let Ok(mut idle) = self.own_pool().lock()
            && idle.len() < self.settings.max_idle
        {
            idle.push(warm);
        }
    }

    /// A new instance, configured.
    async fn instantiate(&self) -> Result<Warm, FilterFailure> {
        let instantiate_failure = |e: anyhow::Error| FilterFailure {
            kind: FailureKind::Instantiate,
            message: format!("{e:#}"),
        };
        let mut warm = new_instance(
            &self.plugin.pre,
            self.caller.clone(),
            self.settings.memory_bytes,
        )
        .await
        .map_err(instantiate_failure)?;
        let config = Call::Configure(&self.settings.config_json);
        set_request_id(&mut warm, "(configure)");
        match call(&mut warm, self.settings.deadline, config).await? {
            Returned::Configure(Ok(())) => Ok(warm),
            Returned::Configure(Err(message)) => Err(FilterFailure {
                kind: FailureKind::Instantiate,
                message: format!("configure refused the config: {message}"),
            }),
            _ => unreachable!("configure returns a result"),
        }
    }
}

impl PluginRuntime {
    /// Reads a plugin's metadata from a throwaway, unconfigured instance with no grants.
    pub(crate) async fn read_metadata(
        &self,
        pre: &FilterPluginPre<HostState>,
    ) -> anyhow::Result<PluginInfo> {
        let services = Arc::new(HostServices {
            // Nothing is granted: the backend is never called, so it needs no sweeper.
            state: Arc::new(crate::state::LocalBackend::default()),
            secrets: Default::default(),
            upstreams: Default::default(),
            resilience: Default::default(),
        });
        let caller = Arc::new(Caller {
            plugin: "(loading)".into(),
            route: String::new(),
            route_upstream: String::new(),
            grants: Grants::default(),
            services,
        });
        let mut warm = new_instance(pre, caller, 64 << 20)
            .await
            .context("cannot instantiate")?;
        set_request_id(&mut warm, "(metadata)");
        let info = match call(&mut warm, Duration::from_secs(1), Call::Metadata).await {
            Ok(Returned::Metadata(info)) => info,
            Ok(_) => unreachable!("metadata returns metadata"),
            Err(f) => anyhow::bail!("metadata failed: {}", f.message),
        };
        Ok(PluginInfo {
            name: info.name,
            version: info.version,
            phases: info.phases.into_iter().map(phase_name).collect(),
        })
    }
}

/// A fresh store and instance with a memory cap and an epoch callback that, every tick,
/// traps when the call's execution budget is spent and otherwise yields to the reactor, so
/// that a busy plugin never holds a worker thread for long.
async fn new_instance(
    pre: &FilterPluginPre<HostState>,
    caller: Arc<Caller>,
    memory_bytes: usize,
) -> anyhow::Result<Warm> {
    let mut store = Store::new(pre.engine(), HostState::new(caller, memory_bytes)?);
    store.limiter(|state| &mut state.limits);
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
    store.data().budget.start(Duration::from_secs(1));
    store.set_epoch_deadline(1);
    let plugin = pre.instantiate_async(&mut store).await?;
    Ok(Warm { store, plugin })
}

/// One pool per possible worker (workers are numbered from 1; 0 is any other thread).
fn idle_pools() -> Box<[Mutex<Vec<Warm>>]> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..=workers).map(|_| Mutex::new(Vec::new())).collect()
}

/// Tags the instance's log lines with the request they serve.
fn set_request_id(warm: &mut Warm, request_id: &str) {
    let id = &mut warm.store.data_mut().request_id;
    id.clear();
    id.push_str(request_id);
}

/// Calls into the instance with a deadline. The epoch callback stops Wasm that has run for
/// longer than the deadline. A filter granted an interface that may wait on the network
/// (`kv`, `limits`, `http`) also gets a wall-clock stop (ten deadlines, at least a second)
/// for a call stuck in a host call; the others cannot wait outside Wasm, so they skip the
/// timer. Either way the caller must drop the instance on error.
async fn call(
    warm: &mut Warm,
    deadline: Duration,
    call: Call<'_>,
) -> Result<Returned, FilterFailure> {
    warm.store.data().budget.start(deadline);
    warm.store.set_epoch_deadline(1);
    let outcome = if warm.store.data().caller.grants.may_wait() {
        let wall_clock_stop = deadline.saturating_mul(10).max(Duration::from_secs(1));
        match tokio::time::timeout(wall_clock_stop, invoke(warm, call)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                return Err(FilterFailure {
                    kind: FailureKind::Deadline,
                    message: format!("stopped after its {} ms deadline", deadline.as_millis()),
                });
            }
        }
    } else {
        invoke(warm, call).await
    };
    outcome.map_err(|error| classify(error, deadline))
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

fn classify(error: wasmtime::Error, deadline: Duration) -> FilterFailure {
    let message = format!("{error:#}");
    let kind = if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        FailureKind::Deadline
    } else if message.contains("growing memory") {
        FailureKind::Memory
    } else {
        FailureKind::Trap
    };
    let message = match kind {
        FailureKind::Deadline => format!("stopped after its {} ms deadline", deadline.as_millis()),
        _ => message,
    };
    FilterFailure { kind, message }
}
