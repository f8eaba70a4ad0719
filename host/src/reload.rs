//! Hot reload: the config file and the plugins directory are watched; changes are
//! debounced, a complete new snapshot is built and validated off the hot path, and only
//! then swapped in. A refused reload leaves the live snapshot serving and says why: in the
//! log (naming the file), in `GET /plugins`, and in the `weir_reloads_total` metric.
//!
//! Reloads run one at a time and read their files under the same lock that guards the
//! swap, so they apply in the order they read: whatever races (the watcher, `POST /reload`),
//! the last reload applied is the one that read the newest files.
//!
//! Files may be symlinks, as in a Kubernetes ConfigMap mount (`weir.toml -> ..data/weir.toml`,
//! `..data -> ..2026_01_01…`, swapped by renaming a new `..data` over the old): the watcher
//! treats a change of `..data` in a watched directory as a change of every file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use notify::{EventKind, RecursiveMode, Watcher};
use serde::Serialize;

use crate::config::Config;
use crate::config::admin::restart_required;
use crate::gateway::Gateway;
use crate::plugin::LoadedPlugin;
use crate::snapshot::{BuildContext, Snapshot};
use crate::upstream::health::now_ms;
use crate::upstream::spawn_health_checks;

/// Quiet time after the last file event before a reload starts.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// The entry an atomic writer (Kubernetes' for ConfigMaps and Secrets) swaps to publish a
/// new set of files at once; the visible files are symlinks through it.
const ATOMIC_DATA_LINK: &str = "..data";

/// One plugin file as `GET /plugins` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PluginStatus {
    /// The file name.
    pub file: String,
    /// `active` (used by the live snapshot), `unused` (loaded, no route uses it) or
    /// `refused` (never loaded successfully).
    pub state: &'static str,
    /// The filter's name, version and content hash, of the version that is serving.
    pub name: Option<String>,
    /// The filter's version.
    pub version: Option<String>,
    /// SHA-256 of the file, hex.
    pub hash: Option<String>,
    /// When that version was loaded (ms since the Unix epoch).
    pub loaded_at_ms: Option<u64>,
    /// The snapshot generation that brought it in.
    pub generation: Option<u64>,
    /// Routes whose chains use it.
    pub used_by: Vec<String>,
    /// Why the latest attempt to load this file (or to configure it) was refused.
    pub last_error: Option<String>,
    /// When that happened (ms since the Unix epoch).
    pub last_error_at_ms: Option<u64>,
}

/// The outcome of the last reload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStatus {
    /// The live generation.
    pub generation: u64,
    /// Whether the last attempt was swapped in.
    pub ok: bool,
    /// When it ran (ms since the Unix epoch).
    pub at_ms: u64,
    /// Why it was refused.
    pub error: Option<String>,
}

impl Gateway {
    /// Reloads the config file and the plugins directory. Returns the new generation, or
    /// the reason the reload was refused (the live snapshot keeps serving).
    pub async fn reload(&self) -> Result<u64, String> {
        // The config is read under the lock: see the module's doc.
        let _one_at_a_time = self.reload_lock.lock().await;
        match Config::load(&self.config_path) {
            Ok(config) => self.apply(config).await,
            Err(e) => {
                let reason = format!("{e:#}");
                self.refused(None, &reason);
                Err(reason)
            }
        }
    }

    /// Builds a snapshot from `config` and the plugins directory and swaps it in.
    pub(crate) async fn reload_with(&self, config: Config) -> Result<u64, String> {
        let _one_at_a_time = self.reload_lock.lock().await;
        self.apply(config).await
    }

    /// `reload_with`, the reload lock held.
    async fn apply(&self, config: Config) -> Result<u64, String> {
        let live = self.snapshot();
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
            if live.config.state != config.state {
                tracing::warn!(
                    "[state] changed: the new state backend takes effect after a restart"
                );
            }
        }
        let plugins = self.load_plugin_files(&config.plugins_dir()).await;
        let generation = self.generation.load(Ordering::Relaxed) + 1;
        let cx = BuildContext {
            plugins: &plugins,
            health: &self.health,
            resilience: &self.resilience,
            metrics: &self.metrics,
            state: self.state.clone(),
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
        self.record_swap(&snapshot, &plugins);
        self.metrics.record_reload(true);
        self.generation.store(generation, Ordering::Relaxed);
        self.snapshot.store(snapshot.clone());
        spawn_health_checks(snapshot.upstreams.values());
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
    async fn load_plugin_files(
        &self,
        dir: &Path,
    ) -> BTreeMap<String, Result<Arc<LoadedPlugin>, String>> {
        let mut loaded = BTreeMap::new();
        for (file, path) in plugin_files(dir) {
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
                            .runtime
                            .load(&file, bytes)
                            .await
                            .map_err(|e| format!("{e:#}")),
                    }
                }
            };
            if let Err(reason) = &result {
                tracing::error!(file = %path.display(), reason = %reason, "plugin refused");
                self.note_plugin_error(&file, reason);
            }
            loaded.insert(file, result);
        }
        loaded
    }

    /// On a swap: statuses follow the new snapshot; compiled plugins and cached artifacts of
    /// files that are gone are released (the live snapshot keeps what it uses in memory).
    fn record_swap(
        &self,
        snapshot: &Snapshot,
        files: &BTreeMap<String, Result<Arc<LoadedPlugin>, String>>,
    ) {
        let mut used_by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (route, config) in snapshot.routes.iter().zip(&snapshot.config.routes) {
            for filter in &config.filters {
                used_by
                    .entry(filter.plugin.as_str())
                    .or_default()
                    .push(route.name.clone());
            }
        }
        if let Ok(mut status) = self.plugin_status.lock() {
            status.retain(|file, _| files.contains_key(file));
            for (file, result) in files {
                let entry = status.entry(file.clone()).or_insert_with(|| PluginStatus {
                    file: file.clone(),
                    ..PluginStatus::default()
                });
                entry.used_by = used_by.remove(file.as_str()).unwrap_or_default();
                match result {
                    Ok(plugin) => {
                        if entry.hash.as_deref() != Some(&plugin.hash) {
                            entry.generation = Some(snapshot.generation);
                            entry.loaded_at_ms = Some(ms(plugin.loaded_at));
                        }
                        entry.name = Some(plugin.info.name.clone());
                        entry.version = Some(plugin.info.version.clone());
                        entry.hash = Some(plugin.hash.clone());
                        entry.state = if entry.used_by.is_empty() {
                            "unused"
                        } else {
                            "active"
                        };
                        entry.last_error = None;
                        entry.last_error_at_ms = None;
                    }
                    Err(_) => entry.state = "refused",
                }
            }
        }
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
        self.runtime.prune_cache(&hashes);
        if let Ok(mut last) = self.last_reload.lock() {
            *last = ReloadStatus {
                generation: snapshot.generation,
                ok: true,
                at_ms: now_ms(),
                error: None,
            };
        }
    }

    /// Records a refused reload.
    fn refused(&self, plugin_file: Option<&str>, reason: &str) {
        tracing::error!(config = %self.config_path.display(), plugin = plugin_file.unwrap_or("-"), reason, "reload refused; the live snapshot keeps serving");
        if let Some(file) = plugin_file {
            self.note_plugin_error(file, reason);
        }
        self.metrics.record_reload(false);
        if let Ok(mut last) = self.last_reload.lock() {
            *last = ReloadStatus {
                generation: self.generation.load(Ordering::Relaxed),
                ok: false,
                at_ms: now_ms(),
                error: Some(reason.to_string()),
            };
        }
    }

    fn note_plugin_error(&self, file: &str, reason: &str) {
        if let Ok(mut status) = self.plugin_status.lock() {
            let entry = status
                .entry(file.to_string())
                .or_insert_with(|| PluginStatus {
                    file: file.to_string(),
                    state: "refused",
                    ..PluginStatus::default()
                });
            entry.last_error = Some(reason.to_string());
            entry.last_error_at_ms = Some(now_ms());
        }
    }

    /// What `GET /plugins` shows.
    pub fn plugin_statuses(&self) -> Vec<PluginStatus> {
        self.plugin_status
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The outcome of the last reload.
    pub fn last_reload(&self) -> ReloadStatus {
        self.last_reload
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

/// The `.wasm` files of a directory, by file name (hidden and temporary files skipped).
/// Symlinks to files count as files (a ConfigMap mount is made of them).
fn plugin_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        tracing::warn!(dir = %dir.display(), "plugins directory cannot be read");
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .flatten()
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            (name.ends_with(".wasm") && !name.starts_with('.')).then(|| (name, e.path()))
        })
        .collect();
    files.sort();
    files
}

fn ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Watches the config file and the plugins directory; reloads on change, debounced. A change
/// of `..data` in either directory (an atomic swap of symlinked files) counts as a change.
/// The watch ends when the returned watcher is dropped.
pub fn watch(gateway: Arc<Gateway>) -> anyhow::Result<notify::RecommendedWatcher> {
    let snapshot = gateway.snapshot();
    let plugins_dir = snapshot.config.plugins_dir();
    let config_path = gateway.config_path.clone();
    let config_name = config_path.file_name().map(|n| n.to_os_string());
    let config_dir = match config_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // A config file that is a symlink out of its directory: the file it points to is
    // edited where it lives, so that directory is watched too (resolved once, at start).
    // Not when it is inside an atomic writer's hidden `..` directory: those are replaced
    // whole, and the swap of `..data` is what tells.
    let config_target = std::fs::canonicalize(&config_path).ok().filter(|t| {
        t.parent() != std::fs::canonicalize(&config_dir).ok().as_deref()
            && !t
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with(".."))
    });
    let target_dir = config_target
        .as_ref()
        .and_then(|t| t.parent())
        .map(Path::to_path_buf);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            let name = p.file_name();
            let is_plugin = p.extension().is_some_and(|e| e == "wasm")
                && !name.is_some_and(|n| n.to_string_lossy().starts_with('.'));
            let swapped = name.is_some_and(|n| n == ATOMIC_DATA_LINK);
            is_plugin
                || swapped
                || (name.is_some() && name.map(|n| n.to_os_string()) == config_name)
                || config_target.as_deref() == Some(p.as_path())
        });
        if relevant {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&plugins_dir, RecursiveMode::NonRecursive)?;
    watcher.watch(&config_dir, RecursiveMode::NonRecursive)?;
    if let Some(dir) = target_dir
        && let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive)
    {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the config file's target directory");
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait for a quiet period, coalescing the burst into one reload.
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
            let _ = gateway.reload().await;
        }
    });
    Ok(watcher)
}
