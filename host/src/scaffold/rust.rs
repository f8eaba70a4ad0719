//! Rust filters: a crate that depends on the plugin SDK, built by Cargo for
//! `wasm32-wasip2`, tested natively by `cargo test` on the SDK's fakes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The templates of a Rust filter crate: (path in the crate, text).
pub(super) const FILES: [(&str, &str); 4] = [
    ("Cargo.toml", include_str!("rust/Cargo.toml.in")),
    ("src/lib.rs", include_str!("rust/lib.rs.in")),
    ("README.md", include_str!("rust/README.md.in")),
    (".gitignore", include_str!("rust/gitignore.in")),
];

/// The SDK at `sdk`, checked and made absolute, for the crate's `Cargo.toml`.
pub(super) fn sdk_path(sdk: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let sdk = match sdk {
        Some(sdk) => sdk,
        None => {
            find_sdk().context("cannot find the plugin SDK: pass --sdk /path/to/weir/plugin-sdk")?
        }
    };
    let sdk =
        std::fs::canonicalize(&sdk).with_context(|| format!("the SDK at {}", sdk.display()))?;
    if !sdk.join("Cargo.toml").is_file() || !sdk.join("../wit").is_dir() {
        bail!(
            "{} is not the plugin SDK of a Weir checkout (it needs ../wit beside it)",
            sdk.display()
        );
    }
    Ok(sdk)
}

/// Builds the crate in `dir` for `wasm32-wasip2` and copies its component to
/// `dir/<package name>.wasm` (Cargo writes `-` as `_`); returns that path.
pub(super) fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
        .with_context(|| format!("{}/Cargo.toml", dir.display()))?;
    let name = package_name(&manifest).context("Cargo.toml has no [package] name")?;
    cargo(dir, &["build", "--release", "--target", "wasm32-wasip2"])?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| dir.join("target"), PathBuf::from);
    let built = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    let wasm = dir.join(format!("{name}.wasm"));
    std::fs::copy(&built, &wasm)
        .with_context(|| format!("copy {} to {}", built.display(), wasm.display()))?;
    Ok(wasm)
}

/// Runs the crate's unit tests natively.
pub(super) fn test(dir: &Path) -> anyhow::Result<()> {
    cargo(dir, &["test"])
}

/// Runs `cargo ARGS` in `dir`; a missing Wasm target is named with its fix.
fn cargo(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("cargo").args(args).current_dir(dir).status();
    let status = output.context("cannot run cargo")?;
    if status.success() {
        return Ok(());
    }
    if args.contains(&"wasm32-wasip2") && !wasm_target_installed() {
        bail!("the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2");
    }
    bail!("cargo {} failed ({status})", args.join(" "))
}

fn wasm_target_installed() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == "wasm32-wasip2")
        })
}

/// `name = "…"` of the manifest's `[package]` table.
fn package_name(manifest: &str) -> Option<String> {
    let value: toml::Value = toml::from_str(manifest).ok()?;
    Some(value.get("package")?.get("name")?.as_str()?.to_string())
}

/// The SDK of the Weir checkout this program or the current directory is in: the first
/// `plugin-sdk` found walking up from either.
fn find_sdk() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok();
    let starts = [
        std::env::current_dir().ok(),
        exe.and_then(|e| e.parent().map(Path::to_path_buf)),
    ];
    starts.into_iter().flatten().find_map(|start| {
        start
            .ancestors()
            .map(|d| d.join("plugin-sdk"))
            .find(|sdk| sdk.join("Cargo.toml").is_file() && sdk.join("../wit").is_dir())
    })
}
