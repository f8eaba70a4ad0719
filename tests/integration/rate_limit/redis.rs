//! The Redis backend: one budget shared by two gateways, an outage with the `local` and
//! `reject` policies, and a gateway started while Redis is down.

use std::time::Duration;

use http::StatusCode;
use weir_tests::plugins::RATE_LIMIT;
use weir_tests::redis::{RedisCluster, RedisSentinel, RedisServer};
use weir_tests::{TempDir, TestClient, TestGateway, TestUpstream, eventually};

use super::{count, gateway, now_ms, redis_state, statuses};

/// Two gateways sharing `redis` (the `local` outage policy) with one budget of `limit` an
/// hour for the route.
async fn sharing_gateways(
    redis: &RedisServer,
    upstream: &TestUpstream,
    limit: u32,
) -> (TestGateway, TestGateway) {
    let config =
        format!("{{ limits = [{{ limit = {limit}, window = \"1h\" }}], key = [\"route\"] }}");
    let state = redis_state(redis, "local");
    let one = gateway(upstream, &config, &state).await;
    let two = gateway(upstream, &config, &state).await;
    (one, two)
}

/// Statuses of `n` GETs of `/rl`, sent to each of `gateways` in turn.
async fn alternating(client: &TestClient, gateways: [&TestGateway; 2], n: usize) -> Vec<u16> {
    let mut got = Vec::new();
    for i in 0..n {
        let gw = gateways[i % 2];
        got.push(client.get(&gw.url("/rl")).await.status.as_u16());
    }
    got
}

#[tokio::test]
async fn two_gateways_share_one_budget_in_redis() {
    let redis = RedisServer::start();
    let upstream = TestUpstream::start("main").await;
    let (one, two) = sharing_gateways(&redis, &upstream, 10).await;
    let client = TestClient::http1();
    let got = alternating(&client, [&one, &two], 16).await;
    assert_eq!(count(&got, 200), 10, "{got:?}");
    assert_eq!(&got[10..], [429; 6]);
    let keys = redis.command("DBSIZE").unwrap_or_default();
    assert_eq!(keys, ":1", "the budget lives in Redis");
}

/// Three instances loaded at once, each by its own clients (a request every 10 ms each:
/// three times the limit), share one budget of 100 a second per algorithm (a route each), for
/// 10 s: from 50 ms into a window to 50 ms before the end of the tenth. A fixed window
/// admits 10 × 100; a token bucket its full bucket and what 9.9 s refill (100 + 990); a
/// sliding window 100 in the first window, 100 in each of the eight after it (as the
/// previous window's share slides out), and 95 in the last, which ends at 95%: each within
/// 2%.
#[tokio::test(flavor = "multi_thread")]
async fn each_algorithm_holds_its_budget_across_three_instances_loaded_at_once() {
    let redis = RedisServer::start();
    let upstream = TestUpstream::start("main").await;
    let state = redis_state(&redis, "reject");
    let algorithms = [
        ("fixed_window", 1000),
        ("token_bucket", 1090),
        ("sliding_window", 995),
    ];
    let mut config = format!(
        "{state}\n[upstreams.main]\ntargets = [\"{}\"]\n",
        upstream.addr
    );
    for (algorithm, _) in algorithms {
        config += &format!(
            "[[routes]]\nname = \"{algorithm}\"\nupstream = \"main\"\n\
             match = {{ path_prefix = \"/{algorithm}\" }}\n[[routes.filters]]\n\
             plugin = \"rate-limit.wasm\"\ngrants = [\"limits\"]\ndeadline_ms = 2000\n\
             config = {{ limits = [{{ limit = 100, window = \"1s\", algorithm = \"{algorithm}\" }}], key = [\"route\"] }}\n"
        );
    }
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(TestGateway::start(&config, &[("rate-limit.wasm", RATE_LIMIT)]).await);
    }
    // The limiter's windows are aligned to the Unix epoch, on Redis's clock: this
    // machine's.
    let now = now_ms();
    let start = now - now % 1000 + 1050;
    let end = start + 9900;
    tokio::time::sleep(Duration::from_millis(start - now)).await;
    let mut loads = Vec::new();
    for gw in &fleet {
        for (algorithm, _) in algorithms {
            let (client, url) = (TestClient::http1(), gw.url(&format!("/{algorithm}")));
            loads.push(tokio::spawn(async move {
                let mut admitted = 0;
                while now_ms() < end {
                    if client.get(&url).await.status == StatusCode::OK {
                        admitted += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (algorithm, admitted)
            }));
        }
    }
    let mut admitted = std::collections::HashMap::new();
    for load in loads {
        let (algorithm, n) = load.await.expect("a client");
        *admitted.entry(algorithm).or_insert(0u32) += n;
    }
    for (algorithm, expected) in algorithms {
        let got = admitted[algorithm];
        let within = expected * 98 / 100..=expected * 102 / 100;
        assert!(
            within.contains(&got),
            "{algorithm}: admitted {got}, expected {expected} ± 2%"
        );
    }
}

#[tokio::test]
async fn two_gateways_share_budgets_spread_over_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let upstream = TestUpstream::start("main").await;
    let config = r#"{ limits = [{ limit = 3, window = "1h" }], key = ["header:x-user"] }"#;
    let state = format!(
        "[state]\nbackend = \"redis\"\n[state.redis]\nurl = {{ value = \"{}\" }}\n\
         cluster = true\non_unavailable = \"reject\"\ntimeout_ms = 2000\n",
        cluster.url()
    );
    let one = gateway(&upstream, config, &state).await;
    let two = gateway(&upstream, config, &state).await;
    let client = TestClient::http1();
    let users = ["ada", "bob", "cy", "dee", "eve", "fay"];
    for user in users {
        let mut got = Vec::new();
        for i in 0..5 {
            let gw = [&one, &two][i % 2];
            let headers = [("x-user", user)];
            got.push(statuses(&client, &gw.url("/rl"), 1, &headers).await[0]);
        }
        assert_eq!(
            got,
            [200, 200, 200, 429, 429],
            "{user}, across the two gateways"
        );
    }
    // One budget per user, spread over the masters by their keys' slots.
    let keys = cluster.keys_per_node();
    assert_eq!(keys.iter().sum::<u64>(), users.len() as u64, "{keys:?}");
    assert!(keys.iter().filter(|&&n| n > 0).count() >= 2, "{keys:?}");
}

/// A master of the cluster is killed: while its replica is not promoted yet, the budgets
/// it held are unavailable (the `reject` policy answers 503, and nothing is counted);
/// once the replica has taken over, every budget goes on from where it was, the killed
/// master's included (it had replicated them: `WAIT`).
#[tokio::test(flavor = "multi_thread")]
async fn budgets_survive_a_cluster_master_failing_over_to_its_replica() {
    let mut cluster = RedisCluster::start_with_replicas(1);
    let upstream = TestUpstream::start("main").await;
    let users = [
        "user-ada", "user-bob", "user-cy", "user-dee", "user-eve", "user-fay",
    ];
    let settings = format!(
        "url = {{ value = \"{}\" }}\ncluster = true\n",
        cluster.url()
    );
    let (gw, client) = spend_two_each(&upstream, &settings, &users).await;
    // A master holding a budget, and whose budget it is.
    let (victim, key) = cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, node)| !node.is_replica())
        .find_map(|(i, node)| Some((i, node.reply("RANDOMKEY")?.lines().nth(1)?.to_string())))
        .expect("a master with a budget");
    let lost = users
        .into_iter()
        .find(|user| key.contains(user))
        .unwrap_or_else(|| panic!("whose budget is {key}?"));
    fail_over(&gw, &client, &mut cluster.nodes[victim], lost).await;
    cluster.wait_for_failover();
    two_left_each(&gw, &client, &users).await;
}

/// The master Sentinel watches is killed: until the sentinel has promoted the replica,
/// budgets are unavailable (503 under `reject`); then the gateway finds the new master
/// through the sentinel and every budget goes on from where it was.
#[tokio::test(flavor = "multi_thread")]
async fn budgets_survive_a_sentinel_failover() {
    budgets_survive_the_failover_of(RedisSentinel::start(), "").await;
}

/// The same over TLS: to the sentinel, and to each master it names, verified against the
/// configured CA.
#[tokio::test(flavor = "multi_thread")]
async fn budgets_survive_a_sentinel_failover_over_tls() {
    let redis = RedisSentinel::start_tls();
    let ca = format!("ca_file = {:?}\n", redis.ca_file());
    assert!(redis.url().starts_with("rediss://"));
    budgets_survive_the_failover_of(redis, &ca).await;
}

/// Two users spend half their budgets through `redis`'s sentinel (`[state.redis]` lines
/// `extra` besides); its master is killed once replicated; after the failover each has
/// exactly half left.
async fn budgets_survive_the_failover_of(mut redis: RedisSentinel, extra: &str) {
    let upstream = TestUpstream::start("main").await;
    let users = ["user-ada", "user-bob"];
    let settings = format!(
        "url = {{ value = \"{}\" }}\nsentinel_master = \"weir\"\n{extra}",
        redis.url()
    );
    let (gw, client) = spend_two_each(&upstream, &settings, &users).await;
    assert_eq!(redis.master.command("DBSIZE").as_deref(), Some(":2"));
    fail_over(&gw, &client, &mut redis.master, "user-ada").await;
    redis.wait_for_failover();
    two_left_each(&gw, &client, &users).await;
}

/// A gateway on the Redis of `settings` (`[state.redis]` lines: where and how), under the
/// `reject` policy, with a budget of 4 an hour per user; each of `users` spends 2.
async fn spend_two_each(
    upstream: &TestUpstream,
    settings: &str,
    users: &[&str],
) -> (TestGateway, TestClient) {
    let config = r#"{ limits = [{ limit = 4, window = "1h" }], key = ["header:x-user"] }"#;
    let state = format!(
        "[state]\nbackend = \"redis\"\n[state.redis]\n{settings}\
         on_unavailable = \"reject\"\ntimeout_ms = 500\nprobe_interval_ms = 100\n"
    );
    let gw = gateway(upstream, config, &state).await;
    let client = TestClient::http1();
    for user in users {
        let got = statuses(&client, &gw.url("/rl"), 2, &[("x-user", user)]).await;
        assert_eq!(got, [200, 200], "{user}");
    }
    (gw, client)
}

/// Kills `master` once its replicas have acknowledged all it holds; `lost`, whose budget it
/// held, is refused while no replica has taken over.
async fn fail_over(gw: &TestGateway, client: &TestClient, master: &mut RedisServer, lost: &str) {
    assert!(master.wait_for_replicas(), "replicated");
    master.stop();
    let refused = statuses(client, &gw.url("/rl"), 1, &[("x-user", lost)]).await;
    assert_eq!(refused, [503], "{lost} while its master is down");
}

/// After a failover: Redis is used again, and each of `users` has exactly 2 left.
async fn two_left_each(gw: &TestGateway, client: &TestClient, users: &[&str]) {
    assert!(gw.backend_healthy_again(client).await);
    for user in users {
        let got = statuses(client, &gw.url("/rl"), 3, &[("x-user", user)]).await;
        assert_eq!(got, [200, 200, 429], "{user} after the failover");
    }
}

/// With `appendfsync always`, Redis writes each decision to disk before it answers: killed
/// (SIGKILL) and started again, it has every budget the gateway was told about.
#[tokio::test(flavor = "multi_thread")]
async fn budgets_survive_a_redis_crash_with_appendfsync_always() {
    let dir = TempDir::new();
    let mut redis = RedisServer::start_durable(dir.path());
    let upstream = TestUpstream::start("main").await;
    let config = r#"{ limits = [{ limit = 5, window = "1h" }], key = ["header:x-user"] }"#;
    let gw = gateway(&upstream, config, &redis_state(&redis, "reject")).await;
    let client = TestClient::http1();
    let url = gw.url("/rl");
    let user = [("x-user", "ada")];
    assert_eq!(statuses(&client, &url, 3, &user).await, [200; 3]);
    redis.stop();
    redis.resume();
    // The first call after the restart finds the old connection closed and takes the
    // outage policy until the probe sees Redis again; another user's requests wait for that.
    let probe = [("x-user", "probe")];
    let back = eventually(Duration::from_secs(10), || async {
        statuses(&client, &url, 1, &probe).await == [200]
    });
    assert!(back.await, "Redis is used again after its restart");
    assert_eq!(statuses(&client, &url, 3, &user).await, [200, 200, 429]);
}

/// `rediss://`: the budget lives in a Redis reached over TLS, its certificate verified
/// against `ca_file`; without it (the system's roots), the certificate is refused and the
/// outage policy answers.
#[tokio::test(flavor = "multi_thread")]
async fn redis_over_tls_verified_against_the_configured_ca() {
    let dir = TempDir::new();
    let (redis, tls_port) = RedisServer::start_tls(dir.path());
    let upstream = TestUpstream::start("main").await;
    let config = r#"{ limits = [{ limit = 2, window = "1h" }], key = ["route"] }"#;
    let state = |ca: &str| {
        format!(
            "[state]\nbackend = \"redis\"\n[state.redis]\n\
             url = {{ value = \"rediss://127.0.0.1:{tls_port}\" }}\n{ca}\
             on_unavailable = \"reject\"\ntimeout_ms = 2000\n"
        )
    };
    let ca_file = format!("ca_file = {:?}\n", dir.path().join("ca.pem"));
    let gw = gateway(&upstream, config, &state(&ca_file)).await;
    let client = TestClient::http1();
    assert_eq!(
        statuses(&client, &gw.url("/rl"), 3, &[]).await,
        [200, 200, 429]
    );
    assert_eq!(
        redis.command("DBSIZE").as_deref(),
        Some(":1"),
        "the budget lives in Redis"
    );
    let untrusted = gateway(&upstream, config, &state("")).await;
    assert_eq!(
        statuses(&client, &untrusted.url("/rl"), 1, &[]).await,
        [503]
    );
    let status = untrusted.status(&client).await;
    assert_eq!(status["state"]["healthy"], false, "{status}");
}

#[tokio::test]
async fn redis_outage_falls_back_to_local_limits_then_shared_limiting_resumes() {
    let mut redis = RedisServer::start();
    let upstream = TestUpstream::start("main").await;
    let (one, two) = sharing_gateways(&redis, &upstream, 4).await;
    let client = TestClient::http1();
    assert_eq!(statuses(&client, &one.url("/rl"), 2, &[]).await, [200, 200]);
    assert_eq!(
        statuses(&client, &two.url("/rl"), 3, &[]).await,
        [200, 200, 429]
    );

    redis.stop();
    // Each instance now limits on its own, with a fresh local budget of 4.
    assert_eq!(
        statuses(&client, &one.url("/rl"), 5, &[]).await,
        [200, 200, 200, 200, 429]
    );
    assert_eq!(
        statuses(&client, &two.url("/rl"), 5, &[]).await,
        [200, 200, 200, 200, 429]
    );
    let status = one.status(&client).await;
    assert_eq!(status["state"]["backend"], "redis");
    assert_eq!(status["state"]["healthy"], false);
    assert_eq!(status["state"]["serving"], "local_fallback");
    assert!(status["state"]["last_error"].is_string());

    redis.resume();
    for gw in [&one, &two] {
        let back = gw.backend_healthy_again(&client).await;
        assert!(back, "the gateway sees Redis again");
    }
    let metrics = client.get(&one.admin_url("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("weir_state_backend_up{backend=\"redis\"} 1"));
    assert!(text.contains("weir_state_backend_outages_total{backend=\"redis\"} 1"));
    // The restarted server is empty: one shared budget of 4 again, across both instances.
    let got = alternating(&client, [&one, &two], 6).await;
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
    assert_eq!(statuses(&client, &gw.url("/rl"), 1, &[]).await, [200]);
    redis.stop();
    let r = client.get(&gw.url("/rl")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"], "rate_limit_unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
    let status = gw.status(&client).await;
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
    assert_eq!(statuses(&client, &gw.url("/rl"), 1, &[]).await, [200]);
    redis.resume();
    let up = gw.backend_healthy_again(&client).await;
    assert!(up);
    assert_eq!(
        statuses(&client, &gw.url("/rl"), 4, &[]).await,
        [200, 200, 200, 429]
    );
    assert_eq!(redis.command("DBSIZE").as_deref(), Some(":1"));
}
