//! OAuth2 token introspection (RFC 7662) against a real endpoint: the cache, and an
//! endpoint that is down or answers badly.

use serde_json::json;
use weir_tests::{TestClient, get};

use super::idp::{Idp, Introspection};
use super::{assert_bearer_refused, assert_refused, gateway, now_s, route, upstream_header};

#[tokio::test(flavor = "multi_thread")]
async fn oauth2_introspection_with_a_cache_that_honours_exp() {
    let idp = Idp::start().await;
    idp.state.answers.lock().expect("lock").extend([
        (
            "tok-active".to_string(),
            json!({ "active": true, "sub": "carol", "username": "Carol", "scope": "read",
                    "exp": now_s() + 3600 }),
        ),
        (
            "tok-expiring".to_string(),
            json!({ "active": true, "client_id": "svc", "exp": now_s() - 1 }),
        ),
    ]);
    let config = "hide_credentials = true\n\
         consumer_headers = { username = \"x-consumer-username\", scope = \"x-authenticated-scope\" }\n\
         oauth2 = { upstream = \"idp\", path = \"/introspect\", client_secret = \"idp-client\" }";
    let (_upstream, gw) = gateway(
        "idp-client = { value = \"gateway:s3cr3t/+\" }",
        Some(idp.addr),
        &[route(
            "oauth",
            "[\"clock\", \"http:idp\", \"secrets:idp-client\"]",
            config,
            "",
        )],
    )
    .await;
    let client = TestClient::default();
    let call = |token: &str| {
        client.send(get(
            &gw.url("/oauth"),
            &[("authorization", &format!("Bearer {token}"))],
        ))
    };
    let hits = || idp.introspect_hits();

    let r = call("tok-active").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        upstream_header(&r, "x-consumer-id").as_deref(),
        Some("carol")
    );
    assert_eq!(
        upstream_header(&r, "x-consumer-username").as_deref(),
        Some("Carol")
    );
    assert_eq!(
        upstream_header(&r, "x-authenticated-scope").as_deref(),
        Some("read")
    );
    assert_eq!(upstream_header(&r, "authorization"), None);
    assert_eq!(hits(), 1);
    // RFC 6749 §2.3.1: client id and secret form-encoded, then Basic.
    let (authorization, content_type) = idp.state.last_introspect.lock().expect("lock").clone();
    assert_eq!(authorization, "Basic Z2F0ZXdheTpzM2NyM3QlMkYlMkI=");
    assert_eq!(content_type, "application/x-www-form-urlencoded");

    let r = call("tok-active").await;
    assert_eq!(r.status, 200);
    assert_eq!(hits(), 1, "the answer is cached while exp is in the future");

    let r = call("tok-inactive").await;
    assert_bearer_refused(&r, "invalid_token", "the token is not active");
    assert_eq!(hits(), 2);
    let r = call("tok-expiring").await;
    assert_bearer_refused(&r, "token_expired", "the token has expired");
    let r = call("tok-expiring").await;
    assert_eq!(r.status, 401);
    assert_eq!(hits(), 4, "an expired answer is not cached");
    gw.shutdown().await;
}

/// An introspection endpoint that cannot say the token is active never lets it through:
/// nobody listening, a 500 (even one whose body would admit the token), or a body that is
/// not JSON is a 503 `auth_unavailable`, never a 200 and never the client's fault.
#[tokio::test(flavor = "multi_thread")]
async fn oauth2_introspection_down_failing_or_not_json_is_503() {
    let idp = Idp::start().await;
    // One active token per probe, so that no cached answer stands in for the endpoint.
    let tokens = ["tok-down", "tok-500", "tok-html"];
    idp.state
        .answers
        .lock()
        .expect("lock")
        .extend(tokens.map(|token| {
            (
                token.to_string(),
                json!({ "active": true, "sub": token, "exp": now_s() + 3600 }),
            )
        }));
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let config = |upstream: &str| {
        format!("oauth2 = {{ upstream = \"{upstream}\", path = \"/introspect\" }}")
    };
    let down = format!(
        "[upstreams.down]\ntargets = [\"{closed}\"]\n{}",
        route("down", "[\"clock\", \"http:down\"]", &config("down"), "")
    );
    let (upstream, gw) = gateway(
        "",
        Some(idp.addr),
        &[
            route("oauth", "[\"clock\", \"http:idp\"]", &config("idp"), ""),
            down,
        ],
    )
    .await;
    let client = TestClient::default();
    let call = |path: &str, token: &str| {
        client.send(get(
            &gw.url(path),
            &[("authorization", &format!("Bearer {token}"))],
        ))
    };

    let r = call("/down", tokens[0]).await;
    assert_refused(&r, 503, "auth_unavailable", &[]);
    for (mode, token) in [
        (Introspection::ServerError, tokens[1]),
        (Introspection::NotJson, tokens[2]),
    ] {
        *idp.state.introspection.lock().expect("lock") = mode;
        let before = idp.introspect_hits();
        let r = call("/oauth", token).await;
        assert_refused(&r, 503, "auth_unavailable", &[]);
        assert_eq!(
            idp.introspect_hits(),
            before + 1,
            "{mode:?}: the endpoint was asked"
        );
    }
    assert_eq!(
        upstream.hits(),
        0,
        "no refused request reached the upstream"
    );
    // The same tokens pass once the endpoint answers well: the refusals were its doing.
    *idp.state.introspection.lock().expect("lock") = Introspection::Answers;
    for token in &tokens[1..] {
        assert_eq!(call("/oauth", token).await.status, 200, "{token}");
    }
    gw.shutdown().await;
}
