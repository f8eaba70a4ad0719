//! HTTP/2: h2c from clients, and h2c to upstreams.

use weir_tests::{TestClient, TestGateway, TestUpstream};

#[tokio::test(flavor = "multi_thread")]
async fn h2c_downstream_and_upstream() {
    let h1 = TestUpstream::start("h1").await;
    let h2 = TestUpstream::start("h2").await;
    let config = format!(
        "[upstreams.h1]\ntargets = [\"{}\"]\n[upstreams.h2]\ntargets = [\"{}\"]\nprotocol = \"h2c\"\n\
         [[routes]]\nname = \"to-h2\"\nupstream = \"h2\"\nmatch = {{ path_prefix = \"/h2\" }}\n\
         [[routes]]\nname = \"to-h1\"\nupstream = \"h1\"\n",
        h1.addr, h2.addr
    );
    let gw = TestGateway::start(&config, &[]).await;
    for client in [TestClient::http1(), TestClient::h2c()] {
        let r = client.get(&gw.url("/h1")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["version"], "HTTP/1.1");
        assert!(
            r.json()["headers"]["host"][0].as_str().is_some(),
            "an HTTP/1.1 upstream gets a Host"
        );
        let r = client.get(&gw.url("/h2")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["version"], "HTTP/2.0");
    }
    gw.shutdown().await;
}

/// An h2c upstream that answers like a gRPC server: a body, then `grpc-status` and
/// `grpc-message` in trailers; it says in `x-saw-te` whether the request kept `TE: trailers`.
async fn grpc_like_upstream() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    weir_tests::serve(|request: http::Request<hyper::body::Incoming>| async move {
        let saw_te = request.headers().get("te").map_or("none".to_string(), |v| {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        });
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        trailers.insert("grpc-message", http::HeaderValue::from_static("fine"));
        let body = http_body_util::BodyExt::with_trailers(
            http_body_util::Full::new(bytes::Bytes::from_static(b"payload")),
            async move { Some(Ok(trailers)) },
        );
        http::Response::builder()
            .header("x-saw-te", saw_te)
            .body(body)
            .expect("a response")
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn trailers_reach_a_body_filter_and_the_client() {
    let (addr, server) = grpc_like_upstream().await;
    let config = format!(
        "[upstreams.g]\ntargets = [\"{addr}\"]\nprotocol = \"h2c\"\n\
         [[routes]]\nname = \"read\"\nupstream = \"g\"\nmatch = {{ path_prefix = \"/read\" }}\n\
         [[routes.filters]]\nplugin = \"probe.wasm\"\nconfig = {{ trailers = true }}\n\
         [[routes]]\nname = \"stream\"\nupstream = \"g\"\n"
    );
    let gw = TestGateway::start(&config, &[("probe.wasm", weir_tests::plugins::PROBE)]).await;
    let client = TestClient::h2c();
    for path in ["/read", "/stream"] {
        let r = client
            .send(weir_tests::get(&gw.url(path), &[("te", "trailers")]))
            .await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, "payload", "{path}");
        assert_eq!(r.header("x-saw-te"), Some("trailers"), "{path}");
        assert_eq!(
            r.trailers["grpc-status"], "0",
            "{path}: trailers reach the client"
        );
        assert_eq!(r.trailers["grpc-message"], "fine", "{path}");
    }
    let r = client
        .send(weir_tests::get(&gw.url("/read"), &[("te", "trailers")]))
        .await;
    assert_eq!(
        r.header("x-probe-trailers"),
        Some("grpc-status=0;grpc-message=fine"),
        "the body filter saw the trailers"
    );
    // Any other TE is hop-by-hop and goes.
    let r = TestClient::http1()
        .send(weir_tests::get(&gw.url("/stream"), &[("te", "gzip")]))
        .await;
    assert_eq!(r.header("x-saw-te"), Some("none"));
    gw.shutdown().await;
    server.abort();
}
