//! The access log: one JSON object per request, with what an operator looks for (route,
//! status, bytes both ways, client, upstream target and latency, each filter's decision,
//! the filters' variables, the trace id), credentials in the query redacted, routes
//! switched off, and sampling; and the W3C trace context the upstream gets.

use std::time::Duration;

use weir_tests::plugins::TESTER;
use weir_tests::{TempDir, TestClient, TestGateway, TestUpstream, eventually, get, request};

/// Two routes through the `tester` filter: `/quiet` not logged, the rest logged.
fn config(up: &TestUpstream, log: &std::path::Path, extra: &str) -> String {
    format!(
        "[access_log]\nenabled = true\npath = \"{}\"\n{extra}\n\
         [upstreams.u]\ntargets = [\"{}\"]\n\
         [[routes]]\nname = \"quiet\"\nupstream = \"u\"\naccess_log = false\nmatch = {{ path_prefix = \"/quiet\" }}\n\
         [[routes]]\nname = \"logged\"\nupstream = \"u\"\n\
         [[routes.filters]]\nplugin = \"tester.wasm\"\n",
        log.display(),
        up.addr
    )
}

/// The log's lines, parsed.
fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_request_is_one_json_line_with_what_an_operator_looks_for() {
    let up = TestUpstream::start("up").await;
    let dir = TempDir::new();
    let log = dir.path().join("access.log");
    let gw = TestGateway::start(&config(&up, &log, ""), &[("tester.wasm", TESTER)]).await;
    let client = TestClient::default();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    let reply = client
        .send(request(
            "POST",
            &gw.url("/orders?apikey=s3cr3t&page=2"),
            &[("traceparent", traceparent.as_str())],
            "hello",
        ))
        .await;
    assert_eq!(reply.status, 200);
    // W3C trace context: the upstream is a child of the gateway's span in the same trace.
    let sent = reply.json()["headers"]["traceparent"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        sent.starts_with(&format!("00-{trace}-")) && sent.ends_with("-01"),
        "{sent}"
    );
    assert!(
        !sent.contains("00f067aa0ba902b7"),
        "the gateway's span is the parent: {sent}"
    );
    // A request without one starts a trace, unsampled: no collector records its spans.
    let quiet = client.send(get(&gw.url("/quiet/x"), &[])).await;
    assert_eq!(quiet.status, 200);
    let started = quiet.json()["headers"]["traceparent"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        started.len() == 55
            && started.starts_with("00-")
            && started.ends_with("-00")
            && !started.contains(trace),
        "{started}"
    );

    let written = eventually(Duration::from_secs(10), || async {
        !lines(&log).is_empty()
    })
    .await;
    assert!(written, "a line is written");
    let all = lines(&log);
    assert_eq!(all.len(), 1, "the quiet route is not logged: {all:?}");
    let line = &all[0];
    assert_eq!(line["route"], "logged");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/orders?apikey=[redacted]&page=2");
    assert_eq!(line["status"], 200);
    assert_eq!(line["scheme"], "http");
    assert_eq!(line["bytes_in"], 5);
    assert_eq!(line["bytes_out"], reply.body.len() as u64, "{line}");
    assert_eq!(line["client_ip"], "127.0.0.1");
    assert_eq!(line["upstream"], up.addr.to_string());
    let (upstream_ms, total_ms) = (line["upstream_ms"].as_f64(), line["total_ms"].as_f64());
    assert!(
        upstream_ms.is_some_and(|u| u > 0.0) && total_ms >= upstream_ms,
        "{line}"
    );
    assert_eq!(line["filters"][0]["filter"], "tester");
    assert_eq!(line["filters"][0]["decision"], "continue");
    let seen = line["variables"]["tester.seen"]
        .as_str()
        .unwrap_or_default();
    assert!(seen.starts_with("/orders"), "the filter's variable: {line}");
    assert_eq!(line["trace_id"], trace);
    assert!(line["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    let time = line["time"].as_str().unwrap_or_default();
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
    let metrics = gw.metrics(&client).await;
    assert!(
        metrics.contains("weir_access_log_records_total 1"),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sample_of_zero_logs_nothing_and_shutdown_writes_what_was_logged() {
    let up = TestUpstream::start("up").await;
    let dir = TempDir::new();
    let log = dir.path().join("access.log");
    let gw = TestGateway::start(
        &config(&up, &log, "sample = 0.0"),
        &[("tester.wasm", TESTER)],
    )
    .await;
    let client = TestClient::default();
    for _ in 0..20 {
        assert_eq!(client.get(&gw.url("/a")).await.status, 200);
    }
    let metrics = gw.metrics(&client).await;
    assert!(
        metrics.contains("weir_access_log_records_total 0"),
        "{metrics}"
    );
    gw.shutdown().await;
    assert!(lines(&log).is_empty());

    // Logged requests right before a shutdown are in the file once it returns.
    let gw = TestGateway::start(&config(&up, &log, ""), &[("tester.wasm", TESTER)]).await;
    for _ in 0..50 {
        assert_eq!(client.get(&gw.url("/b")).await.status, 200);
    }
    gw.shutdown().await;
    assert_eq!(lines(&log).len(), 50);
}
