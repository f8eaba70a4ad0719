//! Filters that continue, mutate and respond; chains; grants; bodies.

use weir_tests::plugins::{HEADERS, TESTER};
use weir_tests::{TestClient, TestGateway, TestUpstream, get, named_route, one_route, request};

#[tokio::test(flavor = "multi_thread")]
async fn filter_mutates_request_and_response() {
    let up = TestUpstream::start("up").await;
    let filters = r#"
[[routes.filters]]
plugin = "tester.wasm"
config = { set_request_headers = { x-added = "by-tester" }, rewrite_path = "/rewritten?x=1" }
"#;
    let gw = TestGateway::start(&one_route(up.addr, filters), &[("tester.wasm", TESTER)]).await;
    let r = TestClient::default().get(&gw.url("/original")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/rewritten?x=1");
    assert_eq!(r.json()["headers"]["x-added"][0], "by-tester");
    assert_eq!(r.header("x-tester-version"), Some("1.0.0"));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_responds_without_calling_upstream() {
    let up = TestUpstream::start("up").await;
    let filters = r#"
[[routes.filters]]
plugin = "headers.wasm"
config = { response = { set = { x-outer = "1" } } }
[[routes.filters]]
plugin = "tester.wasm"
config = { deny_if_header = "x-deny" }
"#;
    let gw = TestGateway::start(
        &one_route(up.addr, filters),
        &[("tester.wasm", TESTER), ("headers.wasm", HEADERS)],
    )
    .await;
    let client = TestClient::default();
    let r = client.send(get(&gw.url("/"), &[("x-deny", "1")])).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "denied_by_tester");
    assert_eq!(up.hits(), 0, "the upstream must not be called");
    // The filter before the one that answered still sees the response.
    assert_eq!(r.header("x-outer"), Some("1"));
    let r = client.get(&gw.url("/")).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.hits(), 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_plugin_edits_both_directions() {
    let up = TestUpstream::start("up").await;
    let filters = r#"
[[routes.filters]]
plugin = "headers.wasm"
[routes.filters.config.request]
remove = ["cookie"]
set = { x-env = "prod" }
append = { x-tag = "b" }
add = { x-once = "default" }
[routes.filters.config.response]
set = { x-served-by = "weir" }
remove = ["x-upstream"]
"#;
    let gw = TestGateway::start(&one_route(up.addr, filters), &[("headers.wasm", HEADERS)]).await;
    let r = TestClient::default()
        .send(get(
            &gw.url("/"),
            &[
                ("cookie", "s=1"),
                ("x-env", "dev"),
                ("x-tag", "a"),
                ("x-once", "mine"),
            ],
        ))
        .await;
    let seen = &r.json()["headers"];
    assert!(seen.get("cookie").is_none());
    assert_eq!(seen["x-env"], serde_json::json!(["prod"]));
    assert_eq!(seen["x-tag"], serde_json::json!(["a", "b"]));
    assert_eq!(
        seen["x-once"],
        serde_json::json!(["mine"]),
        "add keeps an existing value"
    );
    assert_eq!(r.header("x-served-by"), Some("weir"));
    assert!(r.header("x-upstream").is_none());
    gw.shutdown().await;
}

/// A gateway with the tester on `/granted` with `granted` (its config, a TOML inline
/// table) and `grants`, and on every other path (route `denied`) with `denied` and none.
async fn granted_and_denied(
    up: &TestUpstream,
    granted: &str,
    grants: &str,
    denied: &str,
) -> TestGateway {
    let config = named_route(
        up.addr,
        "granted",
        &format!(
            "match = {{ path_prefix = \"/granted\" }}\n\
             [[routes.filters]]\nplugin = \"tester.wasm\"\nconfig = {granted}\ngrants = {grants}\n\
             [[routes]]\nname = \"denied\"\nupstream = \"u\"\n\
             [[routes.filters]]\nplugin = \"tester.wasm\"\nconfig = {denied}\n"
        ),
    );
    TestGateway::start(&config, &[("tester.wasm", TESTER)]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_works_only_when_granted() {
    let up = TestUpstream::start("up").await;
    let gw = granted_and_denied(
        &up,
        "{ count = true, log = true }",
        "[\"kv\", \"log\"]",
        "{ count = true }",
    )
    .await;
    let client = TestClient::default();
    for n in 1..=3 {
        let r = client.get(&gw.url("/granted")).await;
        assert_eq!(r.header("x-count"), Some(n.to_string().as_str()));
    }
    let r = client.get(&gw.url("/denied")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-count"), Some("HostError::AccessDenied"));
    gw.shutdown().await;
}

/// `log` without its grant is a trap, not a line in the gateway's log: the filter fails
/// (closed) and the request goes no further, while the granted route logs and passes.
#[tokio::test(flavor = "multi_thread")]
async fn log_works_only_when_granted() {
    let up = TestUpstream::start("up").await;
    let gw = granted_and_denied(&up, "{ log = true }", "[\"log\"]", "{ log = true }").await;
    let client = TestClient::default();
    let r = client.get(&gw.url("/granted")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = client.get(&gw.url("/denied")).await;
    assert_eq!(r.status, 500, "{:?}", r.body);
    assert_eq!(r.json()["error"], "filter_failed");
    assert_eq!(
        up.hits(),
        1,
        "the denied request never reached the upstream"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn body_is_buffered_for_filters_that_ask_and_capped() {
    let up = TestUpstream::start("up").await;
    let filters = "[[routes.filters]]\nplugin = \"tester.wasm\"\nconfig = { uppercase_body = true }\nmax_body_bytes = 1024\n";
    let gw = TestGateway::start(&one_route(up.addr, filters), &[("tester.wasm", TESTER)]).await;
    let client = TestClient::default();
    let r = client
        .send(request("POST", &gw.url("/"), &[], "make me loud"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body"], "MAKE ME LOUD");
    let r = client
        .send(request("POST", &gw.url("/"), &[], vec![b'a'; 4096]))
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "body_too_large");
    assert_eq!(up.hits(), 1);
    gw.shutdown().await;
}
