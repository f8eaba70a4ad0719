//! JWT with keys fetched from a JWKS URL: caching, refetching for a new `kid`, an
//! unreachable provider, and symmetric keys in a JWKS.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use weir_tests::{TestClient, get};

use super::idp::Idp;
use super::jwt::{rsa_key, sign};
use super::{
    assert_bearer_refused, assert_refused, gateway, now_s, route, upstream_header, with_bearer,
};

#[tokio::test(flavor = "multi_thread")]
async fn jwt_keys_from_a_jwks_url_are_cached_and_refetched_for_a_new_kid() {
    let idp = Idp::start().await;
    idp.set_jwks(&["rsa1.jwk.json"]);
    let config =
        "jwt = { jwks_url = { upstream = \"idp\", path = \"/jwks\", min_refetch_ms = 600000 } }";
    // A JWKS upstream with nobody listening.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let down_route = format!(
        "[upstreams.down]\ntargets = [\"{closed}\"]\n{}",
        route(
            "down",
            "[\"clock\", \"http:down\"]",
            "jwt = { jwks_url = { upstream = \"down\", path = \"/jwks\" } }",
            "",
        )
    );
    let (_upstream, gw) = gateway(
        "",
        Some(idp.addr),
        &[
            route("jwks", "[\"clock\", \"http:idp\"]", config, ""),
            down_route,
        ],
    )
    .await;
    let client = TestClient::default();
    let call = |key: &EncodingKey, kid: &str| {
        let token = sign(
            Algorithm::RS256,
            Some(kid),
            key,
            &json!({"sub": kid, "exp": now_s() + 600}),
        );
        client.send(get(
            &gw.url("/jwks"),
            &[("authorization", &format!("Bearer {token}"))],
        ))
    };
    let (rsa1, rsa2) = (rsa_key("rsa1.key"), rsa_key("rsa2.key"));

    assert_eq!(call(&rsa1, "rsa1").await.status, 200);
    assert_eq!(call(&rsa1, "rsa1").await.status, 200);
    assert_eq!(idp.jwks_hits(), 1, "the JWKS is cached");

    // The key rotates: a token with the new kid makes the filter fetch the JWKS again.
    idp.set_jwks(&["rsa1.jwk.json", "rsa2.jwk.json"]);
    let r = call(&rsa2, "rsa2").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        upstream_header(&r, "x-consumer-id").as_deref(),
        Some("rsa2")
    );
    assert_eq!(idp.jwks_hits(), 2);

    // Made-up kids do not make it fetch again within min_refetch_ms.
    let r = call(&rsa2, "rsa3").await;
    assert_bearer_refused(&r, "invalid_token", "no key is known for the token");
    assert_eq!(idp.jwks_hits(), 2);
    // A key signed by one key but naming another is refused.
    let r = call(&rsa2, "rsa1").await;
    assert_bearer_refused(&r, "invalid_token", "the signature is not valid");

    // No JWKS at all: the provider is unavailable, which is not the client's fault.
    let token = sign(
        Algorithm::RS256,
        Some("rsa1"),
        &rsa1,
        &json!({"sub": "a", "exp": now_s() + 600}),
    );
    let r = with_bearer(&client, &gw.url("/down"), &token).await;
    assert_refused(&r, 503, "auth_unavailable", &[]);
    gw.shutdown().await;
}

/// A symmetric key in a fetched JWKS would let whoever reads (or serves) the JWKS mint
/// tokens: refused unless `allow_oct` says otherwise.
#[tokio::test(flavor = "multi_thread")]
async fn jwt_oct_keys_from_a_jwks_url_are_refused_unless_allowed() {
    let idp = Idp::start().await;
    let secret = b"a symmetric key published in a JWKS";
    *idp.state.jwks.lock().expect("lock") = json!({ "keys": [
        { "kty": "oct", "kid": "h", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(secret) }
    ] })
    .to_string();
    let fetch = "upstream = \"idp\", path = \"/jwks\"";
    let (_upstream, gw) = gateway(
        "",
        Some(idp.addr),
        &[
            route(
                "strict",
                "[\"clock\", \"http:idp\"]",
                &format!("jwt = {{ jwks_url = {{ {fetch} }} }}"),
                "",
            ),
            route(
                "lenient",
                "[\"clock\", \"http:idp\"]",
                &format!("jwt = {{ jwks_url = {{ {fetch}, allow_oct = true }} }}"),
                "",
            ),
        ],
    )
    .await;
    let client = TestClient::default();
    let token = sign(
        Algorithm::HS256,
        Some("h"),
        &EncodingKey::from_secret(secret),
        &json!({"sub": "forged", "exp": now_s() + 600}),
    );
    let r = with_bearer(&client, &gw.url("/strict"), &token).await;
    assert_bearer_refused(&r, "invalid_token", "no key is known for the token");
    let r = with_bearer(&client, &gw.url("/lenient"), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    gw.shutdown().await;
}
