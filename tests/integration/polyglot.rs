//! A filter written in Python, built from source with componentize-py by this test, runs
//! in the same host through the same WIT world. componentize-py comes from `PATH`, or is
//! installed from PyPI into `target/pytools`; the test fails (never skips) when it cannot
//! build the plugin.

use std::path::PathBuf;
use std::process::Command;

use weir_tests::plugins::{PYTHON_PLUGIN_DIR, TARGET_DIR, WIT_DIR};
use weir_tests::{TempDir, TestClient, TestGateway, TestUpstream, get, one_route};

/// The pinned componentize-py, for when none is on `PATH`.
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// A command that runs componentize-py.
fn componentize_py() -> Command {
    let on_path = Command::new("componentize-py").arg("--version").output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return Command::new("componentize-py");
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
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONPATH", &tools).args([
        "-c",
        "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; sys.exit(script())",
    ]);
    cmd
}

fn build_python_plugin(out: &std::path::Path) {
    let status = componentize_py()
        .args([
            "-d",
            WIT_DIR,
            "-w",
            "filter-plugin",
            "componentize",
            "app",
            "-o",
        ])
        .arg(out)
        .current_dir(PYTHON_PLUGIN_DIR)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status()
        .expect(
            "componentize-py must be installed (pip install componentize-py); .ci/run installs it",
        );
    assert!(
        status.success(),
        "componentize-py failed to build the Python filter"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn python_filter_runs_through_the_same_world() {
    let build = TempDir::new();
    let wasm = build.path().join("py-greeter.wasm");
    build_python_plugin(&wasm);

    let up = TestUpstream::start("up").await;
    let config = one_route(
        up.addr,
        "[[routes.filters]]\nplugin = \"py-greeter.wasm\"\nconfig = { greeting = \"hi from py\" }\n\
         memory_mib = 64\ndeadline_ms = 1000\n",
    );
    let wasm_path = wasm.to_string_lossy().into_owned();
    let gw = TestGateway::start(&config, &[("py-greeter.wasm", wasm_path.as_str())]).await;
    let client = TestClient::default();

    let r = client.get(&gw.url("/py")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-python-greeting"][0], "hi from py");
    assert_eq!(r.header("x-python"), Some("1"));

    let r = client
        .send(get(&gw.url("/py"), &[("x-block", "yes")]))
        .await;
    assert_eq!(r.status, 418);
    assert_eq!(r.json()["error"], "blocked_by_python");
    assert_eq!(up.hits(), 1);

    let status = gw.plugin_status(&client).await;
    assert_eq!(status["py-greeter.wasm"]["name"], "py-greeter");
    gw.shutdown().await;
}
