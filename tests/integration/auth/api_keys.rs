//! API keys: from a header or the query, hashed in the config or read from a secret.

use weir_tests::{TestClient, get};

use super::{ALICE_KEY_SHA256, assert_refused, gateway, route, upstream_header};

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_from_header_and_query_hashed_and_from_a_secret() {
    let config = format!(
        "hide_credentials = true\n\
         consumer_headers = {{ username = \"x-consumer-username\" }}\n\
         api_key = {{ query = \"apikey\", secret = \"api-keys\", keys = [{{ consumer = \"alice\", username = \"Alice\", sha256 = \"{ALICE_KEY_SHA256}\" }}] }}"
    );
    let (upstream, gw) = gateway(
        "api-keys = { value = \"# consumer=key\\nbob=k-bob-1\\n\" }",
        None,
        &[route("key", "[\"secrets:api-keys\"]", &config, "")],
    )
    .await;
    let client = TestClient::default();

    // A hashed key in the header; the client's own consumer headers are overwritten.
    let r = client
        .send(get(
            &gw.url("/key/a"),
            &[("x-api-key", "k-alice-1"), ("x-consumer-id", "mallory")],
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        upstream_header(&r, "x-consumer-id").as_deref(),
        Some("alice")
    );
    assert_eq!(
        r.json()["headers"]["x-consumer-id"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        upstream_header(&r, "x-consumer-username").as_deref(),
        Some("Alice")
    );
    assert_eq!(
        upstream_header(&r, "x-api-key"),
        None,
        "the key is stripped"
    );

    // A key from the secret, in the query; the parameter is stripped, the others kept.
    let r = client
        .send(get(
            &gw.url("/key/b?a=1&apikey=k-bob-1&b=%2F"),
            &[("x-consumer-username", "Alice")],
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(upstream_header(&r, "x-consumer-id").as_deref(), Some("bob"));
    assert_eq!(
        upstream_header(&r, "x-consumer-username"),
        None,
        "a spoofed name is removed"
    );
    assert_eq!(r.json()["path"], "/key/b?a=1&b=%2F");

    let hits = upstream.hits();
    let r = client
        .send(get(&gw.url("/key/a"), &[("x-api-key", "k-alice-2")]))
        .await;
    assert_refused(&r, 401, "invalid_api_key", &["Key realm=\"weir\""]);
    assert!(
        !String::from_utf8_lossy(&r.body).contains("k-alice-2"),
        "the wrong key is not echoed"
    );
    let r = client.get(&gw.url("/key/a?apikey=")).await;
    assert_refused(&r, 401, "invalid_api_key", &["Key realm=\"weir\""]);
    let r = client.get(&gw.url("/key/a")).await;
    assert_refused(&r, 401, "missing_credentials", &["Key realm=\"weir\""]);
    assert_eq!(
        upstream.hits(),
        hits,
        "refused requests never reach the upstream"
    );
    gw.shutdown().await;
}
