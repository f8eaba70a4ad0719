//! Upstream failures map to the right status: down → 502, no healthy target → 503, slow →
//! 504, and the response filters see those answers; passive ejection and active health
//! checks take bad targets out.

use std::time::{Duration, Instant};

use weir_tests::plugins::TESTER;
use weir_tests::{Mode, TestClient, TestGateway, TestUpstream, eventually, one_route};

/// A filter on the route, so that the tests see the response filters run.
const STAMP: &str = "[[routes.filters]]\nplugin = \"tester.wasm\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn upstream_down_is_502() {
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = format!(
        "[upstreams.u]\ntargets = [\"{closed}\"]\npassive = {{ consecutive_failures = 0 }}\n\
         [[routes]]\nname = \"r\"\nupstream = \"u\"\n{STAMP}"
    );
    let gw = TestGateway::start(&config, &[("tester.wasm", TESTER)]).await;
    let r = TestClient::default().get(&gw.url("/")).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "upstream_failed");
    assert!(
        r.header("x-tester-version").is_some(),
        "the response filters saw the gateway's 502"
    );
    // The client learns the code and the request id, not the gateway's internals.
    let body = String::from_utf8_lossy(&r.body).to_ascii_lowercase();
    for internal in [
        closed.to_string().as_str(),
        "tcp connect",
        "connection refused",
        "hyper",
        "client error",
    ] {
        assert!(!body.contains(internal), "{internal:?} leaked: {body}");
    }
    assert!(
        r.json()["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_upstream_is_504() {
    let up = TestUpstream::start("slow").await;
    up.set_delay(Duration::from_secs(3));
    let config = one_route(up.addr, &format!("timeout_ms = 200\n{STAMP}"));
    let gw = TestGateway::start(&config, &[("tester.wasm", TESTER)]).await;
    let r = TestClient::default().get(&gw.url("/")).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"], "upstream_timeout");
    assert!(
        r.header("x-tester-version").is_some(),
        "the response filters saw the gateway's 504"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_health_checks_give_503_without_panic_routing_and_recovery_restores() {
    let up = TestUpstream::start("up").await;
    let config = format!(
        "[upstreams.u]\ntargets = [\"{}\"]\npanic_routing = false\n\
         health_check = {{ path = \"/health\", interval_ms = 50, unhealthy_threshold = 2, healthy_threshold = 2 }}\n\
         [[routes]]\nname = \"r\"\nupstream = \"u\"\n",
        up.addr
    );
    let gw = TestGateway::start(&config, &[]).await;
    let client = TestClient::default();
    assert_eq!(client.get(&gw.url("/")).await.status, 200);
    up.set_mode(Mode::Failing);
    assert!(
        eventually(Duration::from_secs(10), || async {
            client.get(&gw.url("/")).await.status == 503
        })
        .await
    );
    let r = client.get(&gw.url("/")).await;
    assert_eq!(r.json()["error"], "no_healthy_upstream");
    let upstreams = client.get(&gw.admin_url("/upstreams")).await.json();
    assert_eq!(upstreams["upstreams"][0]["targets"][0]["healthy"], false);
    up.set_mode(Mode::Healthy);
    assert!(
        eventually(Duration::from_secs(10), || async {
            client.get(&gw.url("/")).await.status == 200
        })
        .await
    );
    gw.shutdown().await;
}

/// A gateway with one route to `targets` (round robin), each failing until it has failed
/// `failures` times in a row and so been ejected for a minute: every target is out.
async fn all_ejected(
    targets: &[&TestUpstream],
    failures: usize,
    client: &TestClient,
) -> TestGateway {
    let addresses: Vec<String> = targets.iter().map(|t| format!("\"{}\"", t.addr)).collect();
    let config = format!(
        "[upstreams.u]\ntargets = [{}]\n\
         passive = {{ consecutive_failures = {failures}, ejection_ms = 60000 }}\n\
         [[routes]]\nname = \"r\"\nupstream = \"u\"\n",
        addresses.join(", ")
    );
    let gw = TestGateway::start(&config, &[]).await;
    for target in targets {
        target.set_mode(Mode::Failing);
    }
    for _ in 0..failures * targets.len() {
        assert_eq!(client.get(&gw.url("/")).await.status, 500);
    }
    let upstreams = client.get(&gw.admin_url("/upstreams")).await.json();
    for target in 0..targets.len() {
        assert_eq!(
            upstreams["upstreams"][0]["targets"][target]["ejected"], true,
            "{upstreams}"
        );
    }
    gw
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lone_target_ejected_after_a_burst_of_failures_still_serves_in_panic() {
    let up = TestUpstream::start("up").await;
    let client = TestClient::default();
    // A burst of failures ejects the only target for a minute ...
    let gw = all_ejected(&[&up], 2, &client).await;
    // ... and once it has recovered, it is still sent the requests: with no target
    // available, all of them are (panic routing), and that is counted.
    up.set_mode(Mode::Healthy);
    for _ in 0..3 {
        assert_eq!(client.get(&gw.url("/")).await.status, 200);
    }
    let metrics = gw.metrics(&client).await;
    assert!(
        metrics.contains("weir_upstream_panic_total{upstream=\"u\"} 3"),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn in_panic_the_requests_are_spread_over_every_target() {
    let first = TestUpstream::start("first").await;
    let second = TestUpstream::start("second").await;
    let client = TestClient::default();
    // Both fail once (round robin), and both are out for a minute.
    let gw = all_ejected(&[&first, &second], 1, &client).await;
    // The first recovers: in panic, round robin still takes turns over both, so one
    // request in two reaches it (not none, nor all).
    first.set_mode(Mode::Healthy);
    let before = (first.hits(), second.hits());
    let mut served = 0;
    for _ in 0..6 {
        served += usize::from(client.get(&gw.url("/")).await.status == 200);
    }
    assert_eq!(served, 3);
    assert_eq!((first.hits() - before.0, second.hits() - before.1), (3, 3));
    gw.shutdown().await;
}

/// Targets `good` and `bad` (failing) behind one route, `bad` ejected after two failures in
/// a row for `ejection_ms`.
async fn good_and_failing(ejection_ms: u64) -> (TestUpstream, TestUpstream, TestGateway) {
    let good = TestUpstream::start("good").await;
    let bad = TestUpstream::start("bad").await;
    bad.set_mode(Mode::Failing);
    let config = format!(
        "[upstreams.u]\ntargets = [\"{}\", \"{}\"]\npassive = {{ consecutive_failures = 2, ejection_ms = {ejection_ms} }}\n\
         [[routes]]\nname = \"r\"\nupstream = \"u\"\n",
        good.addr, bad.addr
    );
    let gw = TestGateway::start(&config, &[]).await;
    (good, bad, gw)
}

#[tokio::test(flavor = "multi_thread")]
async fn passive_ejection_moves_traffic_to_the_good_target() {
    let (_good, bad, gw) = good_and_failing(60000).await;
    let client = TestClient::default();
    for _ in 0..4 {
        client.get(&gw.url("/")).await;
    }
    let bad_before = bad.hits();
    assert_eq!(bad_before, 2, "ejected after two failures in a row");
    for _ in 0..10 {
        assert_eq!(client.get(&gw.url("/")).await.status, 200);
    }
    assert_eq!(bad.hits(), bad_before, "no traffic to the ejected target");
    let upstreams = client.get(&gw.admin_url("/upstreams")).await.json();
    assert_eq!(upstreams["upstreams"][0]["targets"][1]["ejected"], true);
    gw.shutdown().await;
}

/// An ejected target takes traffic again once `ejection_ms` has passed, not before.
#[tokio::test(flavor = "multi_thread")]
async fn an_ejected_target_returns_after_ejection_ms() {
    let (_good, bad, gw) = good_and_failing(1000).await;
    let client = TestClient::default();
    let started = Instant::now();
    for _ in 0..4 {
        client.get(&gw.url("/")).await;
    }
    assert_eq!(bad.hits(), 2, "ejected after two failures in a row");
    bad.set_mode(Mode::Healthy);
    for _ in 0..5 {
        assert_eq!(client.get(&gw.url("/")).await.status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "still within ejection_ms"
    );
    assert_eq!(
        bad.hits(),
        2,
        "no traffic to the ejected target within ejection_ms"
    );

    let back = eventually(Duration::from_secs(10), || async {
        client.get(&gw.url("/")).await;
        bad.hits() > 2
    })
    .await;
    assert!(back, "the target takes traffic again");
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "back after {:?}, before ejection_ms",
        started.elapsed()
    );
    let upstreams = client.get(&gw.admin_url("/upstreams")).await.json();
    assert_eq!(upstreams["upstreams"][0]["targets"][1]["ejected"], false);
    gw.shutdown().await;
}
