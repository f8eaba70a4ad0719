//! API lifecycle: the gateway keeps its last generations (config and plugins) and rolls
//! back to one at once, until the files change again; a config can be published through
//! the admin API (token required), checked like a file; a deprecated route says so in
//! `Deprecation`, `Sunset` and `Link` (RFC 9745, RFC 8594), next to its successor.

use std::time::Duration;

use http::StatusCode;
use weir_tests::plugins::{TESTER, TESTER_V2};
use weir_tests::{TestClient, TestGateway, TestUpstream, eventually, post_json, request};

fn routes(upstream: &TestUpstream, extra: &str) -> String {
    format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\nname = \"api\"\nupstream = \"app\"\nmatch.path_prefix = \"/api\"\n\
         [[routes.filters]]\nplugin = \"filter.wasm\"\n{extra}",
        upstream.addr
    )
}

async fn version(client: &TestClient, gw: &TestGateway) -> Option<String> {
    let reply = client.get(&gw.url("/api/x")).await;
    reply.header("x-tester-version").map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_serves_an_old_generation_until_the_files_change() {
    let upstream = TestUpstream::start("app").await;
    let gw = TestGateway::start(&routes(&upstream, ""), &[("filter.wasm", TESTER)]).await;
    let client = TestClient::http1();
    let first = version(&client, &gw)
        .await
        .expect("the filter stamps its version");
    gw.install_plugin("filter.wasm", TESTER_V2);
    let swapped = eventually(Duration::from_secs(10), || async {
        version(&client, &gw).await.is_some_and(|v| v != first)
    })
    .await;
    assert!(swapped, "the new plugin serves");
    let second = version(&client, &gw).await;

    let listed = client.get(&gw.admin_url("/generations")).await.json();
    let generations = listed["generations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(generations.len() >= 2, "{listed}");
    assert_eq!(generations[0]["live"], true, "newest first");
    let changed = generations[0]["changes"].to_string();
    assert!(
        changed.contains("plugin \\\"filter.wasm\\\": changed"),
        "{changed}"
    );
    let oldest = generations
        .last()
        .and_then(|g| g["generation"].as_u64())
        .unwrap_or(0);

    // Back to the first generation: its plugin, though the file on disk is the new one.
    let back = client
        .send(post_json(
            &gw.admin_url("/rollback"),
            &format!(r#"{{"generation": {oldest}}}"#),
        ))
        .await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.json());
    assert_eq!(version(&client, &gw).await.as_deref(), Some(first.as_str()));
    let listed = client.get(&gw.admin_url("/generations")).await.json();
    let source = listed["generations"][0]["source"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(source, format!("rollback to generation {oldest}"));

    // Unknown generations are refused.
    let unknown = post_json(&gw.admin_url("/rollback"), r#"{"generation": 999}"#);
    assert_eq!(client.send(unknown).await.status, StatusCode::NOT_FOUND);

    // The files change again: they serve again.
    let other =
        "[[routes]]\nname = \"other\"\nupstream = \"app\"\nmatch.path_prefix = \"/other\"\n";
    gw.write_config(&format!("{}{other}", routes(&upstream, "")));
    let files = eventually(Duration::from_secs(10), || async {
        version(&client, &gw).await == second
    })
    .await;
    assert!(files, "a change of the files ends the rollback");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_published_config_needs_the_token_and_is_checked_like_a_file() {
    let upstream = TestUpstream::start("app").await;
    let client = TestClient::http1();
    let open = TestGateway::start(&routes(&upstream, ""), &[("filter.wasm", TESTER)]).await;
    let refused = client.send(post_json(&open.admin_url("/config"), "")).await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "no token configured, no publishing"
    );
    open.shutdown().await;

    let server = "admin_token = { value = \"s3cret\" }\n";
    let gw =
        TestGateway::start_with_server(server, &routes(&upstream, ""), &[("filter.wasm", TESTER)])
            .await;
    let auth = [("authorization", "Bearer s3cret")];
    let publish = |text: String| request("POST", &gw.admin_url("/config"), &auth, text);
    let broken = client.send(publish("[server]\nlisten = 5\n".into())).await;
    assert_eq!(broken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(broken.json()["error"], "config_refused");
    assert_eq!(
        client.get(&gw.url("/api/x")).await.status,
        StatusCode::OK,
        "still serving"
    );

    let text = format!(
        "{}{}[[routes]]\nname = \"new\"\nupstream = \"app\"\nmatch.path_prefix = \"/new\"\n",
        weir_tests::base_config_with(server),
        routes(&upstream, "")
    );
    let published = client.send(publish(text)).await;
    assert_eq!(published.status, StatusCode::OK, "{:?}", published.json());
    assert_eq!(client.get(&gw.url("/new/x")).await.status, StatusCode::OK);
    let listed = client
        .send(request("GET", &gw.admin_url("/generations"), &auth, ""))
        .await
        .json();
    assert_eq!(listed["generations"][0]["source"], "POST /config");
    assert!(
        listed["generations"][0]["changes"]
            .to_string()
            .contains("route \\\"new\\\": added")
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deprecated_version_says_so_beside_its_successor() {
    let upstream = TestUpstream::start("app").await;
    let config = format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\nname = \"v1\"\nupstream = \"app\"\nmatch.path_prefix = \"/api/v1\"\nversion = \"v1\"\n\
         deprecated = {{ since = \"2023-06-30T23:59:59Z\", sunset = \"2030-01-01T00:00:00Z\", \
         link = \"https://developer.example.com/v2-migration\" }}\n\
         [[routes]]\nname = \"v2\"\nupstream = \"app\"\nmatch.path_prefix = \"/api/v2\"\nversion = \"v2\"\n",
        upstream.addr
    );
    let gw = TestGateway::start(&config, &[]).await;
    let client = TestClient::http1();
    let old = client.get(&gw.url("/api/v1/users")).await;
    assert_eq!(old.status, StatusCode::OK);
    assert_eq!(old.header("deprecation"), Some("@1688169599"));
    assert_eq!(old.header("sunset"), Some("Tue, 01 Jan 2030 00:00:00 GMT"));
    assert_eq!(
        old.header("link"),
        Some("<https://developer.example.com/v2-migration>; rel=\"deprecation\"")
    );
    let new = client.get(&gw.url("/api/v2/users")).await;
    assert!(new.header("deprecation").is_none() && new.header("sunset").is_none());
    let routes = client.get(&gw.admin_url("/routes")).await.json();
    assert_eq!(routes["routes"][0]["version"], "v1");
    assert_eq!(
        routes["routes"][0]["deprecated"]["sunset"],
        "2030-01-01T00:00:00Z"
    );

    // A date that is not RFC 3339 refuses the config, naming the key.
    let bad = config.replace("2030-01-01T00:00:00Z", "soon");
    let refusal = weir_tests::refusal(TestGateway::try_start(&bad, &[]).await, "bad sunset").await;
    assert!(refusal.contains("deprecated.sunset"), "{refusal}");
    gw.shutdown().await;
}
