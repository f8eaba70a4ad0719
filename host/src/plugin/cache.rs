//! The on-disk cache of compiled plugins. Deserialising an artifact runs its machine code,
//! so an artifact is loaded only if it authenticates: each file starts with an
//! HMAC-SHA256, keyed by a per-install secret kept outside the cache and the plugins
//! directory, over the file's name (content hash and engine) and the artifact. Anything
//! else is recompiled. The directory is owner-only; writes go to a unique temporary file
//! renamed into place.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::component::Component;

/// The length of the key and of the tag in front of each artifact.
const TAG_LEN: usize = 32;

/// The cache directory and the key that authenticates its files.
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    key: [u8; TAG_LEN],
}

impl ArtifactCache {
    /// Opens (creating them if needed) the owner-only cache directory and the key file.
    pub(crate) fn open(dir: PathBuf, key_file: &Path) -> anyhow::Result<Self> {
        owner_only_dir(&dir)?;
        if let Some(parent) = key_file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let key = read_or_create_key(key_file)?;
        Ok(Self { dir, key })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The authenticated artifact at `name`, or `None` when it is missing or does not
    /// authenticate (then it is removed, to be written again).
    pub(crate) fn load(&self, engine: &wasmtime::Engine, name: &str) -> Option<Component> {
        let path = self.dir.join(name);
        let file = std::fs::read(&path).ok()?;
        let authentic = file.len() > TAG_LEN && {
            let (tag, artifact) = file.split_at(TAG_LEN);
            self.mac(name, artifact).verify_slice(tag).is_ok()
        };
        if !authentic {
            tracing::warn!(path = %path.display(), "cached artifact does not authenticate: recompiling");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        match deserialize(engine, &file[TAG_LEN..]) {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached artifact");
                None
            }
        }
    }

    /// Writes `artifact` under `name` with its tag: to a unique temporary file first,
    /// renamed into place.
    pub(crate) fn store(&self, name: &str, artifact: &[u8]) -> std::io::Result<()> {
        let tag = self.mac(name, artifact).finalize().into_bytes();
        let tmp = self.dir.join(unique_temp_name(name));
        let written = write_new(&tmp, 0o600, &[&tag, artifact])
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(name)));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    fn mac(&self, name: &str, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        // The name (content hash and engine) is bound in, length-prefixed, so that a valid
        // artifact of one plugin cannot stand in for another.
        mac.update(&(name.len() as u64).to_be_bytes());
        mac.update(name.as_bytes());
        mac.update(artifact);
        mac
    }
}

/// Creates `dir` as owner-only (0700), or makes an existing one so.
fn owner_only_dir(dir: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
    let meta = std::fs::metadata(dir)?;
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, Permissions::from_mode(0o700))
            .with_context(|| format!("cache directory {} is not owner-only", dir.display()))?;
    }
    Ok(())
}

/// Reads the 32-byte key, or creates it (0600, from the OS's random source) if there is
/// none. A key readable by others, or of the wrong length, is refused.
fn read_or_create_key(path: &Path) -> anyhow::Result<[u8; TAG_LEN]> {
    if !path.exists() {
        let mut key = [0u8; TAG_LEN];
        getrandom::getrandom(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let tmp = path.with_file_name(unique_temp_name("key"));
        write_new(&tmp, 0o600, &[&key])?;
        // A hard link does not replace: if another process made the key meanwhile, its
        // key wins and is read below.
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        if let Err(e) = linked
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(e).with_context(|| format!("cannot create {}", path.display()));
        }
    }
    let meta = std::fs::metadata(path)?;
    if meta.mode() & 0o077 != 0 {
        anyhow::bail!(
            "cache key {} is readable or writable by others: make it 0600",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("cache key {} is not 32 bytes", path.display()))
}

/// `.<name>.<pid>.<counter>.<random>.tmp`: no two writers, in this process or another,
/// share a temporary file.
fn unique_temp_name(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = fastrand::u64(..);
    format!(".{name}.{}.{n}.{random:016x}.tmp", std::process::id())
}

/// Writes a new file (never an existing one) with `mode`.
fn write_new(path: &Path, mode: u32, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    for part in parts {
        file.write_all(part)?;
    }
    file.sync_all()
}

/// Loads an artifact that authenticated.
#[allow(unsafe_code)]
fn deserialize(engine: &wasmtime::Engine, artifact: &[u8]) -> anyhow::Result<Component> {
    // SAFETY: the bytes carry a valid HMAC under this install's secret key, bound to the
    // file's name: this gateway (or an earlier one with the same key) serialised them from
    // a component it compiled with an engine of the same compatibility hash. wasmtime also
    // checks the artifact's header against the engine.
    Ok(unsafe { Component::deserialize(engine, artifact) }?)
}
