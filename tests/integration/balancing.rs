//! The distribution of each load-balancing policy.

use std::collections::BTreeMap;
use std::time::Duration;

use weir_tests::{Reply, TestClient, TestGateway, TestUpstream, eventually, get};

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

/// While one target holds a request and the other holds none, every request goes to the
/// idle one; then the other way round, so that "always the same target" cannot pass.
#[tokio::test(flavor = "multi_thread")]
async fn least_connections_avoids_the_busy_target() {
    let pair = [
        TestUpstream::start("u0").await,
        TestUpstream::start("u1").await,
    ];
    let targets = format!("\"{}\", \"{}\"", pair[0].addr, pair[1].addr);
    let gw = TestGateway::start(&config("least_connections", &targets, ""), &[]).await;
    let client = TestClient::default();
    for (busy, idle) in [(&pair[0], &pair[1]), (&pair[1], &pair[0])] {
        busy.set_delay(Duration::from_millis(1500));
        idle.set_delay(Duration::ZERO);
        let held = hold_one_on(&gw, busy).await;
        let (busy_hits, idle_hits) = (busy.hits(), idle.hits());
        for _ in 0..10 {
            let r = client.get(&gw.url("/")).await;
            assert_eq!(
                r.header("x-upstream"),
                Some(idle.name.as_str()),
                "{} is busy",
                busy.name
            );
        }
        assert!(
            !held.is_finished(),
            "the held request was still in flight throughout"
        );
        assert_eq!((busy.hits(), idle.hits()), (busy_hits, idle_hits + 10));
        assert_eq!(held.await.expect("held request").status, 200);
    }
    gw.shutdown().await;
}

/// Sends requests one at a time until one is held by `busy` (the others are answered at
/// once by the other target); returns that request, still in flight.
async fn hold_one_on(gw: &TestGateway, busy: &TestUpstream) -> tokio::task::JoinHandle<Reply> {
    for _ in 0..20 {
        let before = busy.hits();
        let url = gw.url("/");
        let task = tokio::spawn(async move { TestClient::default().get(&url).await });
        let settled = eventually(Duration::from_secs(5), || {
            let settled = busy.hits() > before || task.is_finished();
            async move { settled }
        })
        .await;
        assert!(settled, "a request to an idle pool settles");
        if busy.hits() > before {
            return task;
        }
        assert_eq!(task.await.expect("request").status, 200);
    }
    panic!(
        "{} was never chosen while both targets were idle",
        busy.name
    );
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

/// Removing a target moves only the keys it held: the others stay where they were.
#[tokio::test(flavor = "multi_thread")]
async fn consistent_hash_moves_only_the_keys_of_a_removed_target() {
    let u = three().await;
    let targets = |u: &[TestUpstream]| {
        u.iter()
            .map(|u| format!("\"{}\"", u.addr))
            .collect::<Vec<_>>()
            .join(",")
    };
    let hash_on = "hash_on = { header = \"x-user\" }";
    let gw = TestGateway::start(&config("consistent_hash", &targets(&u), hash_on), &[]).await;
    let users: Vec<String> = (0..30).map(|n| format!("user-{n}")).collect();
    let placement = |gw: &TestGateway| {
        let url = gw.url("/");
        let users = users.clone();
        async move {
            let client = TestClient::default();
            let mut at = BTreeMap::new();
            for user in users {
                let r = client.send(get(&url, &[("x-user", &user)])).await;
                assert_eq!(r.status, 200);
                at.insert(user, r.header("x-upstream").unwrap_or("?").to_string());
            }
            at
        }
    };
    let before = placement(&gw).await;
    let removed = "u2";
    assert!(
        before.values().any(|t| t == removed),
        "some key was on {removed}: {before:?}"
    );

    let generation = gw.generation();
    gw.write_config(&config("consistent_hash", &targets(&u[..2]), hash_on));
    let r = gw.reload(&TestClient::default()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        gw.generation() > generation,
        "the config without {removed} is live"
    );

    let after = placement(&gw).await;
    for (user, target) in &before {
        if target == removed {
            assert_ne!(&after[user], removed, "{user} moved off the removed target");
        } else {
            assert_eq!(&after[user], target, "{user} stayed where it was");
        }
    }
    gw.shutdown().await;
}
