//! HTTP Basic (RFC 7617) with Argon2 and bcrypt hashes, and refusals that take as long for
//! an unknown user as for a wrong password.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use weir_tests::{TestClient, get};

use super::{BASIC_BOB, BOB_BCRYPT, assert_refused, gateway, route, upstream_header};

/// Argon2id (m=64 KiB t=1) of `alice-password`, low-cost so that the tests stay within a
/// small deadline.
const ALICE_ARGON2: &str = "$argon2id$v=19$m=64,t=1,p=1$d2VpcnRlc3RzYWx0MDAwMQ$YB8wNTjcwW7eW4rZN0t3Sxjhye+cQ+wgJz/eLelDL+g";
/// `Basic` credentials: alice:alice-password, alice:wrong, mallory:alice-password.
const BASIC_ALICE: &str = "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=";
const BASIC_ALICE_WRONG: &str = "Basic YWxpY2U6d3Jvbmc=";
const BASIC_UNKNOWN: &str = "Basic bWFsbG9yeTphbGljZS1wYXNzd29yZA==";

#[tokio::test(flavor = "multi_thread")]
async fn basic_with_argon2_and_bcrypt() {
    let config = format!(
        "hide_credentials = true\n\
         basic = {{ users = [{{ username = \"alice\", password_hash = \"{ALICE_ARGON2}\" }}, \
         {{ username = \"bob\", consumer = \"c-bob\", password_hash = \"{BOB_BCRYPT}\" }}] }}"
    );
    let (_upstream, gw) = gateway("", None, &[route("basic", "[\"clock\"]", &config, "")]).await;
    let client = TestClient::default();
    let basic = |auth: &'static str| get(&gw.url("/basic"), &[("authorization", auth)]);
    let challenge = ["Basic realm=\"weir\", charset=\"UTF-8\""];

    // The cache of verified credentials lives in each instance and cannot be told apart
    // from a fresh check without timing; what is checked is that it never admits more.
    for _ in 0..2 {
        let r = client.send(basic(BASIC_ALICE)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            upstream_header(&r, "x-consumer-id").as_deref(),
            Some("alice")
        );
        assert_eq!(
            upstream_header(&r, "authorization"),
            None,
            "credentials stripped"
        );
    }
    // The cache is keyed by the whole credential: a wrong password is still refused.
    let r = client.send(basic(BASIC_ALICE_WRONG)).await;
    assert_refused(&r, 401, "invalid_credentials", &challenge);
    let r = client.send(basic(BASIC_BOB)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        upstream_header(&r, "x-consumer-id").as_deref(),
        Some("c-bob")
    );
    let r = client.send(basic(BASIC_UNKNOWN)).await;
    assert_refused(&r, 401, "invalid_credentials", &challenge);
    let r = client.send(basic("Basic !!not-base64")).await;
    assert_refused(&r, 401, "invalid_credentials", &challenge);
    let r = client.send(basic("Digest username=\"alice\"")).await;
    assert_refused(&r, 401, "missing_credentials", &challenge);
    gw.shutdown().await;
}

/// bcrypt (cost 8) of `carol-password`: dear enough that the time of one check stands
/// well above the noise of a request.
const CAROL_BCRYPT_8: &str = "$2b$08$abcdefghijklmnopqrstuuexhF1okgRD6OsgMQ7NGskzymTnV3n6i";

/// The median time of `n` requests with this `Authorization`, each refused with 401.
async fn median_refusal(client: &TestClient, url: &str, auth: &str, n: usize) -> f64 {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = std::time::Instant::now();
        let r = client.send(get(url, &[("authorization", auth)])).await;
        times.push(started.elapsed().as_secs_f64());
        assert_eq!(r.status, 401, "{:?}", r.body);
    }
    times.sort_by(f64::total_cmp);
    times[n / 2]
}

/// An unknown user name is refused no faster than a wrong password: the time of a
/// refusal does not tell which user names exist.
#[tokio::test(flavor = "multi_thread")]
async fn basic_an_unknown_user_takes_as_long_as_a_wrong_password() {
    let config = format!(
        "basic = {{ users = [{{ username = \"carol\", password_hash = \"{CAROL_BCRYPT_8}\" }}] }}"
    );
    let (_upstream, gw) = gateway("", None, &[route("basic", "[\"clock\"]", &config, "")]).await;
    let client = TestClient::default();
    let url = gw.url("/basic");
    let good = format!("Basic {}", STANDARD.encode("carol:carol-password"));
    assert_eq!(
        client
            .send(get(&url, &[("authorization", &good)]))
            .await
            .status,
        200
    );
    let wrong = format!("Basic {}", STANDARD.encode("carol:wrong-password"));
    let unknown = format!("Basic {}", STANDARD.encode("mallory:wrong-password"));
    // Interleaved, so that a change in the machine's load touches both alike.
    let (mut wrong_s, mut unknown_s) = (0.0, 0.0);
    for _ in 0..3 {
        wrong_s += median_refusal(&client, &url, &wrong, 5).await;
        unknown_s += median_refusal(&client, &url, &unknown, 5).await;
    }
    assert!(
        unknown_s > 0.5 * wrong_s,
        "unknown user {unknown_s:.4} s against wrong password {wrong_s:.4} s"
    );
    gw.shutdown().await;
}
