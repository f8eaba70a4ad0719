//! The admin API: routes, upstreams and metrics reflect the live snapshot and traffic.

use weir_tests::plugins::HEADERS;
use weir_tests::{
    TestClient, TestGateway, TestUpstream, free_port, one_route, raw_head, raw_status,
};

/// A gateway with one filterless route to `up` and `server_extra` in `[server]`.
async fn admin_gateway(up: &TestUpstream, server_extra: &str) -> TestGateway {
    TestGateway::start_with_server(server_extra, &one_route(up.addr, ""), &[]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_reports_routes_upstreams_and_metrics() {
    let up = TestUpstream::start("up").await;
    let config = format!(
        "[upstreams.u]\ntargets = [\"{}\"]\n[[routes]]\nname = \"api\"\nupstream = \"u\"\n\
         [[routes.filters]]\nplugin = \"headers.wasm\"\nconfig = {{ response = {{ set = {{ x-a = \"1\" }} }} }}\n",
        up.addr
    );
    let gw = TestGateway::start(&config, &[("headers.wasm", HEADERS)]).await;
    let client = TestClient::default();
    for _ in 0..3 {
        assert_eq!(client.get(&gw.url("/")).await.status, 200);
    }
    let routes = client.get(&gw.admin_url("/routes")).await.json();
    assert_eq!(routes["routes"][0]["name"], "api");
    let filter = &routes["routes"][0]["filters"][0];
    assert_eq!(filter["name"], "headers");
    assert_eq!(
        filter["phases"]["request"], false,
        "no request edits configured: not called"
    );
    assert_eq!(filter["phases"]["response"], true);

    let upstreams = client.get(&gw.admin_url("/upstreams")).await.json();
    assert_eq!(upstreams["upstreams"][0]["targets"][0]["requests"], 3);
    assert_eq!(upstreams["upstreams"][0]["targets"][0]["healthy"], true);

    let metrics = client.get(&gw.admin_url("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("weir_requests_total{route=\"api\",status=\"200\"} 3"),
        "{text}"
    );
    assert!(
        text.contains(
            "weir_filter_decisions_total{route=\"api\",plugin=\"headers\",decision=\"continue\"} 3"
        ),
        "{text}"
    );
    assert!(
        text.contains("weir_request_duration_seconds_count{route=\"api\"} 3"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "weir_upstream_target_healthy{{upstream=\"u\",target=\"{}\"}} 1",
            up.addr
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "weir_filter_call_duration_seconds_count{route=\"api\",plugin=\"headers\",phase=\"response\"} 3"
        ),
        "{text}"
    );

    // One plugin file: its status and the filters that run it, with their counts.
    let detail = client.get(&gw.admin_url("/plugins/headers.wasm")).await;
    assert_eq!(detail.status, 200);
    let detail = detail.json();
    assert_eq!(detail["plugin"]["state"], "active", "{detail}");
    let filter = &detail["filters"][0];
    assert_eq!(filter["route"], "api", "{detail}");
    assert_eq!(filter["calls"]["response"]["calls"], 3, "{detail}");
    assert!(
        filter["calls"]["request"].is_null(),
        "never called on requests: {detail}"
    );
    assert!(
        filter["calls"]["response"]["latency_ms"]["p99"]
            .as_f64()
            .is_some(),
        "{detail}"
    );
    assert_eq!(filter["decisions_and_failures"]["continue"], 3, "{detail}");
    // One instance, made at load, served the three calls warm.
    assert_eq!(filter["instantiations"]["count"], 1, "{detail}");
    assert!(
        filter["instantiations"]["latency_ms"]["mean"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0),
        "{detail}"
    );
    assert_eq!(
        filter["decisions_and_failures"]["failures"]["deadline"], 0,
        "{detail}"
    );
    assert!(
        filter["limits"]["deadline_ms"].as_u64().is_some(),
        "{detail}"
    );
    let missing = client.get(&gw.admin_url("/plugins/nope.wasm")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(client.get(&gw.admin_url("/nope")).await.status, 404);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_token_is_required_when_configured() {
    let up = TestUpstream::start("up").await;
    let gw = admin_gateway(&up, "admin_token = { value = \"let-me-in\" }\n").await;
    let client = TestClient::default();
    let r = client.get(&gw.admin_url("/plugins")).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    let wrong = client
        .send(weir_tests::get(
            &gw.admin_url("/plugins"),
            &[("authorization", "Bearer let-me-out")],
        ))
        .await;
    assert_eq!(wrong.status, 401);
    let right = client
        .send(weir_tests::get(
            &gw.admin_url("/plugins"),
            &[("authorization", "Bearer let-me-in")],
        ))
        .await;
    assert_eq!(right.status, 200);
    // The effective config, with the token itself redacted.
    let config = client
        .send(weir_tests::get(
            &gw.admin_url("/config"),
            &[("authorization", "Bearer let-me-in")],
        ))
        .await;
    assert_eq!(config.status, 200);
    let shown = config.json();
    assert_eq!(
        shown["server"]["admin_token"]["value"], "[redacted]",
        "{shown}"
    );
    assert!(
        !config.body.windows(9).any(|w| w == b"let-me-in"),
        "{shown}"
    );
    assert_eq!(
        shown["server"]["limits"]["idle_timeout_ms"], 60_000,
        "defaults filled in"
    );
    // The proxy itself is not affected.
    assert_eq!(client.get(&gw.url("/")).await.status, 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn circuits_and_their_metrics_follow_the_live_config() {
    let up = TestUpstream::start("up").await;
    let routes = |names: &[&str]| {
        let mut config = format!("[upstreams.u]\ntargets = [\"{}\"]\n", up.addr);
        for name in names {
            config.push_str(&format!(
                "[[routes]]\nname = \"{name}\"\nupstream = \"u\"\nmatch = {{ path_prefix = \"/{name}\" }}\n"
            ));
        }
        config
    };
    let gw = TestGateway::start(&routes(&["kept", "dropped"]), &[]).await;
    let client = TestClient::default();
    let names = || async {
        let circuits = client.get(&gw.admin_url("/circuits")).await.json();
        let mut names: Vec<String> = circuits["circuits"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|c| {
                        format!(
                            "{}:{}",
                            c["scope"].as_str().unwrap_or(""),
                            c["name"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    assert_eq!(names().await, ["route:dropped", "route:kept", "upstream:u"]);

    let generation = gw.generation();
    gw.write_config(&routes(&["kept"]));
    assert!(
        weir_tests::eventually(std::time::Duration::from_secs(10), || async {
            gw.generation() > generation
        })
        .await
    );
    assert_eq!(names().await, ["route:kept", "upstream:u"]);
    let metrics = client.get(&gw.admin_url("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("weir_circuit_state{scope=\"route\",name=\"kept\",state=\"closed\"} 1"),
        "{text}"
    );
    assert!(!text.contains("name=\"dropped\""), "{text}");
    gw.shutdown().await;
}

/// Every endpoint and method the admin listener knows, with what it answers when the
/// request gets through.
const ENDPOINTS: [(&str, &str, u16); 13] = [
    ("GET", "/plugins", 200),
    ("GET", "/config", 200),
    ("GET", "/routes", 200),
    ("GET", "/routes/r/split", 200),
    ("GET", "/routes/nope/split", 404),
    ("GET", "/upstreams", 200),
    ("GET", "/circuits", 200),
    ("GET", "/status", 200),
    ("GET", "/metrics", 200),
    ("POST", "/reload", 200),
    ("PUT", "/reload", 404),
    ("DELETE", "/plugins", 404),
    ("GET", "/nope", 404),
];

#[tokio::test(flavor = "multi_thread")]
async fn admin_token_guards_every_endpoint_and_method() {
    let up = TestUpstream::start("up").await;
    let gw = admin_gateway(
        &up,
        "admin_token = { value = \"let-me-in\" }\nwatch = false\n",
    )
    .await;
    let client = TestClient::default();
    for (method, path, _) in ENDPOINTS {
        for auth in [
            None,
            Some("Bearer let-me-out"),
            Some("let-me-in"),
            Some("Bearer "),
        ] {
            let headers: Vec<_> = auth.iter().map(|a| ("authorization", *a)).collect();
            let r = client
                .send(weir_tests::request(
                    method,
                    &gw.admin_url(path),
                    &headers,
                    "",
                ))
                .await;
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}");
        }
    }
    assert_eq!(gw.generation(), 1, "no refused call reloaded anything");
    for (method, path, status) in ENDPOINTS {
        let r = client
            .send(weir_tests::request(
                method,
                &gw.admin_url(path),
                &[("authorization", "Bearer let-me-in")],
                "",
            ))
            .await;
        assert_eq!(r.status, status, "{method} {path} with the token");
    }
    assert_eq!(gw.generation(), 2, "the reload with the token ran");
    gw.shutdown().await;
}

/// The orchestrator's probes answer without the token and to any `Host` (a kubelet sends
/// the pod's address and holds no token), one fixed word each; anything else on those
/// paths still passes both gates.
#[tokio::test(flavor = "multi_thread")]
async fn probes_answer_without_the_token_and_to_any_host() {
    let up = TestUpstream::start("up").await;
    let gw = admin_gateway(&up, "admin_token = { value = \"let-me-in\" }\n").await;
    let client = TestClient::default();
    for (path, word) in [("/live", "live\n"), ("/ready", "ready\n")] {
        let r = client.get(&gw.admin_url(path)).await;
        assert_eq!(
            (r.status.as_u16(), &r.body[..]),
            (200, word.as_bytes()),
            "{path}"
        );
        let head = format!("GET {path} HTTP/1.1\r\nHost: 10.1.2.3:9901\r\n\r\n");
        assert_eq!(
            head_status(gw.admin, &head).await,
            200,
            "{path} from a pod address"
        );
        let post = weir_tests::request("POST", &gw.admin_url(path), &[], "");
        assert_eq!(client.send(post).await.status, 401, "POST {path}");
    }
    let head = "GET /status HTTP/1.1\r\nHost: 10.1.2.3:9901\r\n\r\n";
    assert_eq!(
        head_status(gw.admin, head).await,
        403,
        "other endpoints keep the host gate"
    );
    gw.shutdown().await;
}

/// Sends `head` (a request line and headers, each line ending in CRLF) on a fresh
/// connection and returns the status code of the answer.
async fn head_status(addr: std::net::SocketAddr, head: &str) -> u16 {
    raw_status(&raw_head(addr, head).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_answers_only_to_allowed_host_names() {
    let up = TestUpstream::start("up").await;
    let gw = admin_gateway(&up, "watch = false\n").await;
    let client = TestClient::default();
    let port = gw.admin.port();
    let with = |headers: &[(&str, &str)], method: &str| {
        weir_tests::request(method, &gw.admin_url("/status"), headers, "")
    };

    // The defaults: loopback names, on any port, any case, with a trailing dot.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LocalHost.".to_string(),
        format!("[::1]:{port}"),
    ] {
        let r = client.send(with(&[("host", &host)], "GET")).await;
        assert_eq!(r.status, 200, "{host}");
    }
    // DNS rebinding: a name the attacker controls resolves to 127.0.0.1; the browser sends it.
    for host in [
        format!("evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        "localhost.evil.example".to_string(),
    ] {
        let r = client.send(with(&[("host", &host)], "GET")).await;
        assert_eq!(r.status, 403, "{host}");
        assert_eq!(r.json()["error"], "host_not_allowed");
    }
    // A cross-site form posting to the right host is refused by its Origin; nothing reloads.
    for origin in ["http://evil.example", "null", "http://127.0.0.1.nip.io"] {
        let forged =
            weir_tests::request("POST", &gw.admin_url("/reload"), &[("origin", origin)], "");
        assert_eq!(client.send(forged).await.status, 403, "{origin}");
    }
    assert_eq!(gw.generation(), 1);
    let own_origin = format!("http://localhost:{port}");
    let r = client
        .send(weir_tests::request(
            "POST",
            &gw.admin_url("/reload"),
            &[("origin", &own_origin)],
            "",
        ))
        .await;
    assert_eq!(r.status, 200);
    // No Host at all (HTTP/1.0), or two of them: refused.
    assert_eq!(head_status(gw.admin, "GET /status HTTP/1.0\r\n").await, 403);
    let two = format!("GET /status HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nhost: evil.example\r\n");
    assert!(matches!(head_status(gw.admin, &two).await, 400 | 403));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_hosts_replaces_the_default_names() {
    let up = TestUpstream::start("up").await;
    let gw = admin_gateway(&up, "admin_hosts = [\"admin.internal\"]\n").await;
    let client = TestClient::default();
    let status = |host: &'static str| {
        let request = weir_tests::get(&gw.admin_url("/status"), &[("host", host)]);
        let client = client.clone();
        async move { client.send(request).await.status }
    };
    assert_eq!(status("admin.internal:9901").await, 200);
    assert_eq!(status("ADMIN.internal").await, 200);
    assert_eq!(status("localhost").await, 403);
    // The admin listen address itself stays allowed.
    assert_eq!(client.get(&gw.admin_url("/status")).await.status, 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metric_label_values_are_escaped() {
    let up = TestUpstream::start("up").await;
    // A route and an upstream whose names hold a quote, a backslash and a line feed.
    let config = format!(
        "[upstreams.\"u\\\"q\"]\ntargets = [\"{}\"]\n\
         [[routes]]\nname = \"we\\\"ird\\nroute\\\\\"\nupstream = \"u\\\"q\"\n",
        up.addr
    );
    let gw = TestGateway::start(&config, &[]).await;
    let client = TestClient::default();
    assert_eq!(client.get(&gw.url("/")).await.status, 200);
    let metrics = client.get(&gw.admin_url("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains(r#"weir_requests_total{route="we\"ird\nroute\\",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"weir_upstream_target_healthy{upstream="u\"q","#),
        "{text}"
    );
    assert!(
        text.contains(r#"weir_route_upstream_requests_total{route="we\"ird\nroute\\",upstream="u\"q",outcome="ok"} 1"#),
        "{text}"
    );
    // The split of that route, its name percent-encoded in the path.
    let split = client
        .get(&gw.admin_url("/routes/we%22ird%0Aroute%5C/split"))
        .await;
    assert_eq!(split.status, 200);
    let split = split.json();
    assert_eq!(split["route"], "we\"ird\nroute\\");
    assert_eq!(split["upstreams"][0]["name"], "u\"q");
    assert_eq!(split["upstreams"][0]["requests"], 1);
    assert_eq!(split["upstreams"][0]["share"], 1.0);
    // Every sample line is `name{labels} value`: nothing a name holds can break a line.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        assert!(value.parse::<f64>().is_ok(), "{line:?}");
        assert!(
            series.starts_with("weir_") && (!series.contains('{') || series.ends_with('}')),
            "{line:?}"
        );
    }
    gw.shutdown().await;
}

/// The Grafana dashboard in `deploy/grafana` asks only for metric families the gateway
/// exports (a histogram by its `_bucket`, `_sum` or `_count` series).
#[tokio::test(flavor = "multi_thread")]
async fn the_grafana_dashboard_asks_only_for_exported_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/weir.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
    fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    match (key.as_str(), inner) {
                        ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                        _ => exprs(inner, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| exprs(i, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    exprs(&dashboard, &mut found);
    assert!(found.len() >= 10, "{found:?}");

    let up = TestUpstream::start("up").await;
    // With `[tracing]`, for its counters (nothing listens there; no span is sent).
    let config = format!(
        "[tracing]\notlp_endpoint = \"http://127.0.0.1:{}/v1/traces\"\n{}",
        free_port(),
        one_route(up.addr, "")
    );
    let gw = TestGateway::start(&config, &[]).await;
    let metrics = gw.metrics(&TestClient::default()).await;
    let families: std::collections::BTreeMap<&str, &str> = (metrics.lines())
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let name = regex::Regex::new(r"weir_[a-z0-9_]+").expect("a regex");
    for expr in &found {
        for m in name.find_iter(expr) {
            let series = m.as_str();
            let known = families.contains_key(series)
                || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                    series
                        .strip_suffix(suffix)
                        .is_some_and(|base| families.get(base) == Some(&"histogram"))
                });
            assert!(
                known,
                "{series} (in {expr}) is not exported; families: {families:?}"
            );
        }
    }
    gw.shutdown().await;
}
