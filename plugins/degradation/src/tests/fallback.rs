//! What a degraded request is answered with: a static response, the last good response
//! from kv (only what a shared cache may keep), or a shed 503.

use serde_json::json;
use weir_plugin_sdk::testing::{FakeHost, FakeResponse};

use super::{exchange, exchange_with, filter, request, scope, stats};

#[test]
fn a_static_fallback_replaces_a_5xx_and_an_open_circuit() {
    let host = FakeHost::new().install();
    let config = json!({ "breaker": { "min_calls": 1 }, "fallback": { "kind": "static",
        "status": 200, "headers": { "content-type": "text/plain" }, "body": "later" } });
    let filter = filter(config).unwrap();
    let replaced = exchange(&filter, &request(), 502).unwrap();
    assert_eq!(replaced.status(), 200);
    assert_eq!(replaced.body_bytes(), Some(&b"later"[..]));
    assert_eq!(
        replaced.header_value("x-weir-degraded"),
        Some("upstream-error")
    );
    assert_eq!(exchange(&filter, &request(), 404), None);
    host.set_stats(&scope(), stats(1, 1, 0, 1));
    let open = exchange(&filter, &request(), 200).unwrap();
    assert_eq!(open.header_value("x-weir-degraded"), Some("circuit-open"));
}

#[test]
fn the_last_good_response_is_served_while_the_upstream_fails() {
    let host = FakeHost::new().install();
    let filter = filter(json!({ "fallback": { "kind": "cache", "ttl": "1m" } })).unwrap();
    let good = FakeResponse::new(200)
        .header("content-type", "application/json")
        .body("[1,2]");
    assert_eq!(exchange_with(&filter, &request(), &good), None);
    let served = exchange(&filter, &request(), 503).unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.body_bytes(), Some(&b"[1,2]"[..]));
    assert_eq!(
        served.header_value("content-type"),
        Some("application/json")
    );
    // Another query is another entry: nothing stored, the error passes.
    let other = weir_plugin_sdk::testing::FakeRequest::get("/items?page=3").upstream("api");
    assert_eq!(exchange(&filter, &other, 503), None);
    // The entry lives for its TTL.
    host.advance_ms(60_000);
    assert_eq!(exchange(&filter, &request(), 503), None);
}

#[test]
fn personal_responses_are_not_kept() {
    let _host = FakeHost::new().install();
    let config = json!({ "fallback": { "kind": "cache", "when_empty": { "body": "empty" } } });
    let filter = filter(config).unwrap();
    let authorized = request().header("authorization", "Bearer t");
    let cases = [
        (authorized.clone(), FakeResponse::new(200).body("mine")),
        (
            request(),
            FakeResponse::new(200)
                .header("cache-control", "private")
                .body("mine"),
        ),
        (
            request(),
            FakeResponse::new(200)
                .header("set-cookie", "a=1")
                .body("mine"),
        ),
        (
            request(),
            FakeResponse::new(200).header("vary", "cookie").body("mine"),
        ),
    ];
    for (request, response) in cases {
        exchange_with(&filter, &request, &response);
        let served = exchange(&filter, &request, 503).unwrap();
        assert_eq!(served.body_bytes(), Some(&b"empty"[..]));
    }
    // An authorized response that says it may be shared is kept.
    let public = FakeResponse::new(200)
        .header("cache-control", "public")
        .body("ours");
    exchange_with(&filter, &authorized, &public);
    let served = exchange(&filter, &authorized, 503).unwrap();
    assert_eq!(served.body_bytes(), Some(&b"ours"[..]));
}

#[test]
fn a_non_core_route_is_shed_under_load() {
    let host = FakeHost::new().install();
    let config = json!({ "shedding": { "class": "non-core", "max_in_flight": 10,
                                       "max_latency": "500ms", "retry_after": "7s" } });
    let filter = filter(config).unwrap();
    host.set_load(10, 500);
    assert_eq!(exchange(&filter, &request(), 200), None);
    host.set_load(11, 0);
    let shed = exchange(&filter, &request(), 200).unwrap();
    assert_eq!(shed.header_value("x-weir-error"), Some("load_shed"));
    assert_eq!(shed.header_value("retry-after"), Some("7"));
    host.set_load(1, 501);
    assert!(exchange(&filter, &request(), 200).is_some());
    // The older spellings.
    let legacy = json!({ "shedding": { "class": "non-core", "max_latency_ms": 500,
                                       "retry_after_s": 2 } });
    let shed = exchange(&super::filter(legacy).unwrap(), &request(), 200).unwrap();
    assert_eq!(shed.header_value("retry-after"), Some("2"));
}
