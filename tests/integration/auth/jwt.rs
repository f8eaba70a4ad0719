//! JWT with keys in the config: every algorithm family, and every kind of bad token.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use weir_tests::{TestClient, TestGateway, TestUpstream};

use super::{
    assert_refused, bearer_error, fixture, gateway, now_s, pem_toml, route, upstream_header,
    with_bearer,
};

/// The JWT route's config: one key per algorithm family, and the claim rules.
fn jwt_config() -> String {
    let pem = |kid: &str, alg: &str, file: &str| {
        format!(
            "{{ kid = \"{kid}\", alg = \"{alg}\", pem = {} }}",
            pem_toml(file)
        )
    };
    let keys = [
        "{ kid = \"hs256\", alg = \"HS256\", secret = \"hs256\" }".to_string(),
        "{ kid = \"hs384\", alg = \"HS384\", secret = \"hs384\" }".to_string(),
        "{ kid = \"hs512\", alg = \"HS512\", secret = \"hs512\" }".to_string(),
        // A second RS256 key, listed first: a token without a `kid` must get past it.
        pem("rsa2", "RS256", "rsa2.pub"),
        pem("rsa1", "RS256", "rsa1.pub"),
        pem("rsa1-pss", "PS256", "rsa1.pub"),
        pem("p256", "ES256", "p256.pub"),
        pem("p384", "ES384", "p384.pub"),
        pem("ed", "EdDSA", "ed25519.pub"),
    ];
    format!(
        "consumer_headers = {{ scope = \"x-authenticated-scope\" }}\n\
         jwt = {{ issuer = \"https://idp.example\", audience = [\"weir\", \"other\"], \
         required_claims = [\"exp\", \"sub\", \"jti\"], keys = [{}] }}",
        keys.join(", ")
    )
}

const JWT_SECRETS: &str = "hs256 = { value = \"secret-256-bits-long-enough-for-hs256\" }\n\
     hs384 = { value = \"secret-384-bits-long-enough-for-hs384-and-more\" }\n\
     hs512 = { value = \"secret-512-bits-long-enough-for-hs512-and-more-and-more-bytes\" }";

/// Good claims for the JWT route.
fn claims(sub: &str) -> Value {
    let now = now_s();
    json!({
        "sub": sub, "iss": "https://idp.example", "aud": ["weir"], "jti": "1",
        "iat": now, "nbf": now - 10, "exp": now + 600, "scope": "read write",
    })
}

/// A token signed by the test's own signer.
pub(super) fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).expect("sign")
}

/// The HMAC key of a `[secrets]` line.
fn hmac_key(secrets_line: &str) -> EncodingKey {
    let value = secrets_line.split('"').nth(1).expect("secret value");
    EncodingKey::from_secret(value.as_bytes())
}

/// An RSA private key fixture.
pub(super) fn rsa_key(file: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(fixture(file).as_bytes()).expect("RSA key")
}

/// An upstream and a gateway with one route `/jwt` through `jwt_config()`, granted the
/// clock and the HMAC secrets.
async fn jwt_gateway() -> (TestUpstream, TestGateway) {
    gateway(
        JWT_SECRETS,
        None,
        &[route(
            "jwt",
            "[\"clock\", \"secrets:hs256\", \"secrets:hs384\", \"secrets:hs512\"]",
            &jwt_config(),
            "",
        )],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_every_algorithm_family_is_accepted() {
    let (_upstream, gw) = jwt_gateway().await;
    let client = TestClient::default();
    let secrets: Vec<&str> = JWT_SECRETS.lines().collect();
    let cases = [
        (Algorithm::HS256, "hs256", hmac_key(secrets[0])),
        (Algorithm::HS384, "hs384", hmac_key(secrets[1])),
        (Algorithm::HS512, "hs512", hmac_key(secrets[2])),
        (Algorithm::RS256, "rsa1", rsa_key("rsa1.key")),
        (Algorithm::PS256, "rsa1-pss", rsa_key("rsa1.key")),
        (
            Algorithm::ES256,
            "p256",
            EncodingKey::from_ec_pem(fixture("p256.key").as_bytes()).expect("P-256 key"),
        ),
        (
            Algorithm::ES384,
            "p384",
            EncodingKey::from_ec_pem(fixture("p384.key").as_bytes()).expect("P-384 key"),
        ),
        (
            Algorithm::EdDSA,
            "ed",
            EncodingKey::from_ed_pem(fixture("ed25519.key").as_bytes()).expect("Ed25519 key"),
        ),
    ];
    for (alg, kid, key) in &cases {
        let token = sign(*alg, Some(kid), key, &claims(&format!("user-{kid}")));
        let r = with_bearer(&client, &gw.url("/jwt"), &token).await;
        assert_eq!(r.status, 200, "{alg:?}: {:?}", r.body);
        assert_eq!(
            upstream_header(&r, "x-consumer-id"),
            Some(format!("user-{kid}"))
        );
        assert_eq!(
            upstream_header(&r, "x-authenticated-scope").as_deref(),
            Some("read write")
        );
    }
    // Without a `kid`, every key of the token's algorithm is tried (rsa2, then rsa1).
    let (alg, _, key) = &cases[3];
    let token = sign(*alg, None, key, &claims("no-kid"));
    let r = with_bearer(&client, &gw.url("/jwt"), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_bad_tokens_are_refused() {
    let (upstream, gw) = jwt_gateway().await;
    let client = TestClient::default();
    let rsa = rsa_key("rsa1.key");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims("alice");
        change(&mut c);
        sign(Algorithm::RS256, Some("rsa1"), &rsa, &c)
    };
    let without = |claim: &str| {
        with(&|c| {
            c.as_object_mut().map(|o| o.remove(claim));
        })
    };
    let good = with(&|_| {});
    let other = with(&|c| c["sub"] = json!("admin"));
    let segments = |t: &str| t.split('.').map(str::to_string).collect::<Vec<_>>();
    let (g, o) = (segments(&good), segments(&other));
    // An RSA public key used as an HMAC secret (RFC 8725 §2.1), with and without its kid.
    let public_pem = fixture("rsa1.pub");
    let confusion_key = EncodingKey::from_secret(public_pem.as_bytes());
    let alg_none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let critical = {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa1".into());
        header.crit = Some(vec!["exp".into()]);
        encode(&header, &claims("alice"), &rsa).expect("sign")
    };

    let expired = bearer_error("the token has expired");
    let cases: Vec<(&str, String, &str, String)> = vec![
        (
            "expired",
            with(&|c| c["exp"] = json!(now_s() - 3600)),
            "token_expired",
            expired,
        ),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(now_s() + 3600)),
            "invalid_token",
            bearer_error("the token is not valid yet"),
        ),
        (
            "issued in the future",
            with(&|c| c["iat"] = json!(now_s() + 3600)),
            "invalid_token",
            bearer_error("the token is issued in the future"),
        ),
        (
            "wrong iss",
            with(&|c| c["iss"] = json!("https://evil.example")),
            "invalid_token",
            bearer_error("the issuer is not accepted"),
        ),
        (
            "wrong aud",
            with(&|c| c["aud"] = json!("elsewhere")),
            "invalid_token",
            bearer_error("the audience is not accepted"),
        ),
        (
            "no iss while one is configured",
            without("iss"),
            "invalid_token",
            bearer_error("the issuer is not accepted"),
        ),
        (
            "no aud while one is configured",
            without("aud"),
            "invalid_token",
            bearer_error("the audience is not accepted"),
        ),
        (
            "empty aud array",
            with(&|c| c["aud"] = json!([])),
            "invalid_token",
            bearer_error("the audience is not accepted"),
        ),
        (
            "missing required claim",
            without("jti"),
            "invalid_token",
            bearer_error("a required claim is missing"),
        ),
        (
            "tampered payload",
            format!("{}.{}.{}", g[0], o[1], g[2]),
            "invalid_token",
            bearer_error("the signature is not valid"),
        ),
        (
            "alg none",
            format!("{alg_none_header}.{}.", g[1]),
            "invalid_token",
            bearer_error("the token is malformed"),
        ),
        (
            "HS256 with the RSA public key, its kid",
            sign(
                Algorithm::HS256,
                Some("rsa1"),
                &confusion_key,
                &claims("alice"),
            ),
            "invalid_token",
            bearer_error("no key is known for the token"),
        ),
        (
            "HS256 with the RSA public key, no kid",
            sign(Algorithm::HS256, None, &confusion_key, &claims("alice")),
            "invalid_token",
            bearer_error("the signature is not valid"),
        ),
        (
            "critical header parameter",
            critical,
            "invalid_token",
            bearer_error("the token has critical header parameters"),
        ),
        (
            "garbage",
            "not-a-token".into(),
            "invalid_token",
            bearer_error("the token is malformed"),
        ),
    ];
    let hits = upstream.hits();
    for (what, token, code, challenge) in &cases {
        let r = with_bearer(&client, &gw.url("/jwt"), token).await;
        assert_eq!(r.status, 401, "{what}: {:?}", r.body);
        assert_refused(&r, 401, code, &[challenge.as_str()]);
    }
    assert_eq!(upstream.hits(), hits);
    // The good token itself passes, so the refusals above are about what was changed.
    let r = with_bearer(&client, &gw.url("/jwt"), &good).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    gw.shutdown().await;
}
