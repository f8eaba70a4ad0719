//! What each algorithm admits over time, on both backends: with a window of four seconds
//! the three algorithms part ways within one window and at the start of the next, so a
//! filter (or a Redis script) that ignored `algorithm` could not pass.

use std::ops::RangeInclusive;
use std::time::Duration;

use weir_tests::plugins::RATE_LIMIT;
use weir_tests::redis::RedisServer;
use weir_tests::{TestClient, TestGateway, TestUpstream, get};

use super::{now_ms, redis_state};

/// The window of every limit here; windows are aligned to the Unix epoch.
const WINDOW_MS: u64 = 4000;

/// An algorithm, the Retry-After range of its first refusal, and its statuses per burst.
type Expectation = (&'static str, RangeInclusive<u64>, [&'static [u16]; 3]);

/// Each algorithm (on its own route `/<algorithm>` with 2 per 4 s) and what it answers to
/// the bursts of [`admits_exactly_its_limit`]: `(algorithm, Retry-After of burst A's
/// refusal, [statuses of bursts A, B, C])`. A few hundred ms of lateness (a busy machine)
/// changes none of it.
///
/// - A, from 100 ms into a window, 3 requests: every algorithm admits its 2. The token
///   bucket gets a token back every 2 s (Retry-After 2); the windows only at the next
///   window, 3 s or more away.
/// - B, 2.5 s after A began, same window, 2 requests: the bucket has refilled 1.25 tokens,
///   one passes; both windows are still spent.
/// - C, at least 300 ms into the next window and 4.3 s after A began, 3 requests: the fixed
///   window is whole again (2); the sliding window still counts 1 of the previous window's
///   2 while less than half of the new window has passed (2 × 3.7 / 4, rounded down), so 1
///   passes; the bucket has refilled 1.15 tokens since B: 1 passes.
const EXPECTED: [Expectation; 3] = [
    (
        "token_bucket",
        2..=2,
        [&[200, 200, 429], &[200, 429], &[200, 429, 429]],
    ),
    (
        "sliding_window",
        3..=4,
        [&[200, 200, 429], &[429, 429], &[200, 429, 429]],
    ),
    (
        "fixed_window",
        3..=4,
        [&[200, 200, 429], &[429, 429], &[200, 200, 429]],
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_algorithm_admits_exactly_its_limit() {
    admits_exactly_its_limit("").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_algorithm_admits_exactly_its_limit_in_redis() {
    let redis = RedisServer::start();
    // Refuse rather than fall back to the embedded store, so that every decision is Redis's.
    admits_exactly_its_limit(&redis_state(&redis, "reject")).await;
    let keys = redis.command("DBSIZE").unwrap_or_default();
    // A budget per route for each of the two users (the warm-up and the bursts).
    assert_eq!(keys, ":6", "the budgets live in Redis");
}

/// Runs the bursts of [`EXPECTED`] against one route per algorithm on a gateway with
/// `state` (a `[state]` table, or nothing for the embedded store).
async fn admits_exactly_its_limit(state: &str) {
    let upstream = TestUpstream::start("main").await;
    let mut config = format!(
        "{state}\n[upstreams.main]\ntargets = [\"{}\"]\n",
        upstream.addr
    );
    for (algorithm, ..) in EXPECTED {
        config.push_str(&format!(
            "[[routes]]\nname = \"{algorithm}\"\nupstream = \"main\"\n\
             match = {{ path_prefix = \"/{algorithm}\" }}\n\
             [[routes.filters]]\nplugin = \"rate-limit.wasm\"\ngrants = [\"limits\"]\ndeadline_ms = 2000\n\
             config = {{ limits = [{{ limit = 2, window = \"4s\", algorithm = \"{algorithm}\" }}], \
             key = [\"header:x-user\"] }}\n"
        ));
    }
    let gw = TestGateway::start(&config, &[("rate-limit.wasm", RATE_LIMIT)]).await;
    let client = TestClient::http1();
    // Every route once for another user first, so that no burst waits for an instance.
    warm_every_route(&client, &gw).await;

    let mut seen = vec![Vec::new(); EXPECTED.len()];
    let mut timing = Vec::new();
    // A from 100 ms into the next window; B 2.5 s after A began; C at least 300 ms into the
    // window after and 4.3 s after A began.
    let a = next_instant_at_offset(100);
    let next_window = (a / WINDOW_MS + 1) * WINDOW_MS;
    let c = (next_window + 300).max(a + 4300);
    for (at, n) in [(a, 3), (a + 2500, 2), (c, 3)] {
        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
        let sent = now_ms() % WINDOW_MS;
        // The routes side by side, so that each burst lands where it is meant to.
        let bursts = EXPECTED.map(|(algorithm, ..)| {
            tokio::spawn(burst(client.clone(), gw.url(&format!("/{algorithm}")), n))
        });
        for (i, task) in bursts.into_iter().enumerate() {
            seen[i].push(task.await.expect("burst"));
        }
        timing.push(format!("{sent}..{} ms", now_ms() % WINDOW_MS));
    }
    for ((algorithm, retry_after, expected), seen) in EXPECTED.iter().zip(&seen) {
        let statuses: Vec<Vec<u16>> = seen
            .iter()
            .map(|burst| burst.iter().map(|(status, _)| *status).collect())
            .collect();
        assert_eq!(
            statuses,
            expected.map(<[u16]>::to_vec),
            "{algorithm}, bursts at {timing:?}"
        );
        let refused = seen[0].last().and_then(|(_, retry)| *retry);
        assert!(
            refused.is_some_and(|retry| retry_after.contains(&retry)),
            "{algorithm}: Retry-After {refused:?}, not in {retry_after:?}"
        );
    }
    // Once more, so that the other user's budgets, last touched more than one window ago,
    // are alive when the caller counts them.
    warm_every_route(&client, &gw).await;
    gw.shutdown().await;
}

/// One GET of every route for the user `warm`, each answered 200 (`warm` never comes near
/// its limit).
async fn warm_every_route(client: &TestClient, gw: &TestGateway) {
    for (algorithm, ..) in EXPECTED {
        let r = client
            .send(get(
                &gw.url(&format!("/{algorithm}")),
                &[("x-user", "warm")],
            ))
            .await;
        assert_eq!(r.status, 200, "{algorithm}: {:?}", r.body);
    }
}

/// `n` GETs of `url` one after the other: the status and `Retry-After` of each.
async fn burst(client: TestClient, url: String, n: usize) -> Vec<(u16, Option<u64>)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let r = client.send(get(&url, &[("x-user", "u")])).await;
        let retry = r.header("retry-after").and_then(|v| v.parse().ok());
        out.push((r.status.as_u16(), retry));
    }
    out
}

/// The next instant (ms since the Unix epoch) `offset_ms` into a window.
fn next_instant_at_offset(offset_ms: u64) -> u64 {
    let now = now_ms();
    let start = now - now % WINDOW_MS + offset_ms;
    if start >= now {
        start
    } else {
        start + WINDOW_MS
    }
}
