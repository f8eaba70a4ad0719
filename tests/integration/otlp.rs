//! Spans over OTLP, checked by a collector in the test (`weir_tests::otlp`): a sampled
//! request is a server span (the caller's span its parent), with a span for each filter
//! call and a client span for each upstream try as its children, and the upstream's
//! `traceparent` names the try's span; unsampled traces export nothing; a collector that
//! is down or stalls costs requests nothing and its losses are counted.

use std::time::Duration;

use weir_tests::otlp::{Answer, OtlpCollector, ReceivedSpan};
use weir_tests::plugins::TESTER;
use weir_tests::{TestClient, TestGateway, TestUpstream, eventually, free_port, get};

const WAIT: Duration = Duration::from_secs(10);

/// A route `/` through the `tester` filter (request and response phases) to `targets`
/// (retried on another target), spans exported to `endpoint`.
fn config(endpoint: &str, tracing_extra: &str, targets: &[String]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[tracing]\notlp_endpoint = \"{endpoint}\"\nexport_interval_ms = 20\n{tracing_extra}\n\
         [upstreams.u]\ntargets = [{}]\nconnect_timeout_ms = 500\n\
         [upstreams.u.passive]\nconsecutive_failures = 0\n\
         [[routes]]\nname = \"traced\"\nupstream = \"u\"\n\
         [routes.retry]\n\
         [[routes.filters]]\nplugin = \"tester.wasm\"\nconfig = {{ deny_if_header = \"x-deny\" }}\n",
        targets.join(", ")
    )
}

/// The one span named `name`.
fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one span {name:?} in {spans:#?}");
    found[0]
}

/// The `traceparent` the upstream received.
fn sent_traceparent(reply: &weir_tests::Reply) -> String {
    let sent = &reply.json()["headers"]["traceparent"][0];
    sent.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sampled_request_is_a_server_span_with_its_filters_and_upstream_try_as_children() {
    let collector = OtlpCollector::start().await;
    let up = TestUpstream::start("up").await;
    let targets = [up.addr.to_string()];
    let gw = TestGateway::start(
        &config(&collector.endpoint(), "", &targets),
        &[("tester.wasm", TESTER)],
    )
    .await;
    let client = TestClient::default();
    let (trace, caller) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let traceparent = format!("00-{trace}-{caller}-01");
    let reply = client
        .send(get(
            &gw.url("/orders/7?apikey=s3"),
            &[("traceparent", &traceparent)],
        ))
        .await;
    assert_eq!(reply.status, 200);

    let spans = collector.trace(trace, 4, WAIT).await;
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let server = one(&spans, "GET traced");
    assert_eq!(server.kind, 2, "a server span");
    assert_eq!(
        server.parent_span_id, caller,
        "the caller's span is its parent"
    );
    assert_eq!(server.service, "weir");
    assert_eq!(server.attribute("http.response.status_code"), Some("200"));
    assert_eq!(
        server.attribute("url.path"),
        Some("/orders/7"),
        "no query: it may hold credentials"
    );
    assert_eq!(server.attribute("weir.route"), Some("traced"));
    let request_id = reply.json()["headers"]["x-request-id"][0].clone();
    assert_eq!(server.attribute("weir.request_id"), request_id.as_str());
    for name in ["filter tester request", "filter tester response"] {
        let filter = one(&spans, name);
        assert_eq!(
            (filter.kind, filter.parent_span_id.as_str()),
            (1, server.span_id.as_str())
        );
        assert_eq!(filter.attribute("weir.decision"), Some("continue"));
        assert!(
            server.start_ns <= filter.start_ns && filter.end_ns <= server.end_ns,
            "{filter:#?} in {server:#?}"
        );
    }
    let upstream = one(&spans, "GET");
    assert_eq!(
        (upstream.kind, upstream.parent_span_id.as_str()),
        (3, server.span_id.as_str())
    );
    assert_eq!(
        upstream.attribute("server.port"),
        Some(up.addr.port().to_string().as_str())
    );
    assert_eq!(upstream.attribute("http.response.status_code"), Some("200"));
    assert!(server.start_ns <= upstream.start_ns && upstream.end_ns <= server.end_ns);
    let request_filter = one(&spans, "filter tester request");
    assert!(
        request_filter.end_ns <= upstream.start_ns,
        "the filter ran before the try"
    );
    assert_eq!(
        sent_traceparent(&reply),
        format!("00-{trace}-{}-01", upstream.span_id),
        "the upstream's parent is the try's span"
    );

    // No `traceparent`: a new trace, sampled (`sample` defaults to 1), its server span a root.
    let reply = client.send(get(&gw.url("/new"), &[])).await;
    let started = sent_traceparent(&reply);
    assert!(started.ends_with("-01"), "a new trace, sampled: {started}");
    let spans = collector.trace(&started[3..35], 4, WAIT).await;
    assert_eq!(one(&spans, "GET traced").parent_span_id, "", "{spans:#?}");

    // A filter's answer: its decision, and no upstream try.
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace}-b7ad6b7169203331-01");
    let denied = client
        .send(get(
            &gw.url("/x"),
            &[("traceparent", &traceparent), ("x-deny", "1")],
        ))
        .await;
    assert_eq!(denied.status, 403);
    let spans = collector.trace(trace, 2, WAIT).await;
    let filter = one(&spans, "filter tester request");
    assert_eq!(filter.attribute("weir.decision"), Some("respond"));
    assert_eq!(
        one(&spans, "GET traced").attribute("http.response.status_code"),
        Some("403")
    );
    assert!(
        spans.iter().all(|s| s.kind != 3),
        "no upstream try: {spans:#?}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_retry_is_a_span_of_its_own_and_unsampled_traces_export_nothing() {
    let collector = OtlpCollector::start().await;
    let up = TestUpstream::start("up").await;
    // Nothing listens on `closed`: a try there fails, and is retried on `up`.
    let targets = [format!("127.0.0.1:{}", free_port()), up.addr.to_string()];
    let gw = TestGateway::start(
        &config(&collector.endpoint(), "sample = 0.0", &targets),
        &[("tester.wasm", TESTER)],
    )
    .await;
    let client = TestClient::default();

    // Not sampled: a caller's flag 00, and (with `sample = 0`) a request without a trace.
    let unsampled = "00-11111111111111111111111111111111-b7ad6b7169203331-00";
    let reply = client
        .send(get(&gw.url("/a"), &[("traceparent", unsampled)]))
        .await;
    assert_eq!(reply.status, 200);
    assert!(
        sent_traceparent(&reply).ends_with("-00"),
        "the flag is kept"
    );
    let reply = client.send(get(&gw.url("/b"), &[])).await;
    let started = sent_traceparent(&reply);
    assert!(
        started.ends_with("-00"),
        "a new trace, unsampled: {started}"
    );

    // Sampled, twice, so that round robin sends one first try to the closed target.
    let mut retried = None;
    for trace in [
        "22222222222222222222222222222222",
        "33333333333333333333333333333333",
    ] {
        let traceparent = format!("00-{trace}-b7ad6b7169203331-01");
        let reply = client
            .send(get(&gw.url("/c"), &[("traceparent", &traceparent)]))
            .await;
        assert_eq!(reply.status, 200);
        let tries = collector.trace(trace, 4, WAIT).await;
        let tries: Vec<_> = tries.into_iter().filter(|s| s.kind == 3).collect();
        if tries.len() == 2 {
            retried = Some((tries, sent_traceparent(&reply)));
        }
    }
    let (tries, sent) = retried.expect("one of the two requests was retried");
    let (first, second) = if tries[0].attribute("http.request.resend_count").is_none() {
        (&tries[0], &tries[1])
    } else {
        (&tries[1], &tries[0])
    };
    assert_eq!(first.status, 2, "the failed try is an error: {first:#?}");
    assert_eq!(first.attribute("error.type"), Some("failed"));
    assert_eq!(second.attribute("http.request.resend_count"), Some("1"));
    assert_eq!(second.attribute("http.response.status_code"), Some("200"));
    assert_eq!(
        first.parent_span_id, second.parent_span_id,
        "both children of the request"
    );
    assert_ne!(first.span_id, second.span_id);
    assert!(
        sent.contains(&second.span_id),
        "the retry's traceparent names its own span: {sent}"
    );

    // Only the sampled traces were exported.
    let traces: std::collections::BTreeSet<_> =
        collector.spans().into_iter().map(|s| s.trace_id).collect();
    assert_eq!(traces.len(), 2, "{traces:?}");
    gw.shutdown().await;
}

/// The value of the counter `name` in the gateway's metrics.
async fn counter(gw: &TestGateway, client: &TestClient, name: &str) -> u64 {
    let text = gw.metrics(client).await;
    (text.lines())
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_refuses_or_stalls_costs_requests_nothing_and_is_counted() {
    let collector = OtlpCollector::start().await;
    collector.answer(Answer::Stall);
    let up = TestUpstream::start("up").await;
    let extra = "export_timeout_ms = 200\nmax_queue_spans = 40\nmax_batch_spans = 8";
    let gw = TestGateway::start(
        &config(&collector.endpoint(), extra, &[up.addr.to_string()]),
        &[("tester.wasm", TESTER)],
    )
    .await;
    let client = TestClient::default();
    // 100 requests of 4 spans against a queue of 40 and an exporter that waits 200 ms per
    // batch of 8: most are dropped at the queue, none is slowed down by it.
    let started = std::time::Instant::now();
    for _ in 0..100 {
        assert_eq!(client.get(&gw.url("/s")).await.status, 200);
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "100 requests took {took:?}");
    let lost = eventually(WAIT, || async {
        let dropped = counter(&gw, &client, "weir_trace_spans_dropped_total").await;
        let failed = counter(&gw, &client, "weir_trace_spans_failed_total").await;
        dropped > 0 && failed > 0 && dropped + failed == 400
    })
    .await;
    assert!(lost, "{}", gw.metrics(&client).await);
    assert_eq!(
        counter(&gw, &client, "weir_trace_spans_exported_total").await,
        0
    );

    // A refusing collector is a failure too; an accepting one again gets the spans.
    collector.answer(Answer::Refuse);
    let before = counter(&gw, &client, "weir_trace_spans_failed_total").await;
    assert_eq!(client.get(&gw.url("/r")).await.status, 200);
    let refused = eventually(WAIT, || async {
        counter(&gw, &client, "weir_trace_spans_failed_total").await == before + 4
    })
    .await;
    assert!(refused, "{}", gw.metrics(&client).await);
    collector.answer(Answer::Accept);
    let trace = "44444444444444444444444444444444";
    let traceparent = format!("00-{trace}-b7ad6b7169203331-01");
    assert_eq!(
        client
            .send(get(&gw.url("/a"), &[("traceparent", &traceparent)]))
            .await
            .status,
        200
    );
    collector.trace(trace, 4, WAIT).await;
    let exported = eventually(WAIT, || async {
        counter(&gw, &client, "weir_trace_spans_exported_total").await == 4
    })
    .await;
    assert!(exported, "{}", gw.metrics(&client).await);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_tracing_config_is_refused_with_the_reason() {
    for (tracing, reason) in [
        (
            "otlp_endpoint = \"ftp://collector/v1/traces\"",
            "http:// or https://",
        ),
        (
            "otlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\nsample = 2.0",
            "tracing.sample",
        ),
        (
            "otlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\nmax_queue_spans = 0",
            "max_queue_spans",
        ),
        (
            "otlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\nheaders = { \"bad name\" = { value = \"x\" } }",
            "not a header name",
        ),
    ] {
        let config = format!(
            "[tracing]\n{tracing}\n[upstreams.u]\ntargets = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n"
        );
        let refused =
            weir_tests::refusal(TestGateway::try_start(&config, &[]).await, tracing).await;
        assert!(refused.contains(reason), "{tracing}: {refused}");
    }
}
