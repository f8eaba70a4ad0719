//! Sandbox settings: bounds on what a plugin call may return, the back-off of failing
//! filters, the wall-clock stop of every call, the gateway-wide idle-instance budget, and
//! where the compiled-plugin cache and its key live. Defaults are documented in
//! `docs/configuration.md`.

use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::Deserialize;

/// `[runtime.results]`: what one plugin call may hand back to the host. Checked right after
/// the call, before anything is converted or applied; `max_lifted_bytes` bounds the copy
/// wasmtime makes while lifting the result out of the guest (aliasing included), before it
/// is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResultLimits {
    /// Headers in one list (set, append, response headers, a response's headers; default 256).
    pub max_headers: usize,
    /// Headers in all lists of one result together (default 512).
    pub max_total_headers: usize,
    /// Bytes of header names and values, all lists together (default 256 KiB).
    pub max_header_bytes: usize,
    /// Bytes of a body a filter returns (default 8 MiB).
    pub max_body_bytes: usize,
    /// Variables one result may set (default 256).
    pub max_variables: usize,
    /// Bytes of variable keys and values together (default 64 KiB).
    pub max_variable_bytes: usize,
    /// Host bytes wasmtime may allocate to lift one result or the arguments of one host
    /// call out of the guest (wasmtime's hostcall fuel; default 16 MiB).
    pub max_lifted_bytes: usize,
}

impl Default for ResultLimits {
    fn default() -> Self {
        Self {
            max_headers: 256,
            max_total_headers: 512,
            max_header_bytes: 256 << 10,
            max_body_bytes: 8 << 20,
            max_variables: 256,
            max_variable_bytes: 64 << 10,
            max_lifted_bytes: 16 << 20,
        }
    }
}

/// `[runtime.backoff]`: a filter that fails this many calls in a row (deadline, memory,
/// trap, oversized result) is not run until a back-off elapses; its failure policy answers
/// at once meanwhile. The back-off doubles each time the filter fails again right after
/// it, up to `max_ms`; a successful call resets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    /// Failures in a row that back a filter off (default 5; 0 turns back-off off).
    pub after_failures: u32,
    /// The first back-off (default 1 s).
    pub initial_ms: u64,
    /// The longest back-off (default 30 s).
    pub max_ms: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            after_failures: 5,
            initial_ms: 1_000,
            max_ms: 30_000,
        }
    }
}

/// `[runtime.pool]`: the sizes of one slot of the pooling allocator (every plugin
/// instance takes one) and what a slot keeps resident for reuse. A plugin whose module is
/// larger than a slot cannot be instantiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolLimits {
    /// Elements of one table (default 200 000).
    pub table_elements: usize,
    /// Bytes of one core instance's own state (globals, tables' metadata; default 8 MiB).
    pub max_core_instance_bytes: usize,
    /// Bytes of one component instance's own state (default 1 MiB).
    pub max_component_instance_bytes: usize,
    /// Bytes of linear memory a freed slot keeps resident, so a reused slot starts warm
    /// (default 1 MiB).
    pub memory_keep_resident_bytes: usize,
    /// Bytes of table a freed slot keeps resident (default 64 KiB).
    pub table_keep_resident_bytes: usize,
    /// Bytes of async stack a freed slot keeps resident (default 64 KiB).
    pub stack_keep_resident_bytes: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            table_elements: 200_000,
            max_core_instance_bytes: 8 << 20,
            max_component_instance_bytes: 1 << 20,
            memory_keep_resident_bytes: 1 << 20,
            table_keep_resident_bytes: 64 << 10,
            stack_keep_resident_bytes: 64 << 10,
        }
    }
}

/// The default of `runtime.http_max_response_bytes`: the largest upstream response body
/// the `http` import hands back to a plugin (4 MiB).
pub fn default_http_max_response_bytes() -> usize {
    4 << 20
}

/// The default of `runtime.wall_clock_ms`: the shortest wall-clock stop of a plugin call.
pub fn default_wall_clock_ms() -> u64 {
    1_000
}

/// The default of `runtime.setup_deadline_ms`: the shortest budget of `metadata` and
/// `configure`.
pub fn default_setup_deadline_ms() -> u64 {
    250
}

/// The idle instances kept gateway-wide when `runtime.max_idle_instances` is not set: half
/// the allocator's slots, so that in-flight calls, new instances and a reload always find
/// free slots.
pub fn max_idle_instances(configured: Option<u32>, max_instances: u32) -> usize {
    configured.unwrap_or(max_instances / 2) as usize
}

/// Checks the sandbox settings of `[runtime]`.
pub fn validate(
    results: &ResultLimits,
    backoff: &BackoffConfig,
    max_idle_instances: Option<u32>,
    max_instances: u32,
) -> anyhow::Result<()> {
    if results.max_lifted_bytes < results.max_body_bytes {
        bail!("runtime.results.max_lifted_bytes must be at least runtime.results.max_body_bytes");
    }
    if backoff.after_failures > 0
        && (backoff.initial_ms == 0 || backoff.max_ms < backoff.initial_ms)
    {
        bail!("runtime.backoff: initial_ms must be > 0 and max_ms >= initial_ms");
    }
    if max_idle_instances.is_some_and(|n| n >= max_instances) {
        bail!("runtime.max_idle_instances must be below runtime.max_instances");
    }
    Ok(())
}

/// The compiled-plugin cache directory: `cache_dir` when configured (it must not be inside
/// the plugins directory), otherwise `<config dir>/.weir-cache`, or, when that is inside the
/// plugins directory, `$XDG_CACHE_HOME/weir` (`$HOME/.cache/weir`).
pub fn cache_dir(
    configured: Option<&Path>,
    base_dir: &Path,
    plugins_dir: &Path,
) -> anyhow::Result<PathBuf> {
    if let Some(dir) = configured {
        let dir = base_dir.join(dir);
        if is_inside(&dir, plugins_dir) {
            bail!(
                "server.cache_dir {} is inside plugins_dir: whoever may write plugins could plant \
                 compiled code there",
                dir.display()
            );
        }
        return Ok(dir);
    }
    let beside_config = base_dir.join(".weir-cache");
    if !is_inside(&beside_config, plugins_dir) {
        return Ok(beside_config);
    }
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    match xdg {
        Some(dir) => Ok(dir.join("weir")),
        None => bail!(
            "the config lives in plugins_dir and there is no $XDG_CACHE_HOME or $HOME: set \
             server.cache_dir outside plugins_dir"
        ),
    }
}

/// The cache key file: `cache_key_file` when configured, otherwise `<cache_dir>.key`, beside
/// the cache directory (never inside it, nor inside the plugins directory).
pub fn cache_key_file(
    configured: Option<&Path>,
    base_dir: &Path,
    cache_dir: &Path,
    plugins_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let file = match configured {
        Some(file) => base_dir.join(file),
        None => {
            let mut name = cache_dir.file_name().unwrap_or_default().to_os_string();
            name.push(".key");
            cache_dir.with_file_name(name)
        }
    };
    if is_inside(&file, plugins_dir) || is_inside(&file, cache_dir) {
        bail!(
            "server.cache_key_file {} must be outside plugins_dir and cache_dir",
            file.display()
        );
    }
    Ok(file)
}

/// Whether `path` is `dir` or below it, comparing the absolute, lexically normalised paths
/// (and the canonical ones where they exist, so that symlinks do not hide it).
fn is_inside(path: &Path, dir: &Path) -> bool {
    let lexical = |p: &Path| {
        let absolute = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut out = PathBuf::new();
        for part in absolute.components() {
            match part {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    };
    let canonical = |p: &Path| {
        // The nearest existing ancestor, canonicalised, with the rest appended.
        let p = lexical(p);
        let mut base = p.as_path();
        let mut rest = Vec::new();
        while !base.exists() {
            match (base.parent(), base.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    base = parent;
                }
                _ => return p.clone(),
            }
        }
        let mut out = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
        out.extend(rest.iter().rev());
        out
    };
    lexical(path).starts_with(lexical(dir)) || canonical(path).starts_with(canonical(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cache_is_beside_the_config_not_in_plugins() {
        let base = Path::new("/srv/weir");
        let dir = cache_dir(None, base, &base.join("plugins")).unwrap();
        assert_eq!(dir, base.join(".weir-cache"));
        let key = cache_key_file(None, base, &dir, &base.join("plugins")).unwrap();
        assert_eq!(key, base.join(".weir-cache.key"));
    }

    #[test]
    fn a_cache_in_the_plugins_directory_is_refused_or_moved() {
        let base = Path::new("/srv/weir");
        let refused = cache_dir(
            Some(Path::new("plugins/.cache")),
            base,
            &base.join("plugins"),
        );
        assert!(refused.is_err());
        let refused = cache_dir(
            Some(Path::new("x/../plugins/c")),
            base,
            &base.join("plugins"),
        );
        assert!(refused.is_err());
        // The config is in the plugins directory: the default goes elsewhere.
        let moved = cache_dir(None, base, base).unwrap();
        assert!(!moved.starts_with(base), "{}", moved.display());
        let key = cache_key_file(
            Some(Path::new("plugins/k")),
            base,
            &moved,
            &base.join("plugins"),
        );
        assert!(key.is_err());
    }
}
