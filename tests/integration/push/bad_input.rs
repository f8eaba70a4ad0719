//! Bad input gets a clear 4xx with a stable code and changes nothing: an unknown device,
//! a payload too big, a bad TTL, malformed JSON, a caller no filter identified, another
//! user's device, a WebSocket frame that breaks RFC 6455 or the size limit, a device that never
//! answers a ping.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ALICE, BOB, Push, SERVER};
use weir_tests::request;

#[tokio::test(flavor = "multi_thread")]
async fn bad_publishes_and_registrations_are_4xx_and_change_nothing() {
    let push =
        Push::start("max_payload_bytes = 64\nmax_ttl_ms = 60000\ndefault_ttl_ms = 60000").await;
    push.register(ALICE, "phone").await;
    let cases = [
        (
            json!({ "id": "a", "target": { "device": "nobody" }, "payload": 1 }),
            404,
            "unknown_device",
        ),
        (
            json!({ "id": "b", "target": { "user": "alice" }, "payload": "x".repeat(100) }),
            413,
            "payload_too_large",
        ),
        (
            json!({ "id": "c", "target": { "user": "alice" }, "payload": 1, "ttl_ms": 0 }),
            400,
            "bad_ttl",
        ),
        (
            json!({ "id": "d", "target": { "user": "alice" }, "payload": 1, "ttl_ms": 60001 }),
            400,
            "bad_ttl",
        ),
        (
            json!({ "id": "", "target": { "user": "alice" }, "payload": 1 }),
            400,
            "bad_id",
        ),
        (
            json!({ "id": "e", "target": { "planet": "mars" }, "payload": 1 }),
            400,
            "malformed",
        ),
        (json!({ "id": "f", "payload": 1 }), 400, "malformed"),
    ];
    for (body, status, code) in cases {
        let reply = push.call("POST", "publish", SERVER, &body).await;
        assert_eq!(reply.status, status, "{body}: {:?}", reply.body);
        assert_eq!(reply.json()["error"], code, "{body}");
    }
    let url = push.url("/push/publish");
    let headers = [("x-api-key", SERVER), ("content-type", "application/json")];
    let client = weir_tests::TestClient::default();
    let malformed = client
        .send(request("POST", &url, &headers, "{\"id\":"))
        .await;
    assert_eq!(
        (malformed.status.as_u16(), malformed.json()["error"].clone()),
        (400, json!("malformed"))
    );
    let get = client.send(request("GET", &url, &headers, "")).await;
    assert_eq!(get.status, 405);
    // Refusals have the gateway's error format.
    assert_eq!(get.header("x-weir-error"), Some("method_not_allowed"));
    assert_eq!(
        get.json()["request_id"].as_str(),
        get.header("x-request-id")
    );
    let post = client
        .send(request(
            "POST",
            &push.url("/push/connect?device=phone"),
            &headers,
            "",
        ))
        .await;
    assert_eq!(post.status, 405);
    // Without an API key the auth filter answers first; a registration for a vendor
    // platform needs its token; another user's device is not found.
    let anonymous = client
        .send(request("POST", &push.url("/push/devices"), &[], "{}"))
        .await;
    assert_eq!(anonymous.status, 401);
    let vendor = json!({ "device": "iphone", "platform": "apns" });
    assert_eq!(
        push.call("POST", "devices", ALICE, &vendor).await.status,
        400
    );
    let taken = json!({ "device": "phone", "platform": "ws" });
    assert_eq!(push.call("POST", "devices", BOB, &taken).await.status, 409);
    assert_eq!(
        push.call("DELETE", "devices?device=phone", BOB, &Value::Null)
            .await
            .status,
        404
    );
    // Nothing changed: Alice has her one device and nothing was delivered to it.
    let devices = push
        .call("GET", "devices", ALICE, &Value::Null)
        .await
        .json();
    assert_eq!(devices["devices"].as_array().map(Vec::len), Some(1));
    let mut phone = push.ws(ALICE, "phone", None).await;
    assert!(phone.quiet_for(std::time::Duration::from_millis(300)).await);
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connecting_needs_a_known_device_of_ones_own() {
    let push = Push::start("").await;
    push.register(ALICE, "phone").await;
    let client = weir_tests::TestClient::default();
    let connect = |key: &'static str, query: &str| {
        let url = push.url(&format!("/push/connect{query}"));
        client.send(request(
            "GET",
            &url,
            &[("x-api-key", key), ("accept", "text/event-stream")],
            "",
        ))
    };
    assert_eq!(connect(BOB, "?device=phone").await.status, 404);
    assert_eq!(connect(ALICE, "?device=ghost").await.status, 404);
    assert_eq!(connect(ALICE, "").await.status, 400);
    assert_eq!(
        connect(ALICE, "?device=phone&last_offset=x").await.status,
        400
    );
    let plain = client
        .send(request(
            "GET",
            &push.url("/push/connect?device=phone"),
            &[("x-api-key", ALICE)],
            "",
        ))
        .await;
    assert_eq!(plain.status, 426);
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frame_that_breaks_rfc_6455_closes_the_connection() {
    let push = Push::start("").await;
    push.register(ALICE, "phone").await;
    let (mut tcp, head) = raw_websocket(&push, "phone").await;
    // RFC 6455 §6.2's own example key gives this accept value.
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    // A client frame without a mask (§5.1: the server must close the connection).
    tcp.write_all(&[0x81, 0x02, b'h', b'i'])
        .await
        .expect("write");
    assert!(
        closed_within(&mut tcp, std::time::Duration::from_secs(5)).await,
        "the gateway closed the connection"
    );
    // Still serving everyone else.
    let mut phone = push.ws(ALICE, "phone", None).await;
    push.publish("m1", json!({ "device": "phone" }), json!(1))
        .await;
    assert_eq!(phone.message().await, (1, "m1".to_string()));
    push.gw.shutdown().await;
}

/// Completes a WebSocket handshake for `device` by hand; returns the socket and the
/// gateway's `101` answer.
async fn raw_websocket(push: &Push, device: &str) -> (tokio::net::TcpStream, String) {
    let mut tcp = tokio::net::TcpStream::connect(push.gw.addr)
        .await
        .expect("connect");
    let handshake = format!(
        "GET /push/connect?device={device} HTTP/1.1\r\nHost: {}\r\nx-api-key: {ALICE}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        push.gw.addr
    );
    tcp.write_all(handshake.as_bytes()).await.expect("write");
    let mut head = vec![0u8; 4096];
    let n = tcp.read(&mut head).await.expect("read");
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (tcp, head)
}

/// Reads until the gateway closes the socket; false if it is still open after `wait`.
async fn closed_within(tcp: &mut tokio::net::TcpStream, wait: std::time::Duration) -> bool {
    let mut rest = Vec::new();
    tokio::time::timeout(wait, tcp.read_to_end(&mut rest))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frame_over_the_size_limit_closes_the_connection() {
    let push = Push::start("max_frame_bytes = 1024").await;
    push.register(ALICE, "phone").await;
    let (mut tcp, _) = raw_websocket(&push, "phone").await;
    // A masked text frame of 4096 bytes (RFC 6455 §5.2: 126 = 16-bit length follows).
    let mut frame = vec![0x81, 0x80 | 126, 0x10, 0x00, 1, 2, 3, 4];
    frame.extend(std::iter::repeat_n(b'a' ^ 1, 4096));
    tcp.write_all(&frame).await.expect("write");
    assert!(closed_within(&mut tcp, std::time::Duration::from_secs(5)).await);
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_device_is_closed_after_two_keepalives() {
    let push = Push::start("keepalive_ms = 200").await;
    push.register(ALICE, "phone").await;
    // Never answers a ping (and never reads): the gateway closes it, well before 5 s.
    let (mut tcp, _) = raw_websocket(&push, "phone").await;
    let started = std::time::Instant::now();
    assert!(closed_within(&mut tcp, std::time::Duration::from_secs(5)).await);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    push.gw.shutdown().await;
}
