//! The filter's rules, with the examples of RFC 9111 and RFC 5861 where they give some,
//! against the SDK's fake host (its clock, its cache, its fills).

use serde_json::json;
use weir_plugin_sdk::testing::{FakeHost, FakeRequest, FakeResponse, Installed};

use super::*;

fn filter(config: serde_json::Value) -> Cache {
    Cache::new(serde_json::from_value(config).expect("config")).expect("filter")
}

/// What one exchange did: the status and `x-cache` the client got, its body, and the
/// request the upstream got (when it got one).
struct Outcome {
    status: u16,
    x_cache: Option<String>,
    age: Option<String>,
    body: Vec<u8>,
    upstream: Option<FakeRequest>,
}

/// Runs `request` through the filter; the upstream answers `upstream`.
fn exchange(f: &Cache, request: &FakeRequest, upstream: &FakeResponse) -> Outcome {
    match f.on_request(&request.view()) {
        RequestDecision::Respond(r) => Outcome {
            status: r.status(),
            x_cache: r.header_value("x-cache").map(str::to_string),
            age: r.header_value("age").map(str::to_string),
            body: r.body_bytes().unwrap_or_default().to_vec(),
            upstream: None,
        },
        RequestDecision::Continue(changes) => {
            let sent = request.apply(&changes);
            let x_bypass = changes
                .response_headers()
                .iter()
                .find(|h| h.name == "x-cache");
            let carried = sent.in_response_phase();
            let decision = f.on_response(&carried.view(), &upstream.view());
            let view = upstream.view();
            let (status, x_cache, age, body) = match &decision {
                ResponseDecision::Replace(r) => (
                    r.status(),
                    r.header_value("x-cache").map(str::to_string),
                    r.header_value("age").map(str::to_string),
                    r.body_bytes().unwrap_or_default().to_vec(),
                ),
                ResponseDecision::Continue(c) => (
                    view.status(),
                    (c.set_header_value("x-cache").map(str::to_string)).or_else(|| {
                        x_bypass.map(|h| String::from_utf8_lossy(&h.value).into_owned())
                    }),
                    view.header("age"),
                    view.body().unwrap_or_default().to_vec(),
                ),
            };
            Outcome {
                status,
                x_cache,
                age,
                body,
                upstream: Some(sent),
            }
        }
    }
}

fn host() -> Installed {
    FakeHost::new().at_ms(1_000_000_000_000).install()
}

fn ok(cache_control: &str, body: &str) -> FakeResponse {
    FakeResponse::new(200)
        .header("cache-control", cache_control)
        .header("etag", "\"v1\"")
        .body(body)
}

#[test]
fn a_fresh_response_is_served_from_the_cache_with_its_age_until_max_age() {
    let host = host();
    let f = filter(json!({ "jitter": 0 }));
    let get = FakeRequest::get("/a");
    let first = exchange(&f, &get, &ok("max-age=60", "one"));
    assert_eq!(
        (first.status, first.x_cache.as_deref()),
        (200, Some("MISS"))
    );
    host.advance_ms(10_000);
    let hit = exchange(&f, &get, &ok("max-age=60", "two"));
    assert!(hit.upstream.is_none(), "answered from the cache");
    assert_eq!(
        (hit.x_cache.as_deref(), hit.body.as_slice()),
        (Some("HIT"), &b"one"[..])
    );
    assert_eq!(hit.age.as_deref(), Some("10"));
    // Past max-age: stale, revalidated with the stored validator (RFC 9111 §4.3.1).
    host.advance_ms(51_000);
    let stale = exchange(&f, &get, &FakeResponse::new(304).header("etag", "\"v1\""));
    let sent = stale.upstream.expect("went upstream");
    assert_eq!(
        sent.view().header("if-none-match").as_deref(),
        Some("\"v1\"")
    );
    assert_eq!(
        (stale.status, stale.x_cache.as_deref()),
        (200, Some("REVALIDATED"))
    );
    assert_eq!(stale.body, b"one");
    // The 304 renewed the freshness.
    let again = exchange(&f, &get, &ok("max-age=60", "three"));
    assert_eq!(again.x_cache.as_deref(), Some("HIT"));
}

#[test]
fn what_a_shared_cache_must_not_store_is_not_stored() {
    let host = host();
    let f = filter(json!({}));
    for (i, (cc, extra)) in [
        ("no-store", None),
        ("private, max-age=60", None),
        ("max-age=60", Some(("set-cookie", "sid=1"))),
    ]
    .into_iter()
    .enumerate()
    {
        let get = FakeRequest::get(&format!("/n{i}"));
        let mut response = ok(cc, "x");
        if let Some((name, value)) = extra {
            response = response.header(name, value);
        }
        assert_eq!(
            exchange(&f, &get, &response).x_cache.as_deref(),
            Some("MISS")
        );
        host.advance_ms(6_000); // past the pass of the released key
        let again = exchange(&f, &get, &response);
        assert!(again.upstream.is_some(), "{cc}: not stored");
    }
    // A request with credentials bypasses the cache unless configured.
    let authorized = FakeRequest::get("/n9").header("authorization", "Bearer t");
    let out = exchange(&f, &authorized, &ok("public, max-age=60", "x"));
    assert_eq!(out.x_cache.as_deref(), Some("BYPASS"));
    let f = filter(json!({ "cache_set_cookie": true, "cache_authorized": true }));
    let get = FakeRequest::get("/cookie");
    let response = ok("max-age=60", "x").header("set-cookie", "sid=1");
    exchange(&f, &get, &response);
    let hit = f.on_request(&get.view());
    let served = hit.response().expect("stored without the cookie");
    assert!(served.header_value("set-cookie").is_none());
    let out = exchange(&f, &authorized, &ok("public, max-age=60", "x"));
    assert_eq!(out.x_cache.as_deref(), Some("MISS"));
    assert_eq!(
        exchange(&f, &authorized, &ok("x", "y")).x_cache.as_deref(),
        Some("HIT")
    );
}

#[test]
fn s_maxage_overrides_max_age_and_expires_counts_without_either() {
    let host = host();
    let f = filter(json!({ "jitter": 0 }));
    let get = FakeRequest::get("/s");
    exchange(&f, &get, &ok("max-age=1, s-maxage=100", "x"));
    host.advance_ms(50_000);
    assert_eq!(
        exchange(&f, &get, &ok("", "y")).x_cache.as_deref(),
        Some("HIT")
    );
    let expires = httpdate::fmt_http_date(rules::at(1_000_000_000_000 + 50_000 + 30_000));
    let date = httpdate::fmt_http_date(rules::at(1_000_000_000_000 + 50_000));
    let get = FakeRequest::get("/e");
    let response = FakeResponse::new(200)
        .header("date", date.as_str())
        .header("expires", expires.as_str())
        .body("e");
    exchange(&f, &get, &response);
    host.advance_ms(20_000);
    assert_eq!(
        exchange(&f, &get, &response).x_cache.as_deref(),
        Some("HIT")
    );
    host.advance_ms(11_000);
    assert!(exchange(&f, &get, &response).upstream.is_some(), "expired");
}

#[test]
fn vary_keeps_variants_apart() {
    let _host = host();
    let f = filter(json!({}));
    let en = FakeRequest::get("/v").header("accept-language", "en");
    let de = FakeRequest::get("/v").header("accept-language", "de");
    let response = ok("max-age=60", "english").header("vary", "Accept-Language");
    exchange(&f, &en, &response);
    assert_eq!(exchange(&f, &en, &response).x_cache.as_deref(), Some("HIT"));
    assert!(
        exchange(&f, &de, &ok("max-age=60", "deutsch"))
            .upstream
            .is_some()
    );
    // Vary on credentials, or `*`, is never stored.
    let star = ok("max-age=60", "x").header("vary", "*");
    let get = FakeRequest::get("/star");
    exchange(&f, &get, &star);
    assert!(f.on_request(&get.view()).response().is_none());
}

#[test]
fn a_clients_precondition_is_answered_304_from_the_cache() {
    let _host = host();
    let f = filter(json!({}));
    let get = FakeRequest::get("/c");
    // The fill asks upstream for the full response, then answers the client's 304.
    let conditional = FakeRequest::get("/c").header("if-none-match", "W/\"v1\"");
    let first = exchange(&f, &conditional, &ok("max-age=60", "body"));
    let sent = first.upstream.expect("filled");
    assert!(
        sent.view().header("if-none-match").is_none(),
        "precondition kept back"
    );
    assert_eq!(
        (first.status, first.x_cache.as_deref()),
        (304, Some("MISS"))
    );
    let hit = exchange(&f, &conditional, &ok("", ""));
    assert_eq!((hit.status, hit.body.len()), (304, 0));
    assert_eq!(exchange(&f, &get, &ok("", "")).status, 200);
    let other = FakeRequest::get("/c").header("if-none-match", "\"v2\"");
    assert_eq!(exchange(&f, &other, &ok("", "")).status, 200);
}

#[test]
fn missing_keys_are_cached_briefly_and_other_misses_pass_straight_through() {
    let host = host();
    let f = filter(json!({ "negative_ttl_ms": 2000, "jitter": 0 }));
    let get = FakeRequest::get("/missing");
    let not_found = FakeResponse::new(404).body("no");
    exchange(&f, &get, &not_found);
    assert_eq!(
        exchange(&f, &get, &not_found).x_cache.as_deref(),
        Some("HIT")
    );
    host.advance_ms(2_001);
    assert!(exchange(&f, &get, &not_found).upstream.is_some());
    // Not storable: the key is passed, so that concurrent requests do not queue on it.
    let get = FakeRequest::get("/private");
    exchange(&f, &get, &ok("private", "p"));
    assert!(matches!(
        cache::fill("example.com/private", 1000),
        Turn::Pass
    ));
}

#[test]
fn stale_while_revalidate_serves_the_stale_entry_while_one_request_revalidates() {
    // RFC 5861 §3's example: max-age=600, stale-while-revalidate=30.
    let host = host();
    let f = filter(json!({ "jitter": 0 }));
    let get = FakeRequest::get("/swr");
    exchange(
        &f,
        &get,
        &ok("max-age=600, stale-while-revalidate=30", "old"),
    );
    host.advance_ms(610_000);
    // The first request in the window revalidates (it leads the key's fill) ...
    let leading = f.on_request(&get.view());
    let changes = leading.changes().expect("goes upstream");
    assert!(changes.set_header_value("if-none-match").is_some());
    // ... while the others get the stale entry at once.
    let meanwhile = exchange(&f, &get, &ok("", ""));
    assert_eq!(
        (meanwhile.x_cache.as_deref(), meanwhile.body.as_slice()),
        (Some("STALE"), &b"old"[..])
    );
    // Past the window the entry is not served stale.
    host.advance_ms(30_000);
    cache::release("example.com/swr", 0);
    assert!(
        exchange(&f, &get, &ok("max-age=600", "new"))
            .upstream
            .is_some()
    );
}

#[test]
fn stale_if_error_answers_an_upstream_failure_with_the_stale_entry() {
    // RFC 5861 §4's example: max-age=600, stale-if-error=1200.
    let host = host();
    let f = filter(json!({ "jitter": 0 }));
    let get = FakeRequest::get("/sie");
    exchange(&f, &get, &ok("max-age=600, stale-if-error=1200", "kept"));
    host.advance_ms(900_000);
    let failed = exchange(&f, &get, &FakeResponse::new(502).body("bad gateway"));
    assert_eq!(
        (failed.status, failed.x_cache.as_deref()),
        (200, Some("STALE"))
    );
    assert_eq!(failed.body, b"kept");
    host.advance_ms(1_000_000);
    let late = exchange(&f, &get, &FakeResponse::new(502).body("bad gateway"));
    assert_eq!(late.status, 502, "past the window the failure goes through");
    // must-revalidate forbids it.
    let get = FakeRequest::get("/strict");
    exchange(
        &f,
        &get,
        &ok("max-age=1, stale-if-error=1200, must-revalidate", "x"),
    );
    host.advance_ms(2_000);
    assert_eq!(exchange(&f, &get, &FakeResponse::new(503)).status, 503);
}

#[test]
fn a_successful_write_invalidates_its_target() {
    let _host = host();
    let f = filter(json!({}));
    let get = FakeRequest::get("/item");
    exchange(&f, &get, &ok("max-age=60", "v1"));
    let failed = exchange(&f, &FakeRequest::post("/item"), &FakeResponse::new(500));
    assert_eq!(failed.x_cache.as_deref(), Some("BYPASS"));
    assert_eq!(
        exchange(&f, &get, &ok("", "")).x_cache.as_deref(),
        Some("HIT"),
        "a failed write changes nothing"
    );
    exchange(
        &f,
        &FakeRequest::new("PUT", "/item"),
        &FakeResponse::new(204),
    );
    assert!(
        exchange(&f, &get, &ok("max-age=60", "v2"))
            .upstream
            .is_some()
    );
}

#[test]
fn ttl_overrides_defaults_and_jitter_shorten_freshness_by_at_most_the_fraction() {
    let host = host();
    let f = filter(json!({ "ttl_ms": 100_000, "jitter": 0.5 }));
    let get = FakeRequest::get("/j");
    exchange(&f, &get, &ok("max-age=1", "x"));
    let entry = Entry::decode(&cache::get("example.com/j").expect("stored")).expect("entry");
    let ttl = entry.fresh_until_ms - entry.response_ms;
    let expected = 100_000 - (100_000.0 * 0.5 * key::fraction("example.com/j")) as u64;
    assert_eq!(ttl, expected);
    assert!((50_000..=100_000).contains(&ttl));
    host.advance_ms(ttl - 1);
    assert_eq!(
        exchange(&f, &get, &ok("", "")).x_cache.as_deref(),
        Some("HIT")
    );
}

#[test]
fn keys_sort_and_select_query_parameters_and_name_headers() {
    let req = FakeRequest::get("/p?b=2&a=1&utm=x").header("accept-language", "en");
    let key = |config: serde_json::Value| {
        let config: Config = serde_json::from_value(json!({ "key": config })).expect("config");
        key::of(&req.view(), &config.key)
    };
    assert_eq!(key(json!({})), "example.com/p?a=1&b=2&utm=x");
    assert_eq!(key(json!({ "query": "none" })), "example.com/p");
    assert_eq!(key(json!({ "query": ["b", "a"] })), "example.com/p?a=1&b=2");
    assert_eq!(
        key(json!({ "query": "none", "headers": ["Accept-Language"] })),
        "example.com/p#accept-language=en"
    );
}

#[test]
fn bad_configs_are_refused_naming_the_key() {
    for (config, says) in [
        (json!({ "jitter": 0.9 }), "jitter"),
        (json!({ "key": { "query": "some" } }), "key.query"),
        (
            json!({ "key": { "headers": ["bad header"] } }),
            "key.headers",
        ),
    ] {
        let config: Config = serde_json::from_value(config).expect("parses");
        let error = Cache::new(config).err().expect("refused");
        assert!(error.contains(says), "{error}");
    }
    let unknown = serde_json::from_value::<Config>(json!({ "ttl": 5 }));
    assert!(unknown.is_err());
}
