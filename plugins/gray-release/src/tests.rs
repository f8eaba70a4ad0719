//! The filter's decisions on fake requests: the bucket math, the monotony of a weight
//! change, the sticky keys, the overrides, the changes it returns and its config refusals.

use serde_json::{Value, json};
use weir_plugin_sdk::testing::FakeRequest;

use super::*;
use crate::bucket::{BUCKETS, bucket, seed};

fn filter(config: Value) -> Result<GrayRelease, String> {
    GrayRelease::new(serde_json::from_value(config).map_err(|e| e.to_string())?)
}

/// A filter sticky on the `x-user` header with `weight`, its other settings from `extra`.
fn by_user(weight: f64, extra: Value) -> GrayRelease {
    let mut config = json!({ "canary": "v2", "weight": weight, "sticky": "header:x-user" });
    if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    filter(config).unwrap()
}

fn user(id: &str) -> FakeRequest {
    FakeRequest::get("/").header("x-user", id)
}

fn side(filter: &GrayRelease, request: &FakeRequest) -> Side {
    filter.decide(&request.view()).0
}

/// The users `0..n` (as `user-<i>`) that `filter` sends to the canary.
fn canary_users(filter: &GrayRelease, n: usize) -> Vec<bool> {
    (0..n)
        .map(|i| side(filter, &user(&format!("user-{i}"))) == Side::Canary)
        .collect()
}

#[test]
fn buckets_are_stable_in_range_and_even() {
    let s = seed("rollout");
    // Pinned: a user's bucket must never change between builds, or users would flap.
    assert_eq!(bucket(s, b"user-1"), bucket(seed("rollout"), b"user-1"));
    // XXH3's reference vector (the empty input, seed 0): the hash is the specified one.
    assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2D06_8005_38D3_94C2);
    assert_eq!(bucket(seed("rollout"), b"user-1"), 566);
    let mut tens = [0u32; 10];
    for i in 0..100_000 {
        let b = bucket(s, format!("user-{i}").as_bytes());
        assert!(b < BUCKETS);
        tens[(b / 1000) as usize] += 1;
    }
    // Each tenth of the buckets holds 10% of the keys, within 0.5 points.
    for n in tens {
        assert!((9_500..=10_500).contains(&n), "{tens:?}");
    }
}

#[test]
fn raising_the_weight_moves_only_stable_users_and_only_as_many_as_it_must() {
    let (at5, at10) = (by_user(5.0, json!({})), by_user(10.0, json!({})));
    let n = 20_000;
    let (before, after) = (canary_users(&at5, n), canary_users(&at10, n));
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(
            !b || *a,
            "user-{i} was on the canary at 5% and left it at 10%"
        );
    }
    let count = |v: &[bool]| v.iter().filter(|c| **c).count() as f64 / n as f64;
    assert!((count(&before) - 0.05).abs() < 0.005, "{}", count(&before));
    assert!((count(&after) - 0.10).abs() < 0.005, "{}", count(&after));
    // And lowering it back returns exactly the users of before.
    assert_eq!(canary_users(&by_user(5.0, json!({})), n), before);
}

#[test]
fn fractions_of_a_percent_and_the_ends() {
    let n = 40_000;
    let share = |w: f64| {
        let users = canary_users(&by_user(w, json!({})), n);
        users.iter().filter(|c| **c).count() as f64 / n as f64
    };
    assert!((share(0.25) - 0.0025).abs() < 0.001);
    assert_eq!(share(0.0), 0.0);
    assert_eq!(share(100.0), 1.0);
}

#[test]
fn salts_slice_users_independently() {
    let n = 20_000;
    let a = canary_users(&by_user(10.0, json!({ "salt": "checkout" })), n);
    let b = canary_users(&by_user(10.0, json!({ "salt": "search" })), n);
    let both = a.iter().zip(&b).filter(|(a, b)| **a && **b).count() as f64 / n as f64;
    // Independent slices overlap by 10% of 10%, not by 10%.
    assert!((both - 0.01).abs() < 0.004, "{both}");
    // The default salt is the canary's name.
    let named = canary_users(&by_user(10.0, json!({ "salt": "v2" })), n);
    assert_eq!(canary_users(&by_user(10.0, json!({})), n), named);
}

#[test]
fn every_sticky_key_keeps_its_user_on_one_side() {
    let cases = [
        (json!("header:X-User"), user("u-42")),
        (
            json!("cookie:uid"),
            FakeRequest::get("/").header("cookie", "a=1; uid=\"u-42\"; b=2"),
        ),
        (
            json!("consumer"),
            FakeRequest::get("/").variable("consumer", "u-42"),
        ),
        (
            json!("client_ip"),
            FakeRequest::get("/").client("203.0.113.7:4000"),
        ),
    ];
    for (sticky, request) in cases {
        // At 50% one of two sides; asked 100 times with new request ids, always the same.
        let f = filter(json!({ "canary": "v2", "weight": 50, "sticky": sticky })).unwrap();
        let first = f.decide(&request.view());
        assert_eq!(first.1, Reason::Weight, "{sticky}");
        for i in 0..100 {
            let again = request.clone().id(&format!("req-{i}"));
            assert_eq!(f.decide(&again.view()), first, "{sticky}");
        }
    }
    // The same user through a trusted proxy and directly: one side.
    let f = filter(json!({ "canary": "v2", "weight": 50, "sticky": "client_ip",
                           "trusted_proxies": ["127.0.0.1"] }))
    .unwrap();
    let direct = FakeRequest::get("/").client("203.0.113.7:4000");
    let proxied = FakeRequest::get("/")
        .client("127.0.0.1:5000")
        .header("x-forwarded-for", "203.0.113.7");
    let mapped = FakeRequest::get("/").client("[::ffff:203.0.113.7]:4000");
    assert_eq!(side(&f, &direct), side(&f, &proxied));
    assert_eq!(side(&f, &direct), side(&f, &mapped));
}

#[test]
fn requests_without_a_key_go_to_stable_or_by_weight_per_request() {
    let stable = by_user(50.0, json!({}));
    for i in 0..100 {
        let anonymous = FakeRequest::get("/").id(&format!("req-{i}"));
        assert_eq!(
            stable.decide(&anonymous.view()),
            (Side::Stable, Reason::Unkeyed)
        );
    }
    assert_eq!(
        side(&stable, &user("")),
        Side::Stable,
        "an empty key is none"
    );
    let random = by_user(50.0, json!({ "unkeyed": "random" }));
    let canary = (0..1000)
        .filter(|i| side(&random, &FakeRequest::get("/").id(&format!("req-{i}"))) == Side::Canary)
        .count();
    assert!((400..=600).contains(&canary), "{canary}");
}

#[test]
fn overrides_decide_before_the_weight_header_first() {
    let f = by_user(
        0.0,
        json!({ "override": { "header": "X-Gray", "cookie": "gray" },
                "canary_consumers": ["qa"] }),
    );
    let everyone = by_user(100.0, json!({ "override": { "header": "x-gray" } }));
    let decide = |f: &GrayRelease, r: FakeRequest| f.decide(&r.view());
    assert_eq!(
        decide(&f, user("u").header("x-gray", "Canary")),
        (Side::Canary, Reason::Header)
    );
    assert_eq!(
        decide(&everyone, user("u").header("x-gray", "stable")),
        (Side::Stable, Reason::Header)
    );
    assert_eq!(
        decide(&f, user("u").header("cookie", "gray=canary")),
        (Side::Canary, Reason::Cookie)
    );
    assert_eq!(
        decide(&f, user("u").variable("consumer", "qa")),
        (Side::Canary, Reason::Consumer)
    );
    // The header wins over the cookie and the consumer list; other values are ignored.
    let both = user("u")
        .header("x-gray", "stable")
        .header("cookie", "gray=canary")
        .variable("consumer", "qa");
    assert_eq!(decide(&f, both), (Side::Stable, Reason::Header));
    assert_eq!(
        decide(&f, user("u").header("x-gray", "beta")),
        (Side::Stable, Reason::Weight)
    );
    assert_eq!(
        decide(&f, user("u").variable("consumer", "other")),
        (Side::Stable, Reason::Weight)
    );
}

#[test]
fn the_changes_name_the_upstream_the_variables_and_the_header_when_asked() {
    let canary = by_user(100.0, json!({}));
    let decision = canary.on_request(&user("u").view());
    let changes = decision.changes().unwrap();
    assert_eq!(changes.upstream(), Some("v2"));
    assert_eq!(changes.variable(SIDE_VARIABLE), Some("canary"));
    assert_eq!(changes.variable(REASON_VARIABLE), Some("weight"));
    assert!(
        changes.response_headers().is_empty(),
        "no header unless configured"
    );
    // Stable with no `stable` named: the route's own upstream is left alone.
    let stable = by_user(0.0, json!({ "response_header": "X-Weir-Gray" }));
    let decision = stable.on_request(&user("u").view());
    let changes = decision.changes().unwrap();
    assert_eq!(changes.upstream(), None);
    assert_eq!(changes.variable(SIDE_VARIABLE), Some("stable"));
    let header = &changes.response_headers()[0];
    assert_eq!(
        (header.name.as_str(), &header.value[..]),
        ("x-weir-gray", &b"stable"[..])
    );
    let named = by_user(0.0, json!({ "stable": "v1" }));
    let decision = named.on_request(&user("u").view());
    assert_eq!(decision.changes().unwrap().upstream(), Some("v1"));
}

#[test]
fn bad_configs_are_refused_naming_the_key() {
    let base = json!({ "canary": "v2", "weight": 5, "sticky": "consumer" });
    let with = |key: &str, value: Value| {
        let mut config = base.clone();
        config[key] = value;
        filter(config).err().unwrap_or_default()
    };
    let many: Vec<String> = (0..=config::MAX_CANARY_CONSUMERS)
        .map(|i| format!("c{i}"))
        .collect();
    let cases = [
        (with("weight", json!(100.5)), "weight"),
        (with("weight", json!(-1)), "weight"),
        (with("weight", json!(5.555)), "weight"),
        (with("canary", json!(" ")), "canary"),
        (with("stable", json!("v2")), "stable"),
        (with("sticky", json!("query:uid")), "sticky"),
        (with("sticky", json!("header:x user")), "sticky"),
        (with("sticky", json!("cookie:")), "sticky"),
        (
            with("trusted_proxies", json!(["127.0.0.1"])),
            "trusted_proxies",
        ),
        (with("unkeyed", json!("canary")), "unkeyed"),
        (
            with("override", json!({ "header": "bad header" })),
            "override.header",
        ),
        (with("override", json!({ "query": "gray" })), "query"),
        (with("response_header", json!("x:y")), "response_header"),
        (with("canary_consumers", json!([""])), "canary_consumers"),
        (with("canary_consumers", json!(many)), "canary_consumers"),
        (with("weights", json!(5)), "weights"),
    ];
    for (error, key) in cases {
        assert!(error.contains(key), "{key}: {error:?}");
    }
    assert!(
        filter(json!({ "canary": "v2", "sticky": "consumer" })).is_err(),
        "weight is required"
    );
    assert!(
        filter(json!({ "weight": 5, "sticky": "consumer" })).is_err(),
        "canary is required"
    );
    let good = json!({ "canary": "v2", "weight": 0.01, "sticky": "client_ip",
                       "trusted_proxies": ["10.0.0.0/8"] });
    assert_eq!(filter(good).unwrap().settings.weight, 1);
}
