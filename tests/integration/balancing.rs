//! The distribution of each load-balancing policy.

use std::collections::BTreeMap;
use std::time::Duration;

use weir_tests::{TestClient, TestGateway, TestUpstream, get};

async fn three() -> [TestUpstream; 3] {
    [
        TestUpstream::start("u0").await,
        TestUpstream::start("u1").await,
        TestUpstream::start("u2").await,
    ]
}

/// The three upstreams as weighted targets.
fn weighted(u: &[TestUpstream; 3], weights: [u32; 3]) -> String {
    u.iter()
        .zip(weights)
        .map(|(u, w)| format!("{{ address = \"{}\", weight = {w} }}", u.addr))
        .collect::<Vec<_>>()
        .join(", ")
}

fn config(policy: &str, targets: &str, extra: &str) -> String {
    format!(
        "[upstreams.pool]\ntargets = [{targets}]\npolicy = \"{policy}\"\n{extra}\n\
         [[routes]]\nname = \"all\"\nupstream = \"pool\"\n"
    )
}

async fn count(gw: &TestGateway, n: usize, headers: &[(&str, &str)]) -> BTreeMap<String, usize> {
    let client = TestClient::default();
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let r = client.send(get(&gw.url("/"), headers)).await;
        assert_eq!(r.status, 200);
        *seen
            .entry(r.header("x-upstream").unwrap_or("?").to_string())
            .or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_is_even() {
    let u = three().await;
    let targets = u
        .iter()
        .map(|u| format!("\"{}\"", u.addr))
        .collect::<Vec<_>>()
        .join(",");
    let gw = TestGateway::start(&config("round_robin", &targets, ""), &[]).await;
    let seen = count(&gw, 30, &[]).await;
    assert_eq!(
        seen.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "{seen:?}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_round_robin_follows_weights() {
    let u = three().await;
    let targets = weighted(&u, [5, 3, 2]);
    let gw = TestGateway::start(&config("weighted_round_robin", &targets, ""), &[]).await;
    let seen = count(&gw, 100, &[]).await;
    assert_eq!(
        (seen["u0"], seen["u1"], seen["u2"]),
        (50, 30, 20),
        "{seen:?}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn random_spreads_by_weight() {
    let u = three().await;
    let targets = weighted(&u, [2, 1, 1]);
    let gw = TestGateway::start(&config("random", &targets, ""), &[]).await;
    let seen = count(&gw, 800, &[]).await;
    // Expected 400/200/200; the bounds are > 6 standard deviations wide.
    assert!((320..=480).contains(&seen["u0"]), "{seen:?}");
    assert!((130..=270).contains(&seen["u1"]), "{seen:?}");
    assert!((130..=270).contains(&seen["u2"]), "{seen:?}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn least_connections_avoids_the_busy_target() {
    let slow = TestUpstream::start("slow").await;
    let fast = TestUpstream::start("fast").await;
    slow.set_delay(Duration::from_millis(300));
    let targets = format!("\"{}\", \"{}\"", slow.addr, fast.addr);
    let gw = TestGateway::start(&config("least_connections", &targets, ""), &[]).await;
    let mut workers = Vec::new();
    for _ in 0..4 {
        let url = gw.url("/");
        workers.push(tokio::spawn(async move {
            let client = TestClient::default();
            for _ in 0..10 {
                assert_eq!(client.get(&url).await.status, 200);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    // Round robin would give each 20; least connections sends to the slow one only when
    // the fast one is at least as busy.
    assert!(slow.hits() <= 8, "slow got {} of 40", slow.hits());
    assert_eq!(slow.hits() + fast.hits(), 40);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_hash_keeps_keys_on_one_target() {
    let u = three().await;
    let targets = u
        .iter()
        .map(|u| format!("\"{}\"", u.addr))
        .collect::<Vec<_>>()
        .join(",");
    let gw = TestGateway::start(
        &config(
            "consistent_hash",
            &targets,
            "hash_on = { header = \"x-user\" }",
        ),
        &[],
    )
    .await;
    let mut used = std::collections::BTreeSet::new();
    for user in 0..30 {
        let user = format!("user-{user}");
        let seen = count(&gw, 4, &[("x-user", &user)]).await;
        assert_eq!(seen.len(), 1, "{user} was spread over {seen:?}");
        used.extend(seen.into_keys());
    }
    assert_eq!(
        used.len(),
        3,
        "30 keys should reach all three targets: {used:?}"
    );
    gw.shutdown().await;
}
