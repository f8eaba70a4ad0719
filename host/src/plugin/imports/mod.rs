//! The host side of the plugin contract: the per-store state and one module per host
//! interface. Each interface checks the plugin's grant first and denies by default.

mod clock;
mod http;
mod kv;
mod limits;
mod log;
mod secrets;
mod upstreams;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::bindings::weir::gateway::types;
use crate::resilience::Resilience;
use crate::state::StateBackend;
use crate::upstream::Upstream;

/// What one configured filter may call, parsed from its `grants`.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    log: bool,
    clock: bool,
    kv: bool,
    limits: bool,
    upstreams: bool,
    secrets: BTreeSet<String>,
    http: BTreeSet<String>,
    /// Directories preopened read-only: (where on the host, the path the plugin uses).
    files: Vec<(PathBuf, String)>,
    /// Whose `kv` keys and rate limits these are (assigned by the config, never by the
    /// plugin).
    namespace: String,
}

impl Grants {
    /// Parses grant strings (already validated with the config); `files:` directories are
    /// relative to `base_dir`, the config file's directory.
    pub fn parse(grants: &[String], base_dir: &Path) -> Self {
        let mut g = Self::default();
        for grant in grants {
            match grant.split_once(':') {
                Some(("files", dir)) => g.files.push((base_dir.join(dir), dir.to_string())),
                Some(("secrets", name)) => {
                    g.secrets.insert(name.to_string());
                }
                Some(("http", name)) => {
                    g.http.insert(name.to_string());
                }
                _ => match grant.as_str() {
                    "log" => g.log = true,
                    "clock" => g.clock = true,
                    "kv" => g.kv = true,
                    "limits" => g.limits = true,
                    "upstreams" => g.upstreams = true,
                    _ => {}
                },
            }
        }
        g
    }

    /// The same grants, with `kv` and `limits` in `namespace`.
    pub fn with_namespace(self, namespace: String) -> Self {
        Self { namespace, ..self }
    }
}

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
}

/// Who is calling: one configured filter.
pub(crate) struct Caller {
    /// The plugin's name, for logs.
    pub plugin: String,
    /// The route the filter is configured on (what `request.route()` answers).
    pub route: String,
    /// The route's upstream (what `request.upstream()` answers unless a filter chose one).
    pub route_upstream: String,
    pub grants: Grants,
    pub services: Arc<HostServices>,
}

/// The data of one instance's store.
pub struct HostState {
    wasi: WasiCtx,
    /// WASI's resources and the request and response lent to the current call.
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) caller: Arc<Caller>,
    /// The request being served, for log lines.
    pub(crate) request_id: String,
    /// The current call's execution budget; checked on every epoch tick.
    pub(crate) budget: Arc<CallBudget>,
}

/// Measures how long a call has been running, leaving out the time it spent queued behind
/// other tasks after yielding: under load a call must not be failed for waiting its turn.
#[derive(Debug, Default)]
pub(crate) struct CallBudget {
    limit_ns: AtomicU64,
    used_ns: AtomicU64,
    resumed_at_ns: AtomicU64,
}

impl CallBudget {
    /// Starts a call with `limit` of execution time.
    pub(crate) fn start(&self, limit: Duration) {
        self.limit_ns
            .store(limit.as_nanos() as u64, Ordering::Relaxed);
        self.used_ns.store(0, Ordering::Relaxed);
        self.resumed_at_ns.store(clock_ns(), Ordering::Relaxed);
    }

    /// Adds the time since the last resume; true when the budget is spent.
    pub(crate) fn spent(&self) -> bool {
        let ran = clock_ns().saturating_sub(self.resumed_at_ns.load(Ordering::Relaxed));
        let used = self.used_ns.fetch_add(ran, Ordering::Relaxed) + ran;
        used >= self.limit_ns.load(Ordering::Relaxed)
    }

    /// Marks the call as running again after a yield.
    pub(crate) fn resumed(&self) {
        self.resumed_at_ns.store(clock_ns(), Ordering::Relaxed);
    }
}

/// Nanoseconds on a monotonic clock.
fn clock_ns() -> u64 {
    static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    START.elapsed().as_nanos() as u64
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
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            caller,
            request_id: String::new(),
            budget: Arc::default(),
        })
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

impl types::Host for HostState {}

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
