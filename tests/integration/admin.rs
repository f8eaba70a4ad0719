//! The admin API: routes, upstreams and metrics reflect the live snapshot and traffic.

use weir_tests::plugins::HEADERS;
use weir_tests::{TestClient, TestGateway, TestUpstream};

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
    assert_eq!(client.get(&gw.admin_url("/nope")).await.status, 404);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_token_is_required_when_configured() {
    let up = TestUpstream::start("up").await;
    // `[server]` is the base config's first table: a key appended to it goes in there.
    let config = format!(
        "[upstreams.u]\ntargets = [\"{}\"]\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n",
        up.addr
    );
    let gw =
        TestGateway::start_with_server("admin_token = { value = \"let-me-in\" }\n", &config, &[])
            .await;
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
