//! HTTP Basic (RFC 7617).

use serde_json::json;
use weir_plugin_sdk::testing::FakeHost;
use weir_plugin_sdk::{Filter, HeaderChanges};

use super::{accepted, auth, authorized, challenges, refused};
use crate::Auth;
use crate::basic::tests::hashes_run_by;

/// bcrypt at the smallest cost, to keep the tests fast.
fn bcrypt(password: &str) -> String {
    bcrypt::hash_with_salt(password, 4, [7; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoB)
}

/// RFC 7617 §2's user, and §2.1's (whose password is not ASCII).
fn filter(extra: serde_json::Value) -> Auth {
    let mut config = json!({ "basic": { "users": [
        { "username": "Aladdin", "password_hash": bcrypt("open sesame") },
        { "username": "test", "password_hash": bcrypt("123£"), "consumer": "tester" } ] } });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    auth(config).unwrap()
}

#[test]
fn the_rfc_7617_section_2_example_passes() {
    let _host = FakeHost::new().install();
    let request = authorized("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    accepted(&filter(json!({})), &request, "Aladdin", "basic");
    // §2: the scheme is case-insensitive.
    let request = authorized("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    accepted(&filter(json!({})), &request, "Aladdin", "basic");
}

#[test]
fn the_rfc_7617_section_2_1_utf8_example_passes() {
    let _host = FakeHost::new().install();
    // "test:123£" in UTF-8, as §2.1 encodes it with charset="UTF-8".
    let request = authorized("Basic dGVzdDoxMjPCow==");
    accepted(&filter(json!({})), &request, "tester", "basic");
}

#[test]
fn a_wrong_password_is_a_401_with_the_basic_challenge() {
    let _host = FakeHost::new().install();
    // "Aladdin:open sesamE"
    let request = authorized("Basic QWxhZGRpbjpvcGVuIHNlc2FtRQ==");
    let response = refused(&filter(json!({})), &request, 401, "invalid_credentials");
    assert_eq!(
        challenges(&response),
        ["Basic realm=\"weir\", charset=\"UTF-8\""]
    );
    for junk in ["Basic", "Basic !!!", "Basic QWxhZGRpbg=="] {
        refused(
            &filter(json!({})),
            &authorized(junk),
            401,
            "invalid_credentials",
        );
    }
}

#[test]
fn a_verified_credential_is_cached_for_its_ttl() {
    let host = FakeHost::new().install();
    let filter = filter(json!({}));
    let request = authorized("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    let check = || accepted(&filter, &request, "Aladdin", "basic");
    assert_eq!(
        hashes_run_by(|| {
            check();
        }),
        1
    );
    host.advance_ms(29_999);
    assert_eq!(
        hashes_run_by(|| {
            check();
        }),
        0
    );
    host.advance_ms(1);
    assert_eq!(
        hashes_run_by(|| {
            check();
        }),
        1
    );
}

#[test]
fn the_credential_is_hidden_and_the_consumer_headers_replaced_when_asked() {
    let _host = FakeHost::new().install();
    let filter = filter(json!({ "hide_credentials": true,
        "consumer_headers": { "id": "x-user", "username": "x-user-name" } }));
    let request = authorized("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").header("x-user", "forged");
    let changes = filter.on_request(&request.view());
    let changes = changes.changes().unwrap();
    assert_eq!(changes.removed_headers(), ["authorization"]);
    let after = request.apply(changes);
    assert_eq!(after.view().header("x-user").as_deref(), Some("Aladdin"));
    assert_eq!(
        after.view().header("x-user-name").as_deref(),
        Some("Aladdin")
    );
    assert_eq!(after.view().header("authorization"), None);
}

#[test]
fn allow_and_deny_lists_answer_403() {
    let _host = FakeHost::new().install();
    let request = authorized("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    let denied = filter(json!({ "deny": ["Aladdin"] }));
    let response = refused(&denied, &request, 403, "consumer_forbidden");
    assert!(challenges(&response).is_empty());
    refused(
        &filter(json!({ "allow": ["tester"] })),
        &request,
        403,
        "consumer_forbidden",
    );
}

#[test]
fn user_names_with_a_colon_are_refused_at_config_time() {
    let config = json!({ "basic": { "users": [
        { "username": "a:b", "password_hash": bcrypt("x") } ] } });
    let error = auth(config).err().unwrap();
    assert!(error.contains("RFC 7617"), "{error}");
}
