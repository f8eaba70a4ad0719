//! The toolchains that build filters written in Python and JavaScript, pinned. componentize-py
//! comes from `PATH`, or is installed from PyPI into `target/pytools`; componentize-js is
//! always the pinned one, installed from npm into `target/jstools` when that is not there.
//! An install happens once per test process (the tests that need a tool wait for it), and
//! a tool that cannot be had fails the test with the reason: these tests never skip.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::plugins::TARGET_DIR;

/// The pinned componentize-py, for when none is on `PATH`.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The npm package of componentize-js.
pub const COMPONENTIZE_JS_PACKAGE: &str = "@bytecodealliance/componentize-js";
/// Its pinned version.
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";

/// A command that runs componentize-py.
pub fn componentize_py() -> Command {
    match python_tools() {
        None => Command::new("componentize-py"),
        Some(tools) => {
            let mut cmd = Command::new("python3");
            cmd.env("PYTHONPATH", tools).args([
                "-c",
                "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; sys.exit(script())",
            ]);
            cmd
        }
    }
}

/// A command that runs the pinned componentize-js.
pub fn componentize_js() -> Command {
    Command::new(js_tools().join("componentize-js"))
}

/// The environment under which `weir plugin build` finds the same tools: the pinned
/// componentize-js first on `PATH`, and `PYTHONPATH` naming `target/pytools` when
/// componentize-py is not on `PATH` (`weir` then runs it with `python3`).
pub fn tool_env() -> Vec<(&'static str, OsString)> {
    let mut path = OsString::from(js_tools());
    if let Some(old) = std::env::var_os("PATH") {
        path.push(":");
        path.push(old);
    }
    let mut env = vec![("PATH", path)];
    if let Some(tools) = python_tools() {
        env.push(("PYTHONPATH", tools.into_os_string()));
    }
    env
}

/// `None` when componentize-py is on `PATH`, else the directory the pinned one is
/// installed in (installed on first use).
fn python_tools() -> Option<PathBuf> {
    static TOOLS: OnceLock<Option<PathBuf>> = OnceLock::new();
    TOOLS
        .get_or_init(|| {
            let on_path = Command::new("componentize-py").arg("--version").output();
            if on_path.is_ok_and(|o| o.status.success()) {
                return None;
            }
            let tools = PathBuf::from(TARGET_DIR).join("pytools");
            if !tools.join("componentize_py").exists() {
                let status = Command::new("python3")
                    .args(["-m", "pip", "install", "--quiet", "--target"])
                    .arg(&tools)
                    .arg(COMPONENTIZE_PY)
                    .status()
                    .expect("python3 with pip is needed to install componentize-py");
                assert!(status.success(), "pip could not install {COMPONENTIZE_PY}");
            }
            Some(tools)
        })
        .clone()
}

/// The `node_modules/.bin` of `target/jstools`, with the pinned componentize-js installed.
fn js_tools() -> PathBuf {
    static TOOLS: OnceLock<PathBuf> = OnceLock::new();
    TOOLS
        .get_or_init(|| {
            let prefix = PathBuf::from(TARGET_DIR).join("jstools");
            let package = prefix
                .join("node_modules")
                .join(COMPONENTIZE_JS_PACKAGE)
                .join("package.json");
            let installed = std::fs::read_to_string(&package).ok().and_then(|text| {
                let json: serde_json::Value = serde_json::from_str(&text).ok()?;
                Some(json["version"] == COMPONENTIZE_JS_VERSION)
            });
            if installed != Some(true) {
                let status = Command::new("npm")
                    .args([
                        "install",
                        "--no-audit",
                        "--no-fund",
                        "--save-exact",
                        "--prefix",
                    ])
                    .arg(&prefix)
                    .arg(format!(
                        "{COMPONENTIZE_JS_PACKAGE}@{COMPONENTIZE_JS_VERSION}"
                    ))
                    .status()
                    .expect("npm (Debian's package: npm) is needed to install componentize-js");
                assert!(
                    status.success(),
                    "npm could not install {COMPONENTIZE_JS_PACKAGE}@{COMPONENTIZE_JS_VERSION}"
                );
            }
            prefix.join("node_modules/.bin")
        })
        .clone()
}
