//! Watching the config file, the plugins directory and the TLS files (certificates, keys,
//! client CAs named by the config at start). Files may be symlinks, as in a
//! Kubernetes ConfigMap mount (`weir.toml -> ..data/weir.toml`, `..data -> ..2026_01_01…`,
//! swapped by renaming a new `..data` over the old): a change of `..data` in a watched
//! directory counts as a change of every file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

use super::Reloader;

/// Quiet time after the last file event before a reload starts.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// The entry an atomic writer (Kubernetes' for ConfigMaps and Secrets) swaps to publish a
/// new set of files at once; the visible files are symlinks through it.
const ATOMIC_DATA_LINK: &str = "..data";

/// Watches the config file, the plugins directory and the TLS files; reloads on change,
/// debounced. A change of `..data` in a watched directory (an atomic swap of symlinked
/// files) counts as a change.
/// The watch ends when the returned watcher is dropped.
pub fn watch(reloader: Arc<Reloader>) -> anyhow::Result<notify::RecommendedWatcher> {
    let snapshot = reloader.gateway().snapshot();
    let plugins_dir = snapshot.config.plugins_dir();
    let config_path = reloader.config_path.clone();
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
    let tls_files = tls_files(&snapshot.config);
    let tls_dirs: std::collections::BTreeSet<PathBuf> = (tls_files.iter())
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
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
                || (name.is_some() && tls_files.contains(&resolved(p)))
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
    for dir in tls_dirs {
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a TLS file's directory");
        }
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait for a quiet period, coalescing the burst into one reload.
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
            let _ = reloader.reload().await;
        }
    });
    Ok(watcher)
}

/// The TLS files `config` names (certificates, keys, the client CAs), each as its
/// directory resolved and its name, so that a replaced file is still recognised.
fn tls_files(config: &crate::config::Config) -> Vec<PathBuf> {
    let tls = &config.tls;
    let named = (tls.certificates.iter())
        .flat_map(|c| [&c.cert_file, &c.key_file])
        .chain(tls.client_auth.as_ref().map(|auth| &auth.ca_file));
    named
        .map(|file| resolved(&config.base_dir.join(file)))
        .collect()
}

/// `path` with its directory made canonical (the file itself may not exist just now).
fn resolved(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::canonicalize(dir).map_or_else(|_| path.to_path_buf(), |d| d.join(name))
        }
        _ => path.to_path_buf(),
    }
}

/// The `.wasm` files of a directory, by file name (hidden and temporary files skipped).
/// Symlinks to files count as files (a ConfigMap mount is made of them).
pub(super) fn plugin_files(dir: &Path) -> Vec<(String, PathBuf)> {
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
