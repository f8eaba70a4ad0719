//! What is refused: a change to any covered component, no signature, an unknown key, an
//! algorithm not accepted, a component not covered, garbage, and a body over the limit.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use httpsig_hyper::ContentDigestType;
use sha2::{Digest, Sha256};
use weir_tests::{Reply, TestClient, request};

use super::signer::Signer;
use super::{Body, GRANTS, KEYS, assert_refused, copy, setup};

/// One way of changing a signed request after it was signed.
type Tamper<'a> = dyn Fn(&mut Request<Body>) + 'a;

/// Asserts a `401 missing_component` whose message names `component`.
#[track_caller]
fn assert_missing(r: &Reply, component: &str) {
    assert_refused(r, 401, "missing_component");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains(component)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tampering_with_any_covered_component_is_refused() {
    let (upstream, gw) = setup(&[("t", KEYS, GRANTS)]).await;
    let client = TestClient::default();
    let signer = Signer {
        components: &[
            "@method",
            "@authority",
            "@path",
            "@query",
            "x-tenant",
            "content-digest",
        ],
        digest: Some(ContentDigestType::Sha256),
        ..Signer::default()
    };
    let body = "amount=10";
    let fresh = || {
        signer.sign(
            "POST",
            gw.url("/t/pay?to=alice"),
            &[("x-tenant", "acme")],
            body,
        )
    };

    let r = client.send(fresh().await).await;
    assert_eq!(r.status, 200, "the untouched request passes: {:?}", r.body);

    // The method, the authority, the path, the query and the covered header, each changed.
    let (refund, mallory) = (gw.url("/t/refund?to=alice"), gw.url("/t/pay?to=mallory"));
    let tampers: [&Tamper<'_>; 5] = [
        &|req| *req.method_mut() = Method::PUT,
        &|req| {
            req.headers_mut()
                .insert("host", HeaderValue::from_static("evil.example"));
        },
        &|req| *req.uri_mut() = refund.parse().expect("uri"),
        &|req| *req.uri_mut() = mallory.parse().expect("uri"),
        &|req| {
            req.headers_mut()
                .insert("x-tenant", HeaderValue::from_static("other"));
        },
    ];
    for tamper in tampers {
        let mut req = fresh().await;
        tamper(&mut req);
        assert_refused(&client.send(req).await, 401, "invalid_signature");
    }

    // Another body under the signed digest, and another body with a digest made for it.
    let req = fresh().await;
    assert_refused(
        &client.send(copy(&req, "amount=99")).await,
        401,
        "digest_mismatch",
    );
    let mut req = copy(&fresh().await, "amount=99");
    let digest = format!(
        "sha-256=:{}:",
        STANDARD.encode(Sha256::digest(b"amount=99"))
    );
    req.headers_mut().insert(
        "content-digest",
        HeaderValue::from_str(&digest).expect("value"),
    );
    assert_refused(&client.send(req).await, 401, "invalid_signature");

    assert_eq!(
        upstream.hits(),
        1,
        "no refused request reached the upstream"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_unknown_key_and_uncovered_requests_are_refused() {
    let (upstream, gw) = setup(&[
        ("r", KEYS, GRANTS),
        (
            "sha256only",
            &format!("{KEYS}\nalgorithms = [\"hmac-sha256\"]"),
            GRANTS,
        ),
    ])
    .await;
    let client = TestClient::default();

    let r = client.get(&gw.url("/r")).await;
    assert_refused(&r, 401, "missing_signature");
    let hint = r.header("accept-signature").expect("accept-signature");
    assert!(
        hint.starts_with("sig1=(\"@method\" \"@authority\" \"@path\");created"),
        "{hint}"
    );

    // Signed, but wrongly: (why, signer, route, expected code).
    let cases = [
        (
            "an unknown key id",
            Signer {
                key_id: "nobody",
                ..Signer::default()
            },
            "/r",
            "unknown_key",
        ),
        (
            "a key id that would escape the pattern",
            Signer {
                key_id: "../client1",
                ..Signer::default()
            },
            "/r",
            "unknown_key",
        ),
        (
            "the right key id with the wrong key",
            Signer {
                key: "not the key",
                ..Signer::default()
            },
            "/r",
            "invalid_signature",
        ),
        (
            "an algorithm the filter does not know",
            Signer {
                alg: Some("hmac-sha1"),
                ..Signer::default()
            },
            "/r",
            "unsupported_algorithm",
        ),
        (
            "an algorithm the route does not accept",
            Signer {
                alg: Some("hmac-sha512"),
                ..Signer::default()
            },
            "/sha256only",
            "unsupported_algorithm",
        ),
    ];
    for (why, signer, route, code) in cases {
        let r = client
            .send(signer.sign("GET", gw.url(route), &[], "").await)
            .await;
        assert_eq!(r.json()["error"], code, "{why}");
        assert_refused(&r, 401, code);
    }

    let no_path = Signer {
        components: &["@method", "@authority"],
        ..Signer::default()
    };
    let r = no_path.send(&client, "GET", gw.url("/r"), "").await;
    assert_missing(&r, "@path");

    // A body must be covered by a content-digest.
    let r = Signer::default()
        .send(&client, "POST", gw.url("/r"), "data")
        .await;
    assert_missing(&r, "content-digest");

    // A covered header the request does not have.
    let absent = Signer {
        components: &["@method", "@authority", "@path", "x-absent"],
        ..Signer::default()
    };
    let mut req = absent
        .sign("GET", gw.url("/r"), &[("x-absent", "1")], "")
        .await;
    req.headers_mut().remove("x-absent");
    assert_refused(&client.send(req).await, 401, "missing_component");

    // Garbage in the signature headers.
    let garbage = [
        ("signature-input", "sig1=(\"@method\""),
        ("signature", "sig1=:AA==:"),
    ];
    let r = client
        .send(request("GET", &gw.url("/r"), &garbage, Bytes::new()))
        .await;
    assert_refused(&r, 401, "malformed_signature");

    // The gateway enforces the filter's body limit before the filter runs.
    let big = "x".repeat(5000);
    let r = client
        .send(
            Signer::default()
                .sign("POST", gw.url("/r"), &[], &big)
                .await,
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(upstream.hits(), 0);
    gw.shutdown().await;
}
