//! `weir plugin new`, `test` and `build`, as a new plugin author runs them: the crate it
//! writes passes its own tests, builds into a component named as the config names it, and
//! is live in a running gateway once copied into the plugins directory.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use weir_tests::{TempDir, TestClient, TestGateway, TestUpstream, eventually, one_route};

const WEIR: &str = env!("CARGO_BIN_EXE_weir-under-test");

/// Runs `weir plugin ARGS` in `dir` (builds share one target directory under the
/// repository's `target/`, so that a second run is quick); its output when it fails.
fn weir_plugin(dir: &Path, args: &[&str]) -> Result<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(WEIR)
        .arg("plugin")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", root.join("target/guest-scaffold"))
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

#[tokio::test(flavor = "multi_thread")]
async fn a_scaffolded_filter_tests_builds_and_goes_live_when_copied() {
    let dir = TempDir::new();
    let sdk = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugin-sdk");
    let (base, crate_dir) = (dir.path().to_path_buf(), dir.path().join("stamp-team"));
    let made = tokio::task::spawn_blocking(move || {
        weir_plugin(&base, &["new", "stamp-team", "--sdk", sdk])?;
        let tested = weir_plugin(&crate_dir, &["test"])?;
        weir_plugin(&crate_dir, &["build"])?;
        Ok::<_, String>(tested)
    })
    .await
    .expect("join");
    let tested = made.unwrap_or_else(|output| panic!("weir plugin failed:\n{output}"));
    assert!(tested.contains("test result: ok. 2 passed"), "{tested}");
    let wasm = dir.path().join("stamp-team/stamp-team.wasm");
    assert!(
        wasm.is_file(),
        "the component is named as the config names it"
    );

    // Bad names and an existing directory are refused.
    assert!(weir_plugin(dir.path(), &["new", "Bad_Name", "--sdk", sdk]).is_err());
    let again = weir_plugin(dir.path(), &["new", "stamp-team", "--sdk", sdk]);
    assert!(again.is_err_and(|e| e.contains("exists already")));

    // Copied into a running gateway's plugins directory and named by its config: live.
    let up = TestUpstream::start("up").await;
    let gw = TestGateway::start(&one_route(up.addr, ""), &[]).await;
    std::fs::copy(&wasm, gw.plugins_dir.join("stamp-team.wasm")).expect("copy the plugin");
    let filter =
        "[[routes.filters]]\nplugin = \"stamp-team.wasm\"\nconfig = { value = \"blue\" }\n";
    gw.write_config(&one_route(up.addr, filter));
    let client = TestClient::default();
    let live = eventually(Duration::from_secs(20), || async {
        let reply = client.get(&gw.url("/")).await;
        reply.json()["headers"]["x-stamp-team"][0] == "blue"
    })
    .await;
    assert!(live, "the copied filter serves");
    gw.shutdown().await;
}
