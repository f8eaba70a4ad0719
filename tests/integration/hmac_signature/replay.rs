//! Replay protection: a signature is used once, on one gateway or on several sharing
//! Redis, and the check fails closed while its store is unavailable.

use http::Request;
use weir_tests::redis::RedisServer;
use weir_tests::{TestClient, TestGateway, TestUpstream};

use super::signer::Signer;
use super::{Body, GRANTS, KEYS, assert_refused, copy, gateway, setup};

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
    let r = Signer::default()
        .send(&client, "GET", gw.url("/nokv"), "")
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
    let back = gw.backend_healthy_again(&client).await;
    assert!(back, "the gateway sees Redis again");
    assert_eq!(client.send(signed().await).await.status, 200);

    // Down.
    redis.stop();
    let r = client.send(signed().await).await;
    assert_refused(&r, 503, "replay_check_unavailable");
    gw.shutdown().await;
}
