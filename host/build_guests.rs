//! Shared by the build scripts of `host` and `tests`: compiles guest crates of the
//! `plugins/` workspace into `wasm32-wasip2` components.

use std::path::{Path, PathBuf};
use std::process::Command;

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
