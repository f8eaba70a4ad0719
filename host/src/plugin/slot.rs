//! Configured filters and their warm instance pools. An instance that failed a call is
//! dropped, never reused; a filter that keeps failing is backed off; idle instances count
//! against the gateway-wide budget.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use wasmtime::component::Resource;

use super::action::{RequestAction, ResponseAction};
use super::backoff::{Backoff, BackoffStatus};
use super::bindings::Phase;
use super::call::{CallLimits, Warm, new_instance};
use super::failure::{FailureKind, FilterFailure};
use super::grants::Grants;
use super::idle::{Evict, IdleBudget};
use super::imports::{Caller, HostServices};
use super::loader::LoadedPlugin;
use super::view::{RequestView, ResponseView};
use crate::config::FailurePolicy;
use crate::config::sandbox::BackoffConfig;
use crate::metrics::{Decision, FilterMetrics};

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
    /// Warm instances kept per worker.
    pub max_idle: usize,
    /// The wall-clock stop and the result bounds of its calls.
    pub limits: CallLimits,
    /// When it is backed off after failing in a row.
    pub backoff: BackoffConfig,
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
    idle: Arc<Pools>,
    backoff: Backoff,
}

/// One worker's idle instances, each with its stamp in the gateway-wide budget.
type Pool = Mutex<Vec<(u64, Warm)>>;

/// Warm instances, one pool per proxy worker: an instance stays on the core that last ran
/// it, where its memory is in cache (a worker takes from another's pool only when its own
/// is empty). Each idle instance carries its stamp in the gateway-wide budget.
struct Pools {
    per_worker: Box<[Pool]>,
    budget: Arc<IdleBudget>,
}

impl Evict for Pools {
    fn oldest(&self) -> Option<u64> {
        let oldest_of = |pool: &Pool| pool.lock().ok()?.iter().map(|(s, _)| *s).min();
        self.per_worker.iter().filter_map(oldest_of).min()
    }

    fn evict(&self, stamp: u64) -> bool {
        self.per_worker.iter().any(|pool| {
            let evicted = pool.lock().ok().and_then(|mut idle| {
                let at = idle.iter().position(|(s, _)| *s == stamp)?;
                Some(idle.remove(at))
            });
            // Dropped outside the pool's lock.
            evicted.is_some()
        })
    }
}

impl Drop for Pools {
    fn drop(&mut self) {
        for pool in &self.per_worker {
            if let Ok(idle) = pool.lock() {
                for _ in idle.iter() {
                    self.budget.forget();
                }
            }
        }
    }
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
            context_key: super::context::new_key(),
            route_upstream: route_upstream.to_string(),
            grants: settings.grants.clone(),
            services,
        });
        let idle = Arc::new(Pools {
            per_worker: idle_pools(),
            budget: plugin.idle.clone(),
        });
        let backoff = Backoff::new(settings.backoff);
        plugin
            .idle
            .register(Arc::downgrade(&idle) as Weak<dyn Evict>);
        let mut slot = Self {
            plugin,
            phases: Phases::default(),
            settings,
            metrics,
            caller,
            idle,
            backoff,
        };
        let mut warm = slot
            .instantiate()
            .await
            .map_err(|f| anyhow::anyhow!(f.message))?;
        warm.serve("(configure)");
        let limits = slot.settings.limits;
        let info = match warm
            .metadata(limits.setup(slot.settings.deadline), &limits)
            .await
        {
            Ok(info) => info,
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
        warm.serve(&request.request_id);
        let lent = warm.store.data_mut().lend_request(request).rep();
        let (deadline, limits) = (self.settings.deadline, &self.settings.limits);
        let result = warm
            .on_request(deadline, limits, Resource::new_borrow(lent))
            .await;
        let request = warm.store.data_mut().take_request(Resource::new_own(lent));
        let result = self.finish(
            warm,
            result.and_then(|action| RequestAction::from_wit(action, &self.caller.context_key)),
        );
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
        warm.serve(&request.request_id);
        let data = warm.store.data_mut();
        let lent_request = data.lend_request(request).rep();
        let lent_response = data.lend_response(response).rep();
        let lent = (
            Resource::new_borrow(lent_request),
            Resource::new_borrow(lent_response),
        );
        let (deadline, limits) = (self.settings.deadline, &self.settings.limits);
        let result = warm.on_response(deadline, limits, lent).await;
        let data = warm.store.data_mut();
        let request = data.take_request(Resource::new_own(lent_request));
        let response = data.take_response(Resource::new_own(lent_response));
        let result = self.finish(warm, result.and_then(ResponseAction::from_wit));
        (request, response, result)
    }

    /// Warm instances waiting in the pools.
    pub fn idle_instances(&self) -> usize {
        self.idle
            .per_worker
            .iter()
            .map(|pool| pool.lock().map_or(0, |idle| idle.len()))
            .sum()
    }

    /// The filter's back-off: failures in a row, backed off until, calls not run.
    pub fn backoff_status(&self) -> BackoffStatus {
        self.backoff.status()
    }

    /// Counts a call whose outcome the gateway used: metrics, and the filter's back-off is
    /// reset. (A call whose output is unusable counts as a failure instead.)
    pub fn record_success(&self, elapsed: Duration, decision: Decision) {
        self.metrics.record_call(elapsed, decision);
        self.backoff.success();
    }

    /// Counts a failure that happened after the call (the gateway could not use what the
    /// filter returned) like a failed call.
    pub fn record_failure(&self, failure: &FilterFailure) {
        self.metrics.record_failure(failure.kind);
        if failure.kind != FailureKind::BackedOff {
            self.backoff.failure();
        }
    }

    /// Returns the instance to the pool after a good call; drops it after a failed one.
    fn finish<R>(&self, warm: Warm, result: Result<R, FilterFailure>) -> Result<R, FilterFailure> {
        match &result {
            Ok(_) => self.release(warm),
            Err(failure) => {
                self.record_failure(failure);
                drop(warm);
            }
        }
        result
    }

    /// This worker's pool.
    fn own_pool(&self) -> &Pool {
        let pools = &self.idle.per_worker;
        &pools[crate::worker::index() % pools.len()]
    }

    /// A warm instance: this worker's, else another worker's, else a new one; none while
    /// the filter is backed off.
    async fn checkout(&self) -> Result<Warm, FilterFailure> {
        if !self.backoff.admit() {
            let failure = FilterFailure {
                kind: FailureKind::BackedOff,
                message: "backed off after failing in a row: not run".into(),
            };
            self.metrics.record_failure(failure.kind);
            return Err(failure);
        }
        let pop = |pool: &Pool| pool.lock().ok().and_then(|mut idle| idle.pop());
        let pooled = pop(self.own_pool()).or_else(|| self.idle.per_worker.iter().find_map(pop));
        match pooled {
            Some((_, warm)) => {
                self.idle.budget.forget();
                Ok(warm)
            }
            None => self
                .instantiate()
                .await
                .inspect_err(|f| self.record_failure(f)),
        }
    }

    /// Keeps the instance warm for the next call on this worker, within the per-filter and
    /// the gateway-wide budgets.
    fn release(&self, warm: Warm) {
        let budget = &self.idle.budget;
        let stamp = budget.stamp();
        let kept = match self.own_pool().lock() {
            Ok(mut idle) if idle.len() < self.settings.max_idle => {
                idle.push((stamp, warm));
                true
            }
            _ => false,
        };
        if kept {
            budget.idle();
        }
    }

    /// A new instance, configured.
    async fn instantiate(&self) -> Result<Warm, FilterFailure> {
        let instantiate_failure = |e: anyhow::Error| FilterFailure {
            kind: FailureKind::Instantiate,
            message: format!("{e:#}"),
        };
        let settings = &self.settings;
        let (pre, memory, limits) = (&self.plugin.pre, settings.memory_bytes, &settings.limits);
        let first = new_instance(pre, self.caller.clone(), memory, limits).await;
        let mut warm = match first {
            Ok(warm) => warm,
            // The allocator may be full of idle instances: give up the least recently used
            // one, whoever owns it, and try once more.
            Err(_) if self.idle.budget.evict_oldest() => {
                new_instance(pre, self.caller.clone(), memory, limits)
                    .await
                    .map_err(instantiate_failure)?
            }
            Err(e) => return Err(instantiate_failure(e)),
        };
        warm.serve("(configure)");
        let configured = warm
            .configure(
                settings.limits.setup(settings.deadline),
                &settings.limits,
                &settings.config_json,
            )
            .await?;
        match configured {
            Ok(()) => Ok(warm),
            Err(message) => Err(FilterFailure {
                kind: FailureKind::Instantiate,
                message: format!("configure refused the config: {message}"),
            }),
        }
    }
}

/// One pool per possible worker (workers are numbered from 1; 0 is any other thread).
fn idle_pools() -> Box<[Pool]> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..=workers).map(|_| Mutex::new(Vec::new())).collect()
}
