//! The `hmac-signature` filter, end to end: requests signed by an independent RFC 9421
//! implementation (`httpsig-hyper`) pass a real gateway to a real upstream; tampered,
//! stale, replayed, unsigned and wrongly keyed ones are refused with their error codes;
//! the RFC's own HMAC test vector (Appendix B.2.5) verifies; and legacy draft-cavage
//! signatures are accepted only when switched on. One file per topic; the gateway set-up
//! and the helpers every file uses are here.

mod accepted;
mod config;
mod freshness;
mod legacy;
mod replay;
mod signer;
mod tampering;

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use weir_tests::plugins::HMAC_SIGNATURE;
use weir_tests::{Reply, TestGateway, TestUpstream};

/// The key of `client-1`, held in the secret `client1`.
const CLIENT1_KEY: &str = "correct horse battery staple, but longer";
/// The key of `client-2`, found through `secret_pattern = "hmac-{keyid}"`.
const CLIENT2_KEY: &str = "another key for the pattern";
/// The shared key of RFC 9421 Appendix B.1.5, base64.
const RFC_SHARED_KEY: &str =
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==";

/// The body of the test requests.
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

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
