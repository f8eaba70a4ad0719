//! Push routers: the bundled `push-routing` plugin and a custom one, loaded as components
//! through the host library and asked where messages go; a failing router is an error
//! within its deadline; a router is refused as a route filter and a filter as a router.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::config::{FailurePolicy, RuntimeConfig};
use weir::metrics::FilterMetrics;
use weir::plugin::{
    CallLimits, FilterSettings, FilterSlot, Grants, HostServices, LoadedPlugin, PluginKind,
    PluginRuntime, RouterSlot,
};
use weir::push::decision::{
    DefaultPolicy, Delivery, DeviceFacts, MessageFacts, Platform, Priority, PushRouter,
};
use weir_tests::plugins::{HEADERS, PUSH_ROUTING, ROUTER_CUSTOM};
use weir_tests::{TempDir, TestClient, TestGateway, one_route, refusal};

/// A plugin runtime with the default `[runtime]` and its cache in `dir`.
fn runtime(dir: &TempDir) -> PluginRuntime {
    let cache = (dir.path().join("cache"), dir.path().join("cache.key"));
    PluginRuntime::new(&RuntimeConfig::default(), cache).expect("plugin runtime")
}

async fn load(runtime: &PluginRuntime, file: &str, path: &str) -> Arc<LoadedPlugin> {
    let bytes = std::fs::read(path).expect("read plugin");
    runtime.load(file, bytes).await.expect("plugin loads")
}

/// The default settings with `config` and a `deadline_ms` deadline.
fn settings(config: &str, deadline_ms: u64) -> FilterSettings {
    let rt = RuntimeConfig::default();
    FilterSettings {
        config_json: config.to_string(),
        grants: Grants::default(),
        failure: FailurePolicy::default(),
        deadline: Duration::from_millis(deadline_ms),
        memory_bytes: (rt.memory_mib << 20) as usize,
        max_body: rt.max_body_bytes,
        stream_oversized: false,
        max_idle: rt.pool_max_idle,
        limits: CallLimits::from_runtime(&rt),
        backoff: rt.backoff,
    }
}

fn services() -> Arc<HostServices> {
    Arc::new(HostServices::isolated())
}

async fn router(plugin: Arc<LoadedPlugin>, config: &str, deadline_ms: u64) -> RouterSlot {
    let metrics = Arc::new(FilterMetrics::default());
    RouterSlot::new(
        plugin,
        "publish",
        settings(config, deadline_ms),
        services(),
        metrics,
    )
    .await
    .expect("router configures")
}

fn message(priority: Priority, ttl_ms: u64) -> MessageFacts {
    MessageFacts {
        id: "m-1".into(),
        priority,
        ttl_ms,
        collapse_key: Some("news".into()),
        payload_bytes: 128,
    }
}

fn device(user: &str, platform: Platform, online: bool, has_token: bool) -> DeviceFacts {
    DeviceFacts {
        id: format!("{user}-phone"),
        user: user.into(),
        platform,
        online,
        has_token,
    }
}

async fn decide(router: &RouterSlot, m: &MessageFacts, d: &DeviceFacts) -> Delivery {
    router.decide(m, d).await.expect("a decision")
}

const PLATFORMS: [Platform; 5] = [
    Platform::Ws,
    Platform::Apns,
    Platform::Fcm,
    Platform::Hms,
    Platform::Mi,
];

#[tokio::test(flavor = "multi_thread")]
async fn the_bundled_policy_decides_every_branch_as_documented() {
    let dir = TempDir::new();
    let rt = runtime(&dir);
    let plugin = load(&rt, "push-routing.wasm", PUSH_ROUTING).await;
    assert_eq!(plugin.info.kind, PluginKind::Router);
    assert_eq!(plugin.info.name, "push-routing");
    assert!(plugin.info.phases.is_empty());
    let r = router(plugin.clone(), "{}", 20).await;

    let (high, normal) = (
        message(Priority::High, 60_000),
        message(Priority::Normal, 60_000),
    );
    let alice = |p, online, token| device("alice", p, online, token);
    assert_eq!(
        decide(&r, &normal, &alice(Platform::Ws, true, false)).await,
        Delivery::Live
    );
    assert_eq!(
        decide(&r, &high, &alice(Platform::Apns, false, true)).await,
        Delivery::Vendor
    );
    assert_eq!(
        decide(&r, &high, &alice(Platform::Apns, false, false)).await,
        Delivery::Queue
    );
    assert_eq!(
        decide(&r, &high, &alice(Platform::Ws, false, true)).await,
        Delivery::Queue
    );
    assert_eq!(
        decide(&r, &normal, &alice(Platform::Fcm, false, true)).await,
        Delivery::Queue
    );
    let expired = message(Priority::High, 0);
    assert_eq!(
        decide(&r, &expired, &alice(Platform::Fcm, false, true)).await,
        Delivery::Drop
    );
    assert_eq!(
        decide(&r, &expired, &alice(Platform::Fcm, true, true)).await,
        Delivery::Live
    );

    // With time to live, the plugin is the host's documented default policy, case by case.
    for platform in PLATFORMS {
        for (online, token) in [(true, true), (false, true), (false, false), (true, false)] {
            for m in [&high, &normal] {
                let d = alice(platform, online, token);
                let expected = DefaultPolicy::delivery(m, &d);
                assert_eq!(decide(&r, m, &d).await, expected, "{m:?} to {d:?}");
            }
        }
    }

    // Configured to use the vendor for normal messages too, and to keep expired ones.
    let config = r#"{"vendor_for":["high","normal"],"drop_expired":false}"#;
    let wide = router(plugin, config, 20).await;
    let fcm = alice(Platform::Fcm, false, true);
    assert_eq!(decide(&wide, &normal, &fcm).await, Delivery::Vendor);
    assert_eq!(decide(&wide, &expired, &fcm).await, Delivery::Vendor);
    assert!(wide.idle_instances() >= 1, "the instance is kept warm");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_router_changes_the_decisions() {
    let dir = TempDir::new();
    let rt = runtime(&dir);
    let bundled = router(load(&rt, "push-routing.wasm", PUSH_ROUTING).await, "{}", 20).await;
    let custom = load(&rt, "router-custom.wasm", ROUTER_CUSTOM).await;
    assert_eq!(custom.info.kind, PluginKind::Router);
    let custom = router(custom, r#"{"drop_user":"mallory"}"#, 20).await;

    let high = message(Priority::High, 60_000);
    let cases = [
        // (device, bundled, custom)
        (
            device("alice", Platform::Apns, true, true),
            Delivery::Live,
            Delivery::Vendor,
        ),
        (
            device("alice", Platform::Fcm, false, true),
            Delivery::Vendor,
            Delivery::Queue,
        ),
        (
            device("mallory", Platform::Ws, true, false),
            Delivery::Live,
            Delivery::Drop,
        ),
        (
            device("bob", Platform::Ws, false, false),
            Delivery::Queue,
            Delivery::Queue,
        ),
    ];
    for (d, by_bundled, by_custom) in cases {
        assert_eq!(
            decide(&bundled, &high, &d).await,
            by_bundled,
            "bundled, {d:?}"
        );
        assert_eq!(decide(&custom, &high, &d).await, by_custom, "custom, {d:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_router_is_an_error_within_its_deadline_and_the_next_call_decides() {
    let dir = TempDir::new();
    let rt = runtime(&dir);
    let plugin = load(&rt, "router-custom.wasm", ROUTER_CUSTOM).await;
    let (m, d) = (
        message(Priority::High, 1000),
        device("alice", Platform::Fcm, false, true),
    );

    let spinning = router(plugin.clone(), r#"{"mode":"loop"}"#, 20).await;
    let started = Instant::now();
    let error = spinning
        .decide(&m, &d)
        .await
        .expect_err("a spinning router decides nothing");
    assert!(error.starts_with("deadline:"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stopped in {:?}",
        started.elapsed()
    );

    let panicking = router(plugin.clone(), r#"{"mode":"panic"}"#, 20).await;
    let error = panicking
        .decide(&m, &d)
        .await
        .expect_err("a trap is no decision");
    assert!(error.starts_with("trap:"), "{error}");
    assert_eq!(panicking.backoff_status().consecutive_failures, 1);

    // The failed instances are gone; a well-behaved router on the same plugin still decides.
    let policy = router(plugin, "{}", 20).await;
    assert_eq!(decide(&policy, &m, &d).await, Delivery::Queue);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_router_is_refused_as_a_route_filter_and_a_filter_as_a_router() {
    let dir = TempDir::new();
    let rt = runtime(&dir);
    let push = load(&rt, "push-routing.wasm", PUSH_ROUTING).await;
    let metrics = Arc::new(FilterMetrics::default());
    let as_filter = FilterSlot::new(push, ("r", "u"), settings("{}", 20), services(), metrics);
    let error = format!(
        "{:#}",
        as_filter.await.err().expect("a router is no filter")
    );
    assert!(
        error.contains("push-routing.wasm is a push router"),
        "{error}"
    );

    let headers = load(&rt, "headers.wasm", HEADERS).await;
    assert_eq!(headers.info.kind, PluginKind::Filter);
    let metrics = Arc::new(FilterMetrics::default());
    let as_router = RouterSlot::new(headers, "publish", settings("{}", 20), services(), metrics);
    let error = format!(
        "{:#}",
        as_router.await.err().expect("a filter is no router")
    );
    assert!(error.contains("headers.wasm is a filter"), "{error}");

    // In a gateway config, the route and the file are named with the reason.
    let config = one_route(
        "127.0.0.1:9",
        "[[routes.filters]]\nplugin = \"push.wasm\"\n",
    );
    let started = TestGateway::try_start(&config, &[("push.wasm", PUSH_ROUTING)]).await;
    let error = refusal(started, "a router on a route").await;
    assert!(error.contains("route \"r\": plugin push.wasm"), "{error}");
    assert!(error.contains("push.wasm is a push router"), "{error}");

    // Unused, it loads, and the admin API tells the two kinds apart.
    let plugins = [("push.wasm", PUSH_ROUTING), ("headers.wasm", HEADERS)];
    let gw = TestGateway::start(&one_route("127.0.0.1:9", ""), &plugins).await;
    let status = gw.plugin_status(&TestClient::http1()).await;
    assert_eq!(status["push.wasm"]["kind"], "router", "{status:?}");
    assert_eq!(status["push.wasm"]["state"], "unused", "{status:?}");
    assert_eq!(status["headers.wasm"]["kind"], "filter", "{status:?}");
    gw.shutdown().await;
}
