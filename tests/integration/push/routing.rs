//! The publish route's push router, a Wasm component: a custom policy changes where
//! messages go, and a failing router's failure policy applies like any filter's
//! (fail closed: the queue, never a silent drop; fail open: the built-in policy).

use serde_json::{Value, json};
use weir_tests::plugins::ROUTER_CUSTOM;

use super::{ALICE, BOB, Push, push_routes_with};

/// A gateway whose publish route asks `router-custom` with `config`, failing `failure`.
async fn with_router(config: &str, failure: &str) -> Push {
    let table = format!(
        "[routes.push_router]\nplugin = \"router-custom.wasm\"\nconfig = {config}\nfailure = \"{failure}\"\n"
    );
    Push::start_with(
        &push_routes_with("", &table),
        &[("router-custom.wasm", ROUTER_CUSTOM)],
    )
    .await
}

fn delivery(reply: &weir_tests::Reply, device: &str) -> Value {
    let deliveries = reply.json()["deliveries"].clone();
    deliveries
        .as_array()
        .and_then(|d| d.iter().find(|p| p["device"] == device))
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_router_changes_where_messages_go() {
    let push = with_router("{ drop_user = \"bob\" }", "fail_closed").await;
    push.register(ALICE, "phone").await;
    push.register(BOB, "tablet").await;
    let apns = json!({ "device": "iphone", "platform": "apns", "token": "a".repeat(64) });
    assert_eq!(push.call("POST", "devices", ALICE, &apns).await.status, 201);
    let to_alice = push
        .publish("a1", json!({ "user": "alice" }), json!(1))
        .await;
    assert_eq!(delivery(&to_alice, "phone")["delivery"], "queue");
    // This router says `vendor` for APNs devices; with no APNs channel configured, the
    // message waits in the queue instead (never lost in a vendor queue nobody drains).
    assert_eq!(delivery(&to_alice, "iphone")["delivery"], "queue");
    assert_eq!(push.gw_push_stats().await["vendor_queued"], 0);
    let to_bob = push.publish("b1", json!({ "user": "bob" }), json!(1)).await;
    assert_eq!(delivery(&to_bob, "tablet")["delivery"], "drop");
    assert_eq!(delivery(&to_bob, "tablet")["offset"], Value::Null);
    // Dropped means not stored: Bob's device gets nothing; Alice's phone gets hers.
    let mut tablet = push.ws(BOB, "tablet", None).await;
    assert!(
        tablet
            .quiet_for(std::time::Duration::from_millis(300))
            .await
    );
    let mut phone = push.ws(ALICE, "phone", None).await;
    assert_eq!(phone.message().await, (1, "a1".to_string()));
    push.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_router_keeps_the_message_or_falls_back_to_the_built_in_policy() {
    for (mode, failure, expected) in [
        ("loop", "fail_closed", "queue"),
        ("panic", "fail_closed", "queue"),
        ("panic", "fail_open", "live"),
    ] {
        let push = with_router(&format!("{{ mode = \"{mode}\" }}"), failure).await;
        push.register(ALICE, "phone").await;
        let mut phone = push.ws(ALICE, "phone", None).await;
        let reply = push
            .publish("m1", json!({ "user": "alice" }), json!(1))
            .await;
        assert_eq!(reply.status, 202, "{mode}/{failure}");
        assert_eq!(
            delivery(&reply, "phone")["delivery"],
            expected,
            "{mode}/{failure}"
        );
        // Never dropped: the live device has it.
        assert_eq!(
            phone.message().await,
            (1, "m1".to_string()),
            "{mode}/{failure}"
        );
        if failure == "fail_closed" {
            assert_eq!(push.gw_push_stats().await["router_failures"], 1);
        }
        push.gw.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_router_is_only_for_publish_routes_and_a_route_has_an_upstream_or_push() {
    let router = "[routes.push_router]\nplugin = \"router-custom.wasm\"\n";
    let on_connect = super::push_routes("").replacen(
        "[[routes]]\nname = \"devices\"",
        &format!("{router}[[routes]]\nname = \"devices\""),
        1,
    );
    let plugins = [
        ("auth.wasm", weir_tests::plugins::AUTH),
        ("router-custom.wasm", ROUTER_CUSTOM),
    ];
    let refused = weir_tests::refusal(
        weir_tests::TestGateway::try_start(&on_connect, &plugins).await,
        "a router on a connect route",
    )
    .await;
    assert!(
        refused.contains("push_router is for push = \"publish\" routes"),
        "{refused}"
    );
    let both = "[upstreams.u]\ntargets = [\"127.0.0.1:9\"]\n[[routes]]\nname = \"r\"\nupstream = \"u\"\npush = \"publish\"\n";
    let refused = weir_tests::refusal(
        weir_tests::TestGateway::try_start(both, &[]).await,
        "upstream and push",
    )
    .await;
    assert!(
        refused.contains("give upstream, push or httpdns = true, one of them"),
        "{refused}"
    );
}
