//! Graceful shutdown: in-flight requests finish, new connections are refused.

use std::time::Duration;

use weir_tests::{TestClient, TestGateway, TestUpstream, eventually, one_route};

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_drains_in_flight_requests() {
    let up = TestUpstream::start("slow").await;
    up.set_delay(Duration::from_millis(600));
    let config = one_route(up.addr, "");
    let gw = TestGateway::start(&config, &[]).await;
    let url = gw.url("/");
    let in_flight: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { TestClient::default().get(&url).await.status })
        })
        .collect();
    // The upstream holds each request for 600 ms: wait until all five are there.
    let all_in_flight = eventually(Duration::from_secs(10), || async { up.hits() == 5 }).await;
    assert!(
        all_in_flight,
        "only {} of five reached the upstream",
        up.hits()
    );
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
