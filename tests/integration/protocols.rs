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
