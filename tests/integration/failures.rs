//! Hostile plugins — an infinite loop, a memory bomb, a panic, a stack overflow, a trap in
//! the response phase — are stopped, the failure policy applies, and other requests through
//! the same filter keep succeeding. The limits applied are the filter's own `deadline_ms` and
//! `memory_mib`, not the defaults.

use std::time::{Duration, Instant};

use weir_tests::plugins::{HOSTILE, TESTER};
use weir_tests::{TestClient, TestGateway, TestUpstream, get, one_route, refusal};

/// A gateway whose one route runs the hostile filter in `mode`, with a 50 ms deadline.
async fn hostile_gateway(up: &TestUpstream, mode: &str, failure: &str) -> TestGateway {
    hostile_gateway_with(up, mode, failure, 50).await
}

/// A gateway whose one route runs the hostile filter in `mode` with this deadline and
/// 16 MiB of memory.
async fn hostile_gateway_with(
    up: &TestUpstream,
    mode: &str,
    failure: &str,
    deadline_ms: u64,
) -> TestGateway {
    let config = one_route(
        up.addr,
        &format!(
            "[[routes.filters]]\nplugin = \"hostile.wasm\"\nconfig = {{ mode = \"{mode}\" }}\n\
             failure = \"{failure}\"\ndeadline_ms = {deadline_ms}\nmemory_mib = 16\n"
        ),
    );
    TestGateway::start(&config, &[("hostile.wasm", HOSTILE)]).await
}

/// Sends attacks and ordinary requests at the same time; returns the attack replies.
async fn attack_while_serving(gw: &TestGateway, attacks: usize) -> Vec<weir_tests::Reply> {
    timed_attack_while_serving(gw, attacks)
        .await
        .into_iter()
        .map(|(reply, _)| reply)
        .collect()
}

/// Like [`attack_while_serving`], with the time each attack took.
async fn timed_attack_while_serving(
    gw: &TestGateway,
    attacks: usize,
) -> Vec<(weir_tests::Reply, Duration)> {
    let url = gw.url("/");
    let bystanders = tokio::spawn({
        let url = url.clone();
        async move {
            let client = TestClient::default();
            for _ in 0..40 {
                let r = client.get(&url).await;
                assert_eq!(
                    r.status, 200,
                    "an ordinary request failed during the attack"
                );
            }
        }
    });
    let mut replies = Vec::new();
    for _ in 0..attacks {
        let client = TestClient::default();
        let started = Instant::now();
        let reply = client.send(get(&url, &[("x-attack", "1")])).await;
        replies.push((reply, started.elapsed()));
    }
    bystanders.await.expect("bystanders all succeeded");
    replies
}

/// `weir_plugin_failures_total` of the hostile filter on route `r` for this kind.
async fn failures_metric(gw: &TestGateway, kind: &str) -> u64 {
    let text = TestClient::default()
        .get(&gw.admin_url("/metrics"))
        .await
        .body;
    let text = String::from_utf8_lossy(&text);
    let needle =
        format!("weir_plugin_failures_total{{route=\"r\",plugin=\"hostile\",kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The loop runs for its own 200 ms deadline: not the 20 ms default (too early), not the
/// 1 s wall-clock stop (too late).
#[tokio::test(flavor = "multi_thread")]
async fn infinite_loop_is_stopped_at_its_deadline() {
    let up = TestUpstream::start("up").await;
    let gw = hostile_gateway_with(&up, "loop", "fail_closed", 200).await;
    let replies = timed_attack_while_serving(&gw, 3).await;
    for (r, took) in &replies {
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["error"], "filter_timeout");
        assert!(r.json()["request_id"].as_str().is_some());
        assert!(
            (Duration::from_millis(200)..Duration::from_millis(700)).contains(took),
            "stopped after {took:?}"
        );
    }
    assert_eq!(failures_metric(&gw, "deadline").await, 3);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb_is_capped() {
    let up = TestUpstream::start("up").await;
    let gw = hostile_gateway(&up, "memory", "fail_closed").await;
    for r in attack_while_serving(&gw, 3).await {
        assert_eq!(r.status, 500, "{:?}", r.body);
        assert_eq!(r.json()["error"], "filter_failed");
    }
    assert_eq!(failures_metric(&gw, "memory").await, 3);
    gw.shutdown().await;
}

/// A guest that leaks 256 KiB per call (its memory only grows) would fail a call at its
/// 16 MiB cap after a few dozen calls; its instances are retired between calls instead,
/// once half their headroom is gone, and no call fails.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_leaks_is_retired_before_it_fails_a_call() {
    let up = TestUpstream::start("up").await;
    let gw = hostile_gateway_with(&up, "leak", "fail_closed", 1000).await;
    let client = TestClient::default();
    for i in 0..200 {
        let reply = client
            .send(get(
                &gw.url("/leak"),
                &[("x-attack", "1"), ("x-leak-kib", "256")],
            ))
            .await;
        assert_eq!(reply.status, 200, "call {i}: {:?}", reply.body);
    }
    assert_eq!(failures_metric(&gw, "memory").await, 0);
    let text =
        String::from_utf8_lossy(&client.get(&gw.admin_url("/metrics")).await.body).into_owned();
    let retired: u64 = (text.lines())
        .find_map(|l| {
            l.strip_prefix("weir_plugin_instances_retired_total{route=\"r\",plugin=\"hostile\"} ")
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    // 200 calls of 256 KiB is 50 MiB: at least three instances' worth of 8 MiB.
    assert!(retired >= 3, "{retired} retired");
    gw.shutdown().await;
}

/// A fixed 24 MiB allocation (the tester's `x-kv-size` value, made before its `kv` call)
/// fails under the filter's own `memory_mib = 16` and fits under `memory_mib = 32`.
#[tokio::test(flavor = "multi_thread")]
async fn the_filters_own_memory_cap_applies() {
    let up = TestUpstream::start("up").await;
    let mut config = format!("[upstreams.u]\ntargets = [\"{}\"]\n", up.addr);
    for mib in [16, 32] {
        config.push_str(&format!(
            "[[routes]]\nname = \"m{mib}\"\nupstream = \"u\"\nmatch = {{ path_prefix = \"/m{mib}\" }}\n\
             [[routes.filters]]\nplugin = \"tester.wasm\"\ngrants = [\"kv\"]\n\
             config = {{ kv_ops = true }}\nmemory_mib = {mib}\ndeadline_ms = 5000\n"
        ));
    }
    let gw = TestGateway::start(&config, &[("tester.wasm", TESTER)]).await;
    let client = TestClient::default();
    let size = (24 << 20).to_string();
    let allocate = |path: &str| {
        get(
            &gw.url(path),
            &[("x-kv-op", "get"), ("x-kv-key", "k"), ("x-kv-size", &size)],
        )
    };
    let r = client.send(allocate("/m16")).await;
    assert_eq!(r.status, 500, "{:?}", r.body);
    assert_eq!(r.json()["error"], "filter_failed");
    let r = client.send(allocate("/m32")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("x-kv"), Some("none"));
    assert_eq!(up.hits(), 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_fails_closed() {
    let up = TestUpstream::start("up").await;
    let gw = hostile_gateway(&up, "panic", "fail_closed").await;
    for r in attack_while_serving(&gw, 3).await {
        assert_eq!(r.status, 500);
        assert_eq!(r.json()["error"], "filter_failed");
    }
    assert_eq!(failures_metric(&gw, "trap").await, 3);
    assert_eq!(up.hits(), 40, "only the bystanders reached the upstream");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_overflow_is_a_trap_and_fails_closed() {
    let up = TestUpstream::start("up").await;
    let gw = hostile_gateway_with(&up, "recurse", "fail_closed", 1000).await;
    for r in attack_while_serving(&gw, 3).await {
        assert_eq!(r.status, 500, "{:?}", r.body);
        assert_eq!(r.json()["error"], "filter_failed");
    }
    assert_eq!(failures_metric(&gw, "trap").await, 3);
    assert_eq!(up.hits(), 40, "only the bystanders reached the upstream");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_in_the_response_phase_fails_closed_after_the_upstream_answered() {
    let up = TestUpstream::start("up").await;
    let gw = hostile_gateway(&up, "response-panic", "fail_closed").await;
    for r in attack_while_serving(&gw, 3).await {
        assert_eq!(r.status, 500, "{:?}", r.body);
        assert_eq!(r.json()["error"], "filter_failed");
        assert!(
            r.header("x-upstream").is_none(),
            "the upstream's answer was not passed on"
        );
    }
    assert_eq!(failures_metric(&gw, "trap").await, 3);
    // The upstream was called for the attacks too: the trap came on the way back.
    assert_eq!(up.hits(), 43);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_open_lets_requests_through() {
    let up = TestUpstream::start("up").await;
    for mode in ["panic", "loop", "memory"] {
        let gw = hostile_gateway(&up, mode, "fail_open").await;
        for r in attack_while_serving(&gw, 2).await {
            assert_eq!(r.status, 200, "mode {mode}");
            assert_eq!(r.header("x-upstream"), Some("up"));
        }
        gw.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn configure_error_refuses_startup_with_the_reason() {
    let up = TestUpstream::start("up").await;
    let config = one_route(
        up.addr,
        "[[routes.filters]]\nplugin = \"hostile.wasm\"\nconfig = { mode = \"refuse\" }\n",
    );
    let started = TestGateway::try_start(&config, &[("hostile.wasm", HOSTILE)]).await;
    let message = refusal(started, "a refusing filter").await;
    assert!(message.contains("hostile.wasm"), "{message}");
    assert!(message.contains("refusing mode \"refuse\""), "{message}");
}
