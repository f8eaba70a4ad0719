//! The `gray-release` filter end to end, with two real upstreams: 10,000 users split by
//! weight within two points of it, every user kept on its side, the overrides (header,
//! cookie, consumer list) honoured, a reload from 5% to 10% that moves only stable users,
//! and the admin split and the metrics agreeing with what the upstreams counted.

use std::ops::Range;

use futures_util::StreamExt;
use weir_tests::plugins::{AUTH, GRAY_RELEASE};
use weir_tests::{TestClient, TestGateway, TestUpstream, get};

/// Requests in flight at once: enough to keep the gateway busy, over keep-alive.
const CONCURRENCY: usize = 32;

/// `sha256("k-alice-1")` and `sha256("k-bob-1")`: the API keys of two consumers.
const ALICE_KEY_SHA256: &str = "e679a4a0828e659f7795b35af0cd7b44f52645fa251e9c7e2b655a0fa891c127";
const BOB_KEY_SHA256: &str = "06d1750eca14b7b76ad8c33d28d536e073e0afc7e8958422ba9aab805d0ea506";

/// The stable (`v1`) and canary (`v2`) upstreams.
struct Sides {
    stable: TestUpstream,
    canary: TestUpstream,
}

impl Sides {
    async fn start() -> Self {
        Self {
            stable: TestUpstream::start("v1").await,
            canary: TestUpstream::start("v2").await,
        }
    }

    /// The upstreams' config, then `routes`.
    fn config(&self, routes: &str) -> String {
        format!(
            "[upstreams.v1]\ntargets = [\"{}\"]\n[upstreams.v2]\ntargets = [\"{}\"]\n{routes}",
            self.stable.addr, self.canary.addr
        )
    }
}

/// A filter's deadline: far above its cost (microseconds), so that a loaded test machine
/// instantiating a new snapshot's first instances does not time it out.
const DEADLINE: &str = "deadline_ms = 3000\n";

/// A route `/<name>` to `v1` whose gray-release filter has `config` (TOML inline table
/// entries) after `filters_before`.
fn route(name: &str, filters_before: &str, config: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\nupstream = \"v1\"\nmatch.path_prefix = \"/{name}\"\n\
         {filters_before}[[routes.filters]]\nplugin = \"gray-release.wasm\"\n{DEADLINE}\
         config = {{ {config} }}\n"
    )
}

/// The shop's rollout at `weight` percent, sticky on `x-user`.
fn shop(weight: f64) -> String {
    route(
        "shop",
        "",
        &format!(
            "canary = \"v2\", weight = {weight}, sticky = \"header:x-user\", \
             response_header = \"x-weir-gray\""
        ),
    )
}

/// Sends `GET /shop` as each user of `users`, `CONCURRENCY` at a time over one keep-alive
/// client; whether each landed on the canary (the upstream that answered), in user order.
/// Every answer is a 200 whose `x-weir-gray` names the side that answered.
async fn on_canary(client: &TestClient, gw: &TestGateway, users: Range<usize>) -> Vec<bool> {
    futures_util::stream::iter(users)
        .map(|i| async move {
            let user = format!("user-{i}");
            let reply = client
                .send(get(&gw.url("/shop"), &[("x-user", &user)]))
                .await;
            assert_eq!(reply.status, 200, "{user}: {:?}", reply.body);
            let canary = match reply.header("x-upstream") {
                Some("v2") => true,
                Some("v1") => false,
                other => panic!("{user} answered by {other:?}"),
            };
            let told = if canary { "canary" } else { "stable" };
            assert_eq!(reply.header("x-weir-gray"), Some(told), "{user}");
            canary
        })
        .buffered(CONCURRENCY)
        .collect()
        .await
}

fn share(canary: &[bool]) -> f64 {
    canary.iter().filter(|c| **c).count() as f64 / canary.len() as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_users_split_by_weight_each_kept_on_its_side() {
    let sides = Sides::start().await;
    let gw = TestGateway::start(
        &sides.config(&shop(5.0)),
        &[("gray-release.wasm", GRAY_RELEASE)],
    )
    .await;
    let client = TestClient::default();
    let users = 0..10_000;
    let first = on_canary(&client, &gw, users.clone()).await;
    let observed = share(&first);
    assert!((observed - 0.05).abs() <= 0.02, "canary share {observed}");
    // Asked again, every user lands where it landed.
    let again = on_canary(&client, &gw, users).await;
    assert!(first == again, "a user changed sides");

    // The upstreams, the admin split and the metrics count the same calls.
    let canary_calls = 2 * first.iter().filter(|c| **c).count();
    assert_eq!(sides.canary.hits(), canary_calls);
    assert_eq!(sides.stable.hits(), 20_000 - canary_calls);
    let split = client.get(&gw.admin_url("/routes/shop/split")).await.json();
    assert_eq!(split["route"], "shop");
    assert_eq!(split["upstream"], "v1");
    assert_eq!(split["requests"], 20_000);
    for (entry, upstream) in [(0, &sides.stable), (1, &sides.canary)] {
        let side = &split["upstreams"][entry];
        assert_eq!(side["name"], upstream.name.as_str(), "{split}");
        assert_eq!(side["requests"], upstream.hits() as u64, "{split}");
        assert_eq!(side["errors"], 0, "{split}");
        let share = side["share"].as_f64().unwrap_or(-1.0);
        assert!(
            (share - upstream.hits() as f64 / 20_000.0).abs() < 1e-9,
            "{split}"
        );
        let latency = &side["latency_ms"];
        assert!(latency["p50"].as_f64().is_some_and(|p| p > 0.0), "{split}");
        assert!(
            latency["p99"].as_f64() >= latency["p50"].as_f64(),
            "{split}"
        );
    }
    let metrics = client.get(&gw.admin_url("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body);
    for (upstream, hits) in [("v1", sides.stable.hits()), ("v2", sides.canary.hits())] {
        for line in [
            format!(
                "weir_route_upstream_requests_total{{route=\"shop\",upstream=\"{upstream}\",outcome=\"ok\"}} {hits}"
            ),
            format!(
                "weir_route_upstream_requests_total{{route=\"shop\",upstream=\"{upstream}\",outcome=\"error\"}} 0"
            ),
            format!(
                "weir_route_upstream_duration_seconds_count{{route=\"shop\",upstream=\"{upstream}\"}} {hits}"
            ),
        ] {
            assert!(text.contains(&line), "{line} in {text}");
        }
    }
    let unknown = client.get(&gw.admin_url("/routes/nope/split")).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "unknown_route");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_from_5_to_10_percent_moves_only_stable_users() {
    let sides = Sides::start().await;
    let gw = TestGateway::start(
        &sides.config(&shop(5.0)),
        &[("gray-release.wasm", GRAY_RELEASE)],
    )
    .await;
    let client = TestClient::default();
    let users = 0..4_000;
    let before = on_canary(&client, &gw, users.clone()).await;

    gw.write_config(&sides.config(&shop(10.0)));
    let generation = gw.generation();
    let reload = gw.reload(&client).await;
    assert_eq!(reload.status, 200, "{:?}", reload.body);
    assert!(gw.generation() > generation);

    let after = on_canary(&client, &gw, users).await;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(!b || *a, "user-{i} went back from the canary to stable");
    }
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    let moved = moved as f64 / before.len() as f64;
    assert!((moved - 0.05).abs() <= 0.015, "moved {moved}");
    assert!(
        (share(&after) - 0.10).abs() <= 0.02,
        "canary share {}",
        share(&after)
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn overrides_force_a_side_and_an_unknown_upstream_is_a_clear_500() {
    let sides = Sides::start().await;
    let auth = format!(
        "[[routes.filters]]\nplugin = \"auth.wasm\"\n{DEADLINE}config = {{ api_key = {{ keys = [\
         {{ consumer = \"alice\", sha256 = \"{ALICE_KEY_SHA256}\" }}, \
         {{ consumer = \"bob\", sha256 = \"{BOB_KEY_SHA256}\" }}] }} }}\n"
    );
    let routes = [
        route(
            "none",
            "",
            "canary = \"v2\", weight = 0, sticky = \"header:x-user\", \
             override = { header = \"x-gray\", cookie = \"gray\" }",
        ),
        route(
            "all",
            "",
            "canary = \"v2\", weight = 100, sticky = \"header:x-user\", \
             override = { header = \"x-gray\" }",
        ),
        route(
            "members",
            &auth,
            "canary = \"v2\", weight = 0, sticky = \"consumer\", canary_consumers = [\"alice\"]",
        ),
        route(
            "typo",
            "",
            "canary = \"v3\", weight = 0, sticky = \"header:x-user\", \
             override = { header = \"x-gray\" }",
        ),
    ];
    let gw = TestGateway::start(
        &sides.config(&routes.concat()),
        &[("gray-release.wasm", GRAY_RELEASE), ("auth.wasm", AUTH)],
    )
    .await;
    let client = TestClient::default();
    let upstream = |path: &str, headers: &[(&str, &str)]| {
        let request = get(&gw.url(path), headers);
        let client = client.clone();
        async move {
            let reply = client.send(request).await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            reply.header("x-upstream").map(str::to_string)
        }
    };
    let v = |name: &str| Some(name.to_string());
    let user = ("x-user", "u-1");
    // Weight 0 and 100 send everyone one way; the header and the cookie force the other.
    assert_eq!(upstream("/none", &[user]).await, v("v1"));
    assert_eq!(
        upstream("/none", &[user, ("x-gray", "canary")]).await,
        v("v2")
    );
    assert_eq!(
        upstream("/none", &[user, ("cookie", "a=1; gray=canary")]).await,
        v("v2")
    );
    assert_eq!(
        upstream("/none", &[user, ("x-gray", "beta")]).await,
        v("v1"),
        "not a side"
    );
    assert_eq!(upstream("/all", &[user]).await, v("v2"));
    assert_eq!(
        upstream("/all", &[user, ("x-gray", "stable")]).await,
        v("v1")
    );
    // The consumer an auth filter set: alice is listed, bob is not.
    assert_eq!(
        upstream("/members", &[("x-api-key", "k-alice-1")]).await,
        v("v2")
    );
    assert_eq!(
        upstream("/members", &[("x-api-key", "k-bob-1")]).await,
        v("v1")
    );

    // A side naming an upstream the gateway lacks: that side's requests get a 500
    // `unknown_upstream` (the log names the upstream), the other side is still served.
    let typo = client
        .send(get(&gw.url("/typo"), &[user, ("x-gray", "canary")]))
        .await;
    assert_eq!(typo.status, 500);
    assert_eq!(typo.header("x-weir-error"), Some("unknown_upstream"));
    assert_eq!(upstream("/typo", &[user]).await, v("v1"));
    gw.shutdown().await;
}
