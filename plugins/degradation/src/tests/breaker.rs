//! The circuit breaker's rules and its cycle: closed → open → half-open → closed.

use serde_json::json;
use weir_plugin_sdk::HostError;
use weir_plugin_sdk::host::upstreams::CircuitState;
use weir_plugin_sdk::prelude::*;
use weir_plugin_sdk::testing::FakeHost;

use super::{exchange, filter, request, scope, stats};

#[test]
fn the_failure_rate_trips_only_past_min_calls() {
    let host = FakeHost::new().install();
    let filter = filter(json!({ "breaker": { "min_calls": 10, "failure_rate": 0.5 } })).unwrap();
    // Nine calls, all failed: too few for a rate.
    host.set_stats(&scope(), stats(9, 9, 0, 0));
    assert_eq!(exchange(&filter, &request(), 200), None);
    // Ten calls, half failed: the rate is met.
    host.set_stats(&scope(), stats(10, 5, 0, 0));
    let refused = exchange(&filter, &request(), 200).expect("refused");
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.header_value("x-weir-error"), Some("circuit_open"));
    assert_eq!(
        refused.header_value("x-weir-degraded"),
        Some("circuit-open")
    );
    assert_eq!(refused.header_value("retry-after"), Some("5"));
    assert_eq!(host.circuit_of(&scope()).state, CircuitState::Open);
}

#[test]
fn slow_calls_count_only_with_a_slow_call_rule() {
    let host = FakeHost::new().install();
    host.set_stats(&scope(), stats(10, 0, 6, 0));
    let without = filter(json!({})).unwrap();
    assert_eq!(exchange(&without, &request(), 200), None);
    let with = filter(json!({ "breaker": { "slow_call": "200ms", "slow_call_rate": 0.6 } }));
    assert!(exchange(&with.unwrap(), &request(), 200).is_some());
}

#[test]
fn failures_in_a_row_trip_whatever_the_window() {
    let host = FakeHost::new().install();
    host.set_stats(&scope(), stats(3, 3, 0, 3));
    let filter = filter(json!({ "breaker": { "consecutive_failures": 3 } })).unwrap();
    assert!(exchange(&filter, &request(), 200).is_some());
}

#[test]
fn probes_close_the_circuit_and_a_failed_probe_doubles_the_cool_down() {
    let host = FakeHost::new().install();
    let config = json!({ "breaker": { "min_calls": 1, "cool_down": "5s",
                                      "max_cool_down": "1m", "half_open_probes": 2 } });
    let filter = filter(config).unwrap();
    host.set_stats(&scope(), stats(1, 1, 0, 1));
    assert!(exchange(&filter, &request(), 200).is_some());
    host.set_stats(&scope(), stats(0, 0, 0, 0));
    // The cool-down: refused, with the time left.
    host.advance_ms(4_000);
    let refused = exchange(&filter, &request(), 200).unwrap();
    assert_eq!(refused.header_value("retry-after"), Some("1"));
    // Over: a probe goes through, and fails; the circuit opens for twice as long.
    host.advance_ms(1_000);
    assert_eq!(exchange(&filter, &request(), 502), None);
    assert_eq!(host.circuit_of(&scope()).state, CircuitState::Open);
    let refused = exchange(&filter, &request(), 200).unwrap();
    assert_eq!(refused.header_value("retry-after"), Some("10"));
    // Two good probes close it.
    host.advance_ms(10_000);
    assert_eq!(exchange(&filter, &request(), 200), None);
    assert_eq!(host.circuit_of(&scope()).state, CircuitState::HalfOpen);
    assert_eq!(exchange(&filter, &request(), 200), None);
    assert_eq!(host.circuit_of(&scope()).state, CircuitState::Closed);
}

#[test]
fn the_probe_mark_is_private_to_the_filter() {
    let host = FakeHost::new().install();
    let filter = filter(json!({ "breaker": { "min_calls": 1 } })).unwrap();
    host.set_stats(&scope(), stats(1, 1, 0, 1));
    assert!(exchange(&filter, &request(), 200).is_some());
    host.advance_ms(5_000);
    let decision = filter.on_request(&request().view());
    let carried = request().apply(decision.changes().unwrap());
    // The filter reads it back; no filter's view shows it.
    let view = carried.view();
    assert!(view.variables().is_empty());
    assert_eq!(view.variable("degradation.probe"), None);
    let mark: Option<serde_json::Value> = view.context();
    assert_eq!(mark, Some(json!({ "probe": "api" })));
}

#[test]
fn probes_that_never_report_reopen_the_circuit() {
    let host = FakeHost::new().install();
    let config = json!({ "breaker": { "min_calls": 1, "half_open_probes": 1,
                                      "probe_timeout": "30s" } });
    let filter = filter(config).unwrap();
    host.set_stats(&scope(), stats(1, 1, 0, 1));
    assert!(exchange(&filter, &request(), 200).is_some());
    host.advance_ms(5_000);
    // The probe leaves and never reports; the others wait for it.
    assert!(filter.on_request(&request().view()).changes().is_some());
    let waiting = exchange(&filter, &request(), 200).unwrap();
    assert_eq!(waiting.header_value("x-weir-error"), Some("circuit_open"));
    host.advance_ms(30_000);
    assert!(exchange(&filter, &request(), 200).is_some());
    assert_eq!(host.circuit_of(&scope()).state, CircuitState::Open);
    assert_eq!(host.circuit_of(&scope()).trips, 2);
}

#[test]
fn a_route_scope_watches_the_route() {
    let host = FakeHost::new().install();
    let filter = filter(json!({ "breaker": { "scope": "route", "min_calls": 1 } })).unwrap();
    host.set_stats(&scope(), stats(1, 1, 0, 1));
    assert_eq!(exchange(&filter, &request(), 200), None);
    let route = weir_plugin_sdk::host::upstreams::Scope::Route("route".into());
    host.set_stats(&route, stats(1, 1, 0, 1));
    assert!(exchange(&filter, &request(), 200).is_some());
}

#[test]
fn a_missing_grant_is_a_500_and_an_outage_steps_aside() {
    let host = FakeHost::new().install();
    let filter = filter(json!({})).unwrap();
    host.fail("upstreams", HostError::AccessDenied);
    let refused = exchange(&filter, &request(), 200).unwrap();
    assert_eq!(refused.status(), 500);
    assert_eq!(
        refused.header_value("x-weir-error"),
        Some("degradation_misconfigured")
    );
    host.fail("upstreams", HostError::Unavailable("?".into()));
    assert_eq!(exchange(&filter, &request(), 200), None);
}

#[test]
fn bad_configs_name_the_key_in_both_spellings() {
    let cases = [
        (
            json!({ "breaker": { "failure_rate": 2.0 } }),
            "failure_rate",
        ),
        (
            json!({ "breaker": { "open_ms": 5000, "max_open_ms": 1000 } }),
            "max_open_ms",
        ),
        (
            json!({ "breaker": { "cool_down": "5s", "max_cool_down": "1s" } }),
            "max_cool_down",
        ),
        (
            json!({ "breaker": { "sliding_window": "0s" } }),
            "sliding_window",
        ),
        (json!({ "breaker": { "window": 5 } }), "unknown field"),
        (
            json!({ "breaker": { "cool_down": "soon" } }),
            "not a duration",
        ),
    ];
    for (config, expected) in cases {
        let error = filter(config.clone())
            .err()
            .unwrap_or_else(|| panic!("{config}"));
        assert!(error.contains(expected), "{config}: {error}");
    }
}
