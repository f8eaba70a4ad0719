//! What each algorithm admits over time, on both backends: with a window of two seconds
//! the three algorithms part ways within one window and at the start of the next, so a
//! filter (or a Redis script) that ignored `algorithm` could not pass.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weir_tests::plugins::RATE_LIMIT;
use weir_tests::redis::RedisServer;
use weir_tests::{TestClient, TestGateway, TestUpstream, get};

use super::redis_state;

/// The window of every limit here; windows are aligned to the Unix epoch.
const WINDOW_MS: u64 = 2000;

/// Each algorithm (on its own route `/<algorithm>` with 4 per 2 s) and what it answers to
/// the bursts of [`admits_exactly_its_limit`]: `(algorithm, Retry-After of burst A's
/// refusal, [statuses of bursts A, B, C])`.
///
/// - A, 100 ms into a window, 5 requests: every algorithm admits its 4. The token bucket
///   gets a token back every 500 ms (Retry-After 1); the windows only at the next window
///   (1.9 s away: Retry-After 2).
/// - B, 1250 ms into the same window, 3 requests: the bucket has refilled 2 tokens
///   (2.3 by then); both windows are still spent.
/// - C, 150 ms into the next window, 5 requests: the fixed window is whole again (4);
///   the sliding window still counts 3 of the previous window's 4 (4 × 1850 / 2000,
///   rounded down), so 1 passes; the bucket has refilled 2.1 tokens since B: 2 pass.
const EXPECTED: [(&str, u64, [&[u16]; 3]); 3] = [
    (
        "token_bucket",
        1,
        [
            &[200, 200, 200, 200, 429],
            &[200, 200, 429],
            &[200, 200, 429, 429, 429],
        ],
    ),
    (
        "sliding_window",
        2,
        [
            &[200, 200, 200, 200, 429],
            &[429, 429, 429],
            &[200, 429, 429, 429, 429],
        ],
    ),
    (
        "fixed_window",
        2,
        [
            &[200, 200, 200, 200, 429],
            &[429, 429, 429],
            &[200, 200, 200, 200, 429],
        ],
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_algorithm_admits_exactly_its_limit() {
    admits_exactly_its_limit("").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_algorithm_admits_exactly_its_limit_in_redis() {
    let redis = RedisServer::start();
    // Refuse rather than fall back to the embedded store, so that every decision is Redis's;
    // time enough for a busy machine.
    let state = redis_state(&redis, "reject").replace("timeout_ms = 200", "timeout_ms = 2000");
    assert!(state.contains("timeout_ms = 2000"), "{state}");
    admits_exactly_its_limit(&state).await;
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
             config = {{ limits = [{{ limit = 4, window = \"2s\", algorithm = \"{algorithm}\" }}], \
             key = [\"header:x-user\"] }}\n"
        ));
    }
    let gw = TestGateway::start(&config, &[("rate-limit.wasm", RATE_LIMIT)]).await;
    let client = TestClient::http1();
    // Every route once for another user first, so that no burst waits for an instance.
    for (algorithm, ..) in EXPECTED {
        let r = client
            .send(get(
                &gw.url(&format!("/{algorithm}")),
                &[("x-user", "warm")],
            ))
            .await;
        assert_eq!(r.status, 200, "{algorithm}: {:?}", r.body);
    }

    let mut seen = vec![Vec::new(); EXPECTED.len()];
    let mut timing = Vec::new();
    for (offset_ms, n) in [(100, 5), (1250, 3), (150, 5)] {
        until_window_offset(offset_ms).await;
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
        assert_eq!(refused, Some(*retry_after), "{algorithm}: Retry-After");
    }
    gw.shutdown().await;
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

/// Milliseconds since the Unix epoch, as the limiter counts them.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Waits for the next instant `offset_ms` into a window: the limiter's clock is the event.
async fn until_window_offset(offset_ms: u64) {
    let into = now_ms() % WINDOW_MS;
    let wait = (offset_ms + WINDOW_MS - into) % WINDOW_MS;
    tokio::time::sleep(Duration::from_millis(wait)).await;
}
