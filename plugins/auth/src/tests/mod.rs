//! The filter's decisions, run natively on the SDK's fakes: each method with its spec's
//! own examples where the spec has them.

mod api_key;
mod basic;
mod jwt;
mod oauth2;

use weir_plugin_sdk::prelude::*;
use weir_plugin_sdk::testing::{FakeRequest, refused};

use crate::Auth;

/// The filter for this config (as the gateway would hand it over, JSON).
fn auth(config: serde_json::Value) -> Result<Auth, String> {
    Auth::new(serde_json::from_value(config).map_err(|e| e.to_string())?)
}

/// A request with `Authorization: <value>`.
fn authorized(value: &str) -> FakeRequest {
    FakeRequest::get("/orders").header("authorization", value)
}

/// The changes of an accepted `request`, checked to name `consumer` as authenticated by
/// `method`.
fn accepted(filter: &Auth, request: &FakeRequest, consumer: &str, method: &str) -> RequestChanges {
    let decision = filter.on_request(&request.view());
    let changes = decision.changes().expect("accepted").clone();
    assert_eq!(changes.variable("consumer"), Some(consumer));
    assert_eq!(changes.variable("auth.method"), Some(method));
    assert_eq!(changes.set_header_value("x-consumer-id"), Some(consumer));
    changes
}

/// The `WWW-Authenticate` values of a response.
fn challenges(response: &Response) -> Vec<String> {
    let values = response
        .headers()
        .iter()
        .filter(|h| h.name == "www-authenticate");
    values
        .map(|h| String::from_utf8_lossy(&h.value).into_owned())
        .collect()
}
