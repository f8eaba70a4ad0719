//! The sandbox around plugins: the compiled-artifact cache only loads what it wrote,
//! results are bounded before the host copies them, every call has a wall-clock stop and
//! plugins without the `clock` grant see no time, a failing filter is backed off without
//! starving other routes, idle instances are bounded gateway-wide, and a filter's private
//! context is its own.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use weir_tests::plugins::{HOSTILE, TESTER};
use weir_tests::{
    TestClient, TestGateway, TestUpstream, eventually, get, one_route, refusal, write_atomic,
};

/// One upstream `u` and a route `r` with the hostile filter in `mode`, plus `filter_extra`
/// lines in the filter's table.
fn hostile_route(up: &TestUpstream, mode: &str, filter_extra: &str) -> String {
    one_route(up.addr, &format!("{}{filter_extra}", hostile_filter(mode)))
}

/// The hostile filter's table in `mode`.
fn hostile_filter(mode: &str) -> String {
    format!("[[routes.filters]]\nplugin = \"hostile.wasm\"\nconfig = {{ mode = \"{mode}\" }}\n")
}

async fn failures_metric(gw: &TestGateway, route: &str, kind: &str) -> u64 {
    let text = TestClient::default()
        .get(&gw.admin_url("/metrics"))
        .await
        .body;
    let text = String::from_utf8_lossy(&text);
    let needle = format!(
        "weir_plugin_failures_total{{route=\"{route}\",plugin=\"hostile\",kind=\"{kind}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The cached artifact of the plugin file `source`.
fn artifact_of(cache: &Path, source: &str) -> PathBuf {
    let hash = weir::plugin::content_hash(&std::fs::read(source).expect("plugin"));
    std::fs::read_dir(cache)
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(&hash) && name.ends_with(".cwasm")
        })
        .expect("an artifact for the plugin")
}

/// Starts another gateway on the same config (and so the same cache) and returns the name
/// the plugin in `hostile.wasm` gave itself.
async fn loaded_name(gw: &TestGateway) -> String {
    let other = weir::server::start(&gw.config_path).await.expect("starts");
    let name = other.gateway.snapshot().plugins["hostile.wasm"]
        .info
        .name
        .clone();
    other.shutdown().await;
    name
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_cached_artifacts_are_recompiled_not_loaded() {
    let up = TestUpstream::start("up").await;
    let config = hostile_route(&up, "panic", "");
    let plugins = [("hostile.wasm", HOSTILE), ("tester.wasm", TESTER)];
    let gw = TestGateway::start(&config, &plugins).await;
    let dir = gw.config_path.parent().expect("config dir");
    let cache = dir.join(".weir-cache");
    assert!(!cache.starts_with(&gw.plugins_dir));
    let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&cache), 0o700, "the cache directory is owner-only");
    assert_eq!(mode(&dir.join(".weir-cache.key")), 0o600);

    // A valid artifact of another plugin put in place of this one's.
    let hostile = artifact_of(&cache, HOSTILE);
    std::fs::copy(artifact_of(&cache, TESTER), &hostile).expect("swap");
    let swapped = std::fs::read(&hostile).expect("read");
    assert_eq!(
        loaded_name(&gw).await,
        "hostile",
        "the swapped artifact was loaded"
    );
    assert_ne!(
        std::fs::read(&hostile).expect("read"),
        swapped,
        "not recompiled"
    );

    // Flipped bytes in the compiled code.
    let mut flipped = std::fs::read(&hostile).expect("read");
    let middle = flipped.len() / 2;
    for b in &mut flipped[middle..middle + 64] {
        *b ^= 0xFF;
    }
    std::fs::write(&hostile, &flipped).expect("tamper");
    assert_eq!(loaded_name(&gw).await, "hostile");
    assert_ne!(
        std::fs::read(&hostile).expect("read"),
        flipped,
        "not recompiled"
    );
    let r = TestClient::default()
        .send(get(&gw.url("/"), &[("x-attack", "1")]))
        .await;
    assert_eq!(r.status, 500, "the recompiled plugin still runs as itself");
    gw.shutdown().await;
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn aliasing_headers_fail_as_a_plugin_failure_without_moving_rss() {
    let up = TestUpstream::start("up").await;
    let gw = TestGateway::start(
        // The bounds are the point here, not the deadline: building 100,000 headers in the
        // guest can take longer than the default 20 ms on a busy machine.
        &hostile_route(&up, "headers", "deadline_ms = 2000\n"),
        &[("hostile.wasm", HOSTILE)],
    )
    .await;
    let client = TestClient::default();
    assert_eq!(client.get(&gw.url("/")).await.status, 200);
    let before = rss_bytes();
    // Each result: 100,000 headers aliasing one 1 KiB value, ~100 MiB if lifted.
    for _ in 0..3 {
        let r = client.send(get(&gw.url("/"), &[("x-attack", "1")])).await;
        assert_eq!(r.status, 500, "{:?}", r.body);
        assert_eq!(r.json()["error"], "filter_failed");
    }
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "RSS grew by {} MiB", grown >> 20);
    assert_eq!(failures_metric(&gw, "r", "oversized").await, 3);
    assert_eq!(client.get(&gw.url("/")).await.status, 200);
    gw.shutdown().await;
}

/// Asserts that what began at `started` was stopped well before a 10 s sleep ended.
#[track_caller]
fn assert_stopped_in_time(started: Instant) {
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_sleeping_in_a_wasi_clock_call_cannot_hang_startup_reload_or_requests() {
    let up = TestUpstream::start("up").await;
    // Startup: configure sleeps 10 s; the wall-clock stop (1 s by default) refuses it.
    let started = Instant::now();
    let refused = TestGateway::try_start(
        &hostile_route(&up, "sleep-configure", ""),
        &[("hostile.wasm", HOSTILE)],
    )
    .await;
    let message = refusal(refused, "a configure that sleeps").await;
    assert!(message.contains("deadline"), "{message}");
    assert_stopped_in_time(started);

    // Reload: the same, while the old config keeps serving.
    let gw = TestGateway::start(
        &hostile_route(&up, "sleep", ""),
        &[("hostile.wasm", HOSTILE)],
    )
    .await;
    gw.write_config(&hostile_route(&up, "sleep-configure", ""));
    let started = Instant::now();
    let client = TestClient::default();
    let r = gw.reload(&client).await;
    assert_eq!(r.status, 422, "{:?}", r.json());
    assert_stopped_in_time(started);

    // A request: on-request sleeps 10 s with no grant at all.
    let started = Instant::now();
    let r = client
        .send(get(
            &gw.url("/"),
            &[("x-attack", "1"), ("x-sleep-ms", "10000")],
        ))
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "filter_timeout");
    assert_stopped_in_time(started);
    assert_eq!(client.get(&gw.url("/")).await.status, 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_without_the_clock_grant_sees_no_time() {
    let up = TestUpstream::start("up").await;
    let config = format!(
        "{}[[routes]]\nname = \"timed\"\nupstream = \"u\"\nmatch.path_prefix = \"/timed\"\n\
         [[routes.filters]]\nplugin = \"hostile.wasm\"\nconfig = {{ mode = \"time\" }}\n\
         grants = [\"clock\"]\n",
        hostile_route(&up, "time", "")
    )
    .replacen(
        "name = \"r\"",
        "name = \"r\"\nmatch.path_prefix = \"/untimed\"",
        1,
    );
    let gw = TestGateway::start(&config, &[("hostile.wasm", HOSTILE)]).await;
    let client = TestClient::default();
    let number = |r: &weir_tests::Reply, name: &str| -> u128 {
        r.header(name).and_then(|v| v.parse().ok()).expect(name)
    };
    let untimed = client.get(&gw.url("/untimed")).await;
    assert_eq!(untimed.status, 200);
    assert_eq!(
        number(&untimed, "x-wall-ms"),
        0,
        "the wall clock stands still"
    );
    assert_eq!(
        number(&untimed, "x-mono-moved-ns"),
        0,
        "the monotonic clock stands still"
    );
    let timed = client.get(&gw.url("/timed")).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    assert!(now.abs_diff(number(&timed, "x-wall-ms")) < 60_000);
    assert!(number(&timed, "x-mono-moved-ns") >= 5_000_000);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn private_contexts_are_private_even_to_a_filter_without_the_sdk() {
    let up = TestUpstream::start("up").await;
    let tester = |context: &str| {
        format!(
            "[[routes.filters]]\nplugin = \"tester.wasm\"\nconfig = {{ context = \"{context}\" }}\n"
        )
    };
    // Two filters of one plugin on the route, and a thief between them.
    let filters = format!(
        "{}{}{}",
        tester("alpha"),
        hostile_filter("steal"),
        tester("beta")
    );
    let config = one_route(up.addr, &filters);
    let plugins = [("hostile.wasm", HOSTILE), ("tester.wasm", TESTER)];
    let gw = TestGateway::start(&config, &plugins).await;
    let reply = TestClient::default()
        .send(get(&gw.url("/"), &[("x-attack", "1")]))
        .await;
    assert_eq!(reply.status, 200);
    let stolen = reply.header("x-stolen").expect("the thief ran");
    assert!(
        !stolen.contains("alpha") && !stolen.contains("weir.context"),
        "the thief saw {stolen:?}"
    );
    // Each tester reads back its own context, untouched by the thief's and the other's.
    let contexts: Vec<&str> = reply
        .headers
        .get_all("x-context")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(contexts.len(), 2, "{contexts:?}");
    let mut sorted = contexts.clone();
    sorted.sort();
    assert_eq!(sorted, ["alpha", "beta"]);
    gw.shutdown().await;
}

/// Requests per second and p99 of `clients` clients hammering `url` for `window`.
async fn measure(url: &str, clients: usize, window: Duration) -> (f64, Duration) {
    let until = Instant::now() + window;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let client = TestClient::default();
            let mut latencies = Vec::new();
            while Instant::now() < until {
                let started = Instant::now();
                assert_eq!(client.get(&url).await.status, 200);
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    all.sort();
    let p99 = all[(all.len() * 99 / 100).min(all.len() - 1)];
    (all.len() as f64 / window.as_secs_f64(), p99)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_looping_filter_is_backed_off_and_does_not_starve_other_routes() {
    let up = TestUpstream::start("up").await;
    let config = format!(
        "{}[[routes]]\nname = \"free\"\nupstream = \"u\"\nmatch.path_prefix = \"/free\"\n",
        hostile_route(&up, "loop", "")
    )
    .replacen(
        "name = \"r\"",
        "name = \"r\"\nmatch.path_prefix = \"/attack\"",
        1,
    );
    let gw = TestGateway::start(&config, &[("hostile.wasm", HOSTILE)]).await;
    let free = gw.url("/free");
    let (calm_rps, calm_p99) = measure(&free, 4, Duration::from_secs(1)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let attacks = Arc::new(AtomicUsize::new(0));
    let mut attackers = Vec::new();
    for _ in 0..8 {
        let (stop, attacks, url) = (stop.clone(), attacks.clone(), gw.url("/attack"));
        attackers.push(tokio::spawn(async move {
            let client = TestClient::default();
            while !stop.load(Ordering::Relaxed) {
                let r = client.send(get(&url, &[("x-attack", "1")])).await;
                assert!(r.status == 503 || r.status == 500, "{}", r.status);
                attacks.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let client = TestClient::default();
    let backed_off = eventually(Duration::from_secs(5), || async {
        let json = client.get(&gw.admin_url("/plugins")).await.json();
        json["filters"][0]["backed_off_until_ms"].is_u64()
    })
    .await;
    assert!(backed_off, "the looping filter was backed off");
    let (attacked_rps, attacked_p99) = measure(&free, 4, Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.await.expect("attacker");
    }
    eprintln!(
        "filterless route: calm {calm_rps:.0} req/s p99 {calm_p99:?}; attacked (8 looping \
         attackers, backed off) {attacked_rps:.0} req/s p99 {attacked_p99:?}; {} attacks answered",
        attacks.load(Ordering::Relaxed)
    );
    assert!(
        attacked_p99 < Duration::from_millis(50),
        "p99 {attacked_p99:?}"
    );
    let filters = client.get(&gw.admin_url("/plugins")).await.json();
    let skipped = filters["filters"][0]["answered_without_running"]
        .as_u64()
        .unwrap_or(0);
    assert!(skipped > 0, "{filters}");
    assert!(failures_metric(&gw, "r", "backed_off").await > 0);
    // Ten looping calls of 20 ms each run at most per back-off: the rest were not run.
    assert!(failures_metric(&gw, "r", "deadline").await < 20);
    gw.shutdown().await;
}

/// Sends `n` calls of `sleep_ms` to the sleeping filter at once.
fn sleeping_calls(gw: &TestGateway, n: usize, sleep_ms: u64) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let url = gw.url("/");
            let sleep = sleep_ms.to_string();
            tokio::spawn(async move {
                let r = TestClient::default()
                    .send(get(&url, &[("x-attack", "1"), ("x-sleep-ms", &sleep)]))
                    .await;
                assert_eq!(r.status, 200);
            })
        })
        .collect()
}

/// With ten allocator slots and `max_idle` idle instances gateway-wide: `burst` calls of a
/// sleeping filter at once, then `busy` long calls in the background while a reload needs
/// two new instances (the busy filter's and another plugin's). Returns the idle instances
/// the busy filter kept after the burst.
async fn busy_filter_then_reload(max_idle: u32, burst: usize, busy: usize) -> u64 {
    let up = TestUpstream::start("up").await;
    let runtime = format!(
        "[runtime]\nmax_instances = 10\nmax_idle_instances = {max_idle}\nmax_memory_mib = 64\n"
    );
    let config = |routes: &str| {
        format!(
            "{}{runtime}{}{routes}",
            weir_tests::base_config()
                .split("[runtime]")
                .next()
                .unwrap_or_default(),
            hostile_route(&up, "sleep", "deadline_ms = 5000\n"),
        )
    };
    let plugins = [("hostile.wasm", HOSTILE), ("tester.wasm", TESTER)];
    let gw = TestGateway::start_full(&config(""), &plugins)
        .await
        .expect("starts");
    for c in sleeping_calls(&gw, burst, 300) {
        c.await.expect("call");
    }
    let client = TestClient::default();
    let routes = client.get(&gw.admin_url("/routes")).await.json();
    let warm = routes["routes"][0]["filters"][0]["warm_instances"]
        .as_u64()
        .unwrap_or(0);
    let long_calls = sleeping_calls(&gw, busy, 1500);
    let taken = eventually(Duration::from_secs(5), || async {
        let routes = client.get(&gw.admin_url("/routes")).await.json();
        routes["routes"][0]["filters"][0]["warm_instances"].as_u64() == Some(warm - busy as u64)
    })
    .await;
    assert!(taken, "the long calls took idle instances");
    let other = "[[routes]]\nname = \"other\"\nupstream = \"u\"\nmatch.path_prefix = \"/other\"\n\
                 [[routes.filters]]\nplugin = \"tester.wasm\"\n";
    write_atomic(&gw.config_path, config(other).as_bytes());
    let r = gw.reload(&client).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(client.get(&gw.url("/other")).await.status, 200);
    for c in long_calls {
        c.await.expect("long call");
    }
    gw.shutdown().await;
    warm
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_filter_cannot_keep_the_slots_a_reload_needs() {
    // Nine of the ten slots in use at once; without the budget all nine stay idle.
    let warm = busy_filter_then_reload(4, 9, 0).await;
    assert!(warm <= 4, "{warm} idle instances kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_instances_make_room_when_the_allocator_is_full() {
    // All ten slots in use, nine kept idle; five of them busy again: the reload's first
    // instance takes the free slot, its second finds none and takes the least recently
    // used idle one.
    let warm = busy_filter_then_reload(9, 10, 5).await;
    assert_eq!(warm, 9);
}
