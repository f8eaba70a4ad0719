//! Hot reload: the config file and the plugins directory are watched; changes are
//! debounced, a complete new snapshot is built and validated off the hot path, and only
//! then swapped in. A refused reload leaves the live snapshot serving and says why: in the
//! log (naming the file), in `GET /plugins`, and in the `weir_reloads_total` metric.
//!
//! Reloads run one at a time and read their files under the same lock that guards the
//! swap, so they apply in the order they read: whatever races (the watcher, `POST /reload`),
//! the last reload applied is the one that read the newest files.
//!
//! The [`Reloader`] owns the reload bookkeeping (the config path, compiled plugins, the
//! statuses the admin API shows); the [`Gateway`] it reloads keeps only the live snapshot
//! and the long-lived services.

mod generations;
mod status;
mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::config::admin::restart_required;
use crate::gateway::Gateway;
use crate::plugin::LoadedPlugin;
use crate::snapshot::{BuildContext, Snapshot};
use crate::upstream::spawn_health_checks;

pub use generations::GenerationSummary;
use generations::{Generations, Source};
use status::{Ledger, PluginFiles};
pub use status::{PluginStatus, ReloadStatus};
pub use watch::watch;

/// Builds snapshots for a gateway from its config file and plugins directory, and keeps
/// what the admin API shows of it.
pub struct Reloader {
    gateway: Arc<Gateway>,
    /// The config file reloads read.
    config_path: PathBuf,
    /// Compiled plugins by file and content hash, reused across reloads while their file
    /// is there.
    compiled: Mutex<BTreeMap<String, Arc<LoadedPlugin>>>,
    /// Plugin statuses and the last reload's outcome.
    ledger: Ledger,
    /// Serialises reloads.
    lock: tokio::sync::Mutex<()>,
    /// The generation of the live snapshot.
    generation: AtomicU64,
    /// The last generations, for rollback.
    generations: Generations,
}

/// Why a rollback was not made.
#[derive(Debug)]
pub enum RollbackError {
    /// That generation is not kept (too old, or never was).
    NotKept(u64),
    /// Building its snapshot again was refused (a restart-only setting differs, say).
    Refused(String),
}

impl Reloader {
    /// Loads the config, starts the gateway's services and builds the first snapshot.
    /// Fails (naming the file and the reason) if anything is invalid: a gateway never
    /// starts half-configured.
    pub async fn start(config_path: &Path) -> anyhow::Result<Arc<Self>> {
        let config = Config::load(config_path)?;
        let gateway = Arc::new(Gateway::new(&config).await?);
        let reloader = Arc::new(Self {
            gateway,
            config_path: config_path.to_path_buf(),
            compiled: Mutex::default(),
            ledger: Ledger::default(),
            lock: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            generations: Generations::default(),
        });
        let _one_at_a_time = reloader.lock.lock().await;
        (reloader.apply(config, Source::Files).await).map_err(anyhow::Error::msg)?;
        drop(_one_at_a_time);
        Ok(reloader)
    }

    /// The gateway this reloads.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Reloads the config file and the plugins directory. Returns the new generation, or
    /// the reason the reload was refused (the live snapshot keeps serving).
    pub async fn reload(&self) -> Result<u64, String> {
        // The config is read under the lock: see the module's doc.
        let _one_at_a_time = self.lock.lock().await;
        match Config::load(&self.config_path) {
            Ok(config) => self.apply(config, Source::Files).await,
            Err(e) => {
                let reason = format!("{e:#}");
                self.refused(None, &reason);
                Err(reason)
            }
        }
    }

    /// Serves generation `number` again (its config and plugins as they were), until
    /// the files change again. Returns the new generation.
    pub async fn rollback(&self, number: u64) -> Result<u64, RollbackError> {
        let _one_at_a_time = self.lock.lock().await;
        let kept = (self.generations.get(number)).ok_or(RollbackError::NotKept(number))?;
        let (config, plugins) = (kept.config.clone(), kept.plugins.clone());
        (self
            .install(config, plugins, Source::Rollback(number))
            .await)
            .map_err(RollbackError::Refused)
    }

    /// Applies config `text` (checked as a file reload is, relative paths against the
    /// config file's directory) with the plugins directory, until the files change again.
    pub async fn publish(&self, text: &str) -> Result<u64, String> {
        let _one_at_a_time = self.lock.lock().await;
        let base_dir = (self.config_path.parent())
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        match Config::parse(text, base_dir) {
            Ok(config) => self.apply(config, Source::Published).await,
            Err(e) => {
                let reason = format!("published config: {e:#}");
                self.refused(None, &reason);
                Err(reason)
            }
        }
    }

    /// What `GET /generations` shows: the kept generations, newest first.
    pub fn generations(&self) -> Vec<GenerationSummary> {
        self.generations
            .list(self.generation.load(Ordering::Relaxed))
    }

    /// What `GET /plugins` shows.
    pub fn plugin_statuses(&self) -> Vec<PluginStatus> {
        self.ledger.plugins()
    }

    /// The outcome of the last reload.
    pub fn last_reload(&self) -> ReloadStatus {
        self.ledger.last()
    }

    /// Builds a snapshot from `config` and the plugins directory and swaps it in; the
    /// reload lock held.
    async fn apply(&self, config: Config, source: Source) -> Result<u64, String> {
        let dir = config.plugins_dir();
        if !dir.is_dir() {
            let reason = format!(
                "config {}: server.plugins_dir {} is not a directory",
                self.config_path.display(),
                dir.display()
            );
            self.refused(None, &reason);
            return Err(reason);
        }
        let plugins = self.load_plugin_files(&dir).await;
        self.install(config, plugins, source).await
    }

    /// Builds a snapshot from `config` and `plugins` and swaps it in, recording the
    /// generation; the reload lock held.
    async fn install(
        &self,
        config: Config,
        plugins: PluginFiles,
        source: Source,
    ) -> Result<u64, String> {
        let gateway = &self.gateway;
        let live = gateway.snapshot();
        if live.generation > 0 {
            if let Some(why) = restart_required(&live.config.server, &config.server) {
                let reason = format!("config {}: {why}", self.config_path.display());
                self.refused(None, &reason);
                return Err(reason);
            }
            if live.config.server.listen != config.server.listen {
                tracing::warn!(
                    "server.listen changed: the new addresses take effect after a restart"
                );
            }
            if live.config.tcp != config.tcp {
                tracing::warn!(
                    "[[tcp]] changed: the new listeners take effect after a restart (their upstreams follow reloads)"
                );
            }
            if live.config.tls.listen != config.tls.listen {
                tracing::warn!("tls.listen changed: the new listeners take effect after a restart");
            }
            let (mut was, now) = (live.config.tracing.clone(), &config.tracing);
            was.sample = now.sample;
            if was != *now {
                tracing::warn!(
                    "[tracing] changed: only `sample` follows reloads, the rest takes effect after a restart"
                );
            }
            if live.config.state != config.state {
                tracing::warn!(
                    "[state] changed: the new state backend takes effect after a restart"
                );
            }
        }
        let generation = self.generation.load(Ordering::Relaxed) + 1;
        let kept = config.clone();
        let cx = BuildContext {
            plugins: &plugins,
            health: &gateway.health,
            resilience: &gateway.resilience,
            metrics: &gateway.metrics,
            state: gateway.state.clone(),
            push_tokens: gateway.push.tokens.clone(),
            cache: gateway.cache.clone(),
            tls_resumption: &gateway.tls_resumption,
        };
        let snapshot = match Snapshot::build(config, generation, cx).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                self.refused(e.plugin_file.as_deref(), &e.message);
                return Err(e.message);
            }
        };
        // Statuses first, so that anyone who sees the new snapshot serving also sees it in
        // the admin API.
        self.ledger.swapped(&snapshot, &plugins);
        self.keep_compiled(&plugins);
        gateway.metrics.record_reload(true);
        self.generation.store(generation, Ordering::Relaxed);
        gateway.swap(snapshot.clone());
        let keep = snapshot.config.server.keep_generations;
        let path = self.config_path.display().to_string();
        (self.generations).record((generation, &source, &path), kept, plugins, keep);
        spawn_health_checks(snapshot.upstreams.values());
        if let Some(vendors) = &snapshot.push_vendors {
            vendors.spawn(gateway.push.clone());
        }
        let buffered = (snapshot.routes.iter())
            .filter_map(|r| Some((r.name.clone(), r.buffer.clone()?)))
            .collect();
        gateway.buffer.follow(buffered);
        tracing::info!(
            generation,
            routes = snapshot.routes.len(),
            plugins = snapshot.plugins.len(),
            "snapshot swapped in"
        );
        Ok(generation)
    }

    /// Every `.wasm` file of the plugins directory, loaded (reusing compiled plugins whose
    /// content has not changed) or with the reason it could not be.
    async fn load_plugin_files(&self, dir: &Path) -> PluginFiles {
        let mut loaded = BTreeMap::new();
        for (file, path) in watch::plugin_files(dir) {
            let result = match tokio::fs::read(&path).await {
                Err(e) => Err(format!("cannot read {}: {e}", path.display())),
                Ok(bytes) => {
                    let hash = crate::plugin::content_hash(&bytes);
                    let known = self
                        .compiled
                        .lock()
                        .ok()
                        .and_then(|c| c.get(&format!("{file}/{hash}")).cloned());
                    match known {
                        Some(plugin) => Ok(plugin),
                        None => self
                            .gateway
                            .runtime
                            .load(&file, bytes)
                            .await
                            .map_err(|e| format!("{e:#}")),
                    }
                }
            };
            if let Err(reason) = &result {
                tracing::error!(file = %path.display(), reason = %reason, "plugin refused");
                self.ledger.plugin_error(&file, reason);
            }
            loaded.insert(file, result);
        }
        loaded
    }

    /// On a swap: compiled plugins and cached artifacts of files that are gone are
    /// released (the live snapshot keeps what it uses in memory).
    fn keep_compiled(&self, files: &PluginFiles) {
        let keep: BTreeMap<String, Arc<LoadedPlugin>> = files
            .iter()
            .filter_map(|(file, r)| {
                r.as_ref()
                    .ok()
                    .map(|p| (format!("{file}/{}", p.hash), p.clone()))
            })
            .collect();
        let hashes: Vec<String> = keep.values().map(|p| p.hash.clone()).collect();
        if let Ok(mut compiled) = self.compiled.lock() {
            *compiled = keep;
        }
        self.gateway.runtime.prune_cache(&hashes);
    }

    /// Records a refused reload.
    fn refused(&self, plugin_file: Option<&str>, reason: &str) {
        // The generation serving now (a rollback may serve an older one than the last built).
        let generation = self.gateway.snapshot().generation;
        if generation > 0 {
            tracing::error!(config = %self.config_path.display(), plugin = plugin_file.unwrap_or("-"), reason, generation, "reload refused; the live snapshot keeps serving");
        } else {
            // Nothing serves yet: the caller (start, `weir check`) reports the error.
            tracing::debug!(config = %self.config_path.display(), plugin = plugin_file.unwrap_or("-"), reason, "config refused");
        }
        self.gateway.metrics.record_reload(false);
        self.ledger.refused(generation, plugin_file, reason);
    }
}
