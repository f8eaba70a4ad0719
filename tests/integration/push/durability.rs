//! Nothing accepted is lost: the `weir` binary answers `202` only once a message is on
//! disk, so after SIGKILL and a restart every accepted message is delivered, in order.

use serde_json::json;
use weir_tests::plugins::AUTH;

use super::{ALICE, PushClient, push_routes};
use crate::process::WeirProcess;

#[tokio::test(flavor = "multi_thread")]
async fn every_accepted_message_is_delivered_after_sigkill_and_restart() {
    // The test upstream route keeps `wait_serving` simple: `/` answers 404 (no route).
    let mut weir =
        WeirProcess::start_with(&push_routes(""), "", "true", &[("auth.wasm", AUTH)]).await;
    let push = PushClient::new(weir.addr());
    push.register(ALICE, "phone").await;
    let mut accepted = Vec::new();
    for n in 1..=20 {
        let id = format!("m{n}");
        let reply = push
            .publish(&id, json!({ "user": "alice" }), json!({ "n": n }))
            .await;
        assert_eq!(reply.status, 202, "{:?}", reply.body);
        accepted.push(id);
    }
    // Killed right after the last 202, before any device connected.
    weir.kill_and_restart().await;
    let mut phone = push.ws(ALICE, "phone", None).await;
    for (n, id) in accepted.iter().enumerate() {
        assert_eq!(phone.message().await, (n as u64 + 1, id.clone()));
    }
    // The idempotency record survived too: a repeated id is not delivered again.
    let again = push
        .publish("m1", json!({ "user": "alice" }), json!({ "n": 1 }))
        .await;
    assert_eq!(again.status, 202);
    phone.ack(20).await;
    assert!(phone.quiet_for(std::time::Duration::from_millis(300)).await);
}
