//! The buffer route mode: a write is stored and answered `202` with a ticket, then
//! delivered to the upstream by a drainer (concurrency, rate, retries with back-off, dead
//! letters); `GET` on the ticket tells pending, delivered or dead. Durable across SIGKILL
//! (embedded and Redis), and shared by a fleet through a Redis consumer group.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use weir_tests::redis::RedisServer;
use weir_tests::{TestClient, TestGateway, eventually, post_json, read_body, request, serve};

use crate::process::WeirProcess;

/// A request the recording upstream got.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body: String,
    key: Option<String>,
    request_id: Option<String>,
    status: u16,
    at: Instant,
}

/// An upstream that records every request and answers by path: `/orders/fail...` 503,
/// `/orders/missing...` 404, anything else 201 (or 503 for all while `down`); each answer
/// after `delay`. It tracks how many requests it holds at once.
struct Recorder {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    down: Arc<AtomicU64>,
    delay_ms: Arc<AtomicU64>,
    most_at_once: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicU64::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let now = Arc::new(AtomicUsize::new(0));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let (s, d, w, n, m) = (
            seen.clone(),
            down.clone(),
            delay_ms.clone(),
            now.clone(),
            most_at_once.clone(),
        );
        let (addr, task) = serve(move |req: http::Request<hyper::body::Incoming>| {
            let (s, d, w, n, m) = (s.clone(), d.clone(), w.clone(), n.clone(), m.clone());
            async move {
                let held = n.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(held, Ordering::SeqCst);
                let (parts, body) = req.into_parts();
                let body = read_body(body).await;
                let delay = w.load(Ordering::Relaxed);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                let path = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let status = if d.load(Ordering::Relaxed) == 1 || path.starts_with("/orders/fail") {
                    503
                } else if path.starts_with("/orders/missing") {
                    404
                } else {
                    201
                };
                let header = |name: &str| {
                    (parts.headers.get(name)).and_then(|v| v.to_str().ok().map(String::from))
                };
                s.lock().unwrap().push(Seen {
                    method: parts.method.to_string(),
                    path: path.clone(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    key: header("idempotency-key"),
                    request_id: header("x-request-id"),
                    status,
                    at: Instant::now(),
                });
                n.fetch_sub(1, Ordering::SeqCst);
                let answer = serde_json::json!({ "made": path, "method": parts.method.as_str() });
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .header("location", "/made/1")
                    .header("x-private", "not kept")
                    .body(Full::new(Bytes::from(answer.to_string())))
                    .unwrap()
            }
        })
        .await;
        Self {
            addr,
            seen,
            down,
            delay_ms,
            most_at_once,
            task,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests answered 201, by idempotency key.
    fn delivered(&self) -> BTreeMap<String, usize> {
        let mut by_key = BTreeMap::new();
        for seen in self.seen().into_iter().filter(|s| s.status == 201) {
            *by_key.entry(seen.key.unwrap_or_default()).or_default() += 1;
        }
        by_key
    }

    fn set_down(&self, down: bool) {
        self.down.store(u64::from(down), Ordering::Relaxed);
    }
}

/// An upstream `u` at `target` and the buffered route `orders` on `/orders`, with `buffer`
/// (more keys of `[routes.buffer]`).
fn buffered(target: impl std::fmt::Display, buffer: &str) -> String {
    format!(
        "[upstreams.u]\ntargets = [\"{target}\"]\nrequest_timeout_ms = 2000\n\
         [[routes]]\nname = \"orders\"\nupstream = \"u\"\n\
         [routes.match]\npath_prefix = \"/orders\"\n\
         [routes.buffer]\n{buffer}"
    )
}

/// `[state]` in Redis at `url`.
fn shared(url: &str) -> String {
    format!(
        "[state]\nbackend = \"redis\"\n[state.redis]\nurl = {{ value = \"{url}\" }}\n\
         timeout_ms = 2000\nprobe_interval_ms = 50\n"
    )
}

/// Posts `body` to `url`; asserts `202` and returns the ticket and its status URL.
async fn accept(client: &TestClient, url: &str, body: &str) -> (String, String) {
    let reply = client.send(post_json(url, body)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let json = reply.json();
    let ticket = json["ticket"].as_str().expect("a ticket").to_string();
    assert_eq!(json["status"], "pending");
    let location = reply.header("location").expect("a Location").to_string();
    assert_eq!(json["status_url"], location.as_str());
    (ticket, location)
}

/// Waits (up to `within`) until the ticket at `location` on `base` is no longer pending;
/// returns its status.
async fn settled(client: &TestClient, base: &str, location: &str, within: Duration) -> Value {
    let url = format!("{base}{location}");
    let last = Mutex::new(Value::Null);
    let done = eventually(within, || async {
        let reply = client.get(&url).await;
        let json = reply.json();
        let settled = reply.status == StatusCode::OK && json["status"] != "pending";
        *last.lock().unwrap() = json;
        settled
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(done, "the ticket at {location} settled: {last}");
    last
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_is_answered_202_then_delivered_once_with_its_ticket_as_idempotency_key() {
    let up = Recorder::start().await;
    up.set_down(true);
    let gw = TestGateway::start(
        &buffered(
            up.addr,
            "rate = 0\nbackoff_base_ms = 50\nbackoff_max_ms = 50\nmax_attempts = 100\n",
        ),
        &[],
    )
    .await;
    let client = TestClient::default();
    let base = gw.url("");

    let (ticket, location) = accept(&client, &gw.url("/orders/new?x=1"), "{\"n\":1}").await;
    assert_eq!(location, format!("/orders/tickets/{ticket}"));
    assert_eq!(ticket.len(), 32);
    // While the upstream fails, the ticket is pending with its attempts and last error.
    assert!(
        eventually(Duration::from_secs(10), || async {
            let status = client.get(&gw.url(&location)).await.json();
            status["status"] == "pending" && status["attempts"].as_u64() >= Some(1)
        })
        .await
    );
    let pending = client.get(&gw.url(&location)).await.json();
    assert!(
        pending["last_error"].as_str().unwrap().contains("503"),
        "{pending}"
    );
    up.set_down(false);

    let status = settled(&client, &base, &location, Duration::from_secs(10)).await;
    assert_eq!(status["status"], "delivered", "{status}");
    assert_eq!(status["ticket"], ticket.as_str());
    let response = &status["response"];
    assert_eq!(response["status"], 201);
    assert_eq!(response["headers"]["location"], "/made/1");
    assert_eq!(response["headers"]["content-type"], "application/json");
    assert!(response["headers"].get("x-private").is_none(), "{status}");
    let made: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(made["made"], "/orders/new?x=1");

    // The upstream got it exactly once with its method, path, body, ticket and request id.
    let delivered: Vec<Seen> = up.seen().into_iter().filter(|s| s.status == 201).collect();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let seen = &delivered[0];
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/orders/new?x=1")
    );
    assert_eq!(seen.body, "{\"n\":1}");
    assert_eq!(seen.key.as_deref(), Some(ticket.as_str()));
    assert!(seen.request_id.is_some());

    // A read passes through at once; unknown and malformed tickets are 404.
    let before = up.seen().len();
    let read = client.get(&gw.url("/orders/7")).await;
    assert_eq!(read.status, StatusCode::CREATED, "GET is not buffered");
    assert_eq!(up.seen().len(), before + 1);
    let unknown = client
        .get(&gw.url(&format!("/orders/tickets/{}", "0".repeat(32))))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.header("x-weir-error"), Some("unknown_ticket"));
    let malformed = client.get(&gw.url("/orders/tickets/..%2Fx")).await;
    assert!(malformed.status.is_client_error());

    let metrics = gw.metrics(&client).await;
    assert!(
        metrics.contains("weir_buffer_accepted_total{route=\"orders\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_buffer_delivered_total{route=\"orders\"} 1"),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_back_off_then_die_while_a_4xx_is_delivered_as_final() {
    let up = Recorder::start().await;
    let config = "rate = 0\nmax_attempts = 3\nbackoff_base_ms = 200\nbackoff_max_ms = 400\n";
    let gw = TestGateway::start(&buffered(up.addr, config), &[]).await;
    let client = TestClient::default();
    let base = gw.url("");

    let (_, failing) = accept(&client, &gw.url("/orders/fail"), "{}").await;
    let (_, missing) = accept(&client, &gw.url("/orders/missing"), "{}").await;

    let dead = settled(&client, &base, &failing, Duration::from_secs(10)).await;
    assert_eq!(dead["status"], "dead", "{dead}");
    assert_eq!(dead["attempts"], 3);
    assert!(dead["error"].as_str().unwrap().contains("503"), "{dead}");
    assert_eq!(
        (dead["method"].as_str(), dead["path"].as_str()),
        (Some("POST"), Some("/orders/fail"))
    );
    let tries: Vec<Instant> = (up.seen().iter())
        .filter(|s| s.path == "/orders/fail")
        .map(|s| s.at)
        .collect();
    assert_eq!(tries.len(), 3, "three attempts, then dead");
    // Back-off: 200 ms then 400 ms, less up to half each (jitter).
    assert!(
        tries[1] - tries[0] >= Duration::from_millis(90),
        "{:?}",
        tries[1] - tries[0]
    );
    assert!(
        tries[2] - tries[1] >= Duration::from_millis(190),
        "{:?}",
        tries[2] - tries[1]
    );

    let final_404 = settled(&client, &base, &missing, Duration::from_secs(10)).await;
    assert_eq!(final_404["status"], "delivered", "{final_404}");
    assert_eq!(final_404["response"]["status"], 404);
    assert_eq!(final_404["attempts"], 1);
    let missing_tries = up
        .seen()
        .iter()
        .filter(|s| s.path == "/orders/missing")
        .count();
    assert_eq!(missing_tries, 1, "a 4xx is not retried");

    let metrics = gw.metrics(&client).await;
    assert!(
        metrics.contains("weir_buffer_retried_total{route=\"orders\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_buffer_dead_total{route=\"orders\"} 1"),
        "{metrics}"
    );
    let buffers = client.get(&gw.admin_url("/buffers")).await.json();
    assert_eq!(buffers["routes"]["orders"]["dead"], 1, "{buffers}");
    assert_eq!(buffers["routes"]["orders"]["pending"], 0, "{buffers}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_keep_to_the_concurrency_and_the_rate() {
    // Concurrency: 2 at once, however many are due.
    let up = Recorder::start().await;
    up.delay_ms.store(150, Ordering::Relaxed);
    let gw = TestGateway::start(&buffered(up.addr, "rate = 0\nconcurrency = 2\n"), &[]).await;
    let client = TestClient::default();
    let mut tickets = Vec::new();
    for n in 0..8 {
        tickets.push(
            accept(&client, &gw.url("/orders/c"), &format!("{{\"n\":{n}}}"))
                .await
                .1,
        );
    }
    for location in &tickets {
        settled(&client, &gw.url(""), location, Duration::from_secs(10)).await;
    }
    assert_eq!(
        up.most_at_once.load(Ordering::SeqCst),
        2,
        "two deliveries at once, no more"
    );
    gw.shutdown().await;

    // Rate: 20 a second (a burst of 2, a tenth of a second's worth, then one every 50 ms):
    // eleven deliveries span at least 450 ms (400 allowing for the first connections).
    let up = Recorder::start().await;
    let gw = TestGateway::start(&buffered(up.addr, "rate = 20\nconcurrency = 8\n"), &[]).await;
    let mut tickets = Vec::new();
    for n in 0..11 {
        tickets.push(
            accept(&client, &gw.url("/orders/r"), &format!("{{\"n\":{n}}}"))
                .await
                .1,
        );
    }
    for location in &tickets {
        settled(&client, &gw.url(""), location, Duration::from_secs(10)).await;
    }
    let times: Vec<Instant> = up.seen().iter().map(|s| s.at).collect();
    assert_eq!(times.len(), 11);
    let span = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    assert!(
        span >= Duration::from_millis(400),
        "11 deliveries at 20/s took {span:?}"
    );
    assert!(
        span < Duration::from_secs(3),
        "11 deliveries at 20/s took {span:?}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_buffer_is_503_and_a_body_over_the_cap_is_413() {
    let up = Recorder::start().await;
    up.set_down(true);
    let config =
        "max_pending = 2\nmax_body_bytes = 16\nbackoff_base_ms = 60000\nbackoff_max_ms = 60000\n";
    let gw = TestGateway::start(&buffered(up.addr, config), &[]).await;
    let client = TestClient::default();
    accept(&client, &gw.url("/orders/a"), "{}").await;
    accept(&client, &gw.url("/orders/b"), "{}").await;
    let full = client.send(post_json(&gw.url("/orders/c"), "{}")).await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.header("retry-after"), Some("1"));
    assert_eq!(full.header("x-weir-error"), Some("overloaded"));
    let large = client
        .send(request("PUT", &gw.url("/orders/d"), &[], "x".repeat(17)))
        .await;
    assert_eq!(large.status, StatusCode::PAYLOAD_TOO_LARGE);
    let metrics = gw.metrics(&client).await;
    assert!(
        metrics.contains("weir_buffer_refused_total{route=\"orders\"} 1"),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_buffer_that_cannot_serve_is_refused_with_the_config() {
    let cases = [
        ("methods = [\"GET\"]\n", "GET and HEAD read tickets"),
        (
            "status_path = \"/elsewhere\"\n",
            "not under the route's path_prefix",
        ),
        ("retry_statuses = [\"5x\"]\n", "neither a status"),
        ("concurrency = 0\n", "concurrency must be at least 1"),
    ];
    for (buffer, reason) in cases {
        let started = TestGateway::try_start(&buffered("127.0.0.1:1", buffer), &[]).await;
        let refusal = weir_tests::refusal(started, buffer).await;
        assert!(refusal.contains(reason), "{buffer}: {refusal}");
    }
}

/// Accepts `n` writes through `addr`, returning their status URLs.
async fn accept_many(client: &TestClient, base: &str, n: usize) -> Vec<String> {
    let mut tickets = Vec::new();
    for i in 0..n {
        let (_, location) = accept(
            client,
            &format!("{base}/orders/{i}"),
            &format!("{{\"n\":{i}}}"),
        )
        .await;
        tickets.push(location);
    }
    tickets
}

/// The SIGKILL test: a `weir` process accepts writes while the upstream fails, is killed,
/// restarts, and delivers every one once the upstream is back.
async fn every_accepted_write_survives_sigkill(extra: &str) {
    let up = Recorder::start().await;
    up.set_down(true);
    let config = buffered(
        up.addr,
        "rate = 0\nbackoff_base_ms = 50\nbackoff_max_ms = 200\nmax_attempts = 1000\nlease_ms = 1000\n",
    ) + extra;
    let mut weir = WeirProcess::start_with(&config, "", "true", &[]).await;
    let client = TestClient::default();
    let base = format!("http://{}", weir.addr());
    let tickets = accept_many(&client, &base, 20).await;
    // Killed right after the last 202, the upstream still failing.
    weir.kill_and_restart().await;
    up.set_down(false);
    for location in &tickets {
        let status = settled(&client, &base, location, Duration::from_secs(20)).await;
        assert_eq!(status["status"], "delivered", "{status}");
    }
    let delivered = up.delivered();
    assert_eq!(
        delivered.len(),
        20,
        "every accepted write was delivered: {delivered:?}"
    );
    assert!(
        delivered.values().all(|&n| n == 1),
        "once each: {delivered:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_accepted_write_survives_sigkill_in_the_embedded_store() {
    every_accepted_write_survives_sigkill("").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_accepted_write_survives_sigkill_in_redis() {
    let redis = RedisServer::start();
    every_accepted_write_survives_sigkill(&shared(&redis.url())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_sharing_redis_deliver_each_ticket_once() {
    let redis = RedisServer::start();
    let up = Recorder::start().await;
    up.delay_ms.store(10, Ordering::Relaxed);
    let config = buffered(up.addr, "rate = 0\nconcurrency = 4\n") + &shared(&redis.url());
    let (a, b) = (
        TestGateway::start(&config, &[]).await,
        TestGateway::start(&config, &[]).await,
    );
    let client = TestClient::default();
    let mut tickets = Vec::new();
    for (i, gw) in [&a, &b].iter().cycle().take(60).enumerate() {
        let (_, location) = accept(&client, &gw.url(&format!("/orders/{i}")), "{}").await;
        tickets.push(location);
    }
    for (i, location) in tickets.iter().enumerate() {
        // Either instance answers for any ticket.
        let via = if i % 2 == 0 { b.url("") } else { a.url("") };
        let status = settled(&client, &via, location, Duration::from_secs(20)).await;
        assert_eq!(status["status"], "delivered", "{status}");
    }
    let delivered = up.delivered();
    assert_eq!(delivered.len(), 60, "{delivered:?}");
    assert!(
        delivered.values().all(|&n| n == 1),
        "no ticket twice: {delivered:?}"
    );
    let count = |gw: &TestGateway| {
        let client = client.clone();
        let url = gw.admin_url("/buffers");
        async move {
            client.get(&url).await.json()["routes"]["orders"]["delivered"]
                .as_u64()
                .unwrap_or(0)
        }
    };
    let (from_a, from_b) = (count(&a).await, count(&b).await);
    assert_eq!(from_a + from_b, 60);
    assert!(
        from_a > 0 && from_b > 0,
        "both instances drained: {from_a} and {from_b}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_killed_mid_drain_has_its_requests_taken_over() {
    let redis = RedisServer::start();
    let up = Recorder::start().await;
    up.delay_ms.store(300, Ordering::Relaxed);
    let config =
        buffered(up.addr, "rate = 0\nconcurrency = 4\nlease_ms = 1000\n") + &shared(&redis.url());
    let mut first = WeirProcess::start_with(&config, "", "true", &[]).await;
    let client = TestClient::default();
    let base = format!("http://{}", first.addr());
    let tickets = accept_many(&client, &base, 20).await;
    // The first instance is mid-drain (requests held by the slow upstream), then dies.
    assert!(eventually(Duration::from_secs(10), || async { !up.seen().is_empty() }).await);
    first.kill();
    let second = TestGateway::start(&config, &[]).await;
    for location in &tickets {
        let status = settled(&client, &second.url(""), location, Duration::from_secs(30)).await;
        assert_eq!(status["status"], "delivered", "{status}");
    }
    let delivered = up.delivered();
    assert_eq!(delivered.len(), 20, "every ticket delivered: {delivered:?}");
    // Only what the dead instance had in flight (at most its concurrency) may come twice:
    // its outcome was never stored (at least once; the Idempotency-Key tells).
    let twice = delivered.values().filter(|&&n| n > 1).count();
    assert!(twice <= 4, "{delivered:?}");
    second.shutdown().await;
}
