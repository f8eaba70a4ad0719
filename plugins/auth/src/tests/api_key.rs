//! API keys in a header or a query parameter, and what the filter answers without any
//! credential.

use serde_json::json;
use weir_plugin_sdk::HeaderChanges;
use weir_plugin_sdk::testing::{FakeHost, FakeRequest};

use super::{accepted, auth, challenges, refused};
use crate::Auth;
use crate::cache::sha256;

fn filter(extra: serde_json::Value) -> Auth {
    let digest = hex::encode(sha256(b"k-ann"));
    let mut config = json!({ "api_key": {
        "query": "apikey", "secret": "keys",
        "keys": [{ "consumer": "ann", "sha256": digest }] } });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    auth(config).unwrap()
}

fn host() -> weir_plugin_sdk::testing::Installed {
    FakeHost::new()
        .secret("keys", "# consumers\nbob=k-bob\n")
        .install()
}

#[test]
fn keys_from_the_config_and_the_secret_name_their_consumers() {
    let _host = host();
    let filter = filter(json!({}));
    let header = |key: &str| FakeRequest::get("/").header("x-api-key", key);
    accepted(&filter, &header("k-ann"), "ann", "api_key");
    accepted(&filter, &header(" k-bob "), "bob", "api_key");
    accepted(
        &filter,
        &FakeRequest::get("/?apikey=k%2Dbob"),
        "bob",
        "api_key",
    );
    let response = refused(&filter, &header("k-eve"), 401, "invalid_api_key");
    assert_eq!(challenges(&response), ["Key realm=\"weir\""]);
}

#[test]
fn a_key_in_the_query_is_cut_from_the_path_when_hidden() {
    let _host = host();
    let filter = filter(json!({ "hide_credentials": true }));
    let request = FakeRequest::get("/a?x=1&apikey=k-ann&y=%20");
    let changes = accepted(&filter, &request, "ann", "api_key");
    assert_eq!(changes.path(), Some("/a?x=1&y=%20"));
    let request = FakeRequest::get("/a").header("x-api-key", "k-ann");
    let changes = accepted(&filter, &request, "ann", "api_key");
    assert_eq!(changes.removed_headers(), ["x-api-key"]);
}

#[test]
fn no_credential_is_a_401_with_every_enabled_challenge() {
    let _host = host();
    let bcrypt = bcrypt::hash_with_salt("x", 4, [7; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoB);
    let filter = filter(json!({ "realm": "shop",
        "basic": { "users": [{ "username": "u", "password_hash": bcrypt }] } }));
    let response = refused(&filter, &FakeRequest::get("/"), 401, "missing_credentials");
    assert_eq!(
        challenges(&response),
        [
            "Key realm=\"shop\"",
            "Basic realm=\"shop\", charset=\"UTF-8\""
        ]
    );
}

#[test]
fn a_secret_that_is_missing_or_not_granted_refuses_the_config() {
    let host = FakeHost::new().install();
    let config = json!({ "api_key": { "secret": "nope" } });
    assert!(
        auth(config.clone())
            .err()
            .unwrap()
            .contains("is not defined")
    );
    host.fail("secrets", weir_plugin_sdk::HostError::AccessDenied);
    assert!(auth(config).err().unwrap().contains("is not granted"));
}
