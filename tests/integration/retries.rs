//! Retries of failed upstream calls: a failure one target gives is retried on another, a
//! request that never reached a target is retried whatever its method (its body sent
//! again), a POST that reached one is not, a slow target is cut off by the per-try timeout,
//! and the retry budget holds retries back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use weir_tests::{TestClient, TestGateway, TestUpstream, free_port, post_json, serve};

/// A target that answers every request 503, counting them.
async fn unavailable() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let (addr, _task) = serve(move |_req| {
        let hits = counted.clone();
        async move {
            hits.fetch_add(1, Ordering::Relaxed);
            Response::builder()
                .status(503)
                .body(Full::new(Bytes::from_static(b"down")))
                .unwrap()
        }
    })
    .await;
    (addr, hits)
}

/// A route over `targets` (round robin, no passive ejection) with `retry` settings.
fn config(targets: &[String], retry: &str) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[upstreams.app]\ntargets = [{}]\nconnect_timeout_ms = 500\n\
         [upstreams.app.passive]\nconsecutive_failures = 0\n\
         [[routes]]\nname = \"retried\"\nupstream = \"app\"\nmatch.path_prefix = \"/\"\n\
         [routes.retry]\n{retry}\n",
        targets.join(", ")
    )
}

async fn metric(client: &TestClient, gw: &TestGateway, name: &str) -> u64 {
    let text = client.get(&gw.admin_url("/metrics")).await.body;
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_s_failure_is_retried_on_another_and_counted() {
    let (down, down_hits) = unavailable().await;
    let up = TestUpstream::start("up").await;
    let gw = TestGateway::start(&config(&[down.to_string(), up.addr.to_string()], ""), &[]).await;
    let client = TestClient::http1();
    for _ in 0..6 {
        let reply = client.get(&gw.url("/item")).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "every GET ends on the healthy target"
        );
    }
    let failed = down_hits.load(Ordering::Relaxed);
    assert!(
        failed >= 2,
        "round robin sent some tries to the failing target: {failed}"
    );
    assert_eq!(up.hits(), 6);
    let retries = metric(&client, &gw, "weir_route_retries_total{route=\"retried\"}").await;
    assert_eq!(retries as usize, failed, "one retry per failed try");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsent_request_is_retried_whatever_its_method_and_a_sent_post_is_not() {
    // Nothing listens on `closed`: the connection is refused, the request never sent.
    let closed = format!("127.0.0.1:{}", free_port());
    let up = TestUpstream::start("up").await;
    let gw = TestGateway::start(&config(&[closed, up.addr.to_string()], ""), &[]).await;
    let client = TestClient::http1();
    for i in 0..4 {
        let body = format!("{{\"n\": {i}}}");
        let reply = client.send(post_json(&gw.url("/orders"), &body)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.json()["body"],
            body.as_str(),
            "the body was sent again whole"
        );
    }
    gw.shutdown().await;

    let (down, down_hits) = unavailable().await;
    let gw = TestGateway::start(&config(&[down.to_string(), up.addr.to_string()], ""), &[]).await;
    let statuses: Vec<u16> = futures_util::future::join_all(
        (0..4).map(|_| client.send(post_json(&gw.url("/orders"), "{}"))),
    )
    .await
    .iter()
    .map(|r| r.status.as_u16())
    .collect();
    assert!(
        statuses.contains(&503),
        "a POST that reached a target is not sent twice: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        down_hits.load(Ordering::Relaxed)
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_target_is_cut_off_by_the_per_try_timeout() {
    let slow = TestUpstream::start("slow").await;
    slow.set_delay(Duration::from_secs(3));
    let fast = TestUpstream::start("fast").await;
    let retry = "per_try_timeout_ms = 200";
    let targets = [slow.addr.to_string(), fast.addr.to_string()];
    let gw = TestGateway::start(&config(&targets, retry), &[]).await;
    let client = TestClient::http1();
    for _ in 0..2 {
        let started = Instant::now();
        let reply = client.get(&gw.url("/item")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("x-upstream"), Some("fast"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(slow.hits() >= 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_retry_budget_holds_retries_back() {
    let (down, _) = unavailable().await;
    let up = TestUpstream::start("up").await;
    let retry = "budget_percent = 0\nbudget_min = 0";
    let targets = [down.to_string(), up.addr.to_string()];
    let gw = TestGateway::start(&config(&targets, retry), &[]).await;
    let client = TestClient::http1();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(client.get(&gw.url("/item")).await.status.as_u16());
    }
    assert!(
        statuses.contains(&503),
        "no retry within a budget of 0: {statuses:?}"
    );
    let exhausted = metric(
        &client,
        &gw,
        "weir_upstream_retry_budget_exhausted_total{upstream=\"app\"}",
    )
    .await;
    assert_eq!(
        exhausted as usize,
        statuses.iter().filter(|&&s| s == 503).count()
    );
    assert_eq!(metric(&client, &gw, "weir_route_retries_total").await, 0);
    gw.shutdown().await;
}
