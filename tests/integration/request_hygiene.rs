//! Request hygiene before routing: no spelling of a protected path walks around its route's
//! filters, one authority per request, and the forwarding fields tell the truth. Raw
//! requests on real sockets, so that no client library tidies the path first.

use weir_tests::plugins::AUTH;
use weir_tests::{TestGateway, TestUpstream, named_route, one_route, raw_head, raw_status};

/// One upstream `u` and two routes to it: `name`, matching `matcher` (the keys of a TOML
/// inline table), behind the auth filter, then a filterless catch-all `all`.
fn protected_config(up: &TestUpstream, name: &str, matcher: &str) -> String {
    // sha256("demo-key")
    named_route(
        up.addr,
        name,
        &format!(
            "match = {{ {matcher} }}\n[[routes.filters]]\nplugin = \"auth.wasm\"\n\
             config.api_key = {{ keys = [{{ consumer = \"demo\", sha256 = \"c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c\" }}] }}\n\
             [[routes]]\nname = \"all\"\nupstream = \"u\"\n"
        ),
    )
}

/// The shipped layout: `/auth` behind the auth filter, a filterless catch-all to the same
/// upstream. `server_extra` is more `[server]` config.
async fn protected_gateway(up: &TestUpstream, server_extra: &str) -> TestGateway {
    let config = protected_config(up, "auth", "path_prefix = \"/auth\"");
    TestGateway::start_with_server(server_extra, &config, &[("auth.wasm", AUTH)]).await
}

/// `GET target` with `Host: gw.example` on a new connection, and the raw answer.
async fn get(gw: &TestGateway, target: &str) -> String {
    raw_head(
        gw.addr,
        &format!("GET {target} HTTP/1.1\r\nHost: gw.example\r\n"),
    )
    .await
}

/// Asserts that a `GET` of each of `spellings` is answered with `status`.
async fn assert_each_status(gw: &TestGateway, spellings: &[&str], status: u16) {
    for spelling in spellings {
        let answer = get(gw, spelling).await;
        assert_eq!(raw_status(&answer), status, "{spelling}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_spelling_of_a_protected_path_skips_its_filters() {
    let up = TestUpstream::start("up").await;
    let gw = protected_gateway(&up, "").await;
    // The spellings normalise to /auth/me: the auth filter runs and refuses them.
    assert_each_status(
        &gw,
        &[
            "/auth/me",
            "/x/../auth/me",
            "//auth/me",
            "/%61uth/me",
            "/./auth/me",
            "/%2e%2e/auth/me",
            "/auth/./me",
        ],
        401,
    )
    .await;
    // The ambiguous ones are refused outright by default.
    assert_each_status(
        &gw,
        &[
            "/auth;x/me",
            "/%2fauth/me",
            "/x%2F..%2Fauth/me",
            "/x\\..\\auth/me",
            "/%5cauth/me",
            "/a%zz",
        ],
        400,
    )
    .await;
    assert_eq!(up.hits(), 0, "no spelling reached the upstream");
    // With the key, the upstream gets the normal path, the query as sent.
    let answer = raw_head(
        gw.addr,
        "GET /x/../auth//me?q=%2F.. HTTP/1.1\r\nHost: gw.example\r\nx-api-key: demo-key\r\n",
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert!(answer.contains(r#""path":"/auth/me?q=%2F..""#), "{answer}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_path_policy_is_configurable() {
    let up = TestUpstream::start("up").await;
    let gw = protected_gateway(
        &up,
        "[server.paths]\nescaped_slashes = \"decode\"\npath_parameters = \"strip\"\n",
    )
    .await;
    // Decoded and stripped, the spellings are /auth/me again: still behind the filter.
    assert_each_status(
        &gw,
        &[
            "/auth;x/me",
            "/x%2F..%2Fauth/me",
            "/x\\..\\auth/me",
            "/x/..;y/auth/me",
        ],
        401,
    )
    .await;
    let answer = get(&gw, "/a;jsessionid=1/b").await;
    assert!(answer.contains(r#""path":"/a/b""#), "{answer}");
    assert_eq!(up.hits(), 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_authority_per_request() {
    let up = TestUpstream::start("up").await;
    let config = protected_config(&up, "shop", "host = \"shop.example\"");
    let gw = TestGateway::start(&config, &[("auth.wasm", AUTH)]).await;
    let send = |head: &'static str| raw_head(gw.addr, head);
    // Case and a trailing dot name the same host: the filter runs.
    let answer = send("GET / HTTP/1.1\r\nHost: SHOP.Example.\r\n").await;
    assert_eq!(raw_status(&answer), 401, "{answer}");
    // Two Hosts, a target that disagrees with Host, no Host at all, user info: 400.
    for head in [
        "GET / HTTP/1.1\r\nHost: other.example\r\nHost: shop.example\r\n",
        "GET http://shop.example/ HTTP/1.1\r\nHost: other.example\r\n",
        "GET http://other.example/ HTTP/1.1\r\nHost: shop.example\r\n",
        "GET / HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\nHost: u@shop.example\r\n",
    ] {
        let answer = send(head).await;
        assert_eq!(raw_status(&answer), 400, "{head:?}: {answer}");
    }
    assert_eq!(up.hits(), 0);
    // The upstream's Host is the routed authority in its canonical spelling.
    let answer =
        send("GET http://Other.Example.:81/x HTTP/1.1\r\nHost: other.example.:81\r\n").await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert!(
        answer.contains(r#""host":["other.example:81"]"#),
        "{answer}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn host_rewrite_sets_the_upstream_host() {
    let up = TestUpstream::start("up").await;
    let config = one_route(up.addr, "host_rewrite = \"internal.svc:8080\"\n");
    let gw = TestGateway::start(&config, &[]).await;
    let answer = get(&gw, "/").await;
    assert!(
        answer.contains(r#""host":["internal.svc:8080"]"#),
        "{answer}"
    );
    assert!(
        answer.contains(r#""x-forwarded-host":["gw.example"]"#),
        "{answer}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_fields_keep_every_line_and_tell_the_truth() {
    let up = TestUpstream::start("up").await;
    let gw = TestGateway::start(&one_route(up.addr, ""), &[]).await;
    let answer = raw_head(
        gw.addr,
        "GET / HTTP/1.1\r\nHost: gw.example\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n\
         Forwarded: for=192.0.2.43\r\nX-Forwarded-Proto: https\r\nX-Request-Id: forged\r\n",
    )
    .await;
    assert!(
        answer.contains(r#""x-forwarded-for":["10.0.0.1, 10.0.0.2, 127.0.0.1"]"#),
        "{answer}"
    );
    assert!(
        answer.contains(
            r#""forwarded":["for=192.0.2.43, for=127.0.0.1;proto=http;host=\"gw.example\""]"#
        ),
        "{answer}"
    );
    assert!(
        answer.contains(r#""x-forwarded-proto":["http"]"#),
        "{answer}"
    );
    // A client's request id is not trusted by default.
    assert!(!answer.contains("forged"), "{answer}");
    gw.shutdown().await;
}
