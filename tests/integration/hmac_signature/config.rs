//! A bad `hmac-signature` config is refused at startup, with a clear message.

use weir_tests::plugins::HMAC_SIGNATURE;
use weir_tests::{TestGateway, TestUpstream, one_route, refusal};

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
        let gw = one_route(
            upstream.addr,
            &format!(
                "[[routes.filters]]\nplugin = \"hmac-signature.wasm\"\n[routes.filters.config]\n{config}\n"
            ),
        );
        let started = TestGateway::try_start(&gw, &[("hmac-signature.wasm", HMAC_SIGNATURE)]).await;
        let message = refusal(started, config).await;
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
}
