//! The filter's decisions, with the fake host's limits and kv.

use serde_json::{Value, json};
use weir_plugin_sdk::HostError;
use weir_plugin_sdk::testing::{FakeHost, FakeRequest, refused};

use super::*;

fn filter(config: Value) -> Result<BotRules, String> {
    BotRules::new(serde_json::from_value(config).map_err(|e| e.to_string())?)
}

fn passes(filter: &BotRules, request: &FakeRequest) -> bool {
    filter.on_request(&request.view()).changes().is_some()
}

/// A request as a browser sends it, from `client`.
fn browser(client: &str) -> FakeRequest {
    FakeRequest::get("/")
        .client(client)
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        )
        .header("accept", "text/html,*/*;q=0.8")
        .header("accept-language", "en-GB,en;q=0.5")
        .header("accept-encoding", "gzip, deflate, br")
}

/// The status of each of `n` requests.
fn statuses(filter: &BotRules, request: &FakeRequest, n: usize) -> Vec<u16> {
    let status = |_| match filter.on_request(&request.view()).response() {
        None => 200,
        Some(response) => response.status(),
    };
    (0..n).map(status).collect()
}

#[test]
fn denied_user_agents_are_refused_in_any_case_unless_allowed() {
    let f = filter(json!({
        "deny_user_agents": ["curl/", "^python-requests", "bot"],
        "allow_user_agents": ["UptimeRobot/"],
    }))
    .unwrap();
    for agent in [
        "curl/8.5.0",
        "CURL/7.1",
        "python-requests/2.31",
        "SomeBot/1.0",
    ] {
        let request = FakeRequest::get("/").header("user-agent", agent);
        let response = refused(&f, &request, 403, "bot_denied");
        let body: Value = serde_json::from_slice(response.body_bytes().unwrap()).unwrap();
        assert_eq!(body["message"], "the User-Agent is denied", "{agent}");
    }
    let monitor = FakeRequest::get("/").header(
        "user-agent",
        "Mozilla/5.0 (compatible; UptimeRobot/2.0; bot)",
    );
    assert!(passes(&f, &monitor), "the allow list wins");
    assert!(passes(&f, &browser("192.0.2.1:1")));
}

#[test]
fn an_empty_or_missing_user_agent_is_refused_by_default() {
    let f = filter(json!({ "deny_user_agents": ["curl"] })).unwrap();
    refused(&f, &FakeRequest::get("/"), 403, "bot_denied");
    let blank = FakeRequest::get("/").header("user-agent", "  ");
    refused(&f, &blank, 403, "bot_denied");
    let f =
        filter(json!({ "deny_user_agents": ["curl"], "deny_empty_user_agent": false })).unwrap();
    assert!(passes(&f, &FakeRequest::get("/")));
}

#[test]
fn required_headers_and_the_browser_preset() {
    let f = filter(json!({ "require_headers": ["browser", "Sec-Fetch-Mode"] })).unwrap();
    let full = browser("192.0.2.1:1").header("sec-fetch-mode", "navigate");
    assert!(passes(&f, &full));
    let f = filter(json!({ "require_headers": ["browser"] })).unwrap();
    assert!(passes(&f, &browser("192.0.2.1:1")));
    let scripted = FakeRequest::get("/")
        .header("user-agent", "Mozilla/5.0")
        .header("accept", "*/*");
    let response = refused(&f, &scripted, 403, "bot_denied");
    let body: Value = serde_json::from_slice(response.body_bytes().unwrap()).unwrap();
    assert_eq!(body["message"], "the accept-encoding header is missing");
    // A known monitor on the allow list needs none of them.
    let f = filter(json!({ "require_headers": ["browser"], "allow_user_agents": ["^Pingdom"] }))
        .unwrap();
    let monitor = FakeRequest::get("/").header("user-agent", "Pingdom.com_bot_version_1.4");
    assert!(passes(&f, &monitor));
}

#[test]
fn the_budget_answers_429_with_retry_after_per_client() {
    let _host = FakeHost::new().at_ms(60_000).install();
    let f = filter(json!({ "budget": { "limit": 2, "window": "1m" } })).unwrap();
    let request = browser("192.0.2.1:1");
    assert_eq!(statuses(&f, &request, 4), [200, 200, 429, 429]);
    let response = refused(&f, &request, 429, "rate_limited");
    assert_eq!(response.header_value("retry-after"), Some("60"));
    assert!(
        passes(&f, &browser("192.0.2.2:1")),
        "another client, another budget"
    );
}

#[test]
fn strikes_escalate_to_a_deny_that_ends() {
    let host = FakeHost::new().at_ms(60_000).install();
    let f = filter(json!({
        "budget": { "limit": 2, "window": "1m" },
        "escalation": { "strikes": 3, "window": "5m", "deny_for": "10m" },
    }))
    .unwrap();
    let request = browser("192.0.2.1:1");
    assert_eq!(
        statuses(&f, &request, 8),
        [200, 200, 429, 429, 429, 403, 403, 403]
    );
    let response = refused(&f, &request, 403, "bot_denied");
    assert!(response.header_value("retry-after").is_none());
    assert!(
        passes(&f, &browser("192.0.2.2:1")),
        "only that client is denied"
    );
    // The budget's window turns, the deny still holds; then it ends.
    host.advance_ms(60_000);
    refused(&f, &request, 403, "bot_denied");
    host.advance_ms(540_000);
    assert_eq!(statuses(&f, &request, 3), [200, 200, 429], "a fresh start");
}

#[test]
fn strikes_outside_their_window_do_not_add_up() {
    let host = FakeHost::new().at_ms(0).install();
    let f = filter(json!({
        "budget": { "limit": 1, "window": "1s" },
        "escalation": { "strikes": 2, "window": "1s", "deny_for": "1m" },
    }))
    .unwrap();
    let request = browser("192.0.2.1:1");
    assert_eq!(statuses(&f, &request, 2), [200, 429]);
    host.advance_ms(1_000);
    assert_eq!(
        statuses(&f, &request, 2),
        [200, 429],
        "the first strike expired"
    );
    assert_eq!(
        statuses(&f, &request, 1),
        [429],
        "the second strike in this window"
    );
    assert_eq!(statuses(&f, &request, 1), [403]);
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_client_has_the_budget() {
    let _host = FakeHost::new().at_ms(0).install();
    let f = filter(json!({
        "budget": { "limit": 1, "window": "1m" },
        "trusted_proxies": ["10.0.0.1"],
    }))
    .unwrap();
    let via = |client: &str| browser("10.0.0.1:5000").header("x-forwarded-for", client);
    assert!(passes(&f, &via("198.51.100.1")));
    assert!(passes(&f, &via("198.51.100.2")));
    refused(&f, &via("198.51.100.1"), 429, "rate_limited");
}

#[test]
fn an_unavailable_backend_is_503_unless_allowed_and_a_missing_grant_is_500() {
    let host = FakeHost::new().install();
    let config = json!({ "budget": { "limit": 1, "window": "1m" },
                         "escalation": { "strikes": 1, "deny_for": "1m" } });
    let f = filter(config.clone()).unwrap();
    host.fail("limits", HostError::Unavailable("down".into()));
    let response = refused(&f, &browser("192.0.2.1:1"), 503, "bot_rules_unavailable");
    assert_eq!(response.header_value("retry-after"), Some("1"));
    host.recover("limits");
    host.fail("kv", HostError::AccessDenied);
    refused(&f, &browser("192.0.2.1:1"), 500, "bot_rules_misconfigured");
    host.fail("kv", HostError::Unavailable("down".into()));
    let mut lenient = config;
    lenient["on_unavailable"] = json!("allow");
    assert!(passes(&filter(lenient).unwrap(), &browser("192.0.2.1:1")));
}

#[test]
fn bad_configs_are_refused_naming_the_key() {
    let refused_with = |config: Value, key: &str| {
        let error = filter(config).err().expect("refused");
        assert!(error.contains(key), "{error} should name {key}");
    };
    refused_with(json!({ "deny_user_agents": ["("] }), "deny_user_agents[0]");
    refused_with(
        json!({ "deny_user_agents": ["a"], "allow_user_agents": ["x", "["] }),
        "allow_user_agents[1]",
    );
    refused_with(
        json!({ "require_headers": ["bad header"] }),
        "require_headers",
    );
    refused_with(
        json!({ "budget": { "limit": 0, "window": "1m" } }),
        "budget.limit",
    );
    refused_with(
        json!({ "budget": { "limit": 1, "window": "soon" } }),
        "budget.window",
    );
    refused_with(
        json!({ "budget": { "limit": 1, "window": "0s" } }),
        "budget.window",
    );
    refused_with(
        json!({ "deny_user_agents": ["a"], "escalation": {} }),
        "escalation",
    );
    let budget = json!({ "limit": 1, "window": "1s" });
    refused_with(
        json!({ "budget": budget, "escalation": { "strikes": 0 } }),
        "escalation.strikes",
    );
    refused_with(
        json!({ "budget": budget, "escalation": { "deny_for": "x" } }),
        "escalation.deny_for",
    );
    refused_with(
        json!({ "budget": budget, "trusted_proxies": ["nope"] }),
        "trusted_proxies",
    );
    refused_with(json!({ "deny_empty_user_agent": false }), "empty filter");
    refused_with(
        json!({ "budget": budget, "deny_agents": [] }),
        "deny_agents",
    );
}
