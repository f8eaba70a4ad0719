//! The `cache` filter end to end, over the gateway's response cache: the RFC 9111 rules a
//! client sees (hits with `Age`, `no-store`, a client's precondition answered `304`, a
//! revalidation refreshed by a `304`, stale content on an upstream failure), request
//! coalescing (50 concurrent misses, one upstream request), the Redis level shared by two
//! instances, and purges through the admin API that reach both.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use weir_tests::plugins::CACHE;
use weir_tests::redis::RedisServer;
use weir_tests::{TestClient, TestGateway, get, serve};

/// An origin whose answers carry the caching fields each path asks for, counting hits per
/// path; while `down`, it answers 503.
#[derive(Clone, Default)]
struct Origin {
    hits: Arc<Mutex<BTreeMap<String, usize>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Origin {
    async fn start() -> (Self, std::net::SocketAddr) {
        let origin = Self::default();
        let serving = origin.clone();
        let (addr, _task) = serve(move |req: Request<hyper::body::Incoming>| {
            let origin = serving.clone();
            async move { origin.answer(req).await }
        })
        .await;
        (origin, addr)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        if path == "/health" {
            return Response::new(Full::new(Bytes::from_static(b"ok")));
        }
        let n = {
            let mut hits = self.hits.lock().unwrap();
            let n = hits.entry(path.clone()).or_default();
            *n += 1;
            *n
        };
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Response::builder()
                .status(503)
                .body(Full::new(Bytes::from_static(b"down")))
                .unwrap();
        }
        let (cache_control, delay) = match path.as_str() {
            "/slow" => ("max-age=60", Duration::from_millis(300)),
            "/nostore" => ("no-store", Duration::ZERO),
            "/revalidate" => ("max-age=1", Duration::ZERO),
            "/fallback" => ("max-age=1, stale-if-error=60", Duration::ZERO),
            _ => ("max-age=60", Duration::ZERO),
        };
        tokio::time::sleep(delay).await;
        let etag = "\"v1\"";
        if req
            .headers()
            .get("if-none-match")
            .is_some_and(|v| v == etag)
        {
            return Response::builder()
                .status(304)
                .header("etag", etag)
                .header("cache-control", cache_control)
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
        let body = match path.as_str() {
            // Over the filter's 1 MiB body limit.
            "/large" => Bytes::from(vec![b'x'; 2 << 20]),
            _ => Bytes::from(format!("{path} #{n}")),
        };
        Response::builder()
            .header("cache-control", cache_control)
            .header("etag", etag)
            .header("content-type", "text/plain")
            .body(Full::new(body))
            .unwrap()
    }
}

/// The config of a gateway caching everything under `/` from `origin`.
fn config(origin: std::net::SocketAddr, state: &str) -> String {
    format!(
        "[upstreams.origin]\ntargets = [\"{origin}\"]\n{state}\
         [[routes]]\nname = \"cached\"\nupstream = \"origin\"\nmatch.path_prefix = \"/\"\n\
         [[routes.filters]]\nplugin = \"cache.wasm\"\ngrants = [\"cache\", \"clock\"]\n\
         stream_oversized_responses = true\nconfig = {{ jitter = 0 }}\n"
    )
}

fn x_cache(reply: &weir_tests::Reply) -> &str {
    reply.header("x-cache").unwrap_or("(none)")
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_are_cached_and_revalidated_by_the_rfc_rules() {
    let (origin, addr) = Origin::start().await;
    let gw = TestGateway::start(&config(addr, ""), &[("cache.wasm", CACHE)]).await;
    let client = TestClient::http1();

    let first = client.get(&gw.url("/page")).await;
    assert_eq!((first.status, x_cache(&first)), (StatusCode::OK, "MISS"));
    let hit = client.get(&gw.url("/page")).await;
    assert_eq!((hit.status, x_cache(&hit)), (StatusCode::OK, "HIT"));
    assert_eq!(hit.body, first.body, "the stored body");
    assert!(hit.header("age").is_some(), "a hit carries its Age");
    assert_eq!(origin.hits("/page"), 1);

    // A client's precondition is answered from the cache.
    let conditional = get(&gw.url("/page"), &[("if-none-match", "\"v1\"")]);
    let not_modified = client.send(conditional).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(origin.hits("/page"), 1);

    // no-store is never stored.
    for _ in 0..2 {
        assert_eq!(x_cache(&client.get(&gw.url("/nostore")).await), "MISS");
    }
    assert_eq!(origin.hits("/nostore"), 2);

    // Past max-age=1 the entry is revalidated with its ETag; the origin's 304 refreshes it.
    client.get(&gw.url("/revalidate")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refreshed = client.get(&gw.url("/revalidate")).await;
    assert_eq!(
        (refreshed.status, x_cache(&refreshed)),
        (StatusCode::OK, "REVALIDATED")
    );
    assert_eq!(String::from_utf8_lossy(&refreshed.body), "/revalidate #1");
    assert_eq!(origin.hits("/revalidate"), 2);
    assert_eq!(x_cache(&client.get(&gw.url("/revalidate")).await), "HIT");

    // stale-if-error: the origin fails, the stale entry answers.
    client.get(&gw.url("/fallback")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin
        .down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let stale = client.get(&gw.url("/fallback")).await;
    assert_eq!((stale.status, x_cache(&stale)), (StatusCode::OK, "STALE"));
    assert_eq!(String::from_utf8_lossy(&stale.body), "/fallback #1");
    let fresh_failure = client.get(&gw.url("/never-cached")).await;
    assert_eq!(
        fresh_failure.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "nothing to fall back on"
    );

    // A write to a cached target removes its entry.
    origin
        .down
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let post = weir_tests::post_json(&gw.url("/page"), "{}");
    assert_eq!(x_cache(&client.send(post).await), "BYPASS");
    assert_eq!(x_cache(&client.get(&gw.url("/page")).await), "MISS");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_misses_send_one_request_upstream() {
    let (origin, addr) = Origin::start().await;
    let gw = TestGateway::start(&config(addr, ""), &[("cache.wasm", CACHE)]).await;
    let client = TestClient::http1();
    let url = gw.url("/slow");
    let replies = futures_util::future::join_all((0..50).map(|_| client.get(&url))).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    assert_eq!(origin.hits("/slow"), 1, "one fill for fifty misses");
    let misses = replies.iter().filter(|r| x_cache(r) == "MISS").count();
    assert_eq!(misses, 1, "the others got the filler's response");
    let bodies: std::collections::BTreeSet<_> = replies.iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies.len(), 1);
    let status = client.get(&gw.admin_url("/cache")).await.json();
    assert_eq!(status["fills_led"], 1);
    assert_eq!(status["fills_waited"], 49);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_entries_in_redis_and_purges_reach_both() {
    let redis = RedisServer::start();
    let (origin, addr) = Origin::start().await;
    let state = format!(
        "[state]\nbackend = \"redis\"\n[state.redis]\nurl = {{ value = \"{}\" }}\ntimeout_ms = 2000\n",
        redis.url()
    );
    let one = TestGateway::start(&config(addr, &state), &[("cache.wasm", CACHE)]).await;
    let two = TestGateway::start(&config(addr, &state), &[("cache.wasm", CACHE)]).await;
    let client = TestClient::http1();
    // One site behind both instances: the key is the authority and the path.
    let fetch = |gw: &TestGateway, path: &str| {
        let request = get(&gw.url(path), &[("host", "cdn.example")]);
        let client = &client;
        async move { client.send(request).await }
    };
    for path in ["/img/a", "/img/b", "/doc"] {
        assert_eq!(x_cache(&fetch(&one, path).await), "MISS");
        let shared = fetch(&two, path).await;
        assert_eq!(
            x_cache(&shared),
            "HIT",
            "{path}: stored by the other instance"
        );
        assert_eq!(origin.hits(path), 1);
    }
    // A purge by prefix on one instance reaches the other's memory and Redis.
    let purge = r#"{"prefix": "cdn.example/img/"}"#;
    let purged = client
        .send(weir_tests::post_json(&one.admin_url("/cache/purge"), purge))
        .await;
    assert_eq!(purged.status, StatusCode::OK, "{:?}", purged.json());
    let gone = weir_tests::eventually(Duration::from_secs(5), || async {
        x_cache(&fetch(&two, "/img/a").await) == "MISS"
    })
    .await;
    assert!(gone, "the other instance missed after the purge");
    assert_eq!(origin.hits("/img/a"), 2);
    assert_eq!(
        x_cache(&fetch(&one, "/img/b").await),
        "MISS",
        "purged in Redis too"
    );
    assert_eq!(
        x_cache(&fetch(&one, "/doc").await),
        "HIT",
        "outside the prefix"
    );
    // A purge by key takes that key alone.
    let purge = r#"{"key": "cdn.example/doc"}"#;
    let purged = client
        .send(weir_tests::post_json(&two.admin_url("/cache/purge"), purge))
        .await;
    assert_eq!(purged.status, StatusCode::OK);
    // The other instance hears of it on the purge channel.
    let gone = weir_tests::eventually(Duration::from_secs(5), || async {
        x_cache(&fetch(&one, "/doc").await) == "MISS"
    })
    .await;
    assert!(gone, "the key was purged on the other instance too");
    // A bad purge is refused.
    let bad = weir_tests::post_json(&one.admin_url("/cache/purge"), r#"{"everything": true}"#);
    assert_eq!(client.send(bad).await.status, StatusCode::BAD_REQUEST);
    let metrics = client.get(&one.admin_url("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("weir_cache_lookups_total{result=\"redis\"}"),
        "{text}"
    );
    one.shutdown().await;
    two.shutdown().await;
}
