//! Configured filters: a route's plugin with its settings and its warm instances
//! (`pool.rs`), called in the request and response phases it asked for.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Resource;

use super::action::{RequestAction, ResponseAction};
use super::backoff::BackoffStatus;
use super::bindings::Phase;
use super::call::CallLimits;
use super::failure::FilterFailure;
use super::grants::Grants;
use super::imports::HostServices;
use super::loader::{LoadedPlugin, PluginKind};
use super::pool::Instances;
use super::view::{RequestView, ResponseView};
use crate::config::FailurePolicy;
use crate::config::sandbox::BackoffConfig;
use crate::metrics::{CallPhase, Decision, FilterMetrics};

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
    /// Whether a response declared larger than `max_body` streams past it (headers only).
    pub stream_oversized: bool,
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
    pub settings: Arc<FilterSettings>,
    /// Call counts and times.
    pub metrics: Arc<FilterMetrics>,
    instances: Instances,
}

impl FilterSlot {
    /// Configures the plugin with `settings` on a first instance, which is kept warm, for
    /// a route (its name and its upstream's). An error here refuses the snapshot; so does
    /// a plugin that is not a filter (a push router).
    pub async fn new(
        plugin: Arc<LoadedPlugin>,
        (route, route_upstream): (&str, &str),
        settings: FilterSettings,
        services: Arc<HostServices>,
        metrics: Arc<FilterMetrics>,
    ) -> anyhow::Result<Self> {
        let (instances, mut warm) = Instances::start(
            (plugin.clone(), PluginKind::Filter),
            (route, route_upstream),
            settings,
            services,
            metrics.clone(),
        )
        .await?;
        let (deadline, limits) = instances.setup();
        let info = match warm.metadata(deadline, &limits).await {
            Ok(info) => info,
            Err(f) => anyhow::bail!("metadata after configure: {}", f.message),
        };
        instances.release(warm);
        Ok(Self {
            settings: instances.settings().clone(),
            plugin,
            phases: Phases::from_wit(&info.phases),
            metrics,
            instances,
        })
    }

    /// Calls `on-request` with `request` lent to the filter; the request comes back with
    /// the outcome, whatever it is.
    pub async fn on_request(
        &self,
        request: RequestView,
    ) -> (RequestView, Result<RequestAction, FilterFailure>) {
        let mut warm = match self.instances.checkout().await {
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
        let context_key = &self.instances.caller().context_key;
        let result = self.instances.finish(
            warm,
            result.and_then(|action| RequestAction::from_wit(action, context_key)),
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
        let mut warm = match self.instances.checkout().await {
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
        let result = self
            .instances
            .finish(warm, result.and_then(ResponseAction::from_wit));
        (request, response, result)
    }

    /// Warm instances waiting in the pools.
    pub fn idle_instances(&self) -> usize {
        self.instances.idle_instances()
    }

    /// The filter's back-off: failures in a row, backed off until, calls not run.
    pub fn backoff_status(&self) -> BackoffStatus {
        self.instances.backoff_status()
    }

    /// Counts a call whose outcome the gateway used: metrics, and the filter's back-off is
    /// reset. (A call whose output is unusable counts as a failure instead.)
    pub fn record_success(&self, elapsed: Duration, decision: Decision, phase: CallPhase) {
        self.instances.record_success(elapsed, decision, phase);
    }

    /// Counts a failure that happened after the call (the gateway could not use what the
    /// filter returned) like a failed call.
    pub fn record_failure(&self, failure: &FilterFailure) {
        self.instances.record_failure(failure);
    }
}
