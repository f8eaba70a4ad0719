//! Builds the bundled plugins under `plugins/` as `wasm32-wasip2` components and places them
//! in `target/plugins/`, the plugins directory of the example config, so that `cargo run`
//! needs no manual step. Set `WEIR_SKIP_PLUGIN_BUILD=1` to skip (e.g. when packaging).

use std::path::PathBuf;

#[path = "build_guests.rs"]
mod build_guests;
use build_guests::{build_guests, bundled_plugins, wasm_file};

fn main() {
    println!("cargo:rerun-if-env-changed=WEIR_SKIP_PLUGIN_BUILD");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("cargo:rerun-if-changed=build.rs");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("host/build_guests.rs").display()
    );
    for dir in ["plugins", "plugin-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    if std::env::var_os("WEIR_SKIP_PLUGIN_BUILD").is_some() {
        return;
    }
    let bundled = bundled_plugins(&root);
    let target_dir = root.join("target");
    let built = build_guests(&root, &target_dir, &bundled);
    let plugins_dir = target_dir.join("plugins");
    std::fs::create_dir_all(&plugins_dir).expect("create target/plugins");
    for name in &bundled {
        let from = built.join(wasm_file(name));
        // Copy then rename, so a running gateway watching the directory never sees half a file.
        let to = plugins_dir.join(format!("{name}.wasm"));
        let tmp = plugins_dir.join(format!(".{name}.wasm.tmp"));
        std::fs::copy(&from, &tmp).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        std::fs::rename(&tmp, &to).unwrap_or_else(|e| panic!("rename to {}: {e}", to.display()));
    }
}
