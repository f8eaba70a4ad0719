//! The `rate-limit` filter through a real gateway: exact budgets, what each algorithm
//! admits over time, concurrency, keys, trusted proxies, the IETF fields, and the Redis
//! backend shared by two gateways through an outage and its recovery.

mod algorithms;
mod budgets;
mod clients;
mod redis;

use weir_tests::plugins::RATE_LIMIT;
use weir_tests::redis::RedisServer;
use weir_tests::{TestClient, TestGateway, TestUpstream, get};

/// A gateway with one route `/rl` through `rate-limit` with `config` (a TOML inline table),
/// plus `extra` config (e.g. a `[state]` table). The deadline is generous: these tests are
/// about budgets, not about a busy machine.
async fn gateway(upstream: &TestUpstream, config: &str, extra: &str) -> TestGateway {
    let text = format!(
        "{extra}\n[upstreams.main]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"rl\"\nupstream = \"main\"\nmatch = {{ path_prefix = \"/rl\" }}\n\
         [[routes.filters]]\nplugin = \"rate-limit.wasm\"\ngrants = [\"limits\"]\ndeadline_ms = 2000\nconfig = {config}\n",
        upstream.addr
    );
    TestGateway::start(&text, &[("rate-limit.wasm", RATE_LIMIT)]).await
}

/// The `[state]` table for a Redis backend with this outage policy (two seconds per call:
/// time enough for a busy machine; an outage shows as a refused connection at once).
fn redis_state(redis: &RedisServer, on_unavailable: &str) -> String {
    format!(
        "[state]\nbackend = \"redis\"\n[state.redis]\nurl = {{ value = \"{}\" }}\n\
         on_unavailable = \"{on_unavailable}\"\ntimeout_ms = 2000\nprobe_interval_ms = 50\n",
        redis.url()
    )
}

/// Milliseconds since the Unix epoch, as the limiter counts them (on Redis's clock, which
/// is this machine's).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Statuses of `n` sequential GETs of `url` with `headers`.
async fn statuses(client: &TestClient, url: &str, n: usize, headers: &[(&str, &str)]) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(client.send(get(url, headers)).await.status.as_u16());
    }
    out
}

/// How many of `statuses` are `status`.
fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

/// The integer parameter `name` of the first item of a `RateLimit` field (`r` or `t`);
/// panics when it is missing.
fn sf_param(field: &str, name: &str) -> u64 {
    field
        .split(',')
        .next()
        .and_then(|item| {
            item.split(';')
                .find_map(|p| p.trim().strip_prefix(&format!("{name}=")))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {field:?}"))
}
