//! Hot reload: a plugin swapped under load with no failed request; a broken plugin or
//! config refused while the live snapshot keeps serving; retries after a fix; compiled
//! artifacts of replaced plugins released.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use weir_tests::plugins::{HEADERS, TESTER, TESTER_V2};
use weir_tests::{
    TestClient, TestGateway, TestUpstream, eventually, named_route, one_route, refusal,
    write_atomic,
};

const WAIT: Duration = Duration::from_secs(15);

/// One route through `filter.wasm` with `filter_config` (a TOML inline table).
fn config(upstream: &TestUpstream, filter_config: &str) -> String {
    one_route(
        upstream.addr,
        &format!("[[routes.filters]]\nplugin = \"filter.wasm\"\nconfig = {filter_config}\n"),
    )
}

/// The `x-tester-version` the filter on `/` answers with.
async fn version(client: &TestClient, gw: &TestGateway) -> Option<String> {
    client
        .get(&gw.url("/"))
        .await
        .header("x-tester-version")
        .map(str::to_string)
}

/// Waits up to `WAIT` for the filter on `/` to answer as version `v`; true once it does.
async fn serves_version(client: &TestClient, gw: &TestGateway, v: &str) -> bool {
    eventually(WAIT, || async {
        version(client, gw).await.as_deref() == Some(v)
    })
    .await
}

/// Waits up to `WAIT` for `/status` to report a reload error that `says` accepts; true
/// once it does.
async fn reload_refused(
    client: &TestClient,
    gw: &TestGateway,
    says: impl Fn(&str) -> bool,
) -> bool {
    eventually(WAIT, || async {
        gw.status(client).await["reload"]["error"]
            .as_str()
            .is_some_and(&says)
    })
    .await
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
    assert!(serves_version(&client, &gw, "2.0.0").await);
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
    assert!(serves_version(&client, &gw, "2.0.0").await);
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
            let status = gw.status(&client).await;
            status["reload"]["ok"] == false
        })
        .await
    );
    let status = gw.status(&client).await;
    assert!(
        status["reload"]["error"]
            .as_str()
            .unwrap()
            .contains("weir.toml"),
        "{status}"
    );
    assert_eq!(
        status["generation"], generation,
        "the serving generation: {status}"
    );
    assert_eq!(status["reload"]["generation"], generation, "{status}");
    assert_eq!(color().await.as_deref(), Some("green"));

    // A config the plugin refuses (unknown field): refused with the plugin named.
    gw.write_config(&config(&up, "{ nonsense = 1 }"));
    assert!(
        reload_refused(&client, &gw, |e| e.contains("filter.wasm")
            && e.contains("nonsense"))
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

    // Valid TOML that names an upstream nobody defined: refused, naming it, and the live
    // generation stays.
    let unknown = config(&up, "{ response = { set = { x-color = \"red\" } } }")
        .replace("upstream = \"u\"", "upstream = \"nope\"");
    assert!(unknown.contains("\"nope\""), "{unknown}");
    gw.write_config(&unknown);
    assert!(reload_refused(&client, &gw, |e| e.contains("unknown upstream \"nope\"")).await);
    assert_eq!(gw.generation(), generation);
    assert_eq!(color().await.as_deref(), Some("green"));
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
        assert!(serves_version(&client, &gw, v).await);
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

/// `POST /reload` with the token, and the answer.
async fn post_reload(client: &TestClient, gw: &TestGateway, token: &str) -> weir_tests::Reply {
    let bearer = format!("Bearer {token}");
    client
        .send(weir_tests::request(
            "POST",
            &gw.admin_url("/reload"),
            &[("authorization", &bearer)],
            "",
        ))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_address_and_token_changes_are_refused_until_a_restart() {
    let up = TestUpstream::start("up").await;
    let routes = one_route(up.addr, "");
    let server = |extra: &str| {
        format!(
            "{}{routes}",
            weir_tests::base_config_with(&format!("watch = false\n{extra}"))
        )
    };
    let gw = TestGateway::start_with_server(
        "watch = false\nadmin_token = { value = \"first\" }\n",
        &routes,
        &[],
    )
    .await;
    let client = TestClient::default();
    let other_port = weir_tests::free_port();
    for (change, key) in [
        (
            "admin_token = { value = \"second\" }\n",
            "server.admin_token",
        ),
        ("\n", "server.admin_token"),
        (
            &format!("admin_token = {{ value = \"first\" }}\nadmin = \"127.0.0.1:{other_port}\"\n"),
            "server.admin",
        ),
    ] {
        // The base config already names `admin`: a second `admin` key would be a TOML error,
        // so the address change replaces it.
        let text = if change.contains("admin = ") {
            server(change).replacen("admin = \"127.0.0.1:0\"\n", "", 1)
        } else {
            server(change)
        };
        write_atomic(&gw.config_path, text.as_bytes());
        let refused = post_reload(&client, &gw, "first").await;
        assert_eq!(refused.status, 422, "{change}");
        let message = refused.json()["message"].as_str().unwrap_or("").to_string();
        assert!(
            message.contains(key) && message.contains("restart") && message.contains("weir.toml"),
            "{change}: {message}"
        );
        let status = client
            .send(weir_tests::get(
                &gw.admin_url("/status"),
                &[("authorization", "Bearer first")],
            ))
            .await
            .json();
        assert_eq!(status["reload"]["ok"], false, "{status}");
        assert_eq!(gw.generation(), 1);
    }
    // The old token keeps working, the new one was never taken.
    assert_eq!(post_reload(&client, &gw, "second").await.status, 401);
    // Putting the admin settings back makes the file reloadable again.
    write_atomic(
        &gw.config_path,
        server("admin_token = { value = \"first\" }\n").as_bytes(),
    );
    assert_eq!(post_reload(&client, &gw, "first").await.status, 200);
    let metrics = client
        .send(weir_tests::get(
            &gw.admin_url("/metrics"),
            &[("authorization", "Bearer first")],
        ))
        .await;
    let metrics = String::from_utf8_lossy(&metrics.body);
    assert!(
        metrics.contains("weir_reloads_total{result=\"refused\"} 3"),
        "{metrics}"
    );
    gw.shutdown().await;
}

/// A directory laid out as Kubernetes mounts a ConfigMap: the real files in a timestamped
/// directory, `..data` a symlink to it, and the visible names symlinks through `..data`.
struct ConfigMapDir {
    root: std::path::PathBuf,
    version: usize,
}

impl ConfigMapDir {
    fn new(root: &std::path::Path) -> Self {
        Self {
            root: root.to_path_buf(),
            version: 0,
        }
    }

    /// Publishes a new set of files as the kubelet does: a new timestamped directory, a
    /// `..data_tmp` symlink to it renamed over `..data`, then the old directory removed.
    fn publish(&mut self, files: &[(&str, &[u8])]) {
        use std::os::unix::fs::symlink;
        let old = self.current();
        self.version += 1;
        let new = self.current();
        for (name, bytes) in files {
            let path = self.root.join(&new).join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        symlink(&new, self.root.join("..data_tmp")).unwrap();
        std::fs::rename(self.root.join("..data_tmp"), self.root.join("..data")).unwrap();
        if self.version > 1 {
            std::fs::remove_dir_all(self.root.join(old)).unwrap();
        }
    }

    fn current(&self) -> String {
        format!("..2026_01_01_00_00_0{}.000000001", self.version)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn configmap_style_swap_of_config_and_plugins_reloads() {
    use std::os::unix::fs::symlink;
    let up = TestUpstream::start("up").await;
    let dir = weir_tests::TempDir::new();
    let config = |prefix: &str| {
        weir_tests::base_config()
            + &one_route(
                up.addr,
                &format!(
                    "match = {{ path_prefix = \"{prefix}\" }}\n[[routes.filters]]\nplugin = \"filter.wasm\"\n"
                ),
            )
    };
    let read = |path: &str| std::fs::read(path).unwrap();
    let mut mount = ConfigMapDir::new(dir.path());
    mount.publish(&[
        ("weir.toml", config("/one").as_bytes()),
        ("plugins/filter.wasm", &read(TESTER)),
    ]);
    // The visible names: the config file, and a real plugins directory whose `.wasm` is a
    // symlink into the mount.
    symlink("..data/weir.toml", dir.path().join("weir.toml")).unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    symlink(
        "../..data/plugins/filter.wasm",
        dir.path().join("plugins/filter.wasm"),
    )
    .unwrap();

    let running = weir::server::start(&dir.path().join("weir.toml"))
        .await
        .expect("a gateway starts from symlinked files");
    let url = |path: &str| format!("http://{}{path}", running.listen[0]);
    let client = TestClient::default();
    let one = client.get(&url("/one")).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.header("x-tester-version"), Some("1.0.0"));

    mount.publish(&[
        ("weir.toml", config("/two").as_bytes()),
        ("plugins/filter.wasm", &read(TESTER_V2)),
    ]);
    assert!(
        eventually(WAIT, || async {
            let two = client.get(&url("/two")).await;
            two.status == 200 && two.header("x-tester-version") == Some("2.0.0")
        })
        .await,
        "the swapped config and plugin are live"
    );
    assert_eq!(client.get(&url("/one")).await.status, 404);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugins_directory_mounted_on_its_own_reloads_on_swap() {
    use std::os::unix::fs::symlink;
    let up = TestUpstream::start("up").await;
    let unfiltered = one_route(up.addr, "");
    let gw = TestGateway::start(&unfiltered, &[]).await;
    let client = TestClient::default();
    // The plugins directory is the mount: `filter.wasm -> ..data/filter.wasm`.
    let mut mount = ConfigMapDir::new(&gw.plugins_dir);
    mount.publish(&[("filter.wasm", &std::fs::read(TESTER).unwrap())]);
    symlink("..data/filter.wasm", gw.plugins_dir.join("filter.wasm")).unwrap();
    gw.write_config(&config(&up, "{}"));
    assert!(serves_version(&client, &gw, "1.0.0").await);
    mount.publish(&[("filter.wasm", &std::fs::read(TESTER_V2).unwrap())]);
    assert!(serves_version(&client, &gw, "2.0.0").await);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_reloads_never_apply_an_older_file_last() {
    use notify::{EventKind, RecursiveMode, Watcher, event::AccessKind};
    let up = TestUpstream::start("up").await;
    let routes = |name: &str| named_route(up.addr, name, "");
    // A config that takes a while to parse: many secrets, which nothing else looks at.
    let slow = |name: &str| {
        let mut text = routes(name);
        text.push_str("[secrets]\n");
        for i in 0..40_000 {
            text.push_str(&format!("s{i} = {{ value = \"{i}\" }}\n"));
        }
        text
    };
    let server =
        |text: String| format!("{}{text}", weir_tests::base_config_with("watch = false\n"));
    let gw = TestGateway::start_with_server("watch = false\n", &routes("start"), &[]).await;
    let live = || {
        gw.running
            .as_ref()
            .unwrap()
            .gateway
            .snapshot()
            .config
            .routes[0]
            .name
            .clone()
    };
    // Tells when the gateway opens its config file, that is, when a reload starts reading it.
    let (opened, mut opens) = tokio::sync::mpsc::unbounded_channel();
    let name = gw.config_path.file_name().unwrap().to_os_string();
    let mut watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
        if let Ok(e) = e
            && matches!(e.kind, EventKind::Access(AccessKind::Open(_)))
            && e.paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str()))
        {
            let _ = opened.send(());
        }
    })
    .unwrap();
    watcher
        .watch(
            gw.config_path.parent().unwrap(),
            RecursiveMode::NonRecursive,
        )
        .unwrap();

    let client = TestClient::default();
    for round in 0..3 {
        while opens.try_recv().is_ok() {}
        // A first reload starts on an older, slow file...
        write_atomic(
            &gw.config_path,
            server(slow(&format!("older-{round}"))).as_bytes(),
        );
        let first = {
            let (client, reload) = (client.clone(), gw.reload_request());
            tokio::spawn(async move { client.send(reload).await })
        };
        tokio::time::timeout(WAIT, opens.recv())
            .await
            .expect("the first reload opens the config");
        // ...and a second one on the newer file begins while it runs.
        let newest = format!("newest-{round}");
        write_atomic(&gw.config_path, server(routes(&newest)).as_bytes());
        let second = gw.reload(&client).await;
        assert_eq!(second.status, 200);
        assert_eq!(first.await.unwrap().status, 200);
        assert_eq!(live(), newest, "round {round}: the newest file is live");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn absurd_numbers_are_refused_at_load_and_on_reload() {
    let up = TestUpstream::start("up").await;
    let upstream = |extra: &str| {
        format!(
            "[upstreams.u]\ntargets = [{{ address = \"{}\", weight = 2 }}]\npolicy = \"consistent_hash\"\n{extra}\
             [[routes]]\nname = \"r\"\nupstream = \"u\"\n",
            up.addr
        )
    };
    // Each of these panicked a task, overflowed or allocated without bound before.
    let absurd = [
        (
            "[upstreams.u.health_check]\ninterval_ms = 0\n",
            "interval_ms",
        ),
        ("[upstreams.u.health_check]\ntimeout_ms = 0\n", "timeout_ms"),
        (
            "[upstreams.u.passive]\nejection_ms = 18446744073709551615\n",
            "ejection_ms",
        ),
        ("request_timeout_ms = 0\n", "request_timeout_ms"),
    ];
    for (extra, key) in absurd {
        let message = refusal(TestGateway::try_start(&upstream(extra), &[]).await, extra).await;
        assert!(
            message.contains(key) && message.contains("weir.toml"),
            "{message}"
        );
    }
    let heavy = format!(
        "[upstreams.u]\ntargets = [{{ address = \"{}\", weight = 100000000 }}]\n\
         policy = \"consistent_hash\"\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n",
        up.addr
    );
    let refused = refusal(
        TestGateway::try_start(&heavy, &[]).await,
        "the heavy weight",
    )
    .await;
    assert!(
        refused.contains("weight") && refused.contains("10000"),
        "{refused}"
    );

    // On reload: refused, the live config keeps serving.
    let gw = TestGateway::start(&upstream(""), &[]).await;
    let client = TestClient::default();
    gw.write_config(&upstream(absurd[0].0));
    assert!(reload_refused(&client, &gw, |e| e.contains("interval_ms")).await);
    assert_eq!(gw.generation(), 1);
    assert_eq!(client.get(&gw.url("/")).await.status, 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_burst_of_writes_and_reloads_the_last_file_is_live() {
    let up = TestUpstream::start("up").await;
    let routes = |name: &str| named_route(up.addr, name, "");
    // The watcher stays on: its reloads race the ones asked for over the admin API.
    let gw = TestGateway::start(&routes("start"), &[]).await;
    let client = TestClient::default();
    let mut reloads = Vec::new();
    for i in 0..40 {
        gw.write_config(&routes(&format!("write-{i}")));
        let (client, reload) = (client.clone(), gw.reload_request());
        reloads.push(tokio::spawn(
            async move { client.send(reload).await.status },
        ));
    }
    for reload in reloads {
        assert_eq!(reload.await.unwrap(), 200);
    }
    // Every reload has returned, the last of them started after the last write: whatever
    // order they ran in, the last file is what serves now.
    let live = gw.running.as_ref().unwrap().gateway.snapshot();
    assert_eq!(live.config.routes[0].name, "write-39");
    gw.shutdown().await;
}

/// The first hour of a plugin author: a native library renamed `.wasm`, a file name that
/// is Cargo's spelling rather than the config's, a plugins directory that is not there —
/// each is refused in one line that says what is wrong and where.
#[tokio::test(flavor = "multi_thread")]
async fn plugin_mistakes_are_named_plainly() {
    let up = TestUpstream::start("up").await;
    let filter = "[[routes.filters]]\nplugin = \"block-filter.wasm\"\n";
    let started = TestGateway::try_start(
        &one_route(up.addr, filter),
        &[("block_filter.wasm", TESTER)],
    )
    .await;
    let message = refusal(started, "a misspelt plugin").await;
    assert!(
        message.contains("did you mean block_filter.wasm?"),
        "{message}"
    );
    assert!(
        message.contains("plugins"),
        "names the directory: {message}"
    );

    let gw = TestGateway::start(&one_route(up.addr, ""), &[]).await;
    let client = TestClient::default();
    // An ELF file (what `cargo build` without the Wasm target gives) renamed .wasm.
    let mut native = b"\x7fELF\x02\x01\x01\x00".to_vec();
    native.resize(4096, 0);
    write_atomic(&gw.plugins_dir.join("native.wasm"), &native);
    let named = eventually(WAIT, || async {
        let plugins = client.get(&gw.admin_url("/plugins")).await.json();
        plugins.to_string().contains("an ELF binary")
    })
    .await;
    let plugins = client.get(&gw.admin_url("/plugins")).await.json();
    assert!(named, "{plugins}");
    let error = plugins.to_string();
    assert!(
        error.contains("7f 45 4c 46") && error.contains("wasm32-wasip2"),
        "{error}"
    );
    gw.shutdown().await;

    let missing = format!(
        "{}{}",
        weir_tests::base_config()
            .replace("plugins_dir = \"plugins\"", "plugins_dir = \"no-such-dir\""),
        one_route(up.addr, "")
    );
    let message = refusal(
        TestGateway::start_full(&missing, &[]).await,
        "a missing plugins_dir",
    )
    .await;
    assert!(
        message.contains("no-such-dir is not a directory"),
        "{message}"
    );
}
