//! `weir plugin new`, `test` and `build`, as a new plugin author runs them, in each
//! language: the filter it writes passes its own tests, builds into a component named as
//! the config names it, and is live in a running gateway once copied into the plugins
//! directory. The Python and JavaScript filters build with the pinned tools of
//! `weir_tests::guest_tools` and are tested by `weir plugin test` in a gateway.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use weir_tests::guest_tools::tool_env;
use weir_tests::{TempDir, TestClient, TestGateway, TestUpstream, eventually, one_route};

const WEIR: &str = env!("CARGO_BIN_EXE_weir-under-test");

/// The plugin SDK of this checkout, for Rust filters.
const SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugin-sdk");

/// Runs `weir plugin ARGS` in `dir` (Rust builds share one target directory under the
/// repository's `target/`, so that a second run is quick; Python and JavaScript builds
/// find the pinned tools); its output when it fails.
fn weir_plugin(dir: &Path, args: &[&str]) -> Result<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(WEIR)
        .arg("plugin")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", root.join("target/guest-scaffold"))
        .envs(tool_env())
        .output()
        .expect("run weir");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// `weir plugin new NAME ARGS…` in a new directory, then `test` and `build` in the
/// filter's: the directory, the component and what `test` printed.
async fn scaffold(
    name: &'static str,
    new_args: &'static [&'static str],
) -> (TempDir, PathBuf, String) {
    let dir = TempDir::new();
    let (base, filter_dir) = (dir.path().to_path_buf(), dir.path().join(name));
    let made = tokio::task::spawn_blocking(move || {
        weir_plugin(&base, &[&["new", name], new_args].concat())?;
        let tested = weir_plugin(&filter_dir, &["test"])?;
        weir_plugin(&filter_dir, &["build"])?;
        Ok::<_, String>(tested)
    })
    .await
    .expect("join");
    let tested = made.unwrap_or_else(|output| panic!("weir plugin failed:\n{output}"));
    let wasm = dir.path().join(name).join(format!("{name}.wasm"));
    assert!(
        wasm.is_file(),
        "the component is named as the config names it"
    );
    (dir, wasm, tested)
}

/// Copies `wasm` into a running gateway's plugins directory and names it on a route with
/// `config = { value = "blue" }` and `filter_extra`: the filter sets `x-<name>: blue`.
async fn goes_live_when_copied(name: &str, wasm: &Path, filter_extra: &str) {
    let up = TestUpstream::start("up").await;
    let gw = TestGateway::start(&one_route(up.addr, ""), &[]).await;
    let file = format!("{name}.wasm");
    std::fs::copy(wasm, gw.plugins_dir.join(&file)).expect("copy the plugin");
    let filter = format!(
        "[[routes.filters]]\nplugin = \"{file}\"\nconfig = {{ value = \"blue\" }}\n{filter_extra}"
    );
    gw.write_config(&one_route(up.addr, &filter));
    let client = TestClient::default();
    let header = format!("x-{name}");
    let live = eventually(Duration::from_secs(60), || async {
        let reply = client.get(&gw.url("/")).await;
        reply.json()["headers"][&header][0] == "blue"
    })
    .await;
    assert!(live, "the copied filter serves");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scaffolded_filter_tests_builds_and_goes_live_when_copied() {
    let (dir, wasm, tested) = scaffold("stamp-team", &["--sdk", SDK]).await;
    assert!(tested.contains("test result: ok. 2 passed"), "{tested}");

    // Bad names, languages and an existing directory are refused.
    assert!(weir_plugin(dir.path(), &["new", "Bad_Name", "--sdk", SDK]).is_err());
    let cobol = weir_plugin(dir.path(), &["new", "old", "--lang", "cobol"]);
    assert!(cobol.is_err_and(|e| e.contains("rust, python or js")));
    let again = weir_plugin(dir.path(), &["new", "stamp-team", "--sdk", SDK]);
    assert!(again.is_err_and(|e| e.contains("exists already")));

    goes_live_when_copied("stamp-team", &wasm, "").await;
}

/// A Python or JavaScript scaffold: its `weir plugin test` runs its two cases in a
/// gateway, it is self-contained (the contract is in its `wit/`), and it goes live when
/// copied and listed with `filter_extra`. Returns its directory.
async fn a_componentized_scaffold(
    name: &'static str,
    lang: &'static [&'static str],
    filter_extra: &str,
) -> TempDir {
    let (dir, wasm, tested) = scaffold(name, lang).await;
    assert!(
        tested.contains("test result: ok. 2 passed; 0 failed"),
        "{tested}"
    );
    assert!(
        dir.path().join(name).join("wit/world.wit").is_file(),
        "self-contained"
    );
    goes_live_when_copied(name, &wasm, filter_extra).await;
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scaffolded_python_filter_tests_builds_and_goes_live_when_copied() {
    // A Python component needs more than the default 32 MiB.
    a_componentized_scaffold("stamp-py", &["--lang", "python"], "memory_mib = 64\n").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scaffolded_javascript_filter_tests_builds_and_goes_live_when_copied() {
    // A few calls of a JavaScript one fit in the default memory cap (its memory grows with
    // each call: production wants more, see the plugin guide).
    let dir = a_componentized_scaffold("stamp-js", &["--lang", "js"], "").await;
    let filter_dir = dir.path().join("stamp-js");

    // Without componentize-js (no node_modules, none on PATH) the build says what to do.
    let bare = Command::new(WEIR)
        .args(["plugin", "build"])
        .current_dir(&filter_dir)
        .env("PATH", dir.path())
        .output()
        .expect("run weir");
    let error = String::from_utf8_lossy(&bare.stderr);
    assert!(!bare.status.success());
    assert!(
        error.contains("componentize-js is not installed: run npm install in"),
        "{error}"
    );

    // A case that expects what the filter does not do fails the command, and says why
    // (in one language only: the harness is the same for both, and a build takes seconds).
    let cases = filter_dir.join("plugin-test.toml");
    let text = std::fs::read_to_string(&cases).expect("read the cases");
    let wrong = text.replacen("= \"blue\" } }", "= \"green\" } }", 1);
    std::fs::write(&cases, wrong).expect("write the cases");
    let failed = tokio::task::spawn_blocking(move || weir_plugin(&filter_dir, &["test"]))
        .await
        .expect("join");
    let failed = failed.expect_err("a wrong expectation fails the test");
    assert!(
        failed.contains("test result: FAILED. 1 passed; 1 failed"),
        "{failed}"
    );
    assert!(
        failed.contains("expected \"green\", got Some(\"blue\")"),
        "{failed}"
    );
}
