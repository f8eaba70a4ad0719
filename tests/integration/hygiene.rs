//! Header hygiene: hop-by-hop headers never cross; forwarding headers and the request id
//! are added.

use weir_tests::{TestClient, TestGateway, TestUpstream, get, one_route};

#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_removed_and_forwarding_headers_added() {
    let up = TestUpstream::start("up").await;
    let config = one_route(up.addr, "");
    let gw = TestGateway::start(&config, &[]).await;
    let client = TestClient::default();

    let r = client
        .send(get(
            &gw.url("/h?q=1"),
            &[
                ("connection", "x-private, keep-alive"),
                ("x-private", "secret"),
                ("keep-alive", "timeout=5"),
                ("proxy-authorization", "Basic abc"),
                ("x-forwarded-for", "10.1.2.3"),
                ("x-kept", "yes"),
                ("host", "shop.example"),
            ],
        ))
        .await;
    assert_eq!(r.status, 200);
    let seen = &r.json()["headers"];
    for gone in ["x-private", "keep-alive", "proxy-authorization"] {
        assert!(
            seen.get(gone).is_none(),
            "{gone} reached the upstream: {seen}"
        );
    }
    assert_eq!(seen["x-kept"][0], "yes");
    assert_eq!(seen["x-forwarded-for"][0], "10.1.2.3, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"][0], "http");
    assert_eq!(seen["x-forwarded-host"][0], "shop.example");
    assert_eq!(
        seen["host"][0], "shop.example",
        "the original Host goes upstream"
    );
    let id = seen["x-request-id"][0]
        .as_str()
        .expect("request id sent upstream");
    assert!(!id.is_empty());
    assert_eq!(r.json()["path"], "/h?q=1");
    // The upstream's own hop-by-hop headers stop at the gateway too.
    assert!(r.header("keep-alive").is_none());

    // A client's request id is replaced by default...
    let r = client
        .send(get(&gw.url("/"), &[("x-request-id", "trace-42")]))
        .await;
    assert_ne!(r.json()["headers"]["x-request-id"][0], "trace-42");
    gw.shutdown().await;

    // ... and kept when the config trusts it.
    let gw = TestGateway::start_with_server("trust_request_id = true\n", &config, &[]).await;
    let r = client
        .send(get(&gw.url("/"), &[("x-request-id", "trace-42")]))
        .await;
    assert_eq!(r.json()["headers"]["x-request-id"][0], "trace-42");
    gw.shutdown().await;
}
