//! Upstream connections: kept alive and reused across requests, and one the target closed
//! while it sat idle is never used for the next request (which gets a new connection).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use weir_tests::{TestClient, TestGateway, eventually, one_route};

/// A keep-alive upstream that answers `ok` to every request and closes a connection that
/// has been idle for `idle_close` (without a `Connection: close`, as a server's keep-alive
/// timeout does). Counts the connections it accepted and the ones it closed.
struct KeepAliveUpstream {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl KeepAliveUpstream {
    async fn start(idle_close: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (counted, ended) = (accepted.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let ended = ended.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let read = tokio::time::timeout(idle_close, stream.read(&mut buf)).await;
                        let Ok(Ok(n @ 1..)) = read else { break };
                        seen.extend_from_slice(&buf[..n]);
                        // Requests without bodies: one answer per head.
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if stream.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                    drop(stream);
                    ended.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            accepted,
            closed,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_connections_are_kept_alive_and_reused() {
    let up = KeepAliveUpstream::start(Duration::from_secs(30)).await;
    let gw = TestGateway::start(&one_route(up.addr, ""), &[]).await;
    // One client connection: one worker, so one upstream connection serves all.
    let client = TestClient::default();
    for _ in 0..20 {
        let reply = client.get(&gw.url("/")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(&reply.body[..], b"ok");
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_the_upstream_closed_while_idle_is_not_used_again() {
    let up = KeepAliveUpstream::start(Duration::from_millis(100)).await;
    let gw = TestGateway::start(&one_route(up.addr, ""), &[]).await;
    let client = TestClient::default();
    for round in 1..=3 {
        assert_eq!(client.get(&gw.url("/")).await.status, 200, "round {round}");
        // The upstream closes the idle connection; the next request needs a new one.
        let closed = eventually(Duration::from_secs(5), || async {
            up.closed.load(Ordering::SeqCst) == round
        });
        assert!(closed.await, "the upstream closed its idle connection");
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 3);
    gw.shutdown().await;
}
