//! Plugin state under attack, through a real gateway: `kv` namespaces come from the config
//! (the plugin file or its `namespace`), never from the name a plugin declares, and no
//! crafted (namespace, key) pair reaches another's key — with the embedded backend and
//! with a real `redis-server`; the per-namespace quotas refuse oversized keys, values and
//! TTLs and too many keys; the embedded map stays bounded; a Redis slower than a filter's
//! deadline takes the outage policy instead of failing every call.

use weir_tests::plugins::TESTER;
use weir_tests::redis::{RedisCluster, RedisServer};
use weir_tests::{TestClient, TestGateway, TestUpstream, get};

/// A route `/<name>` through the plugin file `file` (the tester) answering `kv` calls,
/// in `namespace` when given, with more filter keys in `extra`.
fn route(name: &str, file: &str, namespace: Option<&str>, extra: &str) -> String {
    let namespace = namespace.map_or(String::new(), |ns| format!("namespace = {ns:?}\n"));
    format!(
        "[[routes]]\nname = \"{name}\"\nupstream = \"main\"\nmatch = {{ path_prefix = \"/{name}\" }}\n\
         [[routes.filters]]\nplugin = \"{file}\"\ngrants = [\"kv\"]\n{namespace}{extra}\
         config = {{ kv_ops = true }}\n"
    )
}

/// A gateway with `state` (a `[state]` table or nothing), the upstream `main` and
/// `routes`; the tester is installed as `a.wasm` and `b.wasm` too (both declare the name
/// `tester`).
async fn gateway(upstream: &TestUpstream, state: &str, routes: &[String]) -> TestGateway {
    let config = format!(
        "{state}\n[upstreams.main]\ntargets = [\"{}\"]\n{}",
        upstream.addr,
        routes.concat()
    );
    let plugins = [
        ("tester.wasm", TESTER),
        ("a.wasm", TESTER),
        ("b.wasm", TESTER),
    ];
    TestGateway::start(&config, &plugins).await
}

/// The `[state]` table of a Redis backend, with `more` settings (by default, time
/// enough for a busy machine: two seconds per call).
fn redis_state(redis: &RedisServer, more: &str) -> String {
    let timeout = if more.contains("timeout_ms") {
        ""
    } else {
        "timeout_ms = 2000\n"
    };
    format!(
        "[state]\nbackend = \"redis\"\n[state.redis]\nurl = {{ value = \"{}\" }}\n{timeout}{more}",
        redis.url()
    )
}

/// The `[state]` table of a Redis Cluster backend.
fn cluster_state(cluster: &RedisCluster) -> String {
    format!(
        "[state]\nbackend = \"redis\"\n[state.redis]\nurl = {{ value = \"{}\" }}\ncluster = true\n",
        cluster.url()
    )
}

/// Runs one `kv` call on route `/<route>` and returns the plugin's answer (`x-kv`).
async fn kv(
    client: &TestClient,
    gw: &TestGateway,
    route: &str,
    op: &str,
    key: &str,
    more: &[(&str, &str)],
) -> String {
    let mut headers = vec![("x-kv-op", op), ("x-kv-key", key)];
    headers.extend_from_slice(more);
    let reply = client
        .send(get(&gw.url(&format!("/{route}")), &headers))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.header("x-kv").unwrap_or("(no answer)").to_string()
}

/// Two plugin files that declare the same name, and one file configured with two
/// namespaces, each keep to their own keys; a third filter given the same namespace
/// shares it on purpose. `state` picks the backend.
async fn namespaces_stay_apart(state: &str) {
    let upstream = TestUpstream::start("main").await;
    let gw = gateway(
        &upstream,
        state,
        &[
            route("a", "a.wasm", None, ""),
            route("b", "b.wasm", None, ""),
            route("one", "tester.wasm", Some("one"), ""),
            route("two", "tester.wasm", Some("two"), ""),
            route("also-one", "a.wasm", Some("one"), ""),
        ],
    )
    .await;
    let client = TestClient::default();
    let value = [("x-kv-value", "secret of a")];
    assert_eq!(kv(&client, &gw, "a", "set", "k", &value).await, "ok");
    assert_eq!(
        kv(&client, &gw, "a", "get", "k", &[]).await,
        "some:secret of a"
    );
    // b.wasm says it is `tester` too, as a.wasm does: the name it declares is not its key.
    assert_eq!(kv(&client, &gw, "b", "get", "k", &[]).await, "none");
    assert_eq!(
        kv(&client, &gw, "b", "set-if-absent", "k", &[]).await,
        "true"
    );
    assert_eq!(
        kv(&client, &gw, "a", "get", "k", &[]).await,
        "some:secret of a"
    );

    let value = [("x-kv-value", "one's")];
    assert_eq!(kv(&client, &gw, "one", "set", "k", &value).await, "ok");
    assert_eq!(kv(&client, &gw, "two", "get", "k", &[]).await, "none");
    assert_eq!(
        kv(&client, &gw, "also-one", "get", "k", &[]).await,
        "some:one's"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaces_come_from_the_config_not_from_the_plugin() {
    namespaces_stay_apart("").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaces_come_from_the_config_not_from_the_plugin_in_redis() {
    let redis = RedisServer::start();
    namespaces_stay_apart(&redis_state(&redis, "")).await;
}

/// Joined with a separator, namespace `x` with key `y:k` and namespace `x:y` with key `k`
/// would be the same stored key.
async fn crafted_pairs_do_not_collide(state: &str) {
    let upstream = TestUpstream::start("main").await;
    let gw = gateway(
        &upstream,
        state,
        &[
            route("short", "tester.wasm", Some("x"), ""),
            route("long", "tester.wasm", Some("x:y"), ""),
        ],
    )
    .await;
    let client = TestClient::default();
    let value = [("x-kv-value", "planted")];
    assert_eq!(kv(&client, &gw, "short", "set", "y:k", &value).await, "ok");
    assert_eq!(kv(&client, &gw, "long", "get", "k", &[]).await, "none");
    assert_eq!(kv(&client, &gw, "long", "incr", "k", &[]).await, "1");
    assert_eq!(
        kv(&client, &gw, "short", "get", "y:k", &[]).await,
        "some:planted"
    );
    // A key that spells a whole stored key of another namespace stays in its own.
    assert_eq!(
        kv(&client, &gw, "short", "get", "3:x:y1:k", &[]).await,
        "none"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crafted_namespace_and_key_pair_reaches_no_other_key() {
    crafted_pairs_do_not_collide("").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crafted_namespace_and_key_pair_reaches_no_other_key_in_redis() {
    let redis = RedisServer::start();
    crafted_pairs_do_not_collide(&redis_state(&redis, "")).await;
}

/// The quotas of `[state.kv]`, whichever backend `state` (which must end in a way that a
/// `[state.kv]` table may follow) picks.
async fn quotas_hold(state: &str) {
    let upstream = TestUpstream::start("main").await;
    let state = format!(
        "{state}\n[state.kv]\nmax_entries = 3\nmax_key_bytes = 16\nmax_value_bytes = 100\n\
         max_ttl_ms = 60000\n"
    );
    let gw = gateway(
        &upstream,
        &state,
        &[
            route("q", "tester.wasm", None, ""),
            route("other", "a.wasm", None, ""),
        ],
    )
    .await;
    let client = TestClient::default();
    let refused = |answer: String| answer.starts_with("HostError::Invalid(\"quota:");
    let big_key = "k".repeat(17);
    assert!(refused(kv(&client, &gw, "q", "set", &big_key, &[]).await));
    assert!(refused(kv(&client, &gw, "q", "get", &big_key, &[]).await));
    assert!(refused(
        kv(&client, &gw, "q", "set", "k", &[("x-kv-size", "101")]).await
    ));
    let long = [("x-kv-ttl", "60001")];
    assert!(refused(kv(&client, &gw, "q", "set", "k", &long).await));
    assert!(refused(kv(&client, &gw, "q", "incr", "k", &long).await));
    assert!(refused(
        kv(&client, &gw, "q", "set-if-absent", "k", &long).await
    ));

    let fits = [("x-kv-size", "100"), ("x-kv-ttl", "60000")];
    for key in ["1", "2", "3"] {
        assert_eq!(kv(&client, &gw, "q", "set", key, &fits).await, "ok");
    }
    assert!(refused(kv(&client, &gw, "q", "set", "4", &[]).await));
    assert!(refused(kv(&client, &gw, "q", "incr", "4", &[]).await));
    assert!(refused(
        kv(&client, &gw, "q", "set-if-absent", "4", &[]).await
    ));
    // Overwriting is no new key; another namespace has its own quota; a delete makes room.
    assert_eq!(kv(&client, &gw, "q", "set", "3", &[]).await, "ok");
    assert_eq!(kv(&client, &gw, "other", "set", "4", &[]).await, "ok");
    assert_eq!(kv(&client, &gw, "q", "delete", "1", &[]).await, "true");
    assert_eq!(kv(&client, &gw, "q", "set", "4", &[]).await, "ok");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_quotas_refuse_big_keys_values_and_ttls_and_too_many_keys() {
    quotas_hold("").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_quotas_refuse_big_keys_values_and_ttls_and_too_many_keys_in_redis() {
    let redis = RedisServer::start();
    quotas_hold(&redis_state(&redis, "")).await;
}

/// Every script that updates a value with its namespace's index runs on one node of a
/// cluster (a key layout without a shared hash tag would be refused with `CROSSSLOT`).
#[tokio::test(flavor = "multi_thread")]
async fn kv_quotas_hold_in_a_redis_cluster() {
    let cluster = RedisCluster::start();
    quotas_hold(&cluster_state(&cluster)).await;
    let keys: u64 = cluster.keys_per_node().iter().sum();
    assert!(
        keys >= 4,
        "the values and their index live in the cluster: {keys}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_store_stays_bounded() {
    let upstream = TestUpstream::start("main").await;
    let state = "[state.local]\nmax_entries = 40\n";
    let gw = gateway(&upstream, state, &[route("w", "tester.wasm", None, "")]).await;
    let client = TestClient::default();
    for n in 0..200 {
        let answer = kv(&client, &gw, "w", "set", &n.to_string(), &[]).await;
        assert_eq!(answer, "ok", "a full store evicts rather than refuses");
    }
    let mut kept = Vec::new();
    for n in 0..200 {
        if kv(&client, &gw, "w", "get", &n.to_string(), &[]).await != "none" {
            kept.push(n);
        }
    }
    assert!(
        kept.len() <= 40,
        "at most max_entries keys are kept: {kept:?}"
    );
    assert!(kept.contains(&199), "the newest key is kept: {kept:?}");
    gw.shutdown().await;
}

/// Redis that stops answering for longer than a filter's deadline (but no longer than
/// its own timeout) takes the outage policy at once, instead of failing every filter call
/// on its deadline.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_slower_than_the_deadline_takes_the_outage_policy() {
    let redis = RedisServer::start();
    let upstream = TestUpstream::start("main").await;
    // Redis may take 1 s per call, the filter has 100 ms.
    let state = redis_state(&redis, "timeout_ms = 1000\non_unavailable = \"local\"\n");
    let filter = "deadline_ms = 100\n";
    let gw = gateway(
        &upstream,
        &state,
        &[route("n", "tester.wasm", None, filter)],
    )
    .await;
    let client = TestClient::default();
    assert_eq!(kv(&client, &gw, "n", "incr", "n", &[]).await, "1");
    assert_eq!(
        redis
            .command("EXISTS weir:kv:{11:tester.wasm}1:n")
            .as_deref(),
        Some(":1")
    );

    let paused = redis.command("CLIENT PAUSE 3000 ALL");
    assert_eq!(paused.as_deref(), Some("+OK"));
    // The first call finds Redis slow, marks it down and takes the local fallback; the
    // next ones do not wait on Redis at all.
    for expected in ["1", "2", "3"] {
        assert_eq!(kv(&client, &gw, "n", "incr", "n", &[]).await, expected);
    }
    let status = gw.status(&client).await;
    assert_eq!(status["state"]["healthy"], false);
    assert_eq!(status["state"]["serving"], "local_fallback");

    // When the pause ends, calls go to Redis again (its count may include the write that
    // was abandoned when the pause began: Redis ran it once it resumed).
    let back = gw.backend_healthy_again(&client).await;
    assert!(back, "the gateway sees Redis again");
    let answer = kv(&client, &gw, "n", "incr", "n", &[]).await;
    let stored = redis.command("INCRBY weir:kv:{11:tester.wasm}1:n 0");
    assert_eq!(stored, Some(format!(":{answer}")), "answered by Redis");
    gw.shutdown().await;
}

/// Set-if-absent is refused while Redis is down, whatever the policy: the fallback could
/// not tell a key stored on another instance.
#[tokio::test(flavor = "multi_thread")]
async fn set_if_absent_is_refused_rather_than_answered_by_the_fallback() {
    let mut redis = RedisServer::start();
    let upstream = TestUpstream::start("main").await;
    let state = redis_state(&redis, "on_unavailable = \"local\"\n");
    let gw = gateway(&upstream, &state, &[route("s", "tester.wasm", None, "")]).await;
    let client = TestClient::default();
    assert_eq!(
        kv(&client, &gw, "s", "set-if-absent", "nonce", &[]).await,
        "true"
    );
    redis.stop();
    let answer = kv(&client, &gw, "s", "set-if-absent", "nonce", &[]).await;
    assert!(answer.starts_with("HostError::Unavailable("), "{answer}");
    // Other calls take the local fallback.
    assert_eq!(kv(&client, &gw, "s", "incr", "n", &[]).await, "1");
    gw.shutdown().await;
}
