//! Exact budgets: the first N pass and no more, with the IETF fields, under concurrency,
//! with several limits, and on a response a later filter produces.

use http::StatusCode;
use weir_tests::plugins::{AUTH, RATE_LIMIT};
use weir_tests::{TestClient, TestGateway, TestUpstream, get, named_route, refusal};

use super::{count, gateway, sf_param, statuses};

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
    // At 5 per hour one token comes back every 720 s: the budget is whole again 720 s
    // per token taken after the first request (less the few ms the requests take).
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
        let whole_in = 720 * (5 - left);
        assert!(
            (whole_in - 1..=whole_in).contains(&sf_param(field, "t")),
            "{field}: whole again in {whole_in} s"
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
        // The next token is 720 s away, not just any wait.
        assert!((719..=720).contains(&retry), "retry-after {retry}");
        let field = r.header("ratelimit").unwrap_or("");
        assert!(field.contains(";r=0;"), "{field}");
        assert!((3599..=3600).contains(&sf_param(field, "t")), "{field}");
    }
    assert_eq!(
        upstream.hits(),
        5,
        "refused requests never reach the upstream"
    );
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
        statuses(&client, &gw.url("/rl"), 3, &[("x-user", "ann")]).await,
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
async fn bad_config_is_refused_with_the_reason() {
    let upstream = TestUpstream::start("main").await;
    let text = named_route(
        upstream.addr,
        "rl",
        "[[routes.filters]]\nplugin = \"rate-limit.wasm\"\ngrants = [\"limits\"]\n\
         config = { limits = [{ limit = 5, window = \"fortnight\" }] }\n",
    );
    let started = TestGateway::try_start(&text, &[("rate-limit.wasm", RATE_LIMIT)]).await;
    let err = refusal(started, "a window of a fortnight").await;
    assert!(err.contains("limits[0].window"), "{err}");
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
