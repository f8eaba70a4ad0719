//! Shared by the build scripts of `host` and `tests`: finds the guest crates and compiles
//! them (members of the `plugins/` workspace) into `wasm32-wasip2` components. The bundled
//! plugins are the crates directly under `plugins/`, found here and nowhere else.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The bundled plugins: the crates directly under `<root>/plugins`, by crate name.
pub fn bundled_plugins(root: &Path) -> Vec<String> {
    crates_in(&root.join("plugins"))
}

/// The crates directly under `dir` (a directory with a `Cargo.toml` whose name is the
/// crate's), sorted.
pub fn crates_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").exists())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The file `build_guests` makes of crate `name`.
pub fn wasm_file(name: &str) -> String {
    format!("{}.wasm", name.replace('-', "_"))
}

/// Runs `cargo build --release --target wasm32-wasip2` on the guest workspace for these
/// packages; returns the directory holding the `.wasm` files.
pub fn build_guests(root: &Path, target_dir: &Path, packages: &[String]) -> PathBuf {
    ensure_wasm_target();
    let guest_target = target_dir.join("guest");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root.join("plugins"))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&guest_target);
    for p in packages {
        cmd.args(["-p", p]);
    }
    // The outer build's flags and wrappers are for the host, not for the guests.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_MAKEFLAGS"
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
        {
            cmd.env_remove(&key);
        }
    }
    let status = cmd.status().expect("run cargo for the guest plugins");
    assert!(
        status.success(),
        "building the plugins for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );
    guest_target.join("wasm32-wasip2").join("release")
}

/// Adds the `wasm32-wasip2` target through rustup when it is missing: rustup here does not
/// install the targets of `rust-toolchain.toml` by itself.
fn ensure_wasm_target() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let Ok(installed) = installed else {
        return; // No rustup: the toolchain is managed some other way.
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t.trim() == "wasm32-wasip2")
    {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "`rustup target add wasm32-wasip2` failed; the plugins cannot be built"
    );
}
