//! The host side of the plugin contract: the per-store state and one module per host
//! interface. Each interface checks the plugin's grant first and denies by default.

mod cache;
mod clock;
mod http;
mod kv;
mod limits;
mod log;
mod secrets;
mod upstreams;
mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::bindings::weir::gateway::types;
use super::budget::{Budgeted, CallBudget};
use super::grants::Grants;
use super::memory::MemoryCap;
use crate::resilience::Resilience;
use crate::state::StateBackend;
use crate::upstream::Upstream;

/// What the host interfaces serve from: shared state, secrets, upstreams.
pub struct HostServices {
    /// The `kv`/`limits` backend.
    pub state: Arc<dyn StateBackend>,
    /// Secret values by name.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// Upstreams by name, for `http`.
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// Upstream outcomes, circuits and load, for `upstreams`.
    pub resilience: Arc<Resilience>,
    /// The response cache, for `cache`.
    pub cache: Arc<crate::http_cache::ResponseCache>,
    /// The largest upstream response body `http` hands back (`runtime.http_max_response_bytes`).
    pub http_max_response_bytes: usize,
}

impl HostServices {
    /// Services backed by nothing shared: an embedded state backend, no secrets, no
    /// upstreams, a cache of the default bounds. For reading a plugin's metadata (nothing
    /// is granted then), and for tools and tests that run a plugin alone.
    pub fn isolated() -> Self {
        Self {
            state: Arc::new(crate::state::LocalBackend::default()),
            secrets: BTreeMap::new(),
            upstreams: BTreeMap::new(),
            resilience: Arc::default(),
            cache: crate::http_cache::ResponseCache::start(&Default::default(), None),
            http_max_response_bytes: crate::config::sandbox::default_http_max_response_bytes(),
        }
    }
}

/// Who is calling: one configured filter.
pub(crate) struct Caller {
    /// The plugin's name, for logs.
    pub plugin: String,
    /// The route the filter is configured on (what `request.route()` answers).
    pub route: String,
    /// The route's upstream (what `request.upstream()` answers unless a filter chose one).
    pub route_upstream: String,
    /// The key of the filter's private per-request context (`context.rs`).
    pub context_key: String,
    pub grants: Grants,
    pub services: Arc<HostServices>,
}

impl Caller {
    /// A configured plugin `plugin` on `route` (with the route's upstream), with its own
    /// private-context key.
    pub(crate) fn new(
        plugin: &str,
        (route, route_upstream): (&str, &str),
        grants: &Grants,
        services: Arc<HostServices>,
    ) -> Arc<Self> {
        Arc::new(Self {
            plugin: plugin.to_string(),
            route: route.to_string(),
            context_key: super::context::new_key(),
            route_upstream: route_upstream.to_string(),
            grants: grants.clone(),
            services,
        })
    }
}

/// The data of one instance's store.
pub struct HostState {
    wasi: WasiCtx,
    /// WASI's resources and the request and response lent to the current call.
    pub(crate) table: ResourceTable,
    /// The instance's memory cap, which records a refused grow.
    pub(crate) memory: MemoryCap,
    pub(crate) caller: Arc<Caller>,
    /// The request being served, for log lines.
    pub(crate) request_id: String,
    /// The current call's execution budget; checked on every epoch tick.
    pub(crate) budget: Arc<CallBudget>,
}

impl HostState {
    /// A store's data with no ambient authority but the directories granted (read-only)
    /// and, with the `clock` grant, the real WASI clocks; and `memory_bytes` of linear
    /// memory.
    pub(crate) fn new(caller: Arc<Caller>, memory_bytes: usize) -> anyhow::Result<Self> {
        let mut wasi = WasiCtx::builder();
        if !caller.grants.clock {
            wasi.wall_clock(clock::StoppedClock)
                .monotonic_clock(clock::StoppedClock);
        }
        for (host, guest) in &caller.grants.files {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(|e| anyhow::anyhow!("granted directory {}: {e}", host.display()))?;
        }
        Ok(Self {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory: MemoryCap::new(memory_bytes),
            caller,
            request_id: String::new(),
            budget: Arc::default(),
        })
    }
}

impl Budgeted for HostState {
    fn budget(&self) -> &Arc<CallBudget> {
        &self.budget
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Maps a backend error into the WIT error.
fn state_error(e: crate::state::StateError) -> types::HostError {
    match e {
        crate::state::StateError::Unavailable(m) => types::HostError::Unavailable(m),
        crate::state::StateError::Invalid(m) => types::HostError::Invalid(m),
    }
}

/// Milliseconds from the WIT into a duration.
fn ttl(ms: Option<u64>) -> Option<std::time::Duration> {
    ms.map(std::time::Duration::from_millis)
}
