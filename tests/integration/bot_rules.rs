//! The `bot-rules` filter end to end, with the gateway's own `limits` and `kv`: a
//! curl-like User-Agent and a request without the headers browsers send are refused
//! (403 `bot_denied`) before the upstream; a browser-like request passes; a client over
//! its budget gets 429s, then a deny (403) that ends on the clock after `deny_for`.

use std::time::{Duration, Instant};

use weir_tests::plugins::BOT_RULES;
use weir_tests::{Reply, TestClient, TestGateway, TestUpstream, get};

/// Each scenario is a different client behind the trusted proxy (the test client).
const FILTER: &str = r#"
[[routes.filters]]
plugin = "bot-rules.wasm"
grants = ["limits", "kv"]
deadline_ms = 2000
[routes.filters.config]
deny_user_agents = ["curl/", "python-requests"]
require_headers = ["browser"]
trusted_proxies = ["127.0.0.1"]
budget = { limit = 3, window = "1m" }
escalation = { strikes = 2, window = "1m", deny_for = "1500ms" }
"#;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// A GET of `/` by `client` with `headers` (a browser's, when asked).
async fn send(gw: &TestGateway, http: &TestClient, client: &str, extra: &[(&str, &str)]) -> Reply {
    let mut headers = vec![("x-forwarded-for", client)];
    headers.extend_from_slice(extra);
    http.send(get(&gw.url("/"), &headers)).await
}

/// What Firefox sends on every request.
fn browser() -> Vec<(&'static str, &'static str)> {
    vec![
        ("user-agent", FIREFOX),
        ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
        ("accept-language", "en-GB,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
    ]
}

fn assert_code(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.header("x-weir-error"), Some(code));
    assert_eq!(reply.json()["error"], code);
}

#[tokio::test(flavor = "multi_thread")]
async fn naive_bots_are_refused_and_a_noisy_client_is_denied_for_a_while() {
    let upstream = TestUpstream::start("site").await;
    let config = format!(
        "[upstreams.site]\ntargets = [\"{}\"]\n[[routes]]\nname = \"site\"\nupstream = \"site\"\n\
         match.path_prefix = \"/\"\n{FILTER}",
        upstream.addr
    );
    let gw = TestGateway::start(&config, &[("bot-rules.wasm", BOT_RULES)]).await;
    let http = TestClient::http1();

    let curl = [("user-agent", "curl/8.5.0"), ("accept", "*/*")];
    let reply = send(&gw, &http, "198.51.100.1", &curl).await;
    assert_code(&reply, 403, "bot_denied");
    assert_eq!(reply.json()["message"], "the User-Agent is denied");

    let scripted = [("user-agent", FIREFOX), ("accept", "*/*")];
    let reply = send(&gw, &http, "198.51.100.2", &scripted).await;
    assert_code(&reply, 403, "bot_denied");
    let message = reply.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("header is missing"), "{message}");
    assert_eq!(upstream.hits(), 0, "refused before the upstream");

    let reply = send(&gw, &http, "198.51.100.3", &browser()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.hits(), 1);

    // A noisy client: its budget, then two strikes (429), then the deny (403).
    let noisy = "198.51.100.9";
    for _ in 0..3 {
        assert_eq!(send(&gw, &http, noisy, &browser()).await.status, 200);
    }
    for _ in 0..2 {
        let reply = send(&gw, &http, noisy, &browser()).await;
        assert_code(&reply, 429, "rate_limited");
        let retry_after: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("a Retry-After in seconds");
        assert!((1..=60).contains(&retry_after), "{retry_after}");
    }
    let denied_at = Instant::now();
    let reply = send(&gw, &http, noisy, &browser()).await;
    assert_code(&reply, 403, "bot_denied");
    assert_eq!(
        send(&gw, &http, "198.51.100.10", &browser()).await.status,
        200,
        "only the noisy client is denied"
    );
    assert_eq!(upstream.hits(), 5);

    // The deny lasts `deny_for` (1.5 s) on the gateway's clock, then ends: the client is back
    // to its budget, still spent for the minute, so it gets a 429 again.
    let mut after = send(&gw, &http, noisy, &browser()).await;
    while after.status == 403 && denied_at.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = send(&gw, &http, noisy, &browser()).await;
    }
    let lasted = denied_at.elapsed();
    assert_code(&after, 429, "rate_limited");
    assert!(
        lasted >= Duration::from_millis(1400),
        "the deny lasted {lasted:?}, less than deny_for"
    );
    assert_eq!(
        upstream.hits(),
        5,
        "no refused request reached the upstream"
    );
    gw.shutdown().await;
}
