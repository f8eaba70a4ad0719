//! The `hmac-signature` filter, end to end: requests signed by an independent RFC 9421
//! implementation (`httpsig-hyper`) pass a real gateway to a real upstream; tampered,
//! stale, replayed, unsigned and wrongly keyed ones are refused with their error codes;
//! the RFC's own HMAC test vector (Appendix B.2.5) verifies; and legacy draft-cavage
//! signatures are accepted only when switched on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use httpsig_hyper::prelude::message_component::HttpMessageComponentId;
use httpsig_hyper::prelude::{AlgorithmName, HttpSignatureParams, SharedKey};
use httpsig_hyper::{ContentDigestType, MessageSignatureReq, RequestContentDigest};
use sha2::{Digest, Sha256, Sha512};
use weir_tests::plugins::HMAC_SIGNATURE;
use weir_tests::redis::RedisServer;
use weir_tests::{Reply, TestClient, TestGateway, TestUpstream, request};

/// The key of `client-1`, held in the secret `client1`.
const CLIENT1_KEY: &str = "correct horse battery staple, but longer";
/// The key of `client-2`, found through `secret_pattern = "hmac-{keyid}"`.
const CLIENT2_KEY: &str = "another key for the pattern";
/// The shared key of RFC 9421 Appendix B.1.5, base64.
const RFC_SHARED_KEY: &str =
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==";

type Body = Full<Bytes>;

/// An upstream and a gateway with one route per `(name, filter config, grants)`:
/// `/<name>/…` → `hmac-signature` with that config (TOML lines), proxied to `main`.
async fn setup(routes: &[(&str, &str, &str)]) -> (TestUpstream, TestGateway) {
    let upstream = TestUpstream::start("main").await;
    let gw = gateway(&upstream, "", routes).await;
    (upstream, gw)
}

/// A gateway in front of `upstream` with `extra` config (e.g. a `[state]` table) and one
/// route per `(name, filter config, grants)`, as in [`setup`].
async fn gateway(
    upstream: &TestUpstream,
    extra: &str,
    routes: &[(&str, &str, &str)],
) -> TestGateway {
    let mut config = format!(
        "{extra}\n[secrets]\nclient1 = {{ value = \"{CLIENT1_KEY}\" }}\n\
         hmac-client-2 = {{ value = \"{CLIENT2_KEY}\" }}\n\
         rfc = {{ value = \"{RFC_SHARED_KEY}\" }}\n\
         [upstreams.main]\ntargets = [\"{}\"]\n",
        upstream.addr
    );
    for (name, filter_config, grants) in routes {
        config.push_str(&format!(
            "[[routes]]\nname = \"{name}\"\nupstream = \"main\"\nmatch = {{ path_prefix = \"/{name}\" }}\n\
             [[routes.filters]]\nplugin = \"hmac-signature.wasm\"\ngrants = {grants}\n\
             deadline_ms = 3000\nmax_body_bytes = 4096\n\
             [routes.filters.config]\n{filter_config}\n"
        ));
    }
    TestGateway::start(&config, &[("hmac-signature.wasm", HMAC_SIGNATURE)]).await
}

/// The usual config: `client-1` by name, `client-2` by pattern.
const KEYS: &str = "keys = { client-1 = \"client1\" }\nsecret_pattern = \"hmac-{keyid}\"";
/// The usual grants.
const GRANTS: &str = "[\"secrets:client1\", \"secrets:hmac-client-2\", \"clock\", \"kv\"]";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How the independent signer signs a request.
struct Signer<'a> {
    components: &'a [&'a str],
    key_id: &'a str,
    key: &'a str,
    created: Option<u64>,
    expires: Option<u64>,
    nonce: bool,
    digest: Option<ContentDigestType>,
    alg: Option<&'a str>,
}

impl Default for Signer<'_> {
    fn default() -> Self {
        Self {
            components: &["@method", "@authority", "@path"],
            key_id: "client-1",
            key: CLIENT1_KEY,
            created: Some(now()),
            expires: None,
            nonce: true,
            digest: None,
            alg: Some("hmac-sha256"),
        }
    }
}

impl Signer<'_> {
    /// `method url` with `headers` and `body`, signed by `httpsig-hyper` as label `sig1`
    /// (with a `Content-Digest` computed by it first, if asked).
    async fn sign(
        &self,
        method: &str,
        url: String,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Request<Body> {
        let mut req = request(method, &url, headers, body.to_string());
        if let Some(digest) = &self.digest {
            let digested = req
                .set_content_digest(digest)
                .await
                .expect("content-digest");
            let (parts, body) = digested.into_parts();
            let bytes = body.collect().await.expect("body").to_bytes();
            req = Request::from_parts(parts, Full::new(bytes));
        }
        let ids = self
            .components
            .iter()
            .map(|c| HttpMessageComponentId::try_from(*c).expect("component id"))
            .collect::<Vec<_>>();
        let mut params = HttpSignatureParams::try_new(&ids).expect("params");
        let key = SharedKey::from_base64(&AlgorithmName::HmacSha256, &STANDARD.encode(self.key))
            .expect("shared key");
        params.keyid = Some(self.key_id.to_string());
        params.alg = self.alg.map(str::to_string);
        params.created = self.created;
        params.expires = self.expires;
        if self.nonce {
            params.set_random_nonce();
        }
        req.set_message_signature(&params, &key, Some("sig1"))
            .await
            .expect("sign");
        req
    }
}

/// A copy of a request (the same method, URI, headers and body).
fn copy(req: &Request<Body>, body: &str) -> Request<Body> {
    let mut out = Request::new(Full::new(Bytes::from(body.to_string())));
    *out.method_mut() = req.method().clone();
    *out.uri_mut() = req.uri().clone();
    *out.headers_mut() = req.headers().clone();
    out
}

#[track_caller]
fn assert_refused(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.json()["error"], code, "{:?}", reply.body);
    assert_eq!(reply.header("x-weir-error"), Some(code));
}

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
    let r = client
        .send(pattern.sign("DELETE", gw.url("/signed/x"), &[], "").await)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // `strip_headers` removes the signature before it goes upstream.
    let r = client
        .send(
            Signer::default()
                .sign("GET", gw.url("/strip"), &[], "")
                .await,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.json()["headers"]["signature-input"].is_null());
    assert!(r.json()["headers"]["signature"].is_null());
    assert_eq!(upstream.hits(), 5);
    gw.shutdown().await;
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

    let mut req = fresh().await;
    *req.method_mut() = Method::PUT;
    assert_refused(&client.send(req).await, 401, "invalid_signature");

    let mut req = fresh().await;
    req.headers_mut()
        .insert("host", HeaderValue::from_static("evil.example"));
    assert_refused(&client.send(req).await, 401, "invalid_signature");

    let mut req = fresh().await;
    *req.uri_mut() = gw.url("/t/refund?to=alice").parse().expect("uri");
    assert_refused(&client.send(req).await, 401, "invalid_signature");

    let mut req = fresh().await;
    *req.uri_mut() = gw.url("/t/pay?to=mallory").parse().expect("uri");
    assert_refused(&client.send(req).await, 401, "invalid_signature");

    let mut req = fresh().await;
    req.headers_mut()
        .insert("x-tenant", HeaderValue::from_static("other"));
    assert_refused(&client.send(req).await, 401, "invalid_signature");

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
async fn stale_future_and_expired_signatures_are_refused() {
    let (upstream, gw) = setup(&[("c", &format!("{KEYS}\nclock_skew_secs = 60"), GRANTS)]).await;
    let client = TestClient::default();
    let send = |signer: Signer<'static>| {
        let url = gw.url("/c");
        let client = client.clone();
        async move { client.send(signer.sign("GET", url, &[], "").await).await }
    };

    let r = send(Signer::default()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = send(Signer {
        created: Some(now() - 3600),
        ..Signer::default()
    })
    .await;
    assert_refused(&r, 401, "signature_expired");
    let r = send(Signer {
        created: Some(now() + 3600),
        ..Signer::default()
    })
    .await;
    assert_refused(&r, 401, "signature_not_yet_valid");
    let r = send(Signer {
        expires: Some(now() - 3600),
        ..Signer::default()
    })
    .await;
    assert_refused(&r, 401, "signature_expired");
    let r = send(Signer {
        created: None,
        ..Signer::default()
    })
    .await;
    assert_refused(&r, 401, "malformed_signature");
    assert_eq!(upstream.hits(), 1);
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
    let r = client
        .send(no_path.sign("GET", gw.url("/r"), &[], "").await)
        .await;
    assert_refused(&r, 401, "missing_component");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("@path")
    );

    // A body must be covered by a content-digest.
    let r = client
        .send(
            Signer::default()
                .sign("POST", gw.url("/r"), &[], "data")
                .await,
        )
        .await;
    assert_refused(&r, 401, "missing_component");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("content-digest")
    );

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

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_request_is_refused_the_second_time() {
    let (upstream, gw) = setup(&[
        ("once", KEYS, GRANTS),
        ("nokv", KEYS, "[\"secrets:client1\", \"clock\"]"),
        (
            "skip",
            &format!("{KEYS}\nreplay_unavailable = \"skip\""),
            "[\"secrets:client1\", \"clock\"]",
        ),
    ])
    .await;
    let client = TestClient::default();

    // With a nonce, and without one (the signature itself is remembered).
    for nonce in [true, false] {
        let signer = Signer {
            nonce,
            ..Signer::default()
        };
        let req = signer.sign("GET", gw.url("/once/a"), &[], "").await;
        let again = copy(&req, "");
        assert_eq!(client.send(req).await.status, 200);
        assert_refused(&client.send(again).await, 401, "replayed");
    }
    assert_eq!(upstream.hits(), 2);

    // Without `kv`, fail closed by default, or skip the check when configured.
    let r = client
        .send(
            Signer::default()
                .sign("GET", gw.url("/nokv"), &[], "")
                .await,
        )
        .await;
    assert_refused(&r, 503, "replay_check_unavailable");
    let req = Signer::default()
        .sign("GET", gw.url("/skip"), &[], "")
        .await;
    let again = copy(&req, "");
    assert_eq!(client.send(req).await.status, 200);
    assert_eq!(client.send(again).await.status, 200);
    gw.shutdown().await;
}

/// Replay protection across instances: only a shared nonce store catches a replay sent to
/// another gateway.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_to_another_gateway_sharing_redis_is_refused() {
    // Two instances behind one name: the signature does not cover the authority (their test
    // ports differ), so only the shared nonce store can tell the replay.
    let route = (
        "once",
        "keys = { client-1 = \"client1\" }\nrequired_components = [\"@method\", \"@path\"]",
        GRANTS,
    );
    let signer = Signer {
        components: &["@method", "@path"],
        ..Signer::default()
    };
    let client = TestClient::default();
    let upstream = TestUpstream::start("main").await;

    // Each with its own embedded store, the replay to the other instance gets through.
    let one = gateway(&upstream, "", &[route]).await;
    let two = gateway(&upstream, "", &[route]).await;
    let req = signer.sign("GET", one.url("/once/x"), &[], "").await;
    let replay = retarget(&req, &two);
    assert_eq!(client.send(req).await.status, 200);
    assert_eq!(client.send(replay).await.status, 200);
    one.shutdown().await;
    two.shutdown().await;

    // Sharing Redis, it is refused.
    let redis = RedisServer::start();
    let state = format!(
        "[state]\nbackend = \"redis\"\n[state.redis]\nurl = {{ value = \"{}\" }}\n",
        redis.url()
    );
    let one = gateway(&upstream, &state, &[route]).await;
    let two = gateway(&upstream, &state, &[route]).await;
    let req = signer.sign("GET", one.url("/once/x"), &[], "").await;
    let replay = retarget(&req, &two);
    assert_eq!(client.send(req).await.status, 200);
    assert_refused(&client.send(replay).await, 401, "replayed");
    one.shutdown().await;
    two.shutdown().await;
}

/// `req` with the same headers, sent to `gw`'s port instead.
fn retarget(req: &Request<Body>, gw: &TestGateway) -> Request<Body> {
    let mut out = copy(req, "");
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    *out.uri_mut() = gw.url(path).parse().expect("a URL");
    out
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

/// How a draft-cavage-http-signatures-12 signature is made here, with the `hmac` crate
/// (there is no maintained independent signer): `(request-target) host date digest`.
struct Cavage<'a> {
    algorithm: &'a str,
    /// `authorization` or `signature`.
    header: &'a str,
    /// What the `Digest` (RFC 3230) is computed over, if not the body.
    digest_of: Option<&'a str>,
    /// How old the `Date` is, in seconds.
    age: u64,
}

impl Default for Cavage<'_> {
    fn default() -> Self {
        Self {
            algorithm: "hmac-sha256",
            header: "authorization",
            digest_of: None,
            age: 0,
        }
    }
}

impl Cavage<'_> {
    fn sign(&self, method: &str, url: String, body: &str) -> Request<Body> {
        let uri: http::Uri = url.parse().expect("uri");
        let host = uri.authority().expect("authority").to_string();
        let path = uri.path_and_query().expect("path").to_string();
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(now() - self.age));
        let digested = self.digest_of.unwrap_or(body).as_bytes();
        let sha512 = self.algorithm == "hmac-sha512";
        let digest = if sha512 {
            format!("SHA-512={}", STANDARD.encode(Sha512::digest(digested)))
        } else {
            format!("SHA-256={}", STANDARD.encode(Sha256::digest(digested)))
        };
        let signing_string = format!(
            "(request-target): {} {path}\nhost: {host}\ndate: {date}\ndigest: {digest}",
            method.to_ascii_lowercase()
        );
        let mac = if sha512 {
            mac::<Hmac<Sha512>>(signing_string.as_bytes())
        } else {
            mac::<Hmac<Sha256>>(signing_string.as_bytes())
        };
        let params = format!(
            "keyId=\"client-1\",algorithm=\"{}\",headers=\"(request-target) host date digest\",signature=\"{}\"",
            self.algorithm,
            STANDARD.encode(mac)
        );
        let value = match self.header {
            "authorization" => format!("Signature {params}"),
            _ => params,
        };
        request(
            method,
            &url,
            &[("date", &date), ("digest", &digest), (self.header, &value)],
            body.to_string(),
        )
    }
}

/// The MAC of `message` under `client-1`'s key.
fn mac<M: Mac + KeyInit>(message: &[u8]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(CLIENT1_KEY.as_bytes()).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_cavage_signatures_only_when_switched_on() {
    let on = format!("{KEYS}\nlegacy = {{ enabled = true }}");
    let (upstream, gw) = setup(&[("legacy", &on, GRANTS), ("modern", KEYS, GRANTS)]).await;
    let client = TestClient::default();
    let body = "{\"n\": 1}";

    for (algorithm, header) in [
        ("hmac-sha256", "authorization"),
        ("hmac-sha512", "authorization"),
        ("hmac-sha256", "signature"),
    ] {
        let signer = Cavage {
            algorithm,
            header,
            ..Cavage::default()
        };
        // Distinct paths: the same signature twice would be a replay.
        let url = gw.url(&format!("/legacy/{algorithm}/{header}?y=1"));
        let r = client.send(signer.sign("POST", url, body)).await;
        assert_eq!(r.status, 200, "{algorithm} in {header}: {:?}", r.body);
    }

    let r = client
        .send(Cavage::default().sign("POST", gw.url("/modern/x"), body))
        .await;
    assert_refused(&r, 401, "missing_signature");
    let wrong_digest = Cavage {
        digest_of: Some("{\"n\": 2}"),
        ..Cavage::default()
    };
    let r = client
        .send(wrong_digest.sign("POST", gw.url("/legacy/x"), body))
        .await;
    assert_refused(&r, 401, "digest_mismatch");
    let old = Cavage {
        age: 3600,
        ..Cavage::default()
    };
    let r = client
        .send(old.sign("POST", gw.url("/legacy/x"), body))
        .await;
    assert_refused(&r, 401, "signature_expired");
    let mut req = Cavage::default().sign("POST", gw.url("/legacy/x"), body);
    *req.method_mut() = Method::PUT;
    assert_refused(&client.send(req).await, 401, "invalid_signature");
    assert_eq!(upstream.hits(), 3);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_configs_are_refused_with_a_clear_message() {
    for (config, expected) in [
        ("clock_skew_secs = 5", "secret_pattern"),
        ("secret_pattern = \"hmac\"", "{keyid}"),
        (
            "keys = { a = \"b\" }\nalgorithms = [\"hmac-md5\"]",
            "hmac-md5",
        ),
        (
            "keys = { a = \"b\" }\nrequired_components = [\"@status\"]",
            "@status",
        ),
        (
            "keys = { a = \"b\" }\ncontent_digest = \"sometimes\"",
            "sometimes",
        ),
        // A listed key whose secret is neither defined nor granted.
        (
            "keys = { a = \"b\" }",
            "keys.a: secret \"b\" is not defined",
        ),
    ] {
        let upstream = TestUpstream::start("main").await;
        let gw = format!(
            "[upstreams.main]\ntargets = [\"{}\"]\n[[routes]]\nname = \"r\"\nupstream = \"main\"\n\
             [[routes.filters]]\nplugin = \"hmac-signature.wasm\"\n[routes.filters.config]\n{config}\n",
            upstream.addr
        );
        let error = TestGateway::try_start(&gw, &[("hmac-signature.wasm", HMAC_SIGNATURE)])
            .await
            .err()
            .expect("the config is refused");
        let message = format!("{error:#}");
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
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

/// Replay protection fails closed on its own while the shared nonce store is slow or
/// down, even with `on_unavailable = "local"`: this instance's own store could not tell a
/// signature already used on another instance.
#[tokio::test(flavor = "multi_thread")]
async fn replay_protection_fails_closed_while_redis_is_slow_or_down() {
    let mut redis = RedisServer::start();
    let upstream = TestUpstream::start("main").await;
    let state = format!(
        "[state]\nbackend = \"redis\"\n[state.redis]\nurl = {{ value = \"{}\" }}\n\
         on_unavailable = \"local\"\n",
        redis.url()
    );
    let gw = gateway(&upstream, &state, &[("once", KEYS, GRANTS)]).await;
    let client = TestClient::default();
    // Each with a fresh nonce.
    let signer = Signer::default();
    let signed = || signer.sign("GET", gw.url("/once/x"), &[], "");
    assert_eq!(client.send(signed().await).await.status, 200);

    // Slow: Redis holds every command for 2 s.
    let paused = redis.command("CLIENT PAUSE 2000 ALL");
    assert_eq!(paused.as_deref(), Some("+OK"));
    for _ in 0..2 {
        let r = client.send(signed().await).await;
        assert_refused(&r, 503, "replay_check_unavailable");
    }
    // Back: checked (and accepted) again.
    let admin = format!("http://{}/status", gw.admin);
    let back = weir_tests::eventually(Duration::from_secs(10), || {
        let (client, admin) = (&client, &admin);
        async move { client.get(admin).await.json()["state"]["healthy"] == true }
    })
    .await;
    assert!(back, "the gateway sees Redis again");
    assert_eq!(client.send(signed().await).await.status, 200);

    // Down.
    redis.stop();
    let r = client.send(signed().await).await;
    assert_refused(&r, 503, "replay_check_unavailable");
    gw.shutdown().await;
}
