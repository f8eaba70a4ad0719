//! Builds the test plugins (well-behaved and hostile, the crates under `tests/plugins/`) and
//! the bundled plugins (the crates under `plugins/`, found as `host/build.rs` finds them) as
//! components, and writes their paths as constants for the tests. Fails when a constant is
//! used by no test under `integration/` (nor by the support code the tests share):
//! a plugin built for nothing is a test gone missing.

use std::path::{Path, PathBuf};

#[path = "../host/build_guests.rs"]
mod build_guests;
#[path = "build_protos.rs"]
mod build_protos;

fn main() {
    build_protos::compile();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("cargo:rerun-if-changed=build.rs");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("host/build_guests.rs").display()
    );
    for dir in [
        "plugins",
        "plugin-sdk",
        "wit",
        "tests/plugins",
        "tests/integration",
        "tests/support",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let mut packages = build_guests::crates_in(&root.join("tests/plugins"));
    packages.extend(build_guests::bundled_plugins(&root));
    let built = build_guests::build_guests(&root, &root.join("target"), &packages);

    let mut consts = Vec::new();
    for name in &packages {
        let path = built.join(build_guests::wasm_file(name));
        assert!(path.exists(), "{} was not built", path.display());
        let ident = name.replace('-', "_").to_uppercase();
        let doc = format!("`{name}` built as a component.");
        consts.push((doc, ident, path));
    }
    let dirs = [
        ("The WIT directory.", "WIT_DIR", "wit"),
        ("The workspace's target directory.", "TARGET_DIR", "target"),
        (
            "The Python test plugin's source.",
            "PYTHON_PLUGIN_DIR",
            "tests/python-plugin",
        ),
        (
            "The JavaScript test plugin's source.",
            "JS_PLUGIN_DIR",
            "tests/js-plugin",
        ),
    ];
    for (doc, ident, dir) in dirs {
        consts.push((doc.to_string(), ident.to_string(), root.join(dir)));
    }

    let unused = unused(
        &consts,
        &[root.join("tests/integration"), root.join("tests/support")],
    );
    assert!(
        unused.is_empty(),
        "no test under tests/integration (or support code) uses {}: use it in a test, or remove what it names",
        unused.join(", ")
    );
    let text: String = consts
        .iter()
        .map(|(doc, ident, path)| {
            format!(
                "/// {doc}\npub const {ident}: &str = {:?};\n",
                path.display().to_string()
            )
        })
        .collect();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("plugins.rs");
    // Unchanged text keeps its file time, so that the support library is not rebuilt.
    if std::fs::read_to_string(&out).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(out, text).expect("write plugins.rs");
    }
}

/// The constants whose name appears, as a whole word, in no `.rs` file under `dirs`.
fn unused(consts: &[(String, String, PathBuf)], dirs: &[PathBuf]) -> Vec<String> {
    let mut sources = Vec::new();
    for dir in dirs {
        read_sources(dir, &mut sources);
    }
    consts
        .iter()
        .map(|(_, ident, _)| ident)
        .filter(|ident| !sources.iter().any(|text| mentions(text, ident)))
        .cloned()
        .collect()
}

/// Appends the code of every `.rs` file under `dir`, recursively, without its line comments
/// (a name in a comment is no use of it).
fn read_sources(dir: &Path, into: &mut Vec<String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() {
            read_sources(&path, into);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let code = text
                .lines()
                .map(|line| line.split("//").next().unwrap_or(""));
            into.push(code.collect::<Vec<_>>().join("\n"));
        }
    }
}

/// Whether `ident` occurs in `text` as a whole identifier (not inside a longer one).
fn mentions(text: &str, ident: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(ident).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + ident.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}
