//! The examples of the JSON-RPC 2.0 specification (§7) through the `json-rpc` mode: the
//! request object the filter writes for a REST call, and the REST answer to each example
//! response. The gateway's request ids are strings, which §4 allows, so the examples'
//! ids are written as strings.

use serde_json::{Value, json};
use weir_plugin_sdk::prelude::*;
use weir_plugin_sdk::testing::{FakeRequest, FakeResponse};

use crate::ProtocolConvert;

fn filter() -> ProtocolConvert {
    let config = json!({ "mode": "json-rpc", "endpoint": "/rpc", "mappings": [
        { "http": "POST /subtract", "method": "subtract" },
        { "http": "GET /subtract/{minuend}/{subtrahend}", "method": "subtract",
          "types": { "minuend": "integer", "subtrahend": "integer" } },
        { "http": "GET /foobar", "method": "foobar" } ] });
    ProtocolConvert::new(serde_json::from_value(config).unwrap()).unwrap()
}

/// The call the filter sends upstream for `request`, and the request as the response
/// phase sees it.
fn call(request: FakeRequest) -> (Value, FakeRequest) {
    let decision = filter().on_request(&request.view());
    let changes = decision.changes().expect("converted");
    assert_eq!(changes.method(), Some("POST"));
    assert_eq!(changes.path(), Some("/rpc"));
    let body = serde_json::from_slice(changes.body().unwrap()).unwrap();
    (body, request.apply(changes).in_response_phase())
}

/// The REST answer to the upstream's `body`.
fn answer(carried: &FakeRequest, body: &str) -> Response {
    let upstream = FakeResponse::new(200)
        .header("content-type", "application/json")
        .body(body);
    let decision = filter().on_response(&carried.view(), &upstream.view());
    decision.response().expect("replaced").clone()
}

fn json_body(response: &Response) -> Value {
    serde_json::from_slice(response.body_bytes().unwrap()).unwrap()
}

#[test]
fn named_parameters_the_subtract_example() {
    // --> {"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}
    let request = FakeRequest::post("/subtract")
        .id("3")
        .body(r#"{"subtrahend": 23, "minuend": 42}"#);
    let (sent, carried) = call(request);
    assert_eq!(
        sent,
        json!({"jsonrpc": "2.0", "method": "subtract",
               "params": {"subtrahend": 23, "minuend": 42}, "id": "3"})
    );
    // <-- {"jsonrpc": "2.0", "result": 19, "id": 3}
    let response = answer(&carried, r#"{"jsonrpc": "2.0", "result": 19, "id": "3"}"#);
    assert_eq!(response.status(), 200);
    assert_eq!(response.body_bytes(), Some(&b"19"[..]));
}

#[test]
fn path_variables_become_typed_named_parameters() {
    let (sent, _) = call(FakeRequest::get("/subtract/42/23").id("4"));
    assert_eq!(sent["params"], json!({"minuend": 42, "subtrahend": 23}));
    let decision = filter().on_request(&FakeRequest::get("/subtract/x/23").view());
    assert_eq!(decision.response().unwrap().status(), 400);
}

#[test]
fn a_non_existent_method() {
    // --> {"jsonrpc": "2.0", "method": "foobar", "id": "1"}
    let (sent, carried) = call(FakeRequest::get("/foobar").id("1"));
    assert_eq!(
        sent,
        json!({"jsonrpc": "2.0", "method": "foobar", "params": {}, "id": "1"})
    );
    // <-- {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}
    let response = answer(
        &carried,
        r#"{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}"#,
    );
    assert_eq!(response.status(), 404);
    let body = json_body(&response);
    assert_eq!(body["error"], "rpc_method_not_found");
    assert_eq!(
        body["rpc_error"],
        json!({"code": -32601, "message": "Method not found"})
    );
}

#[test]
fn errors_about_unreadable_requests_carry_a_null_id() {
    let (_, carried) = call(FakeRequest::get("/foobar").id("1"));
    // <-- {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}
    let parse = answer(
        &carried,
        r#"{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}"#,
    );
    assert_eq!(parse.status(), 502);
    assert_eq!(json_body(&parse)["error"], "rpc_parse_error");
    // <-- {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}
    let invalid = answer(
        &carried,
        r#"{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}"#,
    );
    assert_eq!(invalid.status(), 400);
    assert_eq!(json_body(&invalid)["error"], "rpc_invalid_request");
}

#[test]
fn a_response_that_breaks_the_spec_is_a_502() {
    let (_, carried) = call(FakeRequest::get("/foobar").id("1"));
    for body in [
        r#"{"jsonrpc": "2.0", "result": 1, "error": {"code": 1, "message": "m"}, "id": "1"}"#,
        r#"{"jsonrpc": "2.0", "id": "1"}"#,
        r#"{"jsonrpc": "1.0", "result": 1, "id": "1"}"#,
        r#"{"jsonrpc": "2.0", "result": 1, "id": "2"}"#,
        r#"{"jsonrpc": "2.0", "result": 19, "id": 1}"#,
        "<html>",
    ] {
        let response = answer(&carried, body);
        assert_eq!(response.status(), 502, "{body}");
        assert_eq!(json_body(&response)["error"], "bad_rpc_response");
    }
    // `"result": null` is a result.
    let null = answer(&carried, r#"{"jsonrpc": "2.0", "result": null, "id": "1"}"#);
    assert_eq!(
        (null.status(), null.body_bytes()),
        (200, Some(&b"null"[..]))
    );
}

#[test]
fn unmatched_requests_are_refused_without_a_call() {
    let decision = filter().on_request(&FakeRequest::get("/nothing").view());
    let refused = decision.response().unwrap();
    assert_eq!(refused.status(), 404);
    assert_eq!(refused.header_value("x-weir-error"), Some("no_rpc_mapping"));
}
