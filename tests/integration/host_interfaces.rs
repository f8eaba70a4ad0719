//! The host interfaces a filter may import — `secrets`, `http`, `limits`, `clock` — work
//! when granted and are denied otherwise.

use std::time::{SystemTime, UNIX_EPOCH};

use weir_tests::plugins::PROBE;
use weir_tests::{TestClient, TestGateway, TestUpstream, one_route, refusal};

/// Upstreams `main` and `aux`, and a gateway with one route per probe config:
/// `/<name>` → probe with `config` and `grants`, proxied to `main`.
async fn setup(routes: &[(&str, &str, &str)]) -> (TestUpstream, TestUpstream, TestGateway) {
    let (upstream, aux) = (
        TestUpstream::start("main").await,
        TestUpstream::start("aux").await,
    );
    let mut config = format!(
        "[secrets]\ntoken = {{ value = \"s3cr3t\" }}\n\
         [upstreams.main]\ntargets = [\"{}\"]\n[upstreams.aux]\ntargets = [\"{}\"]\n",
        upstream.addr, aux.addr
    );
    for (name, probe_config, grants) in routes {
        config.push_str(&format!(
            "[[routes]]\nname = \"{name}\"\nupstream = \"main\"\nmatch = {{ path_prefix = \"/{name}\" }}\n\
             [[routes.filters]]\nplugin = \"probe.wasm\"\nconfig = {probe_config}\ngrants = {grants}\ndeadline_ms = 3000\n"
        ));
    }
    let gw = TestGateway::start(&config, &[("probe.wasm", PROBE)]).await;
    (upstream, aux, gw)
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_and_http_only_when_granted() {
    let (main, aux, gw) = setup(&[
        (
            "granted",
            "{ secret = \"token\", fetch = \"aux\" }",
            "[\"secrets:token\", \"http:aux\"]",
        ),
        ("denied", "{ secret = \"token\", fetch = \"aux\" }", "[]"),
        (
            "other",
            "{ secret = \"token\", fetch = \"main\" }",
            "[\"http:aux\"]",
        ),
    ])
    .await;
    let client = TestClient::default();

    let r = client.get(&gw.url("/granted")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-probe-secret"), Some("s3cr3t"));
    assert_eq!(r.header("x-probe-fetch"), Some("200"));
    assert_eq!(
        aux.hits(),
        1,
        "the plugin's outbound call reached the upstream"
    );

    let r = client.get(&gw.url("/denied")).await;
    assert_eq!(r.header("x-probe-secret"), Some("HostError::AccessDenied"));
    assert_eq!(r.header("x-probe-fetch"), Some("HostError::AccessDenied"));
    // A grant for one upstream does not open another.
    let r = client.get(&gw.url("/other")).await;
    assert_eq!(r.header("x-probe-fetch"), Some("HostError::AccessDenied"));
    assert_eq!(aux.hits(), 1);
    assert_eq!(main.hits(), 3, "only the proxied requests reached main");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_allow_exactly_the_budget() {
    let (main, _aux, gw) = setup(&[
        ("limited", "{ limit = 3 }", "[\"limits\"]"),
        ("nogrant", "{ limit = 3 }", "[]"),
    ])
    .await;
    let client = TestClient::default();
    for left in ["2", "1", "0"] {
        let r = client.get(&gw.url("/limited")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-probe-remaining"), Some(left));
    }
    let r = client.get(&gw.url("/limited")).await;
    assert_eq!(r.status, 429);
    let retry_after: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(main.hits(), 3);

    let r = client.get(&gw.url("/nogrant")).await;
    assert_eq!(
        r.header("x-probe-remaining"),
        Some("HostError::AccessDenied")
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clock_reads_time_when_granted_and_traps_otherwise() {
    let (_main, _aux, gw) = setup(&[
        ("clock", "{ clock = true }", "[\"clock\"]"),
        ("noclock", "{ clock = true }", "[]"),
    ])
    .await;
    let client = TestClient::default();
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let before = now();
    let r = client.get(&gw.url("/clock")).await;
    let after = now();
    let seen: u64 = r
        .header("x-probe-now")
        .and_then(|v| v.parse().ok())
        .expect("x-probe-now");
    assert!(
        (before..=after).contains(&seen),
        "{before} <= {seen} <= {after}"
    );

    // `clock` has no error result: an ungranted call traps, and the failure policy applies.
    let r = client.get(&gw.url("/noclock")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"], "filter_failed");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstreams_record_when_granted() {
    let (main, _aux, gw) = setup(&[
        ("recorded", "{ record = true }", "[\"upstreams\"]"),
        ("unrecorded", "{ record = true }", "[]"),
    ])
    .await;
    let client = TestClient::default();
    // calls/failures/circuit state/requests in flight (this one).
    let r = client.get(&gw.url("/recorded")).await;
    assert_eq!(
        r.header("x-probe-record"),
        Some("1/0/CircuitState::Closed/1")
    );
    main.set_mode(weir_tests::Mode::Failing);
    let r = client.get(&gw.url("/recorded")).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.header("x-probe-record"),
        Some("2/1/CircuitState::Closed/1")
    );

    let r = client.get(&gw.url("/unrecorded")).await;
    assert_eq!(r.header("x-probe-record"), Some("HostError::AccessDenied"));
    // The admin API shows every circuit with its recent outcomes.
    let circuits = client.get(&gw.admin_url("/circuits")).await.json();
    let route = circuits["circuits"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|c| c["scope"] == "route" && c["name"] == "recorded")
        })
        .cloned()
        .expect("the route's circuit");
    assert_eq!(route["circuit"]["state"], "closed");
    assert_eq!(route["last_60s"]["calls"], 2);
    assert_eq!(route["last_60s"]["failures"], 1);
    let upstream = circuits["circuits"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|c| c["scope"] == "upstream" && c["name"] == "main")
        })
        .cloned()
        .expect("the upstream's circuit");
    assert_eq!(upstream["last_60s"]["calls"], 3, "every route's calls");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_changes_the_method_and_reads_the_upstream() {
    let (main, _aux, gw) = setup(&[
        ("post", "{ method = \"POST\", upstream = true }", "[]"),
        ("bad", "{ method = \"NOT A METHOD\" }", "[]"),
    ])
    .await;
    let client = TestClient::default();
    let r = client.get(&gw.url("/post")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["method"],
        "POST",
        "the upstream got the new method"
    );
    assert_eq!(r.header("x-probe-upstream"), Some("main"));

    let r = client.get(&gw.url("/bad")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"], "filter_failed");
    assert_eq!(main.hits(), 1, "the refused method never went upstream");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn files_only_from_a_granted_directory() {
    let dir = weir_tests::TempDir::new();
    let granted = dir.path().join("granted");
    let other = dir.path().join("other");
    for d in [&granted, &other] {
        std::fs::create_dir_all(d).expect("a directory");
    }
    std::fs::write(granted.join("data.bin"), b"12345").expect("a file");
    std::fs::write(other.join("data.bin"), b"12345").expect("a file");
    // Links inside the granted directory that lead out of it, to a file and to a directory.
    std::os::unix::fs::symlink(other.join("data.bin"), granted.join("link.bin")).expect("a link");
    std::os::unix::fs::symlink(&other, granted.join("linkdir")).expect("a link");
    let (g, o) = (granted.display(), other.display());
    let (_main, _aux, gw) = setup(&[
        (
            "granted",
            &format!("{{ file = \"{g}/data.bin\" }}"),
            &format!("[\"files:{g}\"]"),
        ),
        (
            "elsewhere",
            &format!("{{ file = \"{o}/data.bin\" }}"),
            &format!("[\"files:{g}\"]"),
        ),
        ("nogrant", &format!("{{ file = \"{g}/data.bin\" }}"), "[]"),
        (
            "dotdot",
            &format!("{{ file = \"{g}/../other/data.bin\" }}"),
            &format!("[\"files:{g}\"]"),
        ),
        (
            "symlink",
            &format!("{{ file = \"{g}/link.bin\" }}"),
            &format!("[\"files:{g}\"]"),
        ),
        (
            "linkdir",
            &format!("{{ file = \"{g}/linkdir/data.bin\" }}"),
            &format!("[\"files:{g}\"]"),
        ),
    ])
    .await;
    let client = TestClient::default();
    let r = client.get(&gw.url("/granted")).await;
    assert_eq!(r.header("x-probe-file"), Some("5 bytes"));
    // Outside the grant, however the path gets there.
    for route in ["/elsewhere", "/nogrant", "/dotdot", "/symlink", "/linkdir"] {
        let r = client.get(&gw.url(route)).await;
        let seen = r.header("x-probe-file").unwrap_or_default();
        assert!(seen.starts_with("error"), "{route}: {seen}");
    }
    gw.shutdown().await;

    // A grant of a directory that is not there refuses the config, naming it.
    let missing = dir.path().join("missing");
    let config = one_route(
        "127.0.0.1:9",
        &format!(
            "[[routes.filters]]\nplugin = \"probe.wasm\"\nconfig = {{}}\ngrants = [\"files:{}\"]\n",
            missing.display()
        ),
    );
    let refused = TestGateway::try_start(&config, &[("probe.wasm", PROBE)]).await;
    let message = refusal(refused, "a grant of a missing directory").await;
    assert!(message.contains("is not a directory"), "{message}");
    assert!(message.contains("missing"), "{message}");
}
