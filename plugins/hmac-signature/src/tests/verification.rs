//! Each verification step of the filter, with a request that fails only that step.

use serde_json::json;
use weir_plugin_sdk::testing::{FakeHost, FakeRequest, Installed};
use weir_plugin_sdk::{HeaderChanges, HostError};

use super::{CREATED, accepted, filter, mac, refused, signed, test_request};
use crate::HmacSignature;

const KEY: &[u8] = b"a key shared with client-1";

/// A host at `CREATED` with the key of `client-1`.
fn host() -> Installed {
    FakeHost::new()
        .at_ms(CREATED * 1000)
        .secret("client1_key", KEY)
        .install()
}

fn client_1(extra: serde_json::Value) -> HmacSignature {
    let mut config = json!({ "keys": { "client-1": "client1_key" }, "clock_skew": "60s" });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    filter(config).unwrap()
}

/// The test request signed by `client-1` over the default components and its digest,
/// created `age` seconds before the host's clock (negative: in the future).
fn signed_at(age: i64) -> FakeRequest {
    let created = CREATED as i64 - age;
    let input = format!(
        r#"("@method" "@authority" "@path" "content-digest");created={created};keyid="client-1""#
    );
    signed(test_request(), &input, KEY)
}

#[test]
fn a_signed_request_passes_once_and_its_replay_is_refused() {
    let _host = host();
    let filter = client_1(json!({ "strip_headers": true, "set_consumer": true }));
    let request = signed_at(0);
    let changes = accepted(&filter, &request, "client-1");
    assert_eq!(changes.variable("consumer"), Some("client-1"));
    assert_eq!(changes.removed_headers(), ["signature-input", "signature"]);
    refused(&filter, &request, 401, "replayed");
}

#[test]
fn the_configured_skew_bounds_created_either_way() {
    let _host = host();
    let filter = client_1(json!({}));
    accepted(&filter, &signed_at(30), "client-1");
    accepted(&filter, &signed_at(-30), "client-1");
    refused(&filter, &signed_at(120), 401, "signature_expired");
    refused(&filter, &signed_at(-120), 401, "signature_not_yet_valid");
    // The older key name still reads seconds; both names at once are refused.
    let keys = json!({ "client-1": "client1_key" });
    let legacy = super::filter(json!({ "keys": keys, "clock_skew_secs": 200 })).unwrap();
    accepted(&legacy, &signed_at(150), "client-1");
    let both = json!({ "keys": keys, "clock_skew_secs": 200, "clock_skew": "200s" });
    assert!(super::filter(both).is_err());
}

#[test]
fn a_body_that_does_not_match_its_digest_is_refused() {
    let _host = host();
    let filter = client_1(json!({}));
    let tampered = signed_at(0).body(r#"{"hello": "World"}"#);
    refused(&filter, &tampered, 401, "digest_mismatch");
}

#[test]
fn a_body_must_be_covered_by_its_digest_unless_digests_are_off() {
    let _host = host();
    let input = r#"("@method" "@authority" "@path");created=1618884473;keyid="client-1""#;
    let request = signed(test_request(), input, KEY);
    let response = refused(&client_1(json!({})), &request, 401, "missing_component");
    assert!(response.header_value("accept-signature").is_some());
    accepted(
        &client_1(json!({ "content_digest": "off" })),
        &request,
        "client-1",
    );
}

#[test]
fn required_components_must_be_covered() {
    let _host = host();
    let input = r#"("@authority" "content-digest");created=1618884473;keyid="client-1""#;
    let request = signed(test_request(), input, KEY);
    refused(&client_1(json!({})), &request, 401, "missing_component");
}

#[test]
fn an_unknown_key_or_algorithm_is_refused() {
    let _host = host();
    let filter = client_1(json!({}));
    let input =
        r#"("@method" "@authority" "@path" "content-digest");created=1618884473;keyid="client-2""#;
    refused(
        &filter,
        &signed(test_request(), input, KEY),
        401,
        "unknown_key",
    );
    let input = r#"("@method" "@authority" "@path" "content-digest");created=1618884473;keyid="client-1";alg="hmac-md5""#;
    refused(
        &filter,
        &signed(test_request(), input, KEY),
        401,
        "unsupported_algorithm",
    );
    refused(&filter, &test_request(), 401, "missing_signature");
}

#[test]
fn an_unreachable_replay_store_fails_closed_unless_skipped() {
    let host = host();
    host.fail("kv", HostError::Unavailable("redis down".into()));
    refused(
        &client_1(json!({})),
        &signed_at(0),
        503,
        "replay_check_unavailable",
    );
    let skip = client_1(json!({ "replay_unavailable": "skip" }));
    accepted(&skip, &signed_at(0), "client-1");
}

#[test]
fn legacy_cavage_signatures_pass_only_when_enabled() {
    let _host = host();
    let legacy = client_1(json!({ "legacy": { "enabled": true } }));
    // draft-cavage-http-signatures-12 §2.3: the signing string of the covered headers.
    let request = FakeRequest::get("/foo?param=value&pet=dog")
        .header("host", "example.org")
        .header("date", "Tue, 20 Apr 2021 02:07:55 GMT");
    let string = "(request-target): get /foo?param=value&pet=dog\nhost: example.org\ndate: Tue, 20 Apr 2021 02:07:55 GMT";
    let authorization = format!(
        r#"Signature keyId="client-1",algorithm="hmac-sha256",headers="(request-target) host date",signature="{}""#,
        mac(KEY, string.as_bytes())
    );
    let request = request.header("authorization", authorization);
    accepted(&legacy, &request, "client-1");
    refused(&legacy, &request, 401, "replayed");
    refused(&client_1(json!({})), &request, 401, "missing_signature");
}
