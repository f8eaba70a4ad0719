//! The `ip-restriction` filter end to end: a route that allows a network the test client is
//! not in refuses it (403 `ip_forbidden`) before the upstream sees anything; a deny list
//! lets other clients through; behind a trusted proxy the forwarded client is judged.

use weir_tests::plugins::IP_RESTRICTION;
use weir_tests::{TestClient, TestGateway, TestUpstream, get};

#[tokio::test(flavor = "multi_thread")]
async fn clients_are_judged_by_network_before_the_upstream_sees_them() {
    let upstream = TestUpstream::start("app").await;
    let route = |name: &str, config: &str| {
        format!(
            "[[routes]]\nname = \"{name}\"\nupstream = \"app\"\nmatch.path_prefix = \"/{name}\"\n\
             [[routes.filters]]\nplugin = \"ip-restriction.wasm\"\nconfig = {config}\n"
        )
    };
    let config = format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n{}{}{}",
        upstream.addr,
        route("private", r#"{ allow = ["10.0.0.0/8", "2001:db8::/32"] }"#),
        route("open", r#"{ deny = ["192.0.2.0/24"] }"#),
        route(
            "proxied",
            r#"{ deny = ["203.0.113.0/24"], trusted_proxies = ["127.0.0.1"] }"#
        ),
    );
    let gw = TestGateway::start(&config, &[("ip-restriction.wasm", IP_RESTRICTION)]).await;
    let client = TestClient::http1();
    // The test client is 127.0.0.1: not in the allowed networks.
    let refused = client.get(&gw.url("/private")).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.header("x-weir-error"), Some("ip_forbidden"));
    assert_eq!(refused.json()["error"], "ip_forbidden");
    assert_eq!(upstream.hits(), 0, "refused before the upstream");
    assert_eq!(client.get(&gw.url("/open")).await.status, 200);
    // Behind the trusted proxy (the test client), the forwarded client is the one judged.
    let denied = get(&gw.url("/proxied"), &[("x-forwarded-for", "203.0.113.5")]);
    assert_eq!(client.send(denied).await.status, 403);
    let other = get(&gw.url("/proxied"), &[("x-forwarded-for", "198.51.100.1")]);
    assert_eq!(client.send(other).await.status, 200);
    assert_eq!(upstream.hits(), 2);
    gw.shutdown().await;
}
