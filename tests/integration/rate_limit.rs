//! The `rate-limit` filter through a real gateway: exact budgets, concurrency, keys,
//! trusted proxies, the IETF fields, and the Redis backend shared by two gateways through
//! an outage and its recovery.

use std::time::Duration;

use http::StatusCode;
use weir_tests::plugins::{AUTH, RATE_LIMIT};
use weir_tests::redis::RedisServer;
use weir_tests::{TestClient, TestGateway, TestUpstream, eventually, get};

/// A gateway with one route `/rl` through `rate-limit` with `config` (a TOML inline table),
/// plus `extra` config (e.g. a `[state]` table).
async fn gateway(upstream: &TestUpstream, config: &str, extra: &str) -> TestGateway {
    let text = format!(
        "{extra}\n[upstreams.main]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"rl\"\nupstream = \"main\"\nmatch = {{ path_prefix = \"/rl\" }}\n\
         [[routes.filters]]\nplugin = \"rate-limit.wasm\"\ngrants = [\"limits\"]\nconfig = {config}\n",
        upstream.addr
    );
    TestGateway::start(&text, &[("rate-limit.wasm", RATE_LIMIT)]).await
}

/// The `[state]` table for a Redis backend with this outage policy.
fn redis_state(redis: &RedisServer, on_unavailable: &str) -> String {
    format!(
        "[state]\nbackend = \"redis\"\n[state.redis]\nurl = {{ value = \"{}\" }}\n\
         on_unavailable = \"{on_unavailable}\"\ntimeout_ms = 200\nprobe_interval_ms = 50\n",
        redis.url()
    )
}

/// Statuses of `n` sequential GETs of `path` with `headers`.
async fn statuses(
    client: &TestClient,
    gw: &TestGateway,
    n: usize,
    headers: &[(&str, &str)],
) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            client
                .send(get(&gw.url("/rl"), headers))
                .await
                .status
                .as_u16(),
        );
    }
    out
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

#[tokio::test]
async fn exactly_the_budget_passes_with_ietf_fields_and_retry_after() {
    let upstream = TestUpstream::start("main").await;
    let gw = gateway(
        &upstream,
        r#"{ limits = [{ limit = 5, window = "1h" }] }"#,
        "",
    )
    .await;
    let client = TestClient::http1();
    for left in (0..5).rev() {
        let r = client.get(&gw.url("/rl")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.header("ratelimit-policy"),
            Some("\"5-per-1h\";q=5;w=3600")
        );
        let field = r.header("ratelimit").expect("RateLimit on every response");
        assert!(
            field.starts_with(&format!("\"5-per-1h\";r={left};t=")),
            "{field}"
        );
    }
    for _ in 0..3 {
        let r = client.get(&gw.url("/rl")).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.json()["error"], "rate_limited");
        let retry: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        // One token comes back every 720 s at 5 per hour.
        assert!((1..=720).contains(&retry), "retry-after {retry}");
        assert!(r.header("ratelimit").unwrap_or("").contains(";r=0;"));
    }
    assert_eq!(
        upstream.hits(),
        5,
        "refused requests never reach the upstream"
    );
}

#[tokio::test]
async fn every_algorithm_admits_exactly_its_limit() {
    for algorithm in ["token_bucket", "sliding_window", "fixed_window"] {
        let upstream = TestUpstream::start("main").await;
        let config = format!(
            r#"{{ limits = [{{ limit = 4, window = "1h", algorithm = "{algorithm}" }}] }}"#
        );
        let gw = gateway(&upstream, &config, "").await;
        let got = statuses(&TestClient::http1(), &gw, 7, &[]).await;
        assert_eq!(got, [200, 200, 200, 200, 429, 429, 429], "{algorithm}");
    }
}

#[tokio::test]
async fn no_over_admission_with_64_concurrent_clients() {
    let upstream = TestUpstream::start("main").await;
    let gw = gateway(
        &upstream,
        r#"{ limits = [{ limit = 20, window = "1h" }], key = ["route"] }"#,
        "",
    )
    .await;
    let url = gw.url("/rl");
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = TestClient::http1();
                let mut got = Vec::new();
                for _ in 0..2 {
                    got.push(client.get(&url).await.status.as_u16());
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    assert_eq!(count(&all, 200), 20, "{all:?}");
    assert_eq!(count(&all, 429), 128 - 20);
    assert_eq!(upstream.hits(), 20);
}

#[tokio::test]
async fn several_limits_and_keys_by_header() {
    let upstream = TestUpstream::start("main").await;
    let gw = gateway(
        &upstream,
        r#"{ limits = [{ limit = 3, window = "1h", name = "hourly" }, { limit = 2, window = "1m", name = "burst" }], key = ["header:x-user"] }"#,
        "",
    )
    .await;
    let client = TestClient::http1();
    // The tighter limit decides; each user has their own budgets.
    assert_eq!(
        statuses(&client, &gw, 3, &[("x-user", "ann")]).await,
        [200, 200, 429]
    );
    let r = client.send(get(&gw.url("/rl"), &[("x-user", "bob")])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"hourly\";q=3;w=3600, \"burst\";q=2;w=60")
    );
    let field = r.header("ratelimit").expect("RateLimit");
    assert!(
        field.starts_with("\"hourly\";r=2;t=") && field.contains(", \"burst\";r=1;t="),
        "{field}"
    );
    // The shortest window is taken first; a request it refuses never reaches the hourly one.
    let refused = client.send(get(&gw.url("/rl"), &[("x-user", "ann")])).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let field = refused.header("ratelimit").unwrap_or("");
    assert!(
        field.starts_with("\"burst\";r=0;t=") && !field.contains("hourly"),
        "{field}"
    );
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let upstream = TestUpstream::start("main").await;
    let limits = r#"limits = [{ limit = 2, window = "1h" }]"#;
    let client = TestClient::http1();
    let a = [("x-forwarded-for", "198.51.100.1")];
    let b = [("x-forwarded-for", "198.51.100.2, 127.0.0.1")];

    // The test client connects from 127.0.0.1: trusted, so each forwarded client has a budget.
    let trusting = gateway(
        &upstream,
        &format!(r#"{{ {limits}, trusted_proxies = ["127.0.0.1/32"] }}"#),
        "",
    )
    .await;
    assert_eq!(statuses(&client, &trusting, 3, &a).await, [200, 200, 429]);
    assert_eq!(statuses(&client, &trusting, 3, &b).await, [200, 200, 429]);

    // Not trusted: X-Forwarded-For is the client's claim and every request is 127.0.0.1's.
    let strict = gateway(&upstream, &format!("{{ {limits} }}"), "").await;
    assert_eq!(statuses(&client, &strict, 1, &a).await, [200]);
    assert_eq!(statuses(&client, &strict, 2, &b).await, [200, 429]);
}

#[tokio::test]
async fn bad_config_is_refused_with_the_reason() {
    let upstream = TestUpstream::start("main").await;
    let text = format!(
        "[upstreams.main]\ntargets = [\"{}\"]\n[[routes]]\nname = \"rl\"\nupstream = \"main\"\n\
         [[routes.filters]]\nplugin = \"rate-limit.wasm\"\ngrants = [\"limits\"]\n\
         config = {{ limits = [{{ limit = 5, window = \"fortnight\" }}] }}\n",
        upstream.addr
    );
    let err = TestGateway::try_start(&text, &[("rate-limit.wasm", RATE_LIMIT)])
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("limits[0].window"), "{err:#}");
}

#[tokio::test]
async fn two_gateways_share_one_budget_in_redis() {
    let redis = RedisServer::start();
    let upstream = TestUpstream::start("main").await;
    let config = r#"{ limits = [{ limit = 10, window = "1h" }], key = ["route"] }"#;
    let state = redis_state(&redis, "local");
    let one = gateway(&upstream, config, &state).await;
    let two = gateway(&upstream, config, &state).await;
    let client = TestClient::http1();
    let mut got = Vec::new();
    for i in 0..16 {
        let gw = if i % 2 == 0 { &one } else { &two };
        got.push(client.get(&gw.url("/rl")).await.status.as_u16());
    }
    assert_eq!(count(&got, 200), 10, "{got:?}");
    assert_eq!(&got[10..], [429; 6]);
    let keys = redis.command("DBSIZE").unwrap_or_default();
    assert_eq!(keys, ":1", "the budget lives in Redis");
}

#[tokio::test]
async fn redis_outage_falls_back_to_local_limits_then_shared_limiting_resumes() {
    let mut redis = RedisServer::start();
    let upstream = TestUpstream::start("main").await;
    let config = r#"{ limits = [{ limit = 4, window = "1h" }], key = ["route"] }"#;
    let state = redis_state(&redis, "local");
    let one = gateway(&upstream, config, &state).await;
    let two = gateway(&upstream, config, &state).await;
    let client = TestClient::http1();
    assert_eq!(statuses(&client, &one, 2, &[]).await, [200, 200]);
    assert_eq!(statuses(&client, &two, 3, &[]).await, [200, 200, 429]);

    redis.stop();
    // Each instance now limits on its own, with a fresh local budget of 4.
    assert_eq!(
        statuses(&client, &one, 5, &[]).await,
        [200, 200, 200, 200, 429]
    );
    assert_eq!(
        statuses(&client, &two, 5, &[]).await,
        [200, 200, 200, 200, 429]
    );
    let status = client
        .get(&format!("http://{}/status", one.admin))
        .await
        .json();
    assert_eq!(status["state"]["backend"], "redis");
    assert_eq!(status["state"]["healthy"], false);
    assert_eq!(status["state"]["serving"], "local_fallback");
    assert!(status["state"]["last_error"].is_string());

    redis.resume();
    for gw in [&one, &two] {
        let admin = format!("http://{}/status", gw.admin);
        let back = eventually(Duration::from_secs(10), || {
            let (client, admin) = (&client, &admin);
            async move { client.get(admin).await.json()["state"]["healthy"] == true }
        })
        .await;
        assert!(back, "the gateway sees Redis again");
    }
    let metrics = client.get(&format!("http://{}/metrics", one.admin)).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("weir_state_backend_up{backend=\"redis\"} 1"));
    assert!(text.contains("weir_state_backend_outages_total{backend=\"redis\"} 1"));
    // The restarted server is empty: one shared budget of 4 again, across both instances.
    let mut got = Vec::new();
    for i in 0..6 {
        let gw = if i % 2 == 0 { &one } else { &two };
        got.push(client.get(&gw.url("/rl")).await.status.as_u16());
    }
    assert_eq!(got, [200, 200, 200, 200, 429, 429]);
}

#[tokio::test]
async fn redis_outage_with_reject_policy_answers_503_until_it_is_back() {
    let mut redis = RedisServer::start();
    let upstream = TestUpstream::start("main").await;
    let gw = gateway(
        &upstream,
        r#"{ limits = [{ limit = 100, window = "1h" }] }"#,
        &redis_state(&redis, "reject"),
    )
    .await;
    let client = TestClient::http1();
    assert_eq!(statuses(&client, &gw, 1, &[]).await, [200]);
    redis.stop();
    let r = client.get(&gw.url("/rl")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"], "rate_limit_unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
    let status = client
        .get(&format!("http://{}/status", gw.admin))
        .await
        .json();
    assert_eq!(status["state"]["serving"], "rejecting");

    redis.resume();
    let url = gw.url("/rl");
    let recovered = eventually(Duration::from_secs(10), || {
        let (client, url) = (&client, &url);
        async move { client.get(url).await.status == StatusCode::OK }
    })
    .await;
    assert!(recovered, "requests pass again once Redis is back");
}

#[tokio::test]
async fn a_gateway_starts_while_redis_is_down_and_uses_it_once_up() {
    let mut redis = RedisServer::start();
    redis.stop();
    let upstream = TestUpstream::start("main").await;
    let gw = gateway(
        &upstream,
        r#"{ limits = [{ limit = 3, window = "1h" }], key = ["route"] }"#,
        &redis_state(&redis, "local"),
    )
    .await;
    let client = TestClient::http1();
    assert_eq!(statuses(&client, &gw, 1, &[]).await, [200]);
    redis.resume();
    let admin = format!("http://{}/status", gw.admin);
    let up = eventually(Duration::from_secs(10), || {
        let (client, admin) = (&client, &admin);
        async move { client.get(admin).await.json()["state"]["healthy"] == true }
    })
    .await;
    assert!(up);
    assert_eq!(statuses(&client, &gw, 4, &[]).await, [200, 200, 200, 429]);
    assert_eq!(redis.command("DBSIZE").as_deref(), Some(":1"));
}

#[tokio::test]
async fn the_fields_reach_a_response_a_later_filter_produces() {
    let upstream = TestUpstream::start("main").await;
    let text = format!(
        "[upstreams.main]\ntargets = [\"{}\"]\n\
         [[routes]]\nname = \"rl\"\nupstream = \"main\"\n\
         [[routes.filters]]\nplugin = \"rate-limit.wasm\"\ngrants = [\"limits\"]\n\
         config = {{ limits = [{{ limit = 9, window = \"1h\" }}] }}\n\
         [[routes.filters]]\nplugin = \"auth.wasm\"\n\
         config = {{ api_key = {{ keys = [{{ consumer = \"c\", sha256 = \"{}\" }}] }} }}\n",
        upstream.addr,
        "0".repeat(64)
    );
    let gw = TestGateway::start(
        &text,
        &[("rate-limit.wasm", RATE_LIMIT), ("auth.wasm", AUTH)],
    )
    .await;
    // auth answers 401 itself; the rate-limit filter before it still annotates the answer.
    let r = TestClient::http1().get(&gw.url("/rl")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"9-per-1h\";q=9;w=3600")
    );
    assert!(
        r.header("ratelimit")
            .unwrap_or("")
            .starts_with("\"9-per-1h\";r=8;t=")
    );
    assert_eq!(upstream.hits(), 0);
}
