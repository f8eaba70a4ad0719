//! The filter's decisions, run natively on the SDK's fakes: RFC 9421 Appendix B's own
//! examples, and each verification step with a request that fails only that step.

mod appendix_b;
mod verification;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use weir_plugin_sdk::prelude::*;
use weir_plugin_sdk::testing::{FakeRequest, refused};

use crate::HmacSignature;

/// The body of RFC 9421's test request (Appendix B.2).
const BODY: &str = r#"{"hello": "world"}"#;

/// Its `Content-Digest`: the SHA-512 of [`BODY`] (RFC 9421 Appendix B.2).
const CONTENT_DIGEST: &str = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:";

/// The `created` of every Appendix B signature.
const CREATED: u64 = 1_618_884_473;

/// RFC 9421 Appendix B.2's `test-request`.
fn test_request() -> FakeRequest {
    FakeRequest::post("/foo?param=Value&Pet=dog")
        .scheme("https")
        .authority(Some("example.com"))
        .header("host", "example.com")
        .header("date", "Tue, 20 Apr 2021 02:07:55 GMT")
        .header("content-type", "application/json")
        .header("content-digest", CONTENT_DIGEST)
        .header("content-length", "18")
        .body(BODY)
}

/// The filter for this config (JSON, as the gateway hands it over).
fn filter(config: serde_json::Value) -> Result<HmacSignature, String> {
    HmacSignature::new(serde_json::from_value(config).map_err(|e| e.to_string())?)
}

/// The HMAC-SHA256 of `base` under `key`, base64.
fn mac(key: &[u8], base: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(base);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `request` signed with `key` under `Signature-Input: sig1=<input>`: the signature base
/// is the one the filter builds.
fn signed(request: FakeRequest, input: &str, key: &[u8]) -> FakeRequest {
    let input = format!("sig1={input}");
    let probe = request
        .clone()
        .header("signature-input", input.as_str())
        .header("signature", "sig1=:AA==:");
    let base = crate::rfc9421::parse(&probe.view(), None)
        .unwrap()
        .unwrap()
        .base;
    request
        .header("signature-input", input)
        .header("signature", format!("sig1=:{}:", mac(key, &base)))
}

/// The changes of an accepted `request`, checked to carry the key id.
fn accepted(filter: &HmacSignature, request: &FakeRequest, key_id: &str) -> RequestChanges {
    let decision = filter.on_request(&request.view());
    if let Some(refusal) = decision.response() {
        panic!(
            "refused: {:?}",
            String::from_utf8_lossy(refusal.body_bytes().unwrap())
        );
    }
    let changes = decision.changes().unwrap().clone();
    assert_eq!(changes.variable("signature.keyid"), Some(key_id));
    changes
}
