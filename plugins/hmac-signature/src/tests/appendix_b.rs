//! RFC 9421 Appendix B.2: the HMAC example (B.2.5) verified through the filter with the
//! appendix's shared secret (B.1.5), and the signature bases of the other examples built
//! from the same test request. Their signatures (RSA-PSS, ECDSA, Ed25519) are not HMACs,
//! so only the bases are compared; the signature values here are placeholders.

use serde_json::json;
use weir_plugin_sdk::testing::{FakeHost, FakeRequest};

use super::{CONTENT_DIGEST, CREATED, accepted, filter, refused, test_request};
use crate::rejection::Rejection;
use crate::rfc9421;

/// RFC 9421 B.1.5 `test-shared-secret`, base64.
const SHARED_SECRET: &str =
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==";

/// The signature base the filter builds for `input` (labelled `label`) on the test request.
fn base(label: &str, input: &str) -> Result<String, Rejection> {
    let request = test_request()
        .header("signature-input", format!("{label}={input}"))
        .header("signature", format!("{label}=:AA==:"));
    let signed = rfc9421::parse(&request.view(), None)?.unwrap();
    Ok(String::from_utf8(signed.base).unwrap())
}

fn b25_filter() -> crate::HmacSignature {
    filter(json!({
        "keys": { "test-shared-secret": "rfc9421" },
        "secret_encoding": "base64",
        "required_components": ["@authority", "date", "content-type"],
        "content_digest": "off",
    }))
    .unwrap()
}

fn b25_request() -> FakeRequest {
    test_request()
        .header(
            "signature-input",
            r#"sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret""#,
        )
        .header("signature", "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:")
}

#[test]
fn b_2_5_the_hmac_sha256_example_verifies() {
    let _host = FakeHost::new()
        .at_ms(CREATED * 1000)
        .secret("rfc9421", SHARED_SECRET)
        .install();
    accepted(&b25_filter(), &b25_request(), "test-shared-secret");
}

#[test]
fn b_2_5_fails_with_another_key_or_a_changed_component() {
    let wrong_key = FakeHost::new()
        .at_ms(CREATED * 1000)
        .secret("rfc9421", "AAAA")
        .install();
    refused(&b25_filter(), &b25_request(), 401, "invalid_signature");
    drop(wrong_key);
    let _host = FakeHost::new()
        .at_ms(CREATED * 1000)
        .secret("rfc9421", SHARED_SECRET)
        .install();
    let moved = b25_request().authority(Some("example.org"));
    refused(&b25_filter(), &moved, 401, "invalid_signature");
}

#[test]
fn b_2_5_its_signature_base() {
    let input =
        r#"("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret""#;
    let expected = [
        r#""date": Tue, 20 Apr 2021 02:07:55 GMT"#,
        r#""@authority": example.com"#,
        r#""content-type": application/json"#,
        r#""@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret""#,
    ];
    assert_eq!(base("sig-b25", input).unwrap(), expected.join("\n"));
}

#[test]
fn b_2_1_the_minimal_signature_base() {
    let input = r#"();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd""#;
    assert_eq!(
        base("sig-b21", input).unwrap(),
        format!("\"@signature-params\": {input}")
    );
}

#[test]
fn b_2_3_the_full_coverage_signature_base() {
    let input = r#"("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss""#;
    let expected = [
        r#""date": Tue, 20 Apr 2021 02:07:55 GMT"#,
        r#""@method": POST"#,
        r#""@path": /foo"#,
        r#""@query": ?param=Value&Pet=dog"#,
        r#""@authority": example.com"#,
        r#""content-type": application/json"#,
        &format!("\"content-digest\": {CONTENT_DIGEST}"),
        r#""content-length": 18"#,
        &format!("\"@signature-params\": {input}"),
    ];
    assert_eq!(base("sig-b23", input).unwrap(), expected.join("\n"));
}

#[test]
fn b_2_6_the_ed25519_example_signature_base() {
    let input = r#"("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;
    let expected = [
        r#""date": Tue, 20 Apr 2021 02:07:55 GMT"#,
        r#""@method": POST"#,
        r#""@path": /foo"#,
        r#""@authority": example.com"#,
        r#""content-type": application/json"#,
        r#""content-length": 18"#,
        &format!("\"@signature-params\": {input}"),
    ];
    assert_eq!(base("sig-b26", input).unwrap(), expected.join("\n"));
}

#[test]
fn b_2_2_and_b_2_4_use_components_this_filter_does_not_derive() {
    // B.2.2 covers `"@query-param";name="Pet"`; B.2.4 signs a response (`@status`).
    let b22 = r#"("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example""#;
    assert_eq!(
        base("sig-b22", b22),
        Err(Rejection::UnsupportedComponent(
            r#""@query-param";name="Pet""#.into()
        ))
    );
    let b24 = r#"("@status" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-ecc-p256""#;
    assert_eq!(
        base("sig-b24", b24),
        Err(Rejection::UnsupportedComponent(r#""@status""#.into()))
    );
}
