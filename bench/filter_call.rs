//! Micro-benchmark of one filter call: the bundled `headers` filter's `on-request` through
//! a warm pooled instance (the hot path), against a fresh instance per call (instantiate +
//! configure + call, what isolation per request would cost).
//!
//! `cargo bench -p weir --bench filter_call` prints the figures and writes them into
//! `docs/benchmarks.md` between the `micro` markers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::config::{FailurePolicy, RuntimeConfig};
use weir::metrics::FilterMetrics;
use weir::plugin::{
    CallLimits, FilterSettings, FilterSlot, Grants, HostServices, PluginRuntime, RequestView,
};

fn request() -> RequestView {
    let request = http::Request::builder()
        .method("GET")
        .uri("/users/42?full=1")
        .header("host", "api.example.com")
        .header("user-agent", "bench/1.0")
        .header("accept", "*/*")
        .header("x-request-id", "0123456789abcdef")
        .header("cookie", "session=abc")
        .body(())
        .expect("a valid request");
    RequestView {
        parts: request.into_parts().0,
        body: None,
        authority: Some("api.example.com".into()),
        client: "127.0.0.1:50000".parse().expect("an address"),
        scheme: "http",
        request_id: "0123456789abcdef".into(),
        variables: Vec::new(),
        upstream: None,
    }
}

async fn slot(runtime: &PluginRuntime, max_idle: usize) -> FilterSlot {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bytes = std::fs::read(root.join("target/plugins/headers.wasm"))
        .expect("headers.wasm is built by host/build.rs");
    let plugin = runtime
        .load("headers.wasm", bytes)
        .await
        .expect("load headers.wasm");
    let settings = FilterSettings {
        config_json: r#"{"request":{"set":{"x-gateway":"weir"},"remove":["cookie"]}}"#.into(),
        grants: Grants::default(),
        failure: FailurePolicy::FailClosed,
        deadline: Duration::from_millis(20),
        memory_bytes: 32 << 20,
        max_body: 1 << 20,
        stream_oversized: false,
        max_idle,
        limits: CallLimits::from_runtime(&RuntimeConfig::default()),
        backoff: Default::default(),
    };
    let services = Arc::new(HostServices::isolated());
    FilterSlot::new(
        plugin,
        ("bench", "bench"),
        settings,
        services,
        Arc::new(FilterMetrics::default()),
    )
    .await
    .expect("configure")
}

/// Mean nanoseconds per call over `n` calls, after a warm-up.
async fn measure(slot: &FilterSlot, n: u32) -> f64 {
    let mut request = request();
    for _ in 0..n / 10 {
        let (back, outcome) = slot.on_request(request).await;
        outcome.expect("call");
        request = back;
    }
    let started = Instant::now();
    for _ in 0..n {
        let (back, outcome) = slot.on_request(request).await;
        outcome.expect("call");
        request = back;
    }
    started.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cache = std::env::temp_dir().join(format!("weir-bench-cache-{}", std::process::id()));
    let (warm, fresh) = rt.block_on(async {
        let runtime = PluginRuntime::new(
            &RuntimeConfig::default(),
            (cache.clone(), cache.with_extension("key")),
        )
        .expect("engine");
        let warm = measure(&slot(&runtime, 64).await, 200_000).await;
        let fresh = measure(&slot(&runtime, 0).await, 5_000).await;
        (warm, fresh)
    });
    let _ = std::fs::remove_dir_all(&cache);
    let _ = std::fs::remove_file(cache.with_extension("key"));
    let table = format!(
        "| instance strategy | ns per `on-request` call |\n| --- | ---: |\n\
         | warm pooled instance (kept) | {warm:.0} |\n\
         | fresh instance per call (instantiate + configure + call) | {fresh:.0} |\n"
    );
    println!("{table}");
    let section = format!(
        "## One filter call\n\n`cargo bench -p weir --bench filter_call`, {}: the `headers` filter's \
         `on-request` (sets one header, removes one; a 5-header request lent as a \
         handle), called through `FilterSlot` as the proxy does (deadline, pool).\n\n{table}\n\
         The gateway keeps warm instances: a filter's global state survives between requests \
         on the same instance (plugins must not keep per-request state in globals).\n",
        std::env::var("BENCH_DATE").unwrap_or_else(|_| "run on the machine described above".into())
    );
    doc::replace_section("micro", &section);
}

/// Writes a section of `docs/benchmarks.md` between `<!-- NAME:begin -->` and
/// `<!-- NAME:end -->`, appending the markers when they are missing.
mod doc {
    use std::path::PathBuf;

    pub fn replace_section(name: &str, body: &str) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n\n".into());
        let (begin, end) = (
            format!("<!-- {name}:begin -->"),
            format!("<!-- {name}:end -->"),
        );
        let block = format!("{begin}\n{body}{end}");
        let text = match (text.find(&begin), text.find(&end)) {
            (Some(b), Some(e)) if b < e => {
                format!("{}{block}{}", &text[..b], &text[e + end.len()..])
            }
            _ => format!("{}\n{block}\n", text.trim_end()),
        };
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
}
