//! The filter across its modes: the call it keeps privately from request to response, and
//! the xml and grpc conversions of a whole exchange.

use serde_json::json;
use weir_plugin_sdk::prelude::*;
use weir_plugin_sdk::testing::{FakeRequest, FakeResponse};

use crate::ProtocolConvert;

fn filter(config: serde_json::Value) -> ProtocolConvert {
    ProtocolConvert::new(serde_json::from_value(config).unwrap()).unwrap()
}

/// The request phase of `request` and the request the response phase sees.
fn carried(filter: &ProtocolConvert, request: &FakeRequest) -> (RequestChanges, FakeRequest) {
    let decision = filter.on_request(&request.view());
    let changes = decision.changes().expect("went on").clone();
    let carried = request.apply(&changes).in_response_phase();
    (changes, carried)
}

#[test]
fn the_call_is_private_and_an_unconverted_exchange_passes_back_unchanged() {
    let filter = filter(json!({ "mode": "xml", "root": "order" }));
    let request = FakeRequest::post("/orders")
        .header("content-type", "application/json")
        .body(r#"{"id": 7}"#);
    let (changes, carried) = carried(&filter, &request);
    let xml = br#"<?xml version="1.0" encoding="UTF-8"?><order><id>7</id></order>"#;
    assert_eq!(changes.body(), Some(&xml[..]));
    assert!(carried.view().variables().is_empty());
    assert_eq!(carried.view().context::<String>().as_deref(), Some("order"));
    // Without the mark, or with the gateway's own error, the answer is left alone.
    let xml = FakeResponse::new(200)
        .header("content-type", "application/xml")
        .body("<order><id>8</id></order>");
    let unmarked = FakeRequest::post("/orders").in_response_phase();
    let decision = filter.on_response(&unmarked.view(), &xml.view());
    assert!(decision.changes().unwrap().body().is_none());
    let error = FakeResponse::new(502).header("x-weir-error", "upstream_failed");
    let decision = filter.on_response(&carried.view(), &error.view());
    assert!(decision.changes().unwrap().body().is_none());
    let decision = filter.on_response(&carried.view(), &xml.view());
    assert_eq!(
        decision.changes().unwrap().body(),
        Some(&br#"{"id":"8"}"#[..])
    );
}

#[test]
fn a_soap_fault_becomes_an_http_error_with_the_fault() {
    let filter = filter(json!({ "mode": "xml", "root": "GetPrice", "soap": "1.1" }));
    let request = FakeRequest::post("/price")
        .header("content-type", "application/json")
        .body(r#"{"item": "apple"}"#);
    let (changes, carried) = carried(&filter, &request);
    assert_eq!(changes.method(), Some("POST"));
    let fault = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>no such item</faultstring></soap:Fault></soap:Body></soap:Envelope>"#;
    let upstream = FakeResponse::new(500)
        .header("content-type", "text/xml; charset=utf-8")
        .body(fault);
    let decision = filter.on_response(&carried.view(), &upstream.view());
    let response = decision.response().unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = serde_json::from_slice(response.body_bytes().unwrap()).unwrap();
    assert_eq!(body["error"], "soap_fault");
    assert_eq!(body["message"], "no such item");
}

/// The descriptor set of the demo's `weir.demo.Greeter` service.
const GREETER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/grpc/greeter.binpb"
);

#[test]
fn a_json_call_becomes_a_unary_grpc_call_and_its_reply_json() {
    let filter = filter(json!({ "mode": "grpc", "descriptor": GREETER,
                                "service": "weir.demo.Greeter" }));
    let request = FakeRequest::post("/weir.demo.Greeter/SayHello")
        .header("content-type", "application/json")
        .body(r#"{"name": "ann"}"#);
    let (changes, carried) = carried(&filter, &request);
    // A length-prefixed message: uncompressed, 5 bytes, field 1 = "ann".
    let framed = [0, 0, 0, 0, 5, 0x0a, 3, b'a', b'n', b'n'];
    assert_eq!(changes.body(), Some(&framed[..]));
    assert_eq!(
        changes.set_header_value("content-type"),
        Some("application/grpc")
    );
    let reply = FakeResponse::new(200)
        .header("content-type", "application/grpc")
        .body([0, 0, 0, 0, 4, 0x0a, 2, b'h', b'i'])
        .trailer("grpc-status", "0");
    let decision = filter.on_response(&carried.view(), &reply.view());
    assert_eq!(
        decision.response().unwrap().body_bytes(),
        Some(&br#"{"message":"hi"}"#[..])
    );
    let not_found = FakeResponse::new(200)
        .header("content-type", "application/grpc")
        .header("grpc-status", "5")
        .header("grpc-message", "no%20such%20name");
    let decision = filter.on_response(&carried.view(), &not_found.view());
    let response = decision.response().unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.header_value("x-weir-error"), Some("not_found"));
}

#[test]
fn unknown_and_misused_grpc_methods_are_refused_before_the_upstream() {
    let filter = filter(json!({ "mode": "grpc", "descriptor": GREETER,
                                "service": "weir.demo.Greeter" }));
    let refused = |request: FakeRequest| {
        let decision = filter.on_request(&request.view());
        decision.response().map(Response::status)
    };
    assert_eq!(
        refused(FakeRequest::post("/weir.demo.Greeter/Nope")),
        Some(404)
    );
    assert_eq!(
        refused(FakeRequest::get("/weir.demo.Greeter/SayHello")),
        Some(405)
    );
    let grpc_client = FakeRequest::post("/weir.demo.Greeter/SayHello")
        .header("content-type", "application/grpc+proto");
    assert_eq!(refused(grpc_client), None);
}
