use serde_json::{Value, json};
use weir_plugin_sdk::testing::{FakeRequest, refused};

use super::*;

fn filter(config: Value) -> Result<RequestValidation, String> {
    RequestValidation::new(serde_json::from_value(config).map_err(|e| e.to_string())?)
}

fn passes(filter: &RequestValidation, request: &FakeRequest) -> bool {
    filter.on_request(&request.view()).changes().is_some()
}

/// The refusal's body, checked to have `status` and `code`.
fn refusal(filter: &RequestValidation, request: &FakeRequest, status: u16, code: &str) -> Value {
    let response = refused(filter, request, status, code);
    let body: Value = serde_json::from_slice(response.body_bytes().unwrap()).unwrap();
    assert_eq!(body["error"], code);
    assert_eq!(body["request_id"], "req-1");
    body
}

/// The `(field, rule)` pairs of a refusal.
fn broken(body: &Value) -> Vec<(String, String)> {
    let errors = body["errors"].as_array().unwrap();
    let pair = |e: &Value| {
        let text = |k: &str| e[k].as_str().unwrap().to_string();
        (text("field"), text("rule"))
    };
    errors.iter().map(pair).collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let owned = |(f, r): &(&str, &str)| (f.to_string(), r.to_string());
    expected.iter().map(owned).collect()
}

fn order_schema() -> Value {
    json!({
        "body_schema": {
            "type": "object",
            "required": ["customer", "items"],
            "additionalProperties": false,
            "properties": {
                "customer": { "type": "string", "minLength": 1 },
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "items": { "$ref": "#/$defs/item" }
                }
            },
            "$defs": {
                "item": {
                    "type": "object",
                    "required": ["sku", "qty"],
                    "properties": {
                        "sku": { "type": "string", "pattern": "^[A-Z]{3}-[0-9]+$" },
                        "qty": { "type": "integer", "minimum": 1, "maximum": 99 }
                    }
                }
            }
        }
    })
}

fn post(body: &str) -> FakeRequest {
    FakeRequest::post("/orders")
        .header("content-type", "application/json")
        .header("content-length", body.len().to_string())
        .body(body)
}

#[test]
fn a_valid_body_passes_and_each_broken_rule_is_named_by_pointer() {
    let f = filter(order_schema()).unwrap();
    assert!(passes(
        &f,
        &post(r#"{"customer":"ann","items":[{"sku":"ABC-1","qty":2}]}"#)
    ));
    let body = refusal(
        &f,
        &post(r#"{"customer":"","items":[{"sku":"abc","qty":0},{"qty":100}],"x":1}"#),
        400,
        "invalid_request",
    );
    // Ordered by field, whatever order the schema's properties are walked in.
    let want = pairs(&[
        ("/customer", "minLength"),
        ("/items/0/qty", "minimum"),
        ("/items/0/sku", "pattern"),
        ("/items/1/qty", "maximum"),
        ("/items/1/sku", "required"),
        ("/x", "additionalProperties"),
    ]);
    assert_eq!(broken(&body), want);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("(and 5 more)"), "{message}");
    assert!(body.get("errors_truncated").is_none());
}

#[test]
fn the_errors_are_capped_at_max_errors() {
    let mut config = json!({ "body_schema": { "items": { "type": "integer" } } });
    config["max_errors"] = json!(3);
    let f = filter(config).unwrap();
    let body = refusal(
        &f,
        &post(r#"["a","b","c","d","e"]"#),
        400,
        "invalid_request",
    );
    assert_eq!(broken(&body).len(), 3);
    assert_eq!(body["errors_truncated"], true);
    assert_eq!(broken(&body)[0], ("/0".to_string(), "type".to_string()));
}

#[test]
fn a_body_that_is_not_json_names_the_position_and_a_missing_body_is_required() {
    let f = filter(order_schema()).unwrap();
    let body = refusal(&f, &post(r#"{"customer": ,}"#), 400, "invalid_request");
    assert_eq!(broken(&body), pairs(&[("", "json")]));
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("line 1 column 14"), "{message}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("body: not JSON")
    );
    let body = refusal(&f, &FakeRequest::post("/orders"), 400, "invalid_request");
    assert_eq!(broken(&body), pairs(&[("", "required")]));
    // Methods outside body_methods are not asked for a body.
    assert!(passes(&f, &FakeRequest::get("/orders")));
}

#[test]
fn a_body_over_the_cap_is_413_by_its_declared_or_buffered_length() {
    let mut config = order_schema();
    config["max_body_bytes"] = json!(16);
    let f = filter(config).unwrap();
    let long = r#"{"customer":"a long name","items":[]}"#;
    let body = refusal(&f, &post(long), 413, "body_too_large");
    assert_eq!(broken(&body), pairs(&[("", "max_body_bytes")]));
    // A lying Content-Length does not hide the buffered length.
    let lying = FakeRequest::post("/orders")
        .header("content-type", "application/json")
        .header("content-length", "2")
        .body(long);
    refusal(&f, &lying, 413, "body_too_large");
}

#[test]
fn without_a_schema_the_size_is_judged_by_content_length() {
    let f = filter(json!({ "max_body_bytes": 10 })).unwrap();
    assert_eq!(f.phases(), vec![Phase::RequestHeaders], "no body buffered");
    let small = FakeRequest::post("/").header("content-length", "10");
    assert!(passes(&f, &small));
    let large = FakeRequest::post("/").header("content-length", "11");
    refusal(&f, &large, 413, "body_too_large");
    let unknown = FakeRequest::post("/").header("transfer-encoding", "chunked");
    let body = refusal(&f, &unknown, 411, "length_required");
    assert_eq!(
        broken(&body),
        pairs(&[("header.content-length", "required")])
    );
    assert!(passes(&f, &FakeRequest::get("/")));
    let f = filter(order_schema()).unwrap();
    assert_eq!(f.phases(), vec![Phase::RequestHeaders, Phase::RequestBody]);
}

#[test]
fn content_types_are_matched_by_essence_and_wildcard() {
    let f = filter(json!({ "content_types": ["application/json", "text/*"] })).unwrap();
    let with = |t: &str| {
        FakeRequest::post("/")
            .header("content-length", "2")
            .header("content-type", t)
    };
    assert!(passes(&f, &with("application/json; charset=utf-8")));
    assert!(passes(&f, &with("Application/JSON")));
    assert!(passes(&f, &with("text/csv")));
    let body = refusal(&f, &with("application/xml"), 415, "unsupported_media_type");
    assert_eq!(broken(&body), pairs(&[("header.content-type", "enum")]));
    let untyped = FakeRequest::post("/").header("content-length", "2");
    let body = refusal(&f, &untyped, 415, "unsupported_media_type");
    assert_eq!(broken(&body), pairs(&[("header.content-type", "required")]));
    // A request without a body needs no type.
    assert!(passes(&f, &FakeRequest::get("/")));
}

#[test]
fn query_parameters_are_typed_bounded_and_required() {
    let f = filter(json!({ "query": {
        "limit": { "type": "integer", "minimum": 1, "maximum": 100, "required": true },
        "ratio": { "type": "number", "maximum": 1.5 },
        "full": { "type": "boolean" },
        "sort": { "type": "enum", "values": ["asc", "desc"] },
        "q": { "min_length": 2, "max_length": 5, "pattern": "^[a-z ]+$" },
    }}))
    .unwrap();
    let judged = |query: &str| {
        let request = FakeRequest::get(&format!("/search?{query}"));
        match f.on_request(&request.view()).response() {
            None => Vec::new(),
            Some(_) => broken(&refusal(&f, &request, 400, "invalid_request")),
        }
    };
    assert_eq!(
        judged("limit=10&ratio=1.5&full=true&sort=asc&q=a+b"),
        pairs(&[])
    );
    assert_eq!(judged("ratio=1"), pairs(&[("query.limit", "required")]));
    assert_eq!(judged("limit=ten"), pairs(&[("query.limit", "type")]));
    assert_eq!(judged("limit=0"), pairs(&[("query.limit", "minimum")]));
    assert_eq!(judged("limit=101"), pairs(&[("query.limit", "maximum")]));
    assert_eq!(
        judged("limit=1&ratio=2"),
        pairs(&[("query.ratio", "maximum")])
    );
    assert_eq!(
        judged("limit=1&ratio=NaN"),
        pairs(&[("query.ratio", "type")])
    );
    assert_eq!(judged("limit=1&full=yes"), pairs(&[("query.full", "type")]));
    assert_eq!(judged("limit=1&sort=up"), pairs(&[("query.sort", "enum")]));
    assert_eq!(judged("limit=1&q=a"), pairs(&[("query.q", "minLength")]));
    assert_eq!(
        judged("limit=1&q=abcdef"),
        pairs(&[("query.q", "maxLength")])
    );
    assert_eq!(judged("limit=1&q=A%21"), pairs(&[("query.q", "pattern")]));
    // Every value of a repeated parameter is checked.
    assert_eq!(judged("limit=1&limit=x"), pairs(&[("query.limit", "type")]));
}

#[test]
fn path_parameters_follow_the_template() {
    let f = filter(json!({
        "path": "/orders/{id}/lines/{line}",
        "path_params": {
            "id": { "type": "integer", "minimum": 1 },
            "line": { "pattern": "^[a-z]+$" },
        }
    }))
    .unwrap();
    assert!(passes(&f, &FakeRequest::get("/orders/7/lines/abc?x=1")));
    let judged = |path: &str| {
        broken(&refusal(
            &f,
            &FakeRequest::get(path),
            400,
            "invalid_request",
        ))
    };
    assert_eq!(judged("/orders/x/lines/abc"), pairs(&[("path.id", "type")]));
    assert_eq!(
        judged("/orders/0/lines/abc"),
        pairs(&[("path.id", "minimum")])
    );
    assert_eq!(
        judged("/orders/1/lines/A%20B"),
        pairs(&[("path.line", "pattern")])
    );
    assert_eq!(
        judged("/orders/1/lines/%FF"),
        pairs(&[("path.line", "type")])
    );
    for other in [
        "/orders/1",
        "/orders/1/lines/a/b",
        "/carts/1/lines/a",
        "/orders//lines/a",
    ] {
        assert_eq!(judged(other), pairs(&[("path", "template")]), "{other}");
    }
}

#[test]
fn header_rules_check_presence_pattern_and_length() {
    let f = filter(json!({ "headers": {
        "X-Api-Version": { "required": true, "pattern": "^[0-9]+$", "max_length": 3 },
    }}))
    .unwrap();
    let with = |v: &str| FakeRequest::get("/").header("x-api-version", v);
    assert!(passes(&f, &with("2")));
    let judged = |r: &FakeRequest| broken(&refusal(&f, r, 400, "invalid_request"));
    let field = "header.x-api-version";
    assert_eq!(
        judged(&FakeRequest::get("/")),
        pairs(&[(field, "required")])
    );
    assert_eq!(judged(&with("v2")), pairs(&[(field, "pattern")]));
    assert_eq!(judged(&with("1234")), pairs(&[(field, "maxLength")]));
    let binary = FakeRequest::get("/").header("x-api-version", b"\xff".to_vec());
    assert_eq!(judged(&binary), pairs(&[(field, "type")]));
}

#[test]
fn parameters_and_body_errors_come_in_one_refusal() {
    let mut config = order_schema();
    config["query"] = json!({ "dry_run": { "type": "boolean" } });
    let f = filter(config).unwrap();
    let request = FakeRequest::post("/orders?dry_run=maybe").body(r#"{"customer":"ann"}"#);
    let body = refusal(&f, &request, 400, "invalid_request");
    assert_eq!(
        broken(&body),
        pairs(&[("query.dry_run", "type"), ("/items", "required")])
    );
}

#[test]
fn a_long_message_is_cut() {
    let violation = Violation::new("f", "pattern", "é".repeat(300));
    assert!(violation.message.len() <= 200 + '…'.len_utf8());
    assert!(violation.message.ends_with('…'));
}

#[test]
fn bad_configs_are_refused_naming_the_key() {
    let refused_with = |config: Value, key: &str| {
        let error = filter(config).err().expect("refused");
        assert!(error.contains(key), "{error} should name {key}");
    };
    refused_with(
        json!({ "body_schema": { "type": "nonsense" } }),
        "body_schema",
    );
    refused_with(json!({ "body_schema": { "minimum": "1" } }), "body_schema");
    refused_with(json!({ "body_schema": "{not json" }), "body_schema");
    refused_with(json!({ "body_schema": 5 }), "body_schema");
    refused_with(
        json!({ "body_schema": { "$ref": "https://example.com/other.json" } }),
        "body_schema",
    );
    refused_with(json!({ "query": { "a": { "pattern": "(" } } }), "query.a");
    refused_with(json!({ "query": { "a": { "minimum": 1 } } }), "query.a");
    refused_with(json!({ "query": { "a": { "type": "enum" } } }), "query.a");
    refused_with(json!({ "query": { "a": { "values": ["x"] } } }), "query.a");
    refused_with(json!({ "query": { "a": { "type": "float" } } }), "float");
    refused_with(
        json!({ "headers": { "h": { "min_length": 3, "max_length": 2 } } }),
        "headers.h",
    );
    refused_with(json!({ "path": "orders/{id}" }), "path");
    refused_with(json!({ "path": "/orders/{id}/{id}" }), "path");
    refused_with(json!({ "path": "/orders/x{id}" }), "path");
    refused_with(
        json!({ "path": "/a/{id}", "path_params": { "other": {} } }),
        "path_params.other",
    );
    refused_with(json!({ "path_params": { "id": {} } }), "path_params");
    refused_with(json!({ "content_types": ["json"] }), "content_types");
    refused_with(json!({ "max_body_bytes": 0 }), "max_body_bytes");
    refused_with(
        json!({ "max_errors": 0, "max_body_bytes": 1 }),
        "max_errors",
    );
    refused_with(json!({}), "empty filter");
    refused_with(json!({ "max_body_bytes": 1, "querry": {} }), "querry");
    // A schema given as JSON text compiles like the table.
    let text = r#"{"type":"object","required":["a"]}"#;
    let f = filter(json!({ "body_schema": text })).unwrap();
    let body = refusal(&f, &post("{}"), 400, "invalid_request");
    assert_eq!(broken(&body), pairs(&[("/a", "required")]));
}

#[test]
fn format_is_asserted_only_when_asked() {
    let schema = json!({ "properties": { "email": { "format": "email" } } });
    let annotated = filter(json!({ "body_schema": schema })).unwrap();
    assert!(passes(&annotated, &post(r#"{"email":"nope"}"#)));
    let asserted = filter(json!({ "body_schema": schema, "format_assertions": true })).unwrap();
    let body = refusal(
        &asserted,
        &post(r#"{"email":"nope"}"#),
        400,
        "invalid_request",
    );
    assert_eq!(broken(&body), pairs(&[("/email", "format")]));
}
