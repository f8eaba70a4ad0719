//! What is accepted: every derived component and digest from the independent signer, the
//! RFC's own HMAC vector, and the documented curl recipe.

use httpsig_hyper::ContentDigestType;
use weir_tests::{TestClient, TestUpstream, request};

use super::signer::Signer;
use super::{CLIENT1_KEY, CLIENT2_KEY, GRANTS, KEYS, assert_refused, gateway, setup};

#[tokio::test(flavor = "multi_thread")]
async fn signatures_from_an_independent_signer_are_accepted() {
    let (upstream, gw) = setup(&[
        ("signed", KEYS, GRANTS),
        ("strip", &format!("{KEYS}\nstrip_headers = true"), GRANTS),
    ])
    .await;
    let client = TestClient::default();

    // Every derived component this filter supports, and a header sent twice (its value
    // is both lines joined with ", ", RFC 9421 §2.1).
    let all = Signer {
        components: &[
            "@method",
            "@authority",
            "@path",
            "@query",
            "@target-uri",
            "@scheme",
            "@request-target",
            "x-tenant",
        ],
        ..Signer::default()
    };
    let req = all
        .sign(
            "GET",
            gw.url("/signed/items?b=2&a=1"),
            &[("x-tenant", "acme"), ("x-tenant", "beta")],
            "",
        )
        .await;
    let r = client.send(req).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["path"], "/signed/items?b=2&a=1");
    assert!(
        r.json()["headers"]["signature-input"].is_array(),
        "kept by default"
    );

    // Bodies, with `content-digest` computed by the signer: sha-256 and sha-512.
    for digest in [ContentDigestType::Sha256, ContentDigestType::Sha512] {
        let signer = Signer {
            components: &[
                "@method",
                "@authority",
                "@path",
                "content-digest",
                "content-type",
            ],
            digest: Some(digest),
            ..Signer::default()
        };
        let body = r#"{"hello": "world"}"#;
        let req = signer
            .sign(
                "POST",
                gw.url("/signed/orders"),
                &[("content-type", "application/json")],
                body,
            )
            .await;
        let r = client.send(req).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.json()["body"], body);
    }

    // A key found through `secret_pattern`, with no `alg` parameter (the default applies).
    let pattern = Signer {
        key_id: "client-2",
        key: CLIENT2_KEY,
        alg: None,
        ..Signer::default()
    };
    let r = pattern
        .send(&client, "DELETE", gw.url("/signed/x"), "")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // `strip_headers` removes the signature before it goes upstream.
    let r = Signer::default()
        .send(&client, "GET", gw.url("/strip"), "")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.json()["headers"]["signature-input"].is_null());
    assert!(r.json()["headers"]["signature"].is_null());
    assert_eq!(upstream.hits(), 5);
    gw.shutdown().await;
}

/// RFC 9421 Appendix B.2.5: the HMAC-SHA256 signature of the test request with the shared
/// key of B.1.5. Its `created` is in 2021, hence the wide skew window.
#[tokio::test(flavor = "multi_thread")]
async fn rfc_9421_appendix_b_2_5_verifies() {
    let config = "keys = { test-shared-secret = \"rfc\" }\nsecret_encoding = \"base64\"\n\
                  required_components = [\"@authority\"]\ncontent_digest = \"off\"\n\
                  clock_skew_secs = 1000000000";
    // The replay record lives as long as the (here decades-wide) window: past the default
    // TTL cap of `kv`, which would refuse it (and the check fail closed).
    let upstream = TestUpstream::start("main").await;
    let routes = [("foo", config, "[\"secrets:rfc\", \"clock\", \"kv\"]")];
    let gw = gateway(&upstream, "[state.kv]\nmax_ttl_ms = 0\n", &routes).await;
    let client = TestClient::default();
    let vector = |date: &'static str| {
        request(
            "POST",
            &gw.url("/foo?param=Value&Pet=dog"),
            &[
                ("host", "example.com"),
                ("date", date),
                ("content-type", "application/json"),
                (
                    "content-digest",
                    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
                ),
                (
                    "signature-input",
                    "sig-b25=(\"date\" \"@authority\" \"content-type\");created=1618884473;keyid=\"test-shared-secret\"",
                ),
                (
                    "signature",
                    "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:",
                ),
            ],
            r#"{"hello": "world"}"#,
        )
    };
    let r = client.send(vector("Tue, 20 Apr 2021 02:07:55 GMT")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = client.send(vector("Tue, 20 Apr 2021 02:07:56 GMT")).await;
    assert_refused(&r, 401, "invalid_signature");
    assert_eq!(upstream.hits(), 1);
    gw.shutdown().await;
}

/// The curl + openssl recipe of the docs (`tests/fixtures/hmac/sign-request.sh`) signs
/// requests the filter accepts, with and without a body.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_curl_recipe_is_accepted() {
    let (upstream, gw) = setup(&[("recipe", KEYS, GRANTS)]).await;
    for body in ["", "{\"hello\":\"world\"}"] {
        let addr = gw.addr.to_string();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/fixtures/hmac/sign-request.sh"
                ))
                .args(["-o", "/dev/null", "-w", "%{http_code}"])
                .env("GATEWAY", addr)
                .env("KEYID", "client-1")
                .env("KEY", CLIENT1_KEY)
                .env("TARGET", "/recipe/hello")
                .env("BODY", body)
                .output()
                .expect("bash runs the recipe (it needs curl and openssl)")
        })
        .await
        .expect("join");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "200",
            "body {body:?}: {stderr}"
        );
    }
    assert_eq!(upstream.hits(), 2);
    gw.shutdown().await;
}
