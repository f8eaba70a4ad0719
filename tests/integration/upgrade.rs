//! Upgrades pass through: a WebSocket handshake (RFC 6455 §1.3's example key and accept)
//! reaches the upstream with its `Upgrade` and `Connection` headers, the 101 comes back
//! with them, and then bytes flow both ways through the gateway.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_tests::{TestGateway, one_route};

pub(crate) const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub(crate) const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Reads an HTTP head (up to the blank line), lower-cased.
pub(crate) async fn read_head(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.expect("read head");
        assert_eq!(
            n,
            1,
            "connection closed in the head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

/// An upstream that accepts one WebSocket handshake, then echoes raw bytes.
pub(crate) async fn websocket_echo() -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let head = read_head(&mut stream).await;
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => stream.write_all(&buf[..n]).await.unwrap(),
            }
        }
        head
    });
    (addr, task)
}

/// Opens a connection to the gateway, sends the WebSocket handshake for `/chat` with
/// `Host: host`, and returns the connection and the head of the answer.
async fn handshake(gw: &TestGateway, host: &str) -> (TcpStream, String) {
    let mut client = TcpStream::connect(gw.addr).await.unwrap();
    let handshake = format!(
        "GET /chat HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    client.write_all(handshake.as_bytes()).await.unwrap();
    let head = read_head(&mut client).await;
    (client, head)
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrade_is_spliced_through() {
    let (upstream, seen) = websocket_echo().await;
    let gw = TestGateway::start(&one_route(upstream, ""), &[]).await;

    let (mut client, head) = handshake(&gw, "server.example.com").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(head.contains("connection: upgrade"), "{head}");
    assert!(
        head.contains(&format!(
            "sec-websocket-accept: {}",
            ACCEPT.to_ascii_lowercase()
        )),
        "{head}"
    );

    for message in [&b"hello"[..], &b"through the gateway"[..]] {
        client.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut echoed))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(echoed, message);
    }
    drop(client);
    let upstream_head = seen.await.unwrap();
    assert!(
        upstream_head.contains("upgrade: websocket"),
        "{upstream_head}"
    );
    assert!(
        upstream_head.contains("connection: upgrade"),
        "{upstream_head}"
    );
    assert!(
        upstream_head.contains(&format!("sec-websocket-key: {}", KEY.to_ascii_lowercase())),
        "{upstream_head}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quiet_tunnel_is_closed_after_its_idle_timeout() {
    let (upstream, _seen) = websocket_echo().await;
    let gw = TestGateway::start_with_server(
        "[server.limits]\ntunnel_idle_timeout_ms = 300\n",
        &one_route(upstream, ""),
        &[],
    )
    .await;
    let (mut client, head) = handshake(&gw, "a").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    let started = std::time::Instant::now();
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
        .await
        .expect("the gateway closes the idle tunnel");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed too early"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_h2c_upgrade_is_never_spliced() {
    // The upstream would switch to anything: the gateway must not ask it to.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let seen = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let head = read_head(&mut stream).await;
        let answer = if head.contains("upgrade:") {
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
        } else {
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        };
        stream.write_all(answer.as_bytes()).await.unwrap();
        head
    });
    let gw = TestGateway::start(&one_route(upstream, ""), &[]).await;
    let answer = weir_tests::raw_exchange(
        gw.addr,
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
         HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert_eq!(weir_tests::raw_status(&answer), 200, "{answer}");
    let head = seen.await.unwrap();
    assert!(!head.contains("upgrade"), "{head}");
    assert!(!head.contains("http2-settings"), "{head}");
    gw.shutdown().await;
}
