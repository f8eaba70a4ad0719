//! Loading a plugin file: hash it, compile it off the reactor (or load the authenticated
//! artifact cached on disk under its content hash), tell which world it implements (a
//! filter or a push router), and read its metadata.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::bindings::router::PushRouterPre;
use super::bindings::{FilterPluginPre, Phase};
use super::cache::ArtifactCache;
use super::call::{PluginPre, new_instance};
use super::engine::PluginRuntime;
use super::grants::Grants;
use super::idle::IdleBudget;
use super::imports::{Caller, HostServices};

/// The world a plugin implements, which says what it may be used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// `filter-plugin`: a filter on a route's chain.
    Filter,
    /// `push-router`: decides where a published message goes for each device.
    Router,
}

impl PluginKind {
    /// The kind and the export that makes it, as told in a refusal.
    fn describe(self) -> &'static str {
        match self {
            Self::Filter => "a filter (it exports weir:gateway/filter)",
            Self::Router => "a push router (it exports weir:gateway/push-routing)",
        }
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginInfo {
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// Whether it is a filter or a push router.
    pub kind: PluginKind,
    /// The phases a filter declares before being configured (none for a router).
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
    pub(crate) pre: PluginPre,
    /// The gateway-wide budget of idle instances its filters' pools share.
    pub(crate) idle: Arc<IdleBudget>,
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

impl LoadedPlugin {
    /// Whether the plugin is of `kind`; the error names the file and what it is instead.
    pub fn expect_kind(&self, kind: PluginKind) -> anyhow::Result<()> {
        let actual = self.info.kind;
        if actual != kind {
            anyhow::bail!(
                "{} is {}, not {}",
                self.file_name,
                actual.describe(),
                kind.describe()
            );
        }
        Ok(())
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
        let cached = self.cache_name(&hash);
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let file = file_name.to_string();
        let component = tokio::task::spawn_blocking(move || {
            compile_cached(&engine, &bytes, &cache, (&cached, &file))
        })
        .await
        .context("compiler task failed")??;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the component's imports are not all provided by weir:gateway@0.2 and WASI")?;
        // Exports are matched semver-compatibly too: a component built against any 0.2.x
        // is found by the host's 0.2 bindings.
        let pre = match FilterPluginPre::new(pre.clone()) {
            Ok(filter) => PluginPre::Filter(filter),
            Err(not_filter) => match PushRouterPre::new(pre) {
                Ok(router) => PluginPre::Router(router),
                Err(not_router) => anyhow::bail!(
                    "the component exports neither weir:gateway/filter@0.2 ({not_filter}) \
                     nor weir:gateway/push-routing@0.2 ({not_router})"
                ),
            },
        };
        let info = self.read_metadata(&pre).await?;
        Ok(Arc::new(LoadedPlugin {
            file_name: file_name.to_string(),
            hash,
            info,
            loaded_at: SystemTime::now(),
            pre,
            idle: self.idle.clone(),
        }))
    }

    /// Deletes cached artifacts whose content hash is not in `keep` (plugins that are gone).
    pub fn prune_cache(&self, keep: &[String]) {
        let Ok(entries) = std::fs::read_dir(self.cache.dir()) else {
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

    /// The cache file name for a content hash under this engine's settings.
    fn cache_name(&self, hash: &str) -> String {
        let mut h = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{hash}-{:016x}.cwasm", h.finish())
    }
}

impl PluginRuntime {
    /// Reads a plugin's metadata from a throwaway, unconfigured instance with no grants.
    pub(crate) async fn read_metadata(&self, pre: &PluginPre) -> anyhow::Result<PluginInfo> {
        // Nothing is granted: the services are never called.
        let services = Arc::new(HostServices::isolated());
        let caller = Caller::new("(loading)", ("", ""), &Grants::default(), services);
        let limits = self.load_limits;
        let mut warm = new_instance(pre, caller, self.load_memory, &limits)
            .await
            .context("cannot instantiate")?;
        warm.serve("(metadata)");
        let deadline = limits.wall_clock_min;
        let info = match pre {
            PluginPre::Filter(_) => warm
                .metadata(deadline, &limits)
                .await
                .map(|info| PluginInfo {
                    name: info.name,
                    version: info.version,
                    kind: PluginKind::Filter,
                    phases: info.phases.into_iter().map(phase_name).collect(),
                }),
            PluginPre::Router(_) => {
                warm.router_metadata(deadline, &limits)
                    .await
                    .map(|info| PluginInfo {
                        name: info.name,
                        version: info.version,
                        kind: PluginKind::Router,
                        phases: Vec::new(),
                    })
            }
        };
        info.map_err(|f| anyhow::anyhow!("metadata failed: {}", f.message))
    }
}

/// Loads the compiled artifact `name` from the cache if it is there and authenticates,
/// otherwise compiles (saying so, naming `file`) and caches it.
fn compile_cached(
    engine: &wasmtime::Engine,
    bytes: &[u8],
    cache: &ArtifactCache,
    (name, file): (&str, &str),
) -> anyhow::Result<Component> {
    if let Some(component) = cache.load(engine, name) {
        return Ok(component);
    }
    if !bytes.starts_with(b"\0asm") {
        let start: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let what = if bytes.starts_with(b"\x7fELF") {
            " (an ELF binary: a native library?)"
        } else {
            ""
        };
        anyhow::bail!(
            "not a Wasm file: it begins with {}{what}, not 00 61 73 6d; build the plugin with --target wasm32-wasip2",
            start.join(" ")
        );
    }
    if is_core_module(bytes) {
        anyhow::bail!("this is a core Wasm module, not a component (build it for wasm32-wasip2)");
    }
    // Compiling a large component (a Python one is tens of MB) takes seconds: say so.
    let started = std::time::Instant::now();
    tracing::info!(plugin = file, bytes = bytes.len(), "compiling plugin");
    let component = Component::new(engine, bytes)
        .map_err(|e| anyhow::anyhow!("{}", first_line(&format!("{e:#}"))))
        .context("not a valid Wasm component")?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(plugin = file, elapsed_ms, "compiled plugin");
    let written = component
        .serialize()
        .map_err(std::io::Error::other)
        .and_then(|artifact| cache.store(name, &artifact));
    if let Err(e) = written {
        tracing::warn!(dir = %cache.dir().display(), error = %e, "cannot cache compiled plugin");
    }
    Ok(component)
}

/// The first line of `text`: wasmtime's errors may carry multi-line dumps.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Core modules start with version 1 in the preamble; components with a layer of 1.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}
