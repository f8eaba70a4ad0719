//! Push in a fleet: with the Redis state backend every instance keeps push in one Redis
//! (a server or a cluster). The store keeps its promises there (order, offsets, acks, one
//! answer per message id, loss said); a message published on one instance is sent once
//! by the instance that holds the device's connection; a device whose instance was killed
//! recovers every message on another; what Redis acknowledged with `appendfsync always`
//! survives a Redis crash; push follows a Sentinel failover and a Cluster failover.

use std::time::Duration;

use serde_json::{Value, json};
use weir_tests::plugins::AUTH;
use weir_tests::redis::{RedisCluster, RedisSentinel, RedisServer};
use weir_tests::{TempDir, eventually};

use super::{ALICE, BOB, Push, PushClient, Ws, push_routes};
use crate::process::WeirProcess;

/// The `[state]` table of a fleet sharing Redis at `url` (`cluster = true` when `cluster`).
pub(super) fn shared(url: &str, cluster: bool) -> String {
    format!(
        "[state]\nbackend = \"redis\"\n[state.redis]\nurl = {{ value = \"{url}\" }}\n\
         cluster = {cluster}\ntimeout_ms = 2000\nprobe_interval_ms = 50\n"
    )
}

/// An instance of the fleet in this process, with `push_extra` in `[push]`.
async fn instance(url: &str, cluster: bool, push_extra: &str) -> Push {
    let config = shared(url, cluster) + &push_routes(push_extra);
    Push::start_with(&config, &[]).await
}

/// Publishes `id` to `target` and checks it is accepted; the answer.
async fn accepted(push: &PushClient, id: &str, target: Value) -> Value {
    let reply = push.publish(id, target, json!({ "id": id })).await;
    assert_eq!(reply.status, 202, "{id}: {:?}", reply.body);
    reply.json()
}

/// The delivery decided for `device` in a publish's answer.
fn delivery(answer: &Value, device: &str) -> Value {
    (answer["deliveries"].as_array().into_iter().flatten())
        .find(|p| p["device"] == device)
        .map(|p| p["delivery"].clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_keeps_its_promises_in_redis() {
    let redis = RedisServer::start();
    let push = instance(&redis.url(), false, "history = 3").await;
    push.register(ALICE, "phone").await;
    push.register(ALICE, "laptop").await;
    // In order with offsets, live and queued; a repeated id gets the first answer.
    let mut phone = push.ws(ALICE, "phone", None).await;
    let first = accepted(&push, "m1", json!({ "user": "alice" })).await;
    assert_eq!(delivery(&first, "phone"), "live");
    assert_eq!(delivery(&first, "laptop"), "queue");
    assert_eq!(phone.message().await, (1, "m1".to_string()));
    assert_eq!(
        accepted(&push, "m1", json!({ "user": "alice" })).await,
        first
    );
    accepted(&push, "m2", json!({ "user": "alice" })).await;
    assert_eq!(phone.message().await, (2, "m2".to_string()));
    phone.ack(2).await;
    assert!(phone.quiet_for(Duration::from_millis(300)).await);
    phone.close().await;
    // Acked is never sent again; what follows is.
    accepted(&push, "m3", json!({ "device": "phone" })).await;
    let mut phone = push.ws(ALICE, "phone", None).await;
    assert_eq!(phone.message().await, (3, "m3".to_string()));
    phone.ack(3).await;
    phone.close().await;
    // Past the history cap of 3 the laptop lost the oldest, and is told.
    for n in 4..=6 {
        accepted(&push, &format!("m{n}"), json!({ "device": "laptop" })).await;
    }
    let mut laptop = push.ws(ALICE, "laptop", None).await;
    let gap = laptop.frame().await;
    assert_eq!(gap, json!({ "type": "gap", "from": 1, "to": 2 }));
    for (offset, id) in [(3, "m4"), (4, "m5"), (5, "m6")] {
        assert_eq!(laptop.message().await, (offset, id.to_string()));
    }
    laptop.ack(5).await;
    laptop.close().await;
    // A stream that expired whole before the next message: the loss is said all the same.
    let brief =
        json!({ "id": "brief", "target": { "device": "laptop" }, "payload": 1, "ttl_ms": 50 });
    let reply = push.call("POST", "publish", super::SERVER, &brief).await;
    assert_eq!(reply.status, 202);
    tokio::time::sleep(Duration::from_millis(150)).await;
    accepted(&push, "m7", json!({ "device": "laptop" })).await;
    let mut laptop = push.ws(ALICE, "laptop", None).await;
    assert_eq!(
        laptop.frame().await,
        json!({ "type": "gap", "from": 6, "to": 6 })
    );
    assert_eq!(laptop.message().await, (7, "m7".to_string()));
    laptop.ack(7).await;
    // Expired messages are not sent, and their loss is said.
    let short =
        json!({ "id": "short", "target": { "device": "phone" }, "payload": 1, "ttl_ms": 50 });
    let reply = push.call("POST", "publish", super::SERVER, &short).await;
    assert_eq!(reply.status, 202);
    accepted(&push, "long", json!({ "device": "phone" })).await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    let mut phone = push.ws(ALICE, "phone", None).await;
    assert_eq!(
        phone.frame().await,
        json!({ "type": "gap", "from": 4, "to": 4 })
    );
    assert_eq!(phone.message().await, (5, "long".to_string()));
    phone.ack(5).await;
    phone.close().await;
    // Unbound and registered again: the offsets go on; Bob cannot take Alice's device.
    let unbound = (push.call("DELETE", "devices?device=phone", ALICE, &Value::Null)).await;
    assert_eq!(unbound.status, 200, "{:?}", unbound.body);
    let taken = push
        .call(
            "POST",
            "devices",
            BOB,
            &json!({ "device": "laptop", "platform": "ws" }),
        )
        .await;
    assert_eq!(taken.status, 409, "{:?}", taken.body);
    push.register(ALICE, "phone").await;
    accepted(&push, "after", json!({ "user": "alice" })).await;
    let mut phone = push.ws(ALICE, "phone", None).await;
    assert_eq!(phone.message().await, (6, "after".to_string()));
    let listed = push.call("GET", "devices", ALICE, &Value::Null).await;
    assert_eq!(listed.json()["devices"].as_array().map(Vec::len), Some(2));
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_published_on_one_instance_is_sent_once_by_the_instance_holding_the_device() {
    let redis = RedisServer::start();
    let a = instance(&redis.url(), false, "").await;
    let b = instance(&redis.url(), false, "").await;
    a.register(ALICE, "phone").await;
    let mut phone = b.ws(ALICE, "phone", None).await;
    // B announces the connection: A sees the device online.
    let online = eventually(Duration::from_secs(5), || async {
        redis.command("EXISTS weir:push:{d5:phone}:on").as_deref() == Some(":1")
    })
    .await;
    assert!(online, "B announced the connection");
    for n in 1..=5 {
        let answer = accepted(&a, &format!("m{n}"), json!({ "user": "alice" })).await;
        assert_eq!(delivery(&answer, "phone"), "live", "{answer}");
        assert_eq!(phone.message().await, (n, format!("m{n}")));
    }
    // Published again on B: the first answer, and nothing sent again.
    let again = b.publish("m5", json!({ "user": "alice" }), json!({})).await;
    assert_eq!(again.json()["deliveries"][0]["offset"], 5);
    phone.ack(5).await;
    assert!(phone.quiet_for(Duration::from_millis(500)).await);
    // The device connects to A: its connection on B is closed as replaced.
    let mut moved = a.ws(ALICE, "phone", None).await;
    assert_eq!(
        phone.close_code().await,
        Some(4000),
        "B closed its connection"
    );
    accepted(&b, "m6", json!({ "device": "phone" })).await;
    assert_eq!(moved.message().await, (6, "m6".to_string()));
    a.gw.shutdown().await;
    b.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_of_a_killed_instance_recovers_every_message_in_order_on_another() {
    let redis = RedisServer::start();
    let config = shared(&redis.url(), false) + &push_routes("");
    let mut a = WeirProcess::start_with(&config, "", "true", &[("auth.wasm", AUTH)]).await;
    let b = instance(&redis.url(), false, "").await;
    let on_a = PushClient::new(a.addr());
    on_a.register(ALICE, "phone").await;
    let mut phone = on_a.ws(ALICE, "phone", None).await;
    for n in 1..=3 {
        accepted(&b, &format!("m{n}"), json!({ "user": "alice" })).await;
        assert_eq!(phone.message().await, (n, format!("m{n}")));
    }
    phone.ack(2).await;
    // A dies with its connection; messages keep coming meanwhile.
    a.kill();
    for n in 4..=8 {
        accepted(&b, &format!("m{n}"), json!({ "user": "alice" })).await;
    }
    // The device reconnects to B and says it got 3: everything after it comes, in order.
    let mut phone = b.ws(ALICE, "phone", Some(3)).await;
    for n in 4..=8 {
        assert_eq!(phone.message().await, (n, format!("m{n}")));
    }
    phone.ack(8).await;
    assert!(phone.quiet_for(Duration::from_millis(300)).await);
    b.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_accepted_is_lost_when_redis_crashes_with_appendfsync_always() {
    let dir = TempDir::new();
    let mut redis = RedisServer::start_durable(dir.path());
    let push = instance(&redis.url(), false, "").await;
    push.register(ALICE, "phone").await;
    for n in 1..=20 {
        accepted(&push, &format!("m{n}"), json!({ "user": "alice" })).await;
    }
    // Killed right after the last 202 (SIGKILL: no save on the way out), then back.
    redis.stop();
    redis.resume();
    let mut phone = push.ws(ALICE, "phone", None).await;
    for n in 1..=20 {
        assert_eq!(phone.message().await, (n, format!("m{n}")));
    }
    // The idempotency answers survived too.
    let again = push
        .publish("m1", json!({ "user": "alice" }), json!({}))
        .await;
    assert_eq!(again.json()["deliveries"][0]["offset"], 1);
    phone.ack(20).await;
    assert!(phone.quiet_for(Duration::from_millis(300)).await);
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_spreads_over_a_redis_cluster_and_crosses_instances() {
    let cluster = RedisCluster::start();
    let a = instance(&cluster.url(), true, "").await;
    let b = instance(&cluster.url(), true, "").await;
    // Devices whose keys land on every node, following one topic.
    let devices: Vec<String> = (0..12).map(|n| format!("d{n}")).collect();
    for device in &devices {
        let body = json!({ "device": device, "platform": "ws", "topics": ["news"] });
        let reply = a.call("POST", "devices", ALICE, &body).await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
    }
    assert!(
        cluster.keys_per_node().iter().all(|keys| *keys > 0),
        "{:?}",
        cluster.keys_per_node()
    );
    let mut sockets = Vec::new();
    for device in &devices {
        sockets.push(b.ws(ALICE, device, None).await);
    }
    for n in 1..=3 {
        let answer = accepted(&a, &format!("news{n}"), json!({ "topic": "news" })).await;
        assert_eq!(answer["deliveries"].as_array().map(Vec::len), Some(12));
    }
    for socket in &mut sockets {
        for n in 1..=3 {
            assert_eq!(socket.message().await, (n, format!("news{n}")));
        }
        socket.ack(3).await;
    }
    for socket in &mut sockets {
        assert!(socket.quiet_for(Duration::from_millis(100)).await);
    }
    // A device that connects to the other instance has its first connection closed.
    let _moved = a.ws(ALICE, "d0", None).await;
    assert_eq!(sockets[0].close_code().await, Some(4000));
    a.gw.shutdown().await;
    b.gw.shutdown().await;
}

/// Alice's phone, connected to `holder`, gets three messages published on `publisher`
/// and acks them.
async fn three_delivered(publisher: &PushClient, holder: &PushClient) -> Ws {
    publisher.register(ALICE, "phone").await;
    let mut phone = holder.ws(ALICE, "phone", None).await;
    for n in 1..=3 {
        accepted(publisher, &format!("m{n}"), json!({ "user": "alice" })).await;
        assert_eq!(phone.message().await, (n, format!("m{n}")));
    }
    phone.ack(3).await;
    phone
}

/// The master holding the phone's stream has died: until `failover` has seen a replica
/// take over, a publish is refused (the publisher tries again); then the new master takes
/// it, and the phone's connection, which stayed open, gets the new messages once, in order.
async fn through_the_failover(publisher: &PushClient, phone: &mut Ws, failover: impl FnOnce()) {
    let refused = publisher
        .publish("m4", json!({ "user": "alice" }), json!({}))
        .await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    failover();
    let taken = eventually(Duration::from_secs(10), || async {
        let reply = publisher
            .publish("m4", json!({ "user": "alice" }), json!({}))
            .await;
        reply.status == 202
    })
    .await;
    assert!(taken, "the new master takes publishes");
    accepted(publisher, "m5", json!({ "user": "alice" })).await;
    assert_eq!(phone.message().await, (4, "m4".to_string()));
    assert_eq!(phone.message().await, (5, "m5".to_string()));
    phone.ack(5).await;
    assert!(phone.quiet_for(Duration::from_millis(300)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn push_follows_a_sentinel_failover() {
    let mut redis = RedisSentinel::start();
    let config = format!(
        "[state]\nbackend = \"redis\"\n[state.redis]\nurl = {{ value = \"{}\" }}\n\
         sentinel_master = \"weir\"\ntimeout_ms = 500\nprobe_interval_ms = 100\n",
        redis.url()
    ) + &push_routes("");
    let push = Push::start_with(&config, &[]).await;
    let mut phone = three_delivered(&push, &push).await;
    assert!(redis.master.wait_for_replicas(), "the replica caught up");
    redis.master.stop();
    through_the_failover(&push, &mut phone, || redis.wait_for_failover()).await;
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_follows_a_cluster_master_failing_over_to_its_replica() {
    let mut cluster = RedisCluster::start_with_replicas(1);
    let a = instance(&cluster.url(), true, "").await;
    let b = instance(&cluster.url(), true, "").await;
    let mut phone = three_delivered(&a, &b).await;
    let master = cluster.master_of("weir:push:{d5:phone}:cur");
    assert!(master.wait_for_replicas(), "the replica caught up");
    master.stop();
    through_the_failover(&a, &mut phone, || cluster.wait_for_failover()).await;
    a.gw.shutdown().await;
    b.gw.shutdown().await;
}
