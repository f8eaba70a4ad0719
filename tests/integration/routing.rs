//! Routing by host, path prefix, exact path, method and header; 404 when nothing matches.

use weir_tests::{TestClient, TestGateway, TestUpstream, get, request};

#[tokio::test(flavor = "multi_thread")]
async fn routes_by_host_path_method_and_header() {
    let (a, b, c, d) = (
        TestUpstream::start("a").await,
        TestUpstream::start("b").await,
        TestUpstream::start("c").await,
        TestUpstream::start("d").await,
    );
    let config = format!(
        r#"
[upstreams.a]
targets = ["{}"]
[upstreams.b]
targets = ["{}"]
[upstreams.c]
targets = ["{}"]
[upstreams.d]
targets = ["{}"]

[[routes]]
name = "canary"
upstream = "d"
match = {{ path_prefix = "/api", headers = {{ x-env = "canary" }} }}

[[routes]]
name = "api-host"
upstream = "a"
match = {{ host = "api.example.com", path_prefix = "/api" }}

[[routes]]
name = "exact-post"
upstream = "b"
match = {{ path = "/submit", methods = ["POST"] }}

[[routes]]
name = "wild"
upstream = "c"
match = {{ host = "*.example.org" }}
"#,
        a.addr, b.addr, c.addr, d.addr
    );
    let gw = TestGateway::start(&config, &[]).await;
    let client = TestClient::default();
    let api = gw.url("/api/users");
    for (req, expected, why) in [
        (
            get(&api, &[("host", "api.example.com")]),
            "a",
            "host and path prefix",
        ),
        (
            get(&api, &[("host", "api.example.com"), ("x-env", "canary")]),
            "d",
            "earlier route with a header match wins",
        ),
        (
            get(&api, &[("host", "api.example.com"), ("x-env", "stable")]),
            "a",
            "a header with another value does not match",
        ),
        (
            request("POST", &gw.url("/submit"), &[], "x"),
            "b",
            "exact path and method",
        ),
        (
            get(&gw.url("/x"), &[("host", "shop.example.org:8080")]),
            "c",
            "wildcard host",
        ),
    ] {
        let r = client.send(req).await;
        assert_eq!(r.header("x-upstream"), Some(expected), "{why}");
    }

    // GET on a POST-only route, a longer path than the exact one, a prefix that is not at
    // a segment boundary, another host, a header with another value: nothing matches.
    for req in [
        get(&gw.url("/submit"), &[]),
        request("POST", &gw.url("/submit/more"), &[], "x"),
        request("POST", &gw.url("/submitted"), &[], "x"),
        get(&gw.url("/api/users"), &[("x-env", "stable")]),
        get(&gw.url("/api/users"), &[("x-env", "canary-2")]),
        get(&gw.url("/apix"), &[("host", "api.example.com")]),
        get(&gw.url("/api/users"), &[("host", "example.org")]),
    ] {
        let r = client.send(req).await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["error"], "no_route");
        assert!(
            r.json()["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
    }
    gw.shutdown().await;
}
