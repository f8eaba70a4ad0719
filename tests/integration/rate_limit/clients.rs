//! Whose budget a request spends: `X-Forwarded-For` is believed only from trusted proxies,
//! and then only its right-most entry that is not itself a trusted proxy.

use weir_tests::{TestClient, TestUpstream};

use super::{gateway, statuses};

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let upstream = TestUpstream::start("main").await;
    let limits = r#"limits = [{ limit = 2, window = "1h" }]"#;
    let client = TestClient::http1();
    let a = [("x-forwarded-for", "198.51.100.1")];
    let b = [("x-forwarded-for", "198.51.100.2, 127.0.0.1")];

    // The test client connects from 127.0.0.1: trusted, so each forwarded client has a budget.
    let trusting = gateway(
        &upstream,
        &format!(r#"{{ {limits}, trusted_proxies = ["127.0.0.1/32"] }}"#),
        "",
    )
    .await;
    assert_eq!(
        statuses(&client, &trusting.url("/rl"), 3, &a).await,
        [200, 200, 429]
    );
    assert_eq!(
        statuses(&client, &trusting.url("/rl"), 3, &b).await,
        [200, 200, 429]
    );
    // The client, not the proxy, writes the left of the chain: a made-up address there
    // leaves the request a's, whose budget is spent (taking the left-most entry would
    // give every request a fresh budget).
    let spoofed = [("x-forwarded-for", "203.0.113.9, 198.51.100.1")];
    assert_eq!(
        statuses(&client, &trusting.url("/rl"), 1, &spoofed).await,
        [429]
    );
    let spoofed_in_two_fields = [
        ("x-forwarded-for", "203.0.113.10"),
        ("x-forwarded-for", "198.51.100.1"),
    ];
    assert_eq!(
        statuses(&client, &trusting.url("/rl"), 1, &spoofed_in_two_fields).await,
        [429]
    );
    // Its made-up address has a budget of its own, untouched.
    let made_up = [("x-forwarded-for", "203.0.113.9")];
    assert_eq!(
        statuses(&client, &trusting.url("/rl"), 1, &made_up).await,
        [200]
    );

    // Not trusted: X-Forwarded-For is the client's claim and every request is 127.0.0.1's.
    let strict = gateway(&upstream, &format!("{{ {limits} }}"), "").await;
    assert_eq!(statuses(&client, &strict.url("/rl"), 1, &a).await, [200]);
    assert_eq!(
        statuses(&client, &strict.url("/rl"), 2, &b).await,
        [200, 429]
    );
}
