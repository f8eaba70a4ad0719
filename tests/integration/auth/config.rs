//! A bad `auth` config is refused at startup, with the reason.

use weir_tests::plugins::AUTH;
use weir_tests::{TestGateway, TestUpstream, refusal};

use super::route;

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_config_is_refused_with_the_reason() {
    let upstream = TestUpstream::start("main").await;
    let cases = [
        ("", "no method enabled"),
        (
            "api_key = { keys = [{ consumer = \"a\", sha256 = \"xyz\" }] }",
            "not 64 hex digits",
        ),
        ("api_key = { secret = \"nope\" }", "is not granted"),
        (
            "jwt = { keys = [{ alg = \"HS256\", pem = \"-----BEGIN PUBLIC KEY-----\" }] }",
            "comes from `secret`",
        ),
        (
            "jwt = { keys = [{ alg = \"none\", secret = \"x\" }] }",
            "unknown alg",
        ),
        (
            "basic = { users = [{ username = \"a\", password_hash = \"plain\" }] }",
            "neither an Argon2 PHC string nor a bcrypt hash",
        ),
        ("realm = 'a\"b'\napi_key = { secret = \"x\" }", "realm"),
    ];
    for (config, reason) in cases {
        let text = format!(
            "[upstreams.main]\ntargets = [\"{}\"]\n{}",
            upstream.addr,
            route("bad", "[]", config, "")
        );
        let started = TestGateway::try_start(&text, &[("auth.wasm", AUTH)]).await;
        let error = refusal(started, &format!("{config:?}")).await;
        assert!(error.contains(reason), "{config:?}: {error}");
    }
}
