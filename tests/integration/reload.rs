//! Hot reload: a plugin swapped under load with no failed request; a broken plugin or
//! config refused while the live snapshot keeps serving; retries after a fix; compiled
//! artifacts of replaced plugins released.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use weir_tests::plugins::{HEADERS, TESTER, TESTER_V2};
use weir_tests::{TestClient, TestGateway, TestUpstream, eventually, write_atomic};

const WAIT: Duration = Duration::from_secs(15);

fn config(upstream: &TestUpstream, filter_config: &str) -> String {
    format!(
        "[upstreams.u]\ntargets = [\"{}\"]\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n\
         [[routes.filters]]\nplugin = \"filter.wasm\"\nconfig = {filter_config}\n",
        upstream.addr
    )
}

async fn version(client: &TestClient, gw: &TestGateway) -> Option<String> {
    client
        .get(&gw.url("/"))
        .await
        .header("x-tester-version")
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_swapped_under_load_without_a_failed_request() {
    let up = TestUpstream::start("up").await;
    let gw = TestGateway::start(&config(&up, "{}"), &[("filter.wasm", TESTER)]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (url, stop) = (gw.url("/"), stop.clone());
        workers.push(tokio::spawn(async move {
            let client = TestClient::default();
            let (mut versions, mut failures, mut total) = (BTreeSet::new(), 0usize, 0usize);
            while !stop.load(Ordering::Relaxed) {
                total += 1;
                match client.try_send(weir_tests::get(&url, &[])).await {
                    Ok(r) if r.status == 200 => {
                        versions.insert(r.header("x-tester-version").unwrap_or("none").to_string());
                    }
                    _ => failures += 1,
                }
            }
            (versions, failures, total)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.install_plugin("filter.wasm", TESTER_V2);
    let client = TestClient::default();
    assert!(
        eventually(WAIT, || async {
            version(&client, &gw).await.as_deref() == Some("2.0.0")
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);

    let (mut versions, mut failures, mut total) = (BTreeSet::new(), 0, 0);
    for w in workers {
        let (v, f, t) = w.await.unwrap();
        versions.extend(v);
        failures += f;
        total += t;
    }
    assert_eq!(
        failures, 0,
        "{failures} of {total} requests failed during the swap"
    );
    assert_eq!(
        versions,
        BTreeSet::from(["1.0.0".to_string(), "2.0.0".to_string()])
    );
    let status = gw.plugin_status(&client).await;
    assert_eq!(status["filter.wasm"]["version"], "2.0.0");
    assert_eq!(status["filter.wasm"]["generation"], 2);
    assert_eq!(status["filter.wasm"]["state"], "active");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_plugin_is_refused_and_the_old_one_keeps_serving() {
    let up = TestUpstream::start("up").await;
    let gw = TestGateway::start(&config(&up, "{}"), &[("filter.wasm", TESTER)]).await;
    let client = TestClient::default();
    assert_eq!(version(&client, &gw).await.as_deref(), Some("1.0.0"));

    // Garbage over the live plugin.
    write_atomic(
        &gw.plugins_dir.join("filter.wasm"),
        b"\0asm this is not a component",
    );
    assert!(
        eventually(WAIT, || async {
            gw.plugin_status(&client).await["filter.wasm"]["last_error"]
                .as_str()
                .is_some()
        })
        .await
    );
    let status = gw.plugin_status(&client).await;
    let reason = status["filter.wasm"]["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("component"), "{reason}");
    assert_eq!(
        status["filter.wasm"]["version"], "1.0.0",
        "the serving version is still shown"
    );
    assert_eq!(version(&client, &gw).await.as_deref(), Some("1.0.0"));
    assert_eq!(gw.generation(), 1);

    // A plugin that is not even referenced is reported too, and does not block anything.
    write_atomic(&gw.plugins_dir.join("stray.wasm"), b"not wasm at all");
    assert!(
        eventually(WAIT, || async {
            gw.plugin_status(&client)
                .await
                .get("stray.wasm")
                .is_some_and(|s| s["state"] == "refused")
        })
        .await
    );

    // A core module (an empty one is 8 bytes) is not a component: refused, and said so.
    write_atomic(&gw.plugins_dir.join("core.wasm"), b"\0asm\x01\0\0\0");
    assert!(
        eventually(WAIT, || async {
            gw.plugin_status(&client)
                .await
                .get("core.wasm")
                .is_some_and(|s| {
                    s["state"] == "refused"
                        && s["last_error"]
                            .as_str()
                            .is_some_and(|e| e.contains("core Wasm module, not a component"))
                })
        })
        .await
    );

    // Fixing the file is picked up on its next change.
    gw.install_plugin("filter.wasm", TESTER_V2);
    assert!(
        eventually(WAIT, || async {
            version(&client, &gw).await.as_deref() == Some("2.0.0")
        })
        .await
    );
    let status = gw.plugin_status(&client).await;
    assert!(status["filter.wasm"]["last_error"].is_null());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn config_reload_applies_and_bad_config_is_refused() {
    let up = TestUpstream::start("up").await;
    let gw = TestGateway::start(
        &config(&up, "{ response = { set = { x-color = \"blue\" } } }"),
        &[("filter.wasm", HEADERS)],
    )
    .await;
    let client = TestClient::default();
    let color = || async {
        client
            .get(&gw.url("/"))
            .await
            .header("x-color")
            .map(str::to_string)
    };
    assert_eq!(color().await.as_deref(), Some("blue"));

    gw.write_config(&config(
        &up,
        "{ response = { set = { x-color = \"green\" } } }",
    ));
    assert!(eventually(WAIT, || async { color().await.as_deref() == Some("green") }).await);
    let generation = gw.generation();

    // Broken TOML: refused, visible in /status, the live config keeps serving.
    write_atomic(&gw.config_path, b"[server\nlisten = ");
    assert!(
        eventually(WAIT, || async {
            let status = client.get(&gw.admin_url("/status")).await.json();
            status["reload"]["ok"] == false
        })
        .await
    );
    let status = client.get(&gw.admin_url("/status")).await.json();
    assert!(
        status["reload"]["error"]
            .as_str()
            .unwrap()
            .contains("weir.toml"),
        "{status}"
    );
    assert_eq!(color().await.as_deref(), Some("green"));

    // A config the plugin refuses (unknown field): refused with the plugin named.
    gw.write_config(&config(&up, "{ nonsense = 1 }"));
    assert!(
        eventually(WAIT, || async {
            let status = client.get(&gw.admin_url("/status")).await.json();
            status["reload"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("filter.wasm") && e.contains("nonsense"))
        })
        .await
    );
    assert_eq!(gw.generation(), generation);
    assert_eq!(color().await.as_deref(), Some("green"));
    let metrics =
        String::from_utf8_lossy(&client.get(&gw.admin_url("/metrics")).await.body).into_owned();
    assert!(
        metrics.contains("weir_reloads_total{result=\"refused\"} 2"),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replaced_plugins_leave_no_compiled_artifacts_behind() {
    let up = TestUpstream::start("up").await;
    let gw = TestGateway::start(&config(&up, "{}"), &[("filter.wasm", TESTER)]).await;
    let client = TestClient::default();
    let cache = gw.config_path.with_file_name(".weir-cache");
    let artifacts = || std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
    assert_eq!(artifacts(), 1);
    for (source, v) in [
        (TESTER_V2, "2.0.0"),
        (TESTER, "1.0.0"),
        (TESTER_V2, "2.0.0"),
    ] {
        gw.install_plugin("filter.wasm", source);
        assert!(
            eventually(WAIT, || async {
                version(&client, &gw).await.as_deref() == Some(v)
            })
            .await
        );
        // Pruning follows the swap: wait for it, then the count must be exactly one.
        let pruned = eventually(WAIT, || async { artifacts() == 1 }).await;
        assert!(
            pruned,
            "one plugin, one cached artifact; found {}",
            artifacts()
        );
    }
    gw.shutdown().await;
}
