//! Hostile plugins — an infinite loop, a memory bomb, a panic — are stopped, the failure
//! policy applies, and other requests through the same filter keep succeeding.

use std::time::{Duration, Instant};

use weir_tests::plugins::HOSTILE;
use weir_tests::{TestClient, TestGateway, TestUpstream, get};

async fn hostile_gateway(up: &TestUpstream, mode: &str, failure: &str) -> TestGateway {
    let config = format!(
        "[upstreams.u]\ntargets = [\"{}\"]\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n\
         [[routes.filters]]\nplugin = \"hostile.wasm\"\nconfig = {{ mode = \"{mode}\" }}\n\
         failure = \"{failure}\"\ndeadline_ms = 50\nmemory_mib = 16\n",
        up.addr
    );
    TestGateway::start(&config, &[("hostile.wasm", HOSTILE)]).await
}

/// Sends attacks and ordinary requests at the same time; returns the attack replies.
async fn attack_while_serving(gw: &TestGateway, attacks: usize) -> Vec<weir_tests::Reply> {
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
        replies.push(client.send(get(&url, &[("x-attack", "1")])).await);
    }
    bystanders.await.expect("bystanders all succeeded");
    replies
}

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

#[tokio::test(flavor = "multi_thread")]
async fn infinite_loop_is_stopped_at_its_deadline() {
    let up = TestUpstream::start("up").await;
    let gw = hostile_gateway(&up, "loop", "fail_closed").await;
    let started = Instant::now();
    let replies = attack_while_serving(&gw, 3).await;
    for r in &replies {
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["error"], "filter_timeout");
        assert!(r.json()["request_id"].as_str().is_some());
    }
    // Three 50 ms deadlines: far below the time a runaway loop would take (forever); the
    // bound only guards against a filter that is never stopped.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(failures_metric(&gw, "deadline").await, 3);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb_is_capped() {
    let up = TestUpstream::start("up").await;
    let gw = hostile_gateway(&up, "memory", "fail_closed").await;
    for r in attack_while_serving(&gw, 3).await {
        assert_eq!(r.status, 500);
        assert_eq!(r.json()["error"], "filter_failed");
    }
    assert_eq!(failures_metric(&gw, "memory").await, 3);
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
    let config = format!(
        "[upstreams.u]\ntargets = [\"{}\"]\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n\
         [[routes.filters]]\nplugin = \"hostile.wasm\"\nconfig = {{ mode = \"refuse\" }}\n",
        up.addr
    );
    let error = TestGateway::try_start(&config, &[("hostile.wasm", HOSTILE)])
        .await
        .err()
        .expect("refused");
    let message = format!("{error:#}");
    assert!(message.contains("hostile.wasm"), "{message}");
    assert!(message.contains("refusing mode \"refuse\""), "{message}");
}
