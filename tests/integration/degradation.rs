//! The `degradation` filter through a real gateway, against an upstream the tests switch
//! between healthy, failing and slow: the breaker opens on a rate over its window (not
//! before `min_calls`), on failures in a row and on slow calls, stops calling the upstream,
//! probes it in half-open, closes again or re-opens with a longer cool-down; static and
//! last-good fallbacks; shedding of non-core routes under load.

use std::time::Duration;

use http::StatusCode;
use weir_tests::plugins::DEGRADATION;
use weir_tests::{Mode, TestClient, TestGateway, TestUpstream, eventually, refusal};

/// A route `name` on `/<name>` through `degradation` with `config` (a TOML inline table),
/// more route keys in `route_extra`.
fn route(name: &str, route_extra: &str, config: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\nupstream = \"main\"\nmatch = {{ path_prefix = \"/{name}\" }}\n\
         {route_extra}\n[[routes.filters]]\nplugin = \"degradation.wasm\"\n\
         grants = [\"upstreams\", \"clock\", \"kv\"]\nconfig = {config}\n"
    )
}

/// A gateway with the upstream `main` (no passive ejection: every request reaches it
/// unless the filter stops it) and these routes.
async fn try_gateway(upstream: &TestUpstream, routes: &[String]) -> anyhow::Result<TestGateway> {
    let text = format!(
        "[upstreams.main]\ntargets = [\"{}\"]\n[upstreams.main.passive]\nconsecutive_failures = 0\n\n{}",
        upstream.addr,
        routes.concat()
    );
    TestGateway::try_start(&text, &[("degradation.wasm", DEGRADATION)]).await
}

async fn gateway(upstream: &TestUpstream, routes: &[String]) -> TestGateway {
    try_gateway(upstream, routes).await.expect("gateway starts")
}

/// The circuit of `scope` (`upstream` or `route`) `name` in `GET /circuits`.
async fn circuit(
    client: &TestClient,
    gw: &TestGateway,
    scope: &str,
    name: &str,
) -> serde_json::Value {
    let all = client.get(&gw.admin_url("/circuits")).await.json();
    all["circuits"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|c| c["scope"] == scope && c["name"] == name)
        })
        .map(|c| c["circuit"].clone())
        .unwrap_or_default()
}

const STATIC: &str = r#"{ kind = "static", status = 200, headers = { "content-type" = "application/json", "cache-control" = "no-store" }, body = '{"items":[]}' }"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_breaker_opens_on_the_failure_rate_after_min_calls_and_stops_calling() {
    let upstream = TestUpstream::start("main").await;
    let config = format!(
        "{{ breaker = {{ window_ms = 60000, min_calls = 6, failure_rate = 0.5, open_ms = 60000 }}, fallback = {STATIC} }}"
    );
    let gw = gateway(&upstream, &[route("api", "", &config)]).await;
    let client = TestClient::default();

    for _ in 0..2 {
        let r = client.get(&gw.url("/api/items")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["upstream"], "main", "served by the upstream");
        assert_eq!(r.header("x-weir-degraded"), None);
    }
    upstream.set_mode(Mode::Failing);
    // Calls 3 to 5: from the 4th the failure rate is reached (2 of 4, then 3 of 5), but
    // fewer than min_calls = 6 calls were seen: still closed, and each failure is answered
    // with the fallback.
    for calls in 3..=5 {
        let r = client.get(&gw.url("/api/items")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.header("x-weir-degraded"),
            Some("upstream-error"),
            "call {calls}"
        );
        assert_eq!(r.body.as_ref(), br#"{"items":[]}"#);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(
            circuit(&client, &gw, "upstream", "main").await["state"],
            "closed",
            "after call {calls}"
        );
    }
    // The 6th call: 4 of 6 failed and min_calls is reached; the next request finds the
    // circuit open.
    let r = client.get(&gw.url("/api/items")).await;
    assert_eq!(r.header("x-weir-degraded"), Some("upstream-error"));
    assert_eq!(upstream.hits(), 6);

    for _ in 0..5 {
        let r = client.get(&gw.url("/api/items")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("x-weir-degraded"), Some("circuit-open"));
        assert_eq!(r.json(), serde_json::json!({ "items": [] }));
    }
    assert_eq!(
        upstream.hits(),
        6,
        "no call reaches the upstream while open"
    );
    let state = circuit(&client, &gw, "upstream", "main").await;
    assert_eq!(state["state"], "open");
    assert_eq!(state["trips"], 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn half_open_lets_exactly_the_probes_through_then_closes() {
    let upstream = TestUpstream::start("main").await;
    let config = format!(
        "{{ breaker = {{ min_calls = 2, failure_rate = 0.5, open_ms = 300, half_open_probes = 2 }}, fallback = {STATIC} }}"
    );
    let gw = gateway(&upstream, &[route("api", "", &config)]).await;
    let client = TestClient::default();
    upstream.set_mode(Mode::Failing);
    for _ in 0..3 {
        client.get(&gw.url("/api")).await;
    }
    assert_eq!(
        upstream.hits(),
        2,
        "the third request found the circuit open"
    );
    assert_eq!(
        circuit(&client, &gw, "upstream", "main").await["state"],
        "open"
    );

    // Still failing, and slow, so that the probes are still in flight when the others
    // arrive: exactly two go through; both fail and open the circuit again.
    upstream.set_delay(Duration::from_millis(1500));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let (client, url) = (client.clone(), gw.url("/api"));
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    let mut reasons = Vec::new();
    for request in requests {
        let r = request.await.expect("request task");
        assert_eq!(r.status, StatusCode::OK, "every answer is the fallback");
        reasons.push(r.header("x-weir-degraded").unwrap_or_default().to_string());
    }
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "circuit-open",
            "circuit-open",
            "circuit-open",
            "circuit-open",
            "upstream-error",
            "upstream-error"
        ],
        "exactly the two probes were let through"
    );
    assert_eq!(upstream.hits(), 4);
    let state = circuit(&client, &gw, "upstream", "main").await;
    assert_eq!(
        (state["state"].as_str(), state["trips"].as_u64()),
        (Some("open"), Some(2))
    );

    // Healthy again: after the (doubled, 600 ms) cool-down, the first probe succeeds and
    // the circuit waits for the second; when it succeeds too, the circuit closes.
    upstream.set_mode(Mode::Healthy);
    upstream.set_delay(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = client.get(&gw.url("/api")).await;
    assert_eq!(r.header("x-weir-degraded"), None, "the first probe");
    let state = circuit(&client, &gw, "upstream", "main").await;
    assert_eq!(state["state"], "half_open");
    assert_eq!(state["probe_successes"], 1);
    let r = client.get(&gw.url("/api")).await;
    assert_eq!(r.header("x-weir-degraded"), None, "the second probe");
    let state = circuit(&client, &gw, "upstream", "main").await;
    assert_eq!(state["state"], "closed");
    assert_eq!(state["trips"], 0);
    // Closed: the failures of before do not count, every call goes through.
    for _ in 0..3 {
        let r = client.get(&gw.url("/api")).await;
        assert_eq!(r.header("x-weir-degraded"), None);
        assert_eq!(r.json()["upstream"], "main");
    }
    assert_eq!(upstream.hits(), 9);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_probe_reopens_with_a_doubled_cool_down() {
    let upstream = TestUpstream::start("main").await;
    let config = "{ breaker = { min_calls = 2, failure_rate = 1.0, open_ms = 1000, max_open_ms = 10000, half_open_probes = 1 } }";
    let gw = gateway(&upstream, &[route("api", "", config)]).await;
    let client = TestClient::default();
    upstream.set_mode(Mode::Failing);
    for _ in 0..2 {
        // No fallback: the upstream's failure goes to the client as it is.
        let r = client.get(&gw.url("/api")).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.header("x-weir-degraded"), None);
    }
    let r = client.get(&gw.url("/api")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"], "circuit_open");
    assert_eq!(r.header("x-weir-degraded"), Some("circuit-open"));
    assert_eq!(
        r.header("retry-after"),
        Some("1"),
        "the first cool-down: 1 s"
    );
    assert_eq!(circuit(&client, &gw, "upstream", "main").await["trips"], 1);

    // After the cool-down one probe goes through, fails, and opens the circuit again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = client.get(&gw.url("/api")).await;
    assert_eq!(
        r.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the probe's answer"
    );
    assert_eq!(upstream.hits(), 3);
    let state = circuit(&client, &gw, "upstream", "main").await;
    assert_eq!(state["state"], "open");
    assert_eq!(state["trips"], 2);
    let r = client.get(&gw.url("/api")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.header("retry-after"),
        Some("2"),
        "the second cool-down: 2 s"
    );

    // The first cool-down's length later, the circuit is still open.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = client.get(&gw.url("/api")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        upstream.hits(),
        3,
        "no probe before the longer cool-down ends"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_in_a_row_trip_the_breaker_below_the_rate() {
    let upstream = TestUpstream::start("main").await;
    let config = "{ breaker = { min_calls = 100, consecutive_failures = 3, open_ms = 60000 } }";
    let gw = gateway(&upstream, &[route("api", "", config)]).await;
    let client = TestClient::default();
    for _ in 0..5 {
        assert_eq!(client.get(&gw.url("/api")).await.status, StatusCode::OK);
    }
    upstream.set_mode(Mode::Failing);
    for _ in 0..3 {
        let r = client.get(&gw.url("/api")).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let r = client.get(&gw.url("/api")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"], "circuit_open");
    assert_eq!(upstream.hits(), 8);
    gw.shutdown().await;
}

/// Only calls slower than `slow_call_ms` count as slow: three fast calls keep the slow
/// rate under 0.5 until the third slow one.
#[tokio::test(flavor = "multi_thread")]
async fn slow_calls_trip_the_breaker() {
    let upstream = TestUpstream::start("main").await;
    let config = "{ breaker = { min_calls = 4, failure_rate = 1.0, slow_call_ms = 200, slow_call_rate = 0.5, open_ms = 60000 } }";
    let gw = gateway(&upstream, &[route("api", "", config)]).await;
    let client = TestClient::default();
    for _ in 0..3 {
        let r = client.get(&gw.url("/api")).await;
        assert_eq!(r.status, StatusCode::OK, "fast");
    }
    upstream.set_delay(Duration::from_millis(300));
    // 1 of 4, then 2 of 5 calls slow: under the rate, still closed.
    for calls in 4..=5 {
        let r = client.get(&gw.url("/api")).await;
        assert_eq!(r.status, StatusCode::OK, "slow, but answered");
        assert_eq!(
            circuit(&client, &gw, "upstream", "main").await["state"],
            "closed",
            "after call {calls}"
        );
    }
    // 3 of 6: the rate is reached.
    let r = client.get(&gw.url("/api")).await;
    assert_eq!(r.status, StatusCode::OK, "slow, but answered");
    let r = client.get(&gw.url("/api")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("x-weir-degraded"), Some("circuit-open"));
    assert_eq!(upstream.hits(), 6);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_fallback_serves_the_last_good_response() {
    let upstream = TestUpstream::start("main").await;
    let config = "{ breaker = { min_calls = 3, failure_rate = 0.75, open_ms = 60000 }, fallback = { kind = \"cache\", ttl_ms = 60000 } }";
    let gw = gateway(&upstream, &[route("api", "timeout_ms = 300", config)]).await;
    let client = TestClient::default();
    let good = client.get(&gw.url("/api/items?page=1")).await;
    assert_eq!(good.status, StatusCode::OK);
    assert_eq!(good.json()["path"], "/api/items?page=1");

    // The upstream answers 500: the last good answer for the same method, path and query.
    upstream.set_mode(Mode::Failing);
    let r = client.get(&gw.url("/api/items?page=1")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, good.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-weir-degraded"), Some("upstream-error"));
    // Nothing stored for another query, and no `when_empty`: the failure as it is.
    let r = client.get(&gw.url("/api/items?page=2")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.header("x-weir-degraded"), None);

    // A timeout (the gateway's 504) is served the cached answer too.
    upstream.set_mode(Mode::Healthy);
    upstream.set_delay(Duration::from_millis(1000));
    let r = client.get(&gw.url("/api/items?page=1")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, good.body);
    assert_eq!(r.header("x-weir-degraded"), Some("upstream-error"));

    // 3 of 4 calls failed: the rate is reached, the circuit opens.
    let hits = upstream.hits();
    let r = client.get(&gw.url("/api/items?page=1")).await;
    assert_eq!(r.body, good.body);
    assert_eq!(r.header("x-weir-degraded"), Some("circuit-open"));
    let r = client.get(&gw.url("/api/items?page=2")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"], "circuit_open");
    assert_eq!(
        upstream.hits(),
        hits,
        "the upstream is not called while open"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shedding_keeps_core_routes_whole_and_sheds_non_core() {
    let upstream = TestUpstream::start("main").await;
    let off = "enabled = false";
    let gw = gateway(
        &upstream,
        &[
            route("core", "", &format!("{{ breaker = {{ {off} }}, shedding = {{ class = \"core\" }} }}")),
            route(
                "extra",
                "",
                &format!("{{ breaker = {{ {off} }}, shedding = {{ class = \"non-core\", max_in_flight = 5, retry_after_s = 7 }} }}"),
            ),
            route(
                "listing",
                "",
                &format!("{{ breaker = {{ {off} }}, fallback = {STATIC}, shedding = {{ class = \"non-core\", max_in_flight = 5 }} }}"),
            ),
        ],
    )
    .await;
    let client = TestClient::default();
    assert_eq!(client.get(&gw.url("/extra")).await.status, StatusCode::OK);

    // Ten slow requests in flight on the core route.
    upstream.set_delay(Duration::from_millis(1500));
    let load: Vec<_> = (0..10)
        .map(|_| {
            let (client, url) = (client.clone(), gw.url("/core"));
            tokio::spawn(async move { client.get(&url).await.status })
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(5), || async { upstream.hits() >= 11 }).await,
        "the core requests reach the upstream"
    );
    let r = client.get(&gw.url("/extra")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"], "load_shed");
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.header("x-weir-degraded"), Some("shed"));
    let r = client.get(&gw.url("/listing")).await;
    assert_eq!(r.status, StatusCode::OK, "shed to its fallback");
    assert_eq!(r.body.as_ref(), br#"{"items":[]}"#);
    assert_eq!(r.header("x-weir-degraded"), Some("shed"));
    assert_eq!(
        upstream.hits(),
        11,
        "shed requests never reach the upstream"
    );
    // Under the same load, the core route is still served.
    let r = client.get(&gw.url("/core")).await;
    assert_eq!(r.status, StatusCode::OK);

    for request in load {
        assert_eq!(request.await.expect("request task"), StatusCode::OK);
    }
    upstream.set_delay(Duration::ZERO);
    let r = client.get(&gw.url("/extra")).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "served again once the load is gone"
    );
    assert_eq!(r.header("x-weir-degraded"), None);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_route_scope_keeps_routes_apart() {
    let upstream = TestUpstream::start("main").await;
    let config =
        "{ breaker = { scope = \"route\", min_calls = 2, failure_rate = 1.0, open_ms = 60000 } }";
    let gw = gateway(&upstream, &[route("a", "", config), route("b", "", config)]).await;
    let client = TestClient::default();
    upstream.set_mode(Mode::Failing);
    for _ in 0..2 {
        client.get(&gw.url("/a")).await;
    }
    assert_eq!(
        client.get(&gw.url("/a")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(circuit(&client, &gw, "route", "a").await["state"], "open");
    // Route b's calls to the same upstream are its own: its circuit is closed.
    assert_eq!(
        client.get(&gw.url("/b")).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(circuit(&client, &gw, "route", "b").await["state"], "closed");
    assert_eq!(upstream.hits(), 3);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_config_is_refused() {
    let upstream = TestUpstream::start("main").await;
    let cases = [
        ("{ breaker = { failure_rate = 2.0 } }", "failure_rate"),
        (
            "{ breaker = { open_ms = 5000, max_open_ms = 1000 } }",
            "max_open_ms",
        ),
        ("{ breaker = { window = 5 } }", "unknown field"),
        (
            "{ fallback = { kind = \"static\", status = 99 } }",
            "status",
        ),
        (
            "{ fallback = { kind = \"static\", stauts = 200 } }",
            "unknown field",
        ),
        ("{ fallback = { kind = \"file\" } }", "unknown variant"),
        (
            "{ fallback = { kind = \"cache\", key = [\"cookie\"] } }",
            "unknown part",
        ),
        ("{ shedding = { class = \"non-core\" } }", "max_in_flight"),
    ];
    for (config, expected) in cases {
        let error = refusal(
            try_gateway(&upstream, &[route("api", "", config)]).await,
            config,
        )
        .await;
        assert!(error.contains(expected), "{config}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connect_error_is_served_the_fallback_until_the_circuit_opens() {
    // The example config's `degraded` route: an upstream with nothing listening.
    let closed = weir_tests::free_port();
    let config = format!(
        "[upstreams.offline]\ntargets = [\"127.0.0.1:{closed}\"]\n\n\
         [[routes]]\nname = \"degraded\"\nupstream = \"offline\"\nmatch = {{ path_prefix = \"/degraded\" }}\n\
         [[routes.filters]]\nplugin = \"degradation.wasm\"\ngrants = [\"upstreams\", \"clock\", \"kv\"]\n\
         config.breaker = {{ window_ms = 10000, min_calls = 3, failure_rate = 0.5, open_ms = 5000, max_open_ms = 60000, half_open_probes = 1 }}\n\
         config.fallback = {{ kind = \"static\", status = 200, headers = {{ \"content-type\" = \"application/json\" }}, body = '{{\"items\":[],\"degraded\":true}}' }}\n\
         config.shedding = {{ class = \"non-core\", max_in_flight = 256, retry_after_s = 2 }}\n"
    );
    let gw = TestGateway::start(&config, &[("degradation.wasm", DEGRADATION)]).await;
    let client = TestClient::default();
    for _ in 0..3 {
        let r = client.get(&gw.url("/degraded/items")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.header("x-weir-degraded"),
            Some("upstream-error"),
            "the 502, degraded"
        );
        assert_eq!(r.json()["degraded"], true);
    }
    let r = client.get(&gw.url("/degraded/items")).await;
    assert_eq!(r.header("x-weir-degraded"), Some("circuit-open"));
    assert_eq!(r.json()["items"], serde_json::json!([]));
    assert_eq!(
        circuit(&client, &gw, "upstream", "offline").await["state"],
        "open"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_core_route_is_shed_while_upstream_latency_is_high() {
    let upstream = TestUpstream::start("main").await;
    let gw = gateway(
        &upstream,
        &[
            route("core", "", "{ breaker = { enabled = false }, shedding = { class = \"core\" } }"),
            route(
                "extra",
                "",
                "{ breaker = { enabled = false }, shedding = { class = \"non-core\", max_latency_ms = 50 } }",
            ),
        ],
    )
    .await;
    let client = TestClient::default();
    assert_eq!(client.get(&gw.url("/extra")).await.status, StatusCode::OK);
    // Thirty calls of 400 ms lift the gateway's moving average well above 50 ms.
    upstream.set_delay(Duration::from_millis(400));
    let load: Vec<_> = (0..30)
        .map(|_| {
            let (client, url) = (client.clone(), gw.url("/core"));
            tokio::spawn(async move { client.get(&url).await.status })
        })
        .collect();
    for request in load {
        assert_eq!(request.await.expect("request task"), StatusCode::OK);
    }
    let r = client.get(&gw.url("/extra")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"], "load_shed");
    assert_eq!(r.header("retry-after"), Some("1"), "the default");
    assert_eq!(client.get(&gw.url("/core")).await.status, StatusCode::OK);
    assert_eq!(
        upstream.hits(),
        32,
        "the shed request did not reach the upstream"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_grant_is_a_misconfigured_500() {
    let upstream = TestUpstream::start("main").await;
    let route_with = |name: &str, grants: &str, config: &str| {
        format!(
            "[[routes]]\nname = \"{name}\"\nupstream = \"main\"\nmatch = {{ path_prefix = \"/{name}\" }}\n\
             [[routes.filters]]\nplugin = \"degradation.wasm\"\ngrants = {grants}\nconfig = {config}\n"
        )
    };
    let gw = gateway(
        &upstream,
        &[
            route_with("breaker", "[\"clock\"]", "{}"),
            route_with(
                "cache",
                "[\"upstreams\", \"clock\"]",
                "{ fallback = { kind = \"cache\" } }",
            ),
        ],
    )
    .await;
    let client = TestClient::default();
    let r = client.get(&gw.url("/breaker")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json()["error"], "degradation_misconfigured");
    assert_eq!(upstream.hits(), 0);
    let r = client.get(&gw.url("/cache")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json()["error"], "degradation_misconfigured");
    gw.shutdown().await;
}

/// An upstream whose answers are someone's own or everyone's, by path: `/…/private`
/// (`Cache-Control: private`), `/…/no-store`, `/…/cookie` (`Set-Cookie`), `/…/vary`
/// (`Vary: Cookie`), `/…/shared` (`Cache-Control: public`), anything else plain. The body
/// names the caller (its `Authorization`, else its `Cookie`). It answers 500 while
/// `failing` is set.
async fn personal_upstream(
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use std::sync::atomic::Ordering;
    weir_tests::serve(move |req: http::Request<hyper::body::Incoming>| {
        let failing = failing.load(Ordering::SeqCst);
        async move {
            let mut reply = http::Response::builder().header("content-type", "text/plain");
            if failing {
                return reply
                    .status(500)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .expect("response");
            }
            let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
            let who = header("authorization")
                .or(header("cookie"))
                .unwrap_or("anyone")
                .to_string();
            let last = req.uri().path().rsplit('/').next().unwrap_or_default();
            reply = match last {
                "private" => reply.header("cache-control", "max-age=60, private"),
                "no-store" => reply.header("cache-control", "no-store"),
                "cookie" => reply.header("set-cookie", "session=s3cr3t"),
                "vary" => reply.header("vary", "Cookie"),
                "shared" => reply.header("cache-control", "public, max-age=60"),
                _ => reply,
            };
            reply
                .body(http_body_util::Full::new(bytes::Bytes::from(format!(
                    "for {who}"
                ))))
                .expect("response")
        }
    })
    .await
}

/// The last-good cache serves everyone who asks with the same key, so it keeps only what
/// a shared cache may keep: nothing private, no-store, cookie-setting, varying on what the
/// key leaves out, nor (unless configured, or the response says public) a response to an
/// authorized request.
#[tokio::test(flavor = "multi_thread")]
async fn the_cache_fallback_never_serves_one_users_response_to_another() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let failing = std::sync::Arc::new(AtomicBool::new(false));
    let (addr, task) = personal_upstream(failing.clone()).await;
    let cache = |extra: &str| {
        format!(
            "{{ breaker = {{ enabled = false }}, fallback = {{ kind = \"cache\", ttl_ms = 60000{extra} }} }}"
        )
    };
    let text = format!(
        "[upstreams.main]\ntargets = [\"{addr}\"]\n{}{}",
        route("api", "", &cache("")),
        route("trusting", "", &cache(", store_authorized = true")),
    );
    let gw = TestGateway::start(&text, &[("degradation.wasm", DEGRADATION)]).await;
    let client = TestClient::default();
    let send = |path: &str, header: Option<(&'static str, &'static str)>| {
        let headers: Vec<(&str, &str)> = header.into_iter().collect();
        client.send(weir_tests::get(&gw.url(path), &headers))
    };

    // Alice's answers pass through (and are considered for the cache): each of the first
    // four is kept out by its response headers alone, the fifth by her `Authorization`.
    let (cookie, bearer) = (("cookie", "user=alice"), ("authorization", "Bearer alice"));
    for (path, alice, body) in [
        ("/api/private", cookie, "for user=alice"),
        ("/api/no-store", cookie, "for user=alice"),
        ("/api/cookie", cookie, "for user=alice"),
        ("/api/vary", cookie, "for user=alice"),
        ("/api/plain", bearer, "for Bearer alice"),
        ("/api/shared", bearer, "for Bearer alice"),
        ("/trusting/plain", bearer, "for Bearer alice"),
    ] {
        let r = send(path, Some(alice)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.body.as_ref(), body.as_bytes(), "{path}");
    }
    let r = send("/api/public-page", None).await;
    assert_eq!(r.body.as_ref(), b"for anyone");

    failing.store(true, Ordering::SeqCst);
    // Bob never gets what was Alice's own.
    let bob = Some(("cookie", "user=bob"));
    for path in [
        "/api/private",
        "/api/no-store",
        "/api/cookie",
        "/api/vary",
        "/api/plain",
    ] {
        let r = send(path, bob).await;
        assert_eq!(
            r.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}: {:?}",
            r.body
        );
        assert_eq!(r.header("x-weir-degraded"), None, "{path}");
    }
    // What may be shared is served: a public answer, an explicitly public answer to an
    // authorized request, and any 2xx on a route configured to trust authorized answers.
    for (path, body) in [
        ("/api/public-page", "for anyone"),
        ("/api/shared", "for Bearer alice"),
        ("/trusting/plain", "for Bearer alice"),
    ] {
        let r = send(path, bob).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.body.as_ref(), body.as_bytes(), "{path}");
        assert_eq!(
            r.header("x-weir-degraded"),
            Some("upstream-error"),
            "{path}"
        );
    }
    gw.shutdown().await;
    task.abort();
}
