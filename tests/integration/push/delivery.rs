//! Delivery: at once to a live device, on reconnect to an offline one, in order with
//! offsets; SSE resumes from `Last-Event-ID`; an unacked message comes again, an acked one
//! never; a message id published twice is delivered once with the same answer; expired
//! messages are not delivered and their loss is said; a device that does not read cannot
//! hold up others; an SSE session is bounded by its own timeouts, not the connection's.

use std::time::Duration;

use serde_json::json;

use weir_tests::TestGateway;
use weir_tests::plugins::AUTH;

use super::{ALICE, BOB, Push, PushClient, push_routes};

#[tokio::test(flavor = "multi_thread")]
async fn a_live_device_gets_messages_at_once_and_an_offline_one_on_reconnect_in_order() {
    let push = Push::start("").await;
    push.register(ALICE, "phone").await;
    push.register(ALICE, "laptop").await;
    let mut phone = push.ws(ALICE, "phone", None).await;
    for n in 1..=3 {
        let reply = push
            .publish(
                &format!("m{n}"),
                json!({ "user": "alice" }),
                json!({ "n": n }),
            )
            .await;
        assert_eq!(reply.status, 202, "{:?}", reply.body);
        let deliveries = reply.json()["deliveries"].clone();
        let placed = |device: &str| {
            deliveries
                .as_array()
                .and_then(|d| d.iter().find(|p| p["device"] == device))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(placed("phone")["delivery"], "live");
        assert_eq!(placed("laptop")["delivery"], "queue");
        assert_eq!(placed("laptop")["offset"], n);
        // The live device has it before the next publish.
        assert_eq!(phone.message().await, (n, format!("m{n}")));
    }
    phone.ack(3).await;
    // Acked messages leave the store; the laptop's wait for it.
    assert_eq!(push.gw_push_stats().await["queued"], 3);
    let mut laptop = push.ws(ALICE, "laptop", None).await;
    for n in 1..=3 {
        assert_eq!(laptop.message().await, (n, format!("m{n}")));
    }
    laptop.ack(3).await;
    assert_eq!(push.gw_push_stats().await["queued"], 0);
    // Bob's devices saw nothing of Alice's.
    push.register(BOB, "tablet").await;
    let mut tablet = push.ws(BOB, "tablet", None).await;
    assert!(tablet.quiet_for(Duration::from_millis(300)).await);
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_resumes_from_last_event_id() {
    let push = Push::start("").await;
    push.register(ALICE, "web").await;
    for n in 1..=3 {
        let reply = push
            .publish(&format!("m{n}"), json!({ "device": "web" }), json!(n))
            .await;
        assert_eq!(reply.status, 202);
    }
    let mut stream = push.sse(ALICE, "web", None).await;
    assert_eq!(stream.event().await.0, "hello");
    for n in 1..=3u64 {
        let (event, id, data) = stream.event().await;
        assert_eq!((event.as_str(), id), ("message", Some(n)));
        assert_eq!(data["payload"], json!(n));
    }
    drop(stream);
    push.publish("m4", json!({ "device": "web" }), json!(4))
        .await;
    // The client got up to 2 (say): 3 and 4 come again, in order, and nothing before.
    let mut stream = push.sse(ALICE, "web", Some(2)).await;
    let (_, _, hello) = stream.event().await;
    assert_eq!(hello["acked"], 2);
    assert_eq!(stream.event().await.1, Some(3));
    assert_eq!(stream.event().await.1, Some(4));
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unacked_comes_again_acked_never_and_a_repeated_id_is_delivered_once() {
    let push = Push::start("ack_timeout_ms = 300\nmax_redeliver_ms = 600").await;
    push.register(ALICE, "phone").await;
    let mut phone = push.ws(ALICE, "phone", None).await;
    let first = push
        .publish("once", json!({ "user": "alice" }), json!("hi"))
        .await;
    assert_eq!(first.status, 202);
    assert_eq!(phone.message().await, (1, "once".to_string()));
    // Not acked: it comes again after the ack timeout.
    assert_eq!(phone.message().await, (1, "once".to_string()));
    phone.ack(1).await;
    // Published again: the same answer, and no delivery.
    let again = push
        .publish("once", json!({ "user": "alice" }), json!("hi"))
        .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body, first.body, "the same answer");
    assert!(
        phone.quiet_for(Duration::from_millis(900)).await,
        "acked: never again"
    );
    // The next message has the next offset; a reconnect sends nothing acked.
    push.publish("next", json!({ "user": "alice" }), json!("2"))
        .await;
    assert_eq!(phone.message().await, (2, "next".to_string()));
    phone.ack(2).await;
    phone.close().await;
    let mut phone = push.ws(ALICE, "phone", None).await;
    assert!(phone.quiet_for(Duration::from_millis(400)).await);
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_messages_are_not_delivered_and_their_loss_is_said() {
    let push = Push::start("").await;
    push.register(ALICE, "phone").await;
    let short =
        json!({ "id": "short", "target": { "device": "phone" }, "payload": 1, "ttl_ms": 50 });
    assert_eq!(
        push.call("POST", "publish", super::SERVER, &short)
            .await
            .status,
        202
    );
    push.publish("long", json!({ "device": "phone" }), json!(2))
        .await;
    // A message's time to live is wall time: wait it out.
    tokio::time::sleep(Duration::from_millis(120)).await;
    let mut phone = push.ws(ALICE, "phone", None).await;
    assert_eq!(
        phone.frame().await,
        json!({ "type": "gap", "from": 1, "to": 1 })
    );
    assert_eq!(phone.message().await, (2, "long".to_string()));
    let stats = push.gw_push_stats().await;
    assert_eq!(stats["expired"], 1, "{stats}");
    let metrics = weir_tests::TestClient::default()
        .get(&push.gw.admin_url("/metrics"))
        .await;
    let metrics = String::from_utf8_lossy(&metrics.body);
    assert!(
        metrics.contains("\nweir_push_expired_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nweir_push_connections 1\n"), "{metrics}");
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_history_cap_drops_the_oldest_and_says_so() {
    let push = Push::start("history = 3").await;
    push.register(ALICE, "phone").await;
    for n in 1..=5 {
        push.publish(&format!("m{n}"), json!({ "device": "phone" }), json!(n))
            .await;
    }
    let mut phone = push.ws(ALICE, "phone", None).await;
    assert_eq!(
        phone.frame().await,
        json!({ "type": "gap", "from": 1, "to": 2 })
    );
    for n in 3..=5 {
        assert_eq!(phone.message().await, (n, format!("m{n}")));
    }
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_that_does_not_read_is_closed_and_holds_up_no_one() {
    let push = Push::start("send_timeout_ms = 300\nwindow = 1000\nmax_payload_bytes = 65536").await;
    push.register(ALICE, "stuck").await;
    push.register(BOB, "fine").await;
    // A client that completes the handshake and then never reads.
    let stuck = push.ws(ALICE, "stuck", None).await;
    let mut fine = push.ws(BOB, "fine", None).await;
    fill_the_buffers_of(&push, "stuck").await;
    // Others are served meanwhile.
    push.publish("hello", json!({ "device": "fine" }), json!("hi"))
        .await;
    assert_eq!(fine.message().await, (1, "hello".to_string()));
    let closed = weir_tests::eventually(Duration::from_secs(10), || async {
        push.gw_push_stats().await["slow_closed"] == 1
    })
    .await;
    assert!(closed, "the stuck device was closed");
    assert_eq!(push.gw_push_stats().await["connections"], 1);
    drop(stuck);
    push.gw.shutdown().await;
}

impl Push {
    /// The admin API's `GET /push`.
    pub async fn gw_push_stats(&self) -> serde_json::Value {
        weir_tests::TestClient::default()
            .get(&self.gw.admin_url("/push"))
            .await
            .json()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn devices_are_registered_listed_and_unbound_over_the_connection_too() {
    let push = Push::start("").await;
    push.register(ALICE, "phone").await;
    let mut phone = push.ws(ALICE, "phone", None).await;
    phone
        .send(r#"{"type":"register","device":"watch","platform":"ws","topics":["news"]}"#)
        .await;
    assert_eq!(
        phone.frame().await,
        json!({ "type": "registered", "device": "watch" })
    );
    phone.send(r#"{"type":"devices"}"#).await;
    let listed = phone.frame().await;
    let ids: Vec<&str> = listed["devices"]
        .as_array()
        .map(|d| d.iter().filter_map(|d| d["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["phone", "watch"], "{listed}");
    // A topic reaches its followers only.
    let reply = push
        .publish("t1", json!({ "topic": "news" }), json!("extra"))
        .await;
    let deliveries = reply.json()["deliveries"].clone();
    assert_eq!(deliveries.as_array().map(Vec::len), Some(1), "{deliveries}");
    assert_eq!(deliveries[0]["device"], "watch");
    phone.send(r#"{"type":"unbind","device":"watch"}"#).await;
    assert_eq!(
        phone.frame().await,
        json!({ "type": "unbound", "device": "watch" })
    );
    phone.send(r#"{"type":"unbind","device":"watch"}"#).await;
    assert_eq!(phone.frame().await["code"], "unknown_device");
    phone.send(r#"{"type":"launch","device":"watch"}"#).await;
    assert_eq!(phone.frame().await["code"], "malformed");
    let devices = push
        .call("GET", "devices", ALICE, &serde_json::Value::Null)
        .await;
    assert_eq!(devices.json()["devices"].as_array().map(Vec::len), Some(1));
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_go_on_after_an_unbind_and_a_new_registration() {
    let push = Push::start("").await;
    push.register(ALICE, "phone").await;
    for n in 1..=2 {
        push.publish(&format!("m{n}"), json!({ "device": "phone" }), json!(n))
            .await;
    }
    let unbound = push
        .call(
            "DELETE",
            "devices?device=phone",
            ALICE,
            &serde_json::Value::Null,
        )
        .await;
    assert_eq!(unbound.status, 200);
    push.register(ALICE, "phone").await;
    push.publish("m3", json!({ "device": "phone" }), json!(3))
        .await;
    // A client that kept offset 2 from before resumes there and gets the new message,
    // offset 3: it neither sees the unbound messages nor acks the new one unread.
    let mut phone = push.ws(ALICE, "phone", Some(2)).await;
    assert_eq!(phone.message().await, (3, "m3".to_string()));
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_session_keeps_its_place_under_the_connection_caps() {
    let gw = weir_tests::TestGateway::start_with_server(
        "[server.limits]\nmax_connections_per_ip = 2\n",
        &super::push_routes(""),
        &[("auth.wasm", weir_tests::plugins::AUTH)],
    )
    .await;
    // One request per connection, so that no keep-alive connection holds a place.
    let once = |request: String| async move { weir_tests::raw_exchange(gw.addr, &request).await };
    for device in ["phone", "tablet"] {
        let body = format!("{{\"device\":\"{device}\",\"platform\":\"ws\"}}");
        let answer = once(format!(
            "POST /push/devices?apikey={ALICE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
        .await;
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    }
    let push = super::PushClient::new(gw.addr);
    let phone = push.ws(ALICE, "phone", None).await;
    let tablet = push.ws(ALICE, "tablet", None).await;
    // Two upgraded sessions: the cap is reached, a third connection is closed at accept.
    let plain = || once("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string());
    assert_eq!(plain().await, "", "a third connection was served");
    phone.close().await;
    let served = weir_tests::eventually(std::time::Duration::from_secs(5), || async {
        !plain().await.is_empty()
    })
    .await;
    assert!(served, "the closed session gave its place back");
    drop(tablet);
    gw.shutdown().await;
}

/// Short connection timeouts: the idle timeout and the grace after it.
const SHORT_IDLE: &str = "shutdown_grace_ms = 200\n[server.limits]\nidle_timeout_ms = 300\n";

#[tokio::test(flavor = "multi_thread")]
async fn an_sse_session_outlives_the_connection_idle_timeout() {
    // The session's own keep-alive and send timeout bound it, not the connection's.
    let gw =
        TestGateway::start_with_server(SHORT_IDLE, &push_routes(""), &[("auth.wasm", AUTH)]).await;
    let push = PushClient::new(gw.addr);
    push.register(ALICE, "web").await;
    let mut stream = push.sse(ALICE, "web", None).await;
    assert_eq!(stream.event().await.0, "hello");
    // Well past the idle timeout and its grace, the stream still delivers.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    push.publish("m1", json!({ "device": "web" }), json!(1))
        .await;
    let (event, id, _) = stream.event().await;
    assert_eq!((event.as_str(), id), ("message", Some(1)));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sse_client_that_stops_reading_does_not_keep_its_connection() {
    let gw = TestGateway::start_with_server(
        SHORT_IDLE,
        &push_routes("send_timeout_ms = 300\nwindow = 4\nmax_payload_bytes = 65536"),
        &[("auth.wasm", AUTH)],
    )
    .await;
    let push = PushClient::new(gw.addr);
    push.register(ALICE, "stuck").await;
    // Asks for the stream, then never reads: the socket buffers and the session's queue
    // (a window of 4 messages) fill, and its sends time out.
    let mut stuck = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let ask = format!(
        "GET /push/connect?device=stuck&apikey={ALICE} HTTP/1.1\r\nHost: a\r\n\
         Accept: text/event-stream\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut stuck, ask.as_bytes())
        .await
        .unwrap();
    fill_the_buffers_of(&push, "stuck").await;
    // The session ended, so the connection is idle: the gateway closes it although it
    // still has bytes it cannot write (the publisher's connections close at the idle
    // timeout too).
    let closed = weir_tests::eventually(Duration::from_secs(10), || async {
        open_connections(&gw).await == 0
    });
    assert!(closed.await, "the stuck SSE connection is still open");
    drop(stuck);
    gw.shutdown().await;
}

/// The gateway's `weir_connections_open` gauge.
async fn open_connections(gw: &TestGateway) -> u64 {
    let metrics = weir_tests::TestClient::default()
        .get(&gw.admin_url("/metrics"))
        .await;
    String::from_utf8_lossy(&metrics.body)
        .lines()
        .find_map(|line| line.strip_prefix("weir_connections_open "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a weir_connections_open gauge")
}

/// Publishes 200 messages of 60 kB to `device`: more than the socket buffers hold. A
/// publish whose keep-alive connection the gateway's short idle timeout closed as it was
/// reused (a stalled test task on a busy machine) is made again, as a publisher does: the
/// same id is idempotent.
async fn fill_the_buffers_of(push: &PushClient, device: &str) {
    let big = "x".repeat(60_000);
    for n in 0..200 {
        let body =
            json!({ "id": format!("big{n}"), "target": { "device": device }, "payload": big });
        let reply = match push.try_call("POST", "publish", super::SERVER, &body).await {
            Ok(reply) => reply,
            Err(_) => push.call("POST", "publish", super::SERVER, &body).await,
        };
        assert_eq!(reply.status, 202);
    }
}
