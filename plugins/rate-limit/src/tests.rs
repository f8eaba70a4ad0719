//! The filter's decisions against the fake host's limits.

use serde_json::json;
use weir_plugin_sdk::HostError;
use weir_plugin_sdk::prelude::*;
use weir_plugin_sdk::testing::{FakeHost, FakeRequest, refused};

use crate::RateLimit;

fn filter(config: serde_json::Value) -> Result<RateLimit, String> {
    RateLimit::new(serde_json::from_value(config).map_err(|e| e.to_string())?)
}

fn from(client: &str) -> FakeRequest {
    FakeRequest::get("/").client(client)
}

/// Whether `filter` lets `request` through.
fn passes(filter: &RateLimit, request: &FakeRequest) -> bool {
    filter.on_request(&request.view()).changes().is_some()
}

/// Whether `filter` answers `request` itself.
fn refuses(filter: &RateLimit, request: &FakeRequest) -> bool {
    filter.on_request(&request.view()).response().is_some()
}

#[test]
fn a_client_gets_its_limit_then_429_with_retry_after_and_the_fields() {
    let _host = FakeHost::new().at_ms(60_000).install();
    let filter = filter(json!({ "limits": [{ "limit": 2, "window": "1m" }] })).unwrap();
    let request = from("192.0.2.1:1000");
    for remaining in ["1", "0"] {
        let decision = filter.on_request(&request.view());
        let fields = decision.changes().unwrap().response_headers();
        let ratelimit = fields.iter().find(|h| h.name == "ratelimit").unwrap();
        let expected = format!("\"2-per-1m\";r={remaining};t=60");
        assert_eq!(ratelimit.value, expected.as_bytes());
    }
    let refusal = refused(&filter, &request, 429, "rate_limited");
    assert_eq!(refusal.header_value("retry-after"), Some("60"));
    assert_eq!(
        refusal.header_value("ratelimit-policy"),
        Some("\"2-per-1m\";q=2;w=60")
    );
    // Another client has its own budget.
    assert!(passes(&filter, &from("192.0.2.2:1000")));
}

#[test]
fn the_shortest_window_is_taken_first_and_a_refusal_spends_no_longer_window() {
    let host = FakeHost::new().at_ms(0).install();
    let config = json!({ "limits": [
        { "limit": 5, "window": "1h", "name": "hourly" },
        { "limit": 1, "window": "1s", "name": "burst" } ] });
    let filter = filter(config).unwrap();
    let request = from("192.0.2.1:1000");
    assert!(passes(&filter, &request));
    for _ in 0..3 {
        let refused = filter.on_request(&request.view());
        let refused = refused.response().unwrap();
        // Only the burst limit was reached: the hourly budget is not in the field.
        assert_eq!(refused.header_value("ratelimit"), Some("\"burst\";r=0;t=1"));
    }
    host.advance_ms(1_000);
    let decision = filter.on_request(&request.view());
    let fields = decision.changes().unwrap().response_headers();
    let ratelimit = fields.iter().find(|h| h.name == "ratelimit").unwrap();
    // One hourly unit went to the first request, one to this one; none to the refusals.
    assert_eq!(ratelimit.value, b"\"hourly\";r=3;t=3599, \"burst\";r=0;t=1");
}

#[test]
fn the_consumer_key_falls_back_to_the_client_ip() {
    let _host = FakeHost::new().install();
    let config = json!({ "limits": [{ "limit": 1, "window": "1h" }], "key": ["consumer"] });
    let filter = filter(config).unwrap();
    let ann = |client: &str| from(client).variable("consumer", "ann");
    assert!(passes(&filter, &ann("192.0.2.1:1")));
    // Same consumer from another address: same budget, spent.
    assert!(refuses(&filter, &ann("192.0.2.2:1")));
    // Anonymous requests draw on their address's budget.
    assert!(passes(&filter, &from("192.0.2.1:1")));
    assert!(refuses(&filter, &from("192.0.2.1:1")));
}

#[test]
fn forwarded_for_counts_only_through_a_trusted_proxy() {
    let _host = FakeHost::new().install();
    let config = json!({ "limits": [{ "limit": 1, "window": "1h" }],
                         "trusted_proxies": ["10.0.0.0/8"] });
    let filter = filter(config).unwrap();
    let via_proxy = |forwarded: &str| from("10.0.0.1:1").header("x-forwarded-for", forwarded);
    assert!(passes(&filter, &via_proxy("198.51.100.7")));
    // A spoofed left-most entry does not buy the same client a new budget.
    let spoofed = via_proxy("203.0.113.9, 198.51.100.7");
    assert!(refuses(&filter, &spoofed));
    assert!(passes(&filter, &via_proxy("198.51.100.8")));
}

#[test]
fn a_backend_outage_is_a_503_or_a_pass_as_configured() {
    let host = FakeHost::new().install();
    host.fail("limits", HostError::Unavailable("redis down".into()));
    let deny = filter(json!({ "limits": [{ "limit": 1, "window": "1s" }] })).unwrap();
    let unavailable = refused(&deny, &from("192.0.2.1:1"), 503, "rate_limit_unavailable");
    assert_eq!(unavailable.header_value("retry-after"), Some("1"));
    let allow = filter(json!({ "limits": [{ "limit": 1, "window": "1s" }],
                               "on_unavailable": "allow" }))
    .unwrap();
    assert!(passes(&allow, &from("192.0.2.1:1")));
    host.fail("limits", HostError::AccessDenied);
    refused(
        &allow,
        &from("192.0.2.1:1"),
        500,
        "rate_limit_misconfigured",
    );
}

#[test]
fn without_fields_nothing_is_added() {
    let _host = FakeHost::new().install();
    let config = json!({ "limits": [{ "limit": 1, "window": "1s" }], "headers": false });
    let decision = filter(config)
        .unwrap()
        .on_request(&from("192.0.2.1:1").view());
    assert!(decision.changes().unwrap().response_headers().is_empty());
}

#[test]
fn bad_configs_name_the_key() {
    let cases = [
        (json!({ "limits": [] }), "limits"),
        (
            json!({ "limits": [{ "limit": 1, "window": "fortnight" }] }),
            "limits[0].window",
        ),
        (
            json!({ "limits": [{ "limit": 0, "window": "1s" }] }),
            "limits[0]",
        ),
        (
            json!({ "limits": [{ "limit": 1, "window": "1s" }], "cost": 0 }),
            "cost",
        ),
        (
            json!({ "limits": [{ "limit": 1, "window": "1s" }], "key": ["cookie"] }),
            "unknown part",
        ),
        (
            json!({ "limits": [{ "limit": 1, "window": "1s" }], "trusted_proxies": ["x"] }),
            "trusted_proxies",
        ),
    ];
    for (config, expected) in cases {
        let error = filter(config.clone())
            .err()
            .unwrap_or_else(|| panic!("{config}"));
        assert!(error.contains(expected), "{config}: {error}");
    }
}
