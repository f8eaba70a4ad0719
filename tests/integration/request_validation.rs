//! The `request-validation` filter end to end: a valid order reaches the upstream; each
//! kind of bad request (body against the schema, a body that is not JSON, query, path and
//! header parameters, a body too large, the wrong media type) gets its 4xx naming the field
//! and the rule, and the upstream never sees it.

use weir_tests::plugins::REQUEST_VALIDATION;
use weir_tests::{Reply, TestClient, TestGateway, TestUpstream, get, post_json, request};

/// The route `/orders/{id}`: a JSON Schema for the body given as JSON text (the form a
/// TOML file writes most easily), typed query, path and header parameters.
const FILTER: &str = r##"
[[routes.filters]]
plugin = "request-validation.wasm"
[routes.filters.config]
max_body_bytes = 300
content_types = ["application/json"]
path = "/orders/{id}"
body_schema = '''
{
  "type": "object",
  "required": ["items"],
  "additionalProperties": false,
  "properties": {
    "items": { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/item" } }
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
'''
[routes.filters.config.path_params.id]
type = "integer"
minimum = 1
[routes.filters.config.query.dry_run]
type = "boolean"
[routes.filters.config.headers.x-api-version]
required = true
pattern = "^[0-9]+$"
"##;

/// `(field, rule)` of each error of a refusal.
fn broken(reply: &Reply) -> Vec<(String, String)> {
    let body = reply.json();
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    let text = |e: &serde_json::Value, k: &str| e[k].as_str().unwrap_or_default().to_string();
    errors
        .iter()
        .map(|e| (text(e, "field"), text(e, "rule")))
        .collect()
}

/// Asserts `reply` is a refusal with `status` and `code` naming exactly `expected`.
fn assert_refused(reply: &Reply, status: u16, code: &str, expected: &[(&str, &str)]) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.header("x-weir-error"), Some(code));
    assert_eq!(reply.json()["error"], code);
    let expected: Vec<_> = expected
        .iter()
        .map(|(f, r)| (f.to_string(), r.to_string()))
        .collect();
    assert_eq!(broken(reply), expected, "{:?}", reply.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_naming_field_and_rule_before_the_upstream() {
    let upstream = TestUpstream::start("app").await;
    let config = format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n[[routes]]\nname = \"orders\"\nupstream = \"app\"\n\
         match.path_prefix = \"/orders\"\n{FILTER}",
        upstream.addr
    );
    let gw = TestGateway::start(&config, &[("request-validation.wasm", REQUEST_VALIDATION)]).await;
    let client = TestClient::http1();
    let order = |path: &str, body: &str| {
        let mut r = post_json(&gw.url(path), body);
        r.headers_mut()
            .insert("x-api-version", "2".parse().expect("header value"));
        r
    };
    let valid = r#"{"items":[{"sku":"ABC-1","qty":2}]}"#;

    let ok = client.send(order("/orders/7?dry_run=true", valid)).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(upstream.hits(), 1);

    let bad_body = r#"{"items":[{"sku":"abc","qty":0},{"sku":"ABC-2"}],"note":"x"}"#;
    let reply = client.send(order("/orders/7", bad_body)).await;
    assert_refused(
        &reply,
        400,
        "invalid_request",
        &[
            ("/items/0/qty", "minimum"),
            ("/items/0/sku", "pattern"),
            ("/items/1/qty", "required"),
            ("/note", "additionalProperties"),
        ],
    );
    let message = reply.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.starts_with("/items/0/qty:"), "{message}");

    let reply = client.send(order("/orders/7", r#"{"items": [}"#)).await;
    assert_refused(&reply, 400, "invalid_request", &[("", "json")]);
    let why = reply.json()["errors"][0]["message"].to_string();
    assert!(why.contains("line 1 column 12"), "{why}");

    let reply = client.send(order("/orders/x?dry_run=maybe", valid)).await;
    assert_refused(
        &reply,
        400,
        "invalid_request",
        &[("path.id", "type"), ("query.dry_run", "type")],
    );
    let reply = client.send(order("/orders/0", valid)).await;
    assert_refused(&reply, 400, "invalid_request", &[("path.id", "minimum")]);
    let reply = client.send(order("/orders/7/items", valid)).await;
    assert_refused(&reply, 400, "invalid_request", &[("path", "template")]);

    let no_version = post_json(&gw.url("/orders/7"), valid);
    let reply = client.send(no_version).await;
    assert_refused(
        &reply,
        400,
        "invalid_request",
        &[("header.x-api-version", "required")],
    );

    let items = vec![r#"{"sku":"ABC-1","qty":2}"#; 20].join(",");
    let large = format!(r#"{{"items":[{items}]}}"#);
    let reply = client.send(order("/orders/7", &large)).await;
    assert_refused(&reply, 413, "body_too_large", &[("", "max_body_bytes")]);

    let headers = [("content-type", "text/plain"), ("x-api-version", "2")];
    let text = request("POST", &gw.url("/orders/7"), &headers, valid.to_string());
    let reply = client.send(text).await;
    assert_refused(
        &reply,
        415,
        "unsupported_media_type",
        &[("header.content-type", "enum")],
    );

    // A GET carries no body to validate; its parameters still are.
    let list = get(&gw.url("/orders/7"), &[("x-api-version", "2")]);
    assert_eq!(client.send(list).await.status, 200);
    assert_eq!(
        upstream.hits(),
        2,
        "no refused request reached the upstream"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_that_does_not_compile_is_refused_at_configure() {
    let config = "[upstreams.app]\ntargets = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\n\
                  upstream = \"app\"\nmatch.path_prefix = \"/\"\n[[routes.filters]]\n\
                  plugin = \"request-validation.wasm\"\n\
                  config = { body_schema = { type = \"nonsense\" } }\n";
    let started =
        TestGateway::try_start(config, &[("request-validation.wasm", REQUEST_VALIDATION)]).await;
    let error = weir_tests::refusal(started, "a bad schema").await;
    assert!(error.contains("body_schema"), "{error}");
}
