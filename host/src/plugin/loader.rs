//! Loading a plugin file: hash it, compile it off the reactor (or load the compiled
//! artifact cached on disk under its content hash), check it implements the world, and
//! read its metadata.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::bindings::{FilterPluginPre, Phase};
use super::engine::PluginRuntime;
use super::imports::HostState;

/// What a plugin says about itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginInfo {
    /// The filter's name.
    pub name: String,
    /// The filter's version.
    pub version: String,
    /// The phases it declares before being configured.
    pub phases: Vec<&'static str>,
}

/// A compiled plugin, ready to instantiate.
pub struct LoadedPlugin {
    /// The file name in the plugins directory.
    pub file_name: String,
    /// The SHA-256 of the file, hex.
    pub hash: String,
    /// The plugin's metadata.
    pub info: PluginInfo,
    /// When it was compiled or loaded from cache.
    pub loaded_at: SystemTime,
    pub(crate) pre: FilterPluginPre<HostState>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("file_name", &self.file_name)
            .field("hash", &self.hash)
            .field("info", &self.info)
            .finish()
    }
}

/// The SHA-256 of bytes, hex.
pub fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The name of a phase as written in the docs and admin API.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::RequestHeaders => "request-headers",
        Phase::RequestBody => "request-body",
        Phase::ResponseHeaders => "response-headers",
        Phase::ResponseBody => "response-body",
    }
}

impl PluginRuntime {
    /// Compiles `bytes` (or loads the cached artifact) and prepares instantiation. Runs the
    /// compiler on the blocking pool, never on the reactor.
    pub async fn load(&self, file_name: &str, bytes: Vec<u8>) -> anyhow::Result<Arc<LoadedPlugin>> {
        let hash = content_hash(&bytes);
        let cached = self.cache_path(&hash);
        let engine = self.engine.clone();
        let component =
            tokio::task::spawn_blocking(move || compile_cached(&engine, &bytes, &cached))
                .await
                .context("compiler task failed")??;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context(
                "the component's imports are not all provided by weir:gateway@0.2.0 and WASI",
            )?;
        let pre = FilterPluginPre::new(pre)
            .map_err(anyhow::Error::from)
            .context("the component does not export weir:gateway/filter@0.2.0")?;
        let info = self.read_metadata(&pre).await?;
        Ok(Arc::new(LoadedPlugin {
            file_name: file_name.to_string(),
            hash,
            info,
            loaded_at: SystemTime::now(),
            pre,
        }))
    }

    /// Deletes cached artifacts whose content hash is not in `keep` (plugins that are gone).
    pub fn prune_cache(&self, keep: &[String]) {
        let Ok(entries) = std::fs::read_dir(&self.cache_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(hash) = name
                .strip_suffix(".cwasm")
                .and_then(|n| n.split('-').next())
            else {
                continue;
            };
            if !keep.iter().any(|k| k == hash) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The cache file for a content hash under this engine's settings.
    fn cache_path(&self, hash: &str) -> PathBuf {
        let mut h = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        self.cache_dir
            .join(format!("{hash}-{:016x}.cwasm", h.finish()))
    }
}

/// Loads the compiled artifact from `cached` if it is there and usable, otherwise compiles
/// and writes it (atomically, by rename).
fn compile_cached(
    engine: &wasmtime::Engine,
    bytes: &[u8],
    cached: &Path,
) -> anyhow::Result<Component> {
    if cached.exists() {
        match deserialize(engine, cached) {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(path = %cached.display(), error = %e, "ignoring unusable cached artifact")
            }
        }
    }
    if is_core_module(bytes) {
        anyhow::bail!("this is a core Wasm module, not a component (build it for wasm32-wasip2)");
    }
    let component = Component::new(engine, bytes)
        .map_err(anyhow::Error::from)
        .context("not a valid Wasm component")?;
    if let Some(dir) = cached.parent() {
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| component.serialize().map_err(std::io::Error::other))
            .and_then(|artifact| {
                let tmp = cached.with_extension("tmp");
                std::fs::write(&tmp, artifact)?;
                std::fs::rename(&tmp, cached)
            });
        if let Err(e) = written {
            tracing::warn!(path = %cached.display(), error = %e, "cannot cache compiled plugin");
        }
    }
    Ok(component)
}

/// Core modules start with version 1 in the preamble; components with a layer of 1.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

/// Loads an artifact this process (or an earlier one with the same engine) compiled.
#[allow(unsafe_code)]
fn deserialize(engine: &wasmtime::Engine, path: &Path) -> anyhow::Result<Component> {
    // SAFETY: the file is one this gateway wrote into its own cache directory, named by the
    // content hash of the source and the engine's compatibility hash; wasmtime also checks
    // the artifact's header against the engine. The cache directory must be as trusted as
    // the gateway binary itself (see docs/architecture.md).
    Ok(unsafe { Component::deserialize_file(engine, path) }?)
}
