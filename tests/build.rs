//! Builds the test plugins (well-behaved and hostile, under `tests/plugins/`) and the bundled
//! plugins as components, and writes their paths as constants for the tests.

use std::path::PathBuf;

#[path = "../host/build_guests.rs"]
mod build_guests;
#[path = "build_protos.rs"]
mod build_protos;

/// Test plugins and bundled plugins the tests load, by crate name.
const PLUGINS: [&str; 10] = [
    "tester",
    "tester-v2",
    "hostile",
    "probe",
    "headers",
    "auth",
    "hmac-signature",
    "rate-limit",
    "degradation",
    "protocol-convert",
];

fn main() {
    build_protos::compile();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("cargo:rerun-if-changed=build.rs");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("host/build_guests.rs").display()
    );
    for dir in ["plugins", "plugin-sdk", "wit", "tests/plugins"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let packages: Vec<String> = PLUGINS.iter().map(|p| p.to_string()).collect();
    let built = build_guests::build_guests(&root, &root.join("target"), &packages);
    let mut consts = String::new();
    for name in PLUGINS {
        let path = built.join(format!("{}.wasm", name.replace('-', "_")));
        assert!(path.exists(), "{} was not built", path.display());
        let ident = name.replace('-', "_").to_uppercase();
        consts.push_str(&format!(
            "/// `{name}` built as a component.\npub const {ident}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    consts.push_str(&format!(
        "/// The WIT directory.\npub const WIT_DIR: &str = {:?};\n",
        root.join("wit").display().to_string()
    ));
    let dirs = [
        ("The workspace's target directory.", "TARGET_DIR", "target"),
        (
            "The Python test plugin's source.",
            "PYTHON_PLUGIN_DIR",
            "tests/plugins/python",
        ),
    ];
    for (doc, ident, dir) in dirs {
        let path = root.join(dir).display().to_string();
        consts.push_str(&format!("/// {doc}\npub const {ident}: &str = {path:?};\n"));
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("plugins.rs");
    std::fs::write(out, consts).expect("write plugins.rs");
}
