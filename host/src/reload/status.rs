//! What the admin API shows of reloads: each plugin file's status, and the outcome of the
//! last reload. Kept by the [`Reloader`](super::Reloader), never by the gateway.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::plugin::{LoadedPlugin, PluginKind};
use crate::snapshot::Snapshot;
use crate::time::{now_ms, unix_ms};

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
    /// `filter` or `router` (a push router), by the world the file implements.
    pub kind: Option<PluginKind>,
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

/// Plugin files by name, loaded or with the reason they could not be.
pub(crate) type PluginFiles = BTreeMap<String, Result<Arc<LoadedPlugin>, String>>;

/// The statuses, updated on every reload.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    plugins: Mutex<BTreeMap<String, PluginStatus>>,
    last: Mutex<ReloadStatus>,
}

impl Ledger {
    /// A swap: the statuses follow the new snapshot.
    pub(crate) fn swapped(&self, snapshot: &Snapshot, files: &PluginFiles) {
        let mut used_by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (route, config) in snapshot.routes.iter().zip(&snapshot.config.routes) {
            for filter in &config.filters {
                used_by
                    .entry(filter.plugin.as_str())
                    .or_default()
                    .push(route.name.clone());
            }
        }
        if let Ok(mut status) = self.plugins.lock() {
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
                            entry.loaded_at_ms = Some(unix_ms(plugin.loaded_at));
                        }
                        entry.name = Some(plugin.info.name.clone());
                        entry.version = Some(plugin.info.version.clone());
                        entry.kind = Some(plugin.info.kind);
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
        self.set_last(ReloadStatus {
            generation: snapshot.generation,
            ok: true,
            at_ms: now_ms(),
            error: None,
        });
    }

    /// A refused reload; `generation` keeps serving.
    pub(crate) fn refused(&self, generation: u64, plugin_file: Option<&str>, reason: &str) {
        if let Some(file) = plugin_file {
            self.plugin_error(file, reason);
        }
        self.set_last(ReloadStatus {
            generation,
            ok: false,
            at_ms: now_ms(),
            error: Some(reason.to_string()),
        });
    }

    /// A plugin file that could not be loaded or configured.
    pub(crate) fn plugin_error(&self, file: &str, reason: &str) {
        if let Ok(mut status) = self.plugins.lock() {
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
    pub(crate) fn plugins(&self) -> Vec<PluginStatus> {
        self.plugins
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The outcome of the last reload.
    pub(crate) fn last(&self) -> ReloadStatus {
        self.last.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set_last(&self, status: ReloadStatus) {
        if let Ok(mut last) = self.last.lock() {
            *last = status;
        }
    }
}
