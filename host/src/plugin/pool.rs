//! A configured plugin's warm instances, shared by filters (`slot.rs`) and push routers
//! (`router.rs`): one pool per proxy worker, each idle instance counted against the
//! gateway-wide budget; an instance that failed a call is dropped, never reused; a plugin
//! that keeps failing is backed off.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::backoff::{Backoff, BackoffStatus};
use super::call::{CallLimits, Warm, new_instance};
use super::failure::{FailureKind, FilterFailure};
use super::idle::{Evict, IdleBudget};
use super::imports::{Caller, HostServices};
use super::loader::{LoadedPlugin, PluginKind};
use super::slot::FilterSettings;
use crate::metrics::{CallPhase, Decision, FilterMetrics};

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

/// A plugin configured for one use (a route's filter, a router): its settings, the caller
/// its instances serve as, their pools and its back-off.
pub(crate) struct Instances {
    plugin: Arc<LoadedPlugin>,
    settings: Arc<FilterSettings>,
    metrics: Arc<FilterMetrics>,
    caller: Arc<Caller>,
    idle: Arc<Pools>,
    backoff: Backoff,
}

impl Instances {
    /// Pools for `plugin`, which must be of `kind`, configured with `settings` for `route`
    /// (its name and its upstream's), and the first instance, configured: the caller reads
    /// its metadata and then releases it. An error here refuses the snapshot.
    pub(crate) async fn start(
        (plugin, kind): (Arc<LoadedPlugin>, PluginKind),
        route: (&str, &str),
        settings: FilterSettings,
        services: Arc<HostServices>,
        metrics: Arc<FilterMetrics>,
    ) -> anyhow::Result<(Self, Warm)> {
        plugin.expect_kind(kind)?;
        let settings = Arc::new(settings);
        let caller = Caller::new(&plugin.info.name, route, &settings.grants, services);
        let instances = Self::new(plugin, settings, metrics, caller);
        let mut warm = instances
            .instantiate()
            .await
            .map_err(|f| anyhow::anyhow!(f.message))?;
        warm.serve("(configure)");
        Ok((instances, warm))
    }

    /// Pools for `plugin` configured with `settings`, serving as `caller`, registered with
    /// the gateway-wide idle budget.
    fn new(
        plugin: Arc<LoadedPlugin>,
        settings: Arc<FilterSettings>,
        metrics: Arc<FilterMetrics>,
        caller: Arc<Caller>,
    ) -> Self {
        let idle = Arc::new(Pools {
            per_worker: idle_pools(),
            budget: plugin.idle.clone(),
        });
        plugin
            .idle
            .register(Arc::downgrade(&idle) as Weak<dyn Evict>);
        let backoff = Backoff::new(settings.backoff);
        Self {
            plugin,
            settings,
            metrics,
            caller,
            idle,
            backoff,
        }
    }

    /// The caller the instances serve as.
    pub(crate) fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The settings.
    pub(crate) fn settings(&self) -> &Arc<FilterSettings> {
        &self.settings
    }

    /// The execution budget and the limits of `metadata` and `configure`.
    pub(crate) fn setup(&self) -> (Duration, CallLimits) {
        let limits = self.settings.limits;
        (limits.setup(self.settings.deadline), limits)
    }

    /// Warm instances waiting in the pools.
    pub(crate) fn idle_instances(&self) -> usize {
        self.idle
            .per_worker
            .iter()
            .map(|pool| pool.lock().map_or(0, |idle| idle.len()))
            .sum()
    }

    /// The back-off: failures in a row, backed off until, calls not run.
    pub(crate) fn backoff_status(&self) -> BackoffStatus {
        self.backoff.status()
    }

    /// Counts a call whose outcome the gateway used: metrics, and the back-off is reset.
    pub(crate) fn record_success(&self, elapsed: Duration, decision: Decision, phase: CallPhase) {
        self.metrics.record_call(elapsed, decision, phase);
        self.backoff.success();
    }

    /// Counts a failure, in the call or after it (the gateway could not use its outcome).
    pub(crate) fn record_failure(&self, failure: &FilterFailure) {
        self.metrics.record_failure(failure.kind);
        if failure.kind != FailureKind::BackedOff {
            self.backoff.failure();
        }
    }

    /// Returns the instance to the pool after a good call; drops it after a failed one.
    pub(crate) fn finish<R>(
        &self,
        warm: Warm,
        result: Result<R, FilterFailure>,
    ) -> Result<R, FilterFailure> {
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
    /// the plugin is backed off.
    pub(crate) async fn checkout(&self) -> Result<Warm, FilterFailure> {
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
            // Boxed: instantiating is the cold path, and its state must not weigh on
            // every call.
            None => Box::pin(self.instantiate())
                .await
                .inspect_err(|f| self.record_failure(f)),
        }
    }

    /// Keeps the instance warm for the next call on this worker, within the per-plugin and
    /// the gateway-wide budgets; retires it instead when its memory has grown through half
    /// its headroom (a guest that leaks per call would otherwise fail a call at the cap).
    pub(crate) fn release(&self, warm: Warm) {
        if warm.worn() {
            self.metrics.record_retired();
            tracing::debug!(plugin = %self.plugin.info.name, "instance retired: its memory grew through half its headroom");
            return;
        }
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
        let started = std::time::Instant::now();
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
            Ok(()) => {
                warm.ready();
                self.metrics.record_instantiation(started.elapsed());
                Ok(warm)
            }
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
