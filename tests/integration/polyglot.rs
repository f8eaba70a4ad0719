//! Filters written in Python and JavaScript, built from source by these tests with
//! componentize-py and componentize-js (pinned, see `weir_tests::guest_tools`), run in the
//! same host through the same WIT world as the Rust ones. The tests fail (never skip) when
//! a plugin cannot be built.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use weir_tests::guest_tools::{componentize_js, componentize_py};
use weir_tests::plugins::{JS_PLUGIN_DIR, PYTHON_PLUGIN_DIR, WIT_DIR};
use weir_tests::{TempDir, TestClient, TestGateway, TestUpstream, get, one_route};

/// One language's greeter (`tests/python-plugin/app.py`, `tests/js-plugin/app.js`): a
/// request with `x-block` is answered 418 `{"error": blocked}`; the others go upstream with
/// the configured greeting in `greeting_header`; every response gets `mark_header: 1`.
struct Greeter {
    /// The plugin's name (its file is `<name>.wasm`).
    name: &'static str,
    /// The request header that carries the greeting.
    greeting_header: &'static str,
    /// The response header that marks a response as seen.
    mark_header: &'static str,
    /// The error code of the 418.
    blocked: &'static str,
}

/// Runs `build` (a componentize command, writing `-o OUT` last) in `dir`; the component's
/// path in a new temporary directory, which the caller keeps.
fn build(mut build: Command, dir: &str, name: &str) -> (TempDir, std::path::PathBuf) {
    let out_dir = TempDir::new();
    let wasm = out_dir.path().join(format!("{name}.wasm"));
    let started = Instant::now();
    let status = build
        .arg("-o")
        .arg(&wasm)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status()
        .unwrap_or_else(|e| panic!("cannot run the build of {name}: {e}"));
    assert!(status.success(), "the build of {name} failed ({status})");
    eprintln!("{name}: built in {:.1?}", started.elapsed());
    (out_dir, wasm)
}

/// Serves `greeter` (built at `wasm`) in a gateway and checks both phases, the `respond`
/// path and its name in the admin API.
async fn the_greeter_serves(greeter: Greeter, wasm: &Path) {
    let Greeter {
        name,
        greeting_header,
        mark_header,
        blocked,
    } = greeter;
    let up = TestUpstream::start("up").await;
    // One route to `up` through the greeter configured with `config`.
    let route = |config: &str| {
        let filter = format!(
            "[[routes.filters]]\nplugin = \"{name}.wasm\"\nconfig = {config}\n\
             memory_mib = 64\ndeadline_ms = 1000\n"
        );
        one_route(up.addr, &filter)
    };
    let file = format!("{name}.wasm");
    let wasm_path = wasm.to_string_lossy().into_owned();
    let greeting = format!("{{ greeting = \"hi from {name}\" }}");
    let gw = TestGateway::start(&route(&greeting), &[(file.as_str(), wasm_path.as_str())]).await;
    let client = TestClient::default();

    let r = client.get(&gw.url("/greet")).await;
    assert_eq!(r.status, 200);
    let greeting = format!("hi from {name}");
    assert_eq!(r.json()["headers"][greeting_header][0], greeting.as_str());
    assert_eq!(r.header(mark_header), Some("1"));

    let r = client
        .send(get(&gw.url("/greet"), &[("x-block", "yes")]))
        .await;
    assert_eq!(r.status, 418);
    assert_eq!(r.json()["error"], blocked);
    assert_eq!(up.hits(), 1);

    let status = gw.plugin_status(&client).await;
    assert_eq!(status[&file]["name"], name);

    // A config the filter refuses (`configure`'s error: raised in Python, thrown in
    // JavaScript) refuses the reload with the filter's own message.
    gw.write_config(&route("{ colour = \"red\" }"));
    let refused = gw.reload(&client).await;
    assert_ne!(refused.status, 200);
    let message = refused.json()["message"].as_str().map(str::to_string);
    assert!(
        message
            .as_ref()
            .is_some_and(|m| m.contains("unknown key: colour")),
        "{message:?}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_filter_runs_through_the_same_world() {
    let mut cmd = componentize_py();
    cmd.args(["-d", WIT_DIR, "-w", "filter-plugin", "componentize", "app"]);
    let (_dir, wasm) = build(cmd, PYTHON_PLUGIN_DIR, "py-greeter");
    let greeter = Greeter {
        name: "py-greeter",
        greeting_header: "x-python-greeting",
        mark_header: "x-python",
        blocked: "blocked_by_python",
    };
    the_greeter_serves(greeter, &wasm).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn javascript_filter_runs_through_the_same_world() {
    let mut cmd = componentize_js();
    // No HTTP client or fetch handler: the gateway gives a filter no sockets (and the
    // build then needs no network).
    cmd.args(["app.js", "-w", WIT_DIR, "-n", "filter-plugin"])
        .args(["-d", "http", "fetch-event"]);
    let (_dir, wasm) = build(cmd, JS_PLUGIN_DIR, "js-greeter");
    let greeter = Greeter {
        name: "js-greeter",
        greeting_header: "x-js-greeting",
        mark_header: "x-js",
        blocked: "blocked_by_js",
    };
    the_greeter_serves(greeter, &wasm).await;
}
