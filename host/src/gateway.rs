//! The gateway: the live snapshot behind an `ArcSwap`, and the long-lived services that
//! snapshots are built with (plugin runtime, health, metrics, state).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::admission::Admission;
use crate::body::BufferBudget;
use crate::config::Config;
use crate::headers::RequestIds;
use crate::metrics::Metrics;
use crate::plugin::{LoadedPlugin, PluginRuntime};
use crate::reload::{PluginStatus, ReloadStatus};
use crate::resilience::Resilience;
use crate::snapshot::Snapshot;
use crate::state::StateBackend;
use crate::upstream::health::HealthRegistry;

/// A running gateway's state. Cheap to share: handlers hold an `Arc<Gateway>`.
pub struct Gateway {
    /// The live snapshot; each request loads it once.
    pub(crate) snapshot: ArcSwap<Snapshot>,
    /// The config file this gateway reloads from.
    pub(crate) config_path: PathBuf,
    pub(crate) runtime: PluginRuntime,
    pub(crate) health: HealthRegistry,
    /// Upstream outcomes, circuits and load, kept across snapshots.
    pub(crate) resilience: Arc<Resilience>,
    /// All metrics.
    pub metrics: Metrics,
    pub(crate) state: Arc<dyn StateBackend>,
    pub(crate) request_ids: RequestIds,
    /// Compiled plugins by content hash, reused across reloads while their file is there.
    pub(crate) compiled: Mutex<BTreeMap<String, Arc<LoadedPlugin>>>,
    /// What `GET /plugins` shows, by file name.
    pub(crate) plugin_status: Mutex<BTreeMap<String, PluginStatus>>,
    /// The outcome of the last reload.
    pub(crate) last_reload: Mutex<ReloadStatus>,
    /// Serialises reloads.
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
    pub(crate) generation: AtomicU64,
    /// Body bytes buffered for filters, all requests together.
    pub(crate) buffers: Arc<BufferBudget>,
    /// Upgraded connections spliced through now.
    pub(crate) tunnels: Arc<AtomicU64>,
    /// Open client connections of the proxy listeners.
    pub(crate) connections: Arc<Admission>,
}

impl Gateway {
    /// Loads the config and the plugins and builds the first snapshot. Fails (naming the
    /// file and the reason) if anything is invalid: a gateway never starts half-configured.
    pub async fn start(config_path: &Path) -> anyhow::Result<Arc<Self>> {
        let config = Config::load(config_path)?;
        let runtime = PluginRuntime::new(&config.runtime, config.cache_paths()?)?;
        let state = crate::state::start(&config.state).await?;
        let gateway = Self {
            snapshot: ArcSwap::from_pointee(crate::snapshot::Snapshot::empty()),
            config_path: config_path.to_path_buf(),
            runtime,
            health: HealthRegistry::default(),
            resilience: Arc::default(),
            metrics: Metrics::default(),
            state,
            request_ids: RequestIds::default(),
            compiled: Mutex::new(BTreeMap::new()),
            plugin_status: Mutex::new(BTreeMap::new()),
            last_reload: Mutex::new(ReloadStatus::default()),
            reload_lock: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            buffers: Arc::default(),
            tunnels: Arc::default(),
            connections: Arc::default(),
        };
        let gateway = Arc::new(gateway);
        gateway
            .reload_with(config)
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(gateway)
    }

    /// The live snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }
}
