//! Who the consumer is, once authenticated: allow and deny lists, several methods on one
//! route, and the `consumer` variable read by a later filter.

use jsonwebtoken::Algorithm;
use serde_json::json;
use weir_tests::{TestClient, get};

use super::jwt::{rsa_key, sign};
use super::{
    ALICE_KEY_SHA256, BASIC_BOB, BOB_BCRYPT, assert_refused, gateway, now_s, pem_toml, route,
    with_bearer,
};

#[tokio::test(flavor = "multi_thread")]
async fn allow_and_deny_lists_answer_403() {
    let keys = "api_key = { secret = \"api-keys\" }";
    let (_upstream, gw) = gateway(
        "api-keys = { value = '{\"alice\": \"k-alice\", \"bob\": [\"k-bob\", \"k-bob-2\"]}' }",
        None,
        &[
            route(
                "allow",
                "[\"secrets:api-keys\"]",
                &format!("allow = [\"alice\"]\n{keys}"),
                "",
            ),
            route(
                "deny",
                "[\"secrets:api-keys\"]",
                &format!("deny = [\"alice\"]\n{keys}"),
                "",
            ),
        ],
    )
    .await;
    let client = TestClient::default();
    let call = |path: &str, key: &str| client.send(get(&gw.url(path), &[("x-api-key", key)]));
    assert_eq!(call("/allow", "k-alice").await.status, 200);
    assert_refused(
        &call("/allow", "k-bob-2").await,
        403,
        "consumer_forbidden",
        &[],
    );
    assert_refused(
        &call("/deny", "k-alice").await,
        403,
        "consumer_forbidden",
        &[],
    );
    assert_eq!(call("/deny", "k-bob").await.status, 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn several_methods_on_one_route_and_the_consumer_variable() {
    let config = format!(
        "api_key = {{ keys = [{{ consumer = \"alice\", sha256 = \"{ALICE_KEY_SHA256}\" }}] }}\n\
         basic = {{ users = [{{ username = \"bob\", password_hash = \"{BOB_BCRYPT}\" }}] }}\n\
         jwt = {{ keys = [{{ alg = \"RS256\", pem = {} }}] }}",
        pem_toml("rsa1.pub")
    );
    // The rate-limit filter after auth keys on the `consumer` variable: one request each.
    let rate_limit = "[[routes.filters]]\nplugin = \"rate_limit.wasm\"\ngrants = [\"limits\"]\n\
         config = { limits = [{ limit = 1, window = \"1h\" }], key = [\"consumer\"] }\n";
    let (_upstream, gw) = gateway(
        "",
        None,
        &[route("multi", "[\"clock\"]", &config, rate_limit)],
    )
    .await;
    let client = TestClient::default();

    let r = client.get(&gw.url("/multi")).await;
    assert_refused(
        &r,
        401,
        "missing_credentials",
        &[
            "Key realm=\"weir\"",
            "Basic realm=\"weir\", charset=\"UTF-8\"",
            "Bearer realm=\"weir\"",
        ],
    );
    let r = client
        .send(get(&gw.url("/multi"), &[("x-api-key", "k-alice-1")]))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The API key is looked at first and decides, whatever else is sent.
    let r = client
        .send(get(
            &gw.url("/multi"),
            &[("x-api-key", "wrong"), ("authorization", BASIC_BOB)],
        ))
        .await;
    assert_refused(&r, 401, "invalid_api_key", &["Key realm=\"weir\""]);
    let r = client
        .send(get(&gw.url("/multi"), &[("authorization", BASIC_BOB)]))
        .await;
    assert_eq!(r.status, 200, "bob has his own budget: {:?}", r.body);
    let r = client
        .send(get(&gw.url("/multi"), &[("x-api-key", "k-alice-1")]))
        .await;
    assert_eq!(r.status, 429, "alice's budget is spent: {:?}", r.body);
    let token = sign(
        Algorithm::RS256,
        None,
        &rsa_key("rsa1.key"),
        &json!({"sub": "dave", "exp": now_s() + 600}),
    );
    let r = with_bearer(&client, &gw.url("/multi"), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    gw.shutdown().await;
}
