//! Graceful shutdown: in-flight requests finish, new connections are refused.

use std::time::Duration;

use weir_tests::{TestClient, TestGateway, TestUpstream};

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_drains_in_flight_requests() {
    let up = TestUpstream::start("slow").await;
    up.set_delay(Duration::from_millis(600));
    let config = format!(
        "[upstreams.u]\ntargets = [\"{}\"]\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n",
        up.addr
    );
    let gw = TestGateway::start(&config, &[]).await;
    let url = gw.url("/");
    let in_flight: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { TestClient::default().get(&url).await.status })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(up.hits(), 5, "all five are in flight");
    let addr = gw.addr;
    gw.shutdown().await;
    for request in in_flight {
        assert_eq!(
            request.await.unwrap(),
            200,
            "an in-flight request was dropped"
        );
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}
