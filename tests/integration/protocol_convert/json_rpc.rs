//! `mode = "json-rpc"` against a strict JSON-RPC 2.0 server: it checks the envelope the
//! gateway sends (-32700, -32600 otherwise), knows a few methods (-32601 for the rest) and
//! checks their params (-32602).

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::{Value, json};
use weir_tests::{TestClient, request};

use super::{RecordingServer, gateway, header, route, upstream};

/// What the server saw of one call.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    content_type: String,
    request_id: String,
    accept_encoding: String,
    body: Value,
}

/// The JSON-RPC server: `POST /rpc` is the endpoint; `/broken` answers JSON that is not
/// a response object, `/wrong-id` a response to another call, `/both` a response with
/// both `result` and `error` (the latter `null`); any other path answers
/// `200 passed through` (for unmatched requests sent on unchanged).
type RpcServer = RecordingServer<Seen>;

async fn rpc_server() -> RpcServer {
    RecordingServer::start(|parts, body| {
        let header = |name: &str| header(parts, name).unwrap_or_default();
        let seen = Seen {
            method: parts.method.to_string(),
            path: parts.uri.to_string(),
            content_type: header("content-type"),
            request_id: header("x-request-id"),
            accept_encoding: header("accept-encoding"),
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
        };
        let reply = match parts.uri.path() {
            "/rpc" if parts.method == "POST" && header("content-type") == "application/json" => {
                json_reply(answer(body))
            }
            "/rpc" => Response::builder()
                .status(415)
                .body(Full::new(Bytes::new()))
                .unwrap(),
            "/broken" => json_reply(json!({"ok": true})),
            "/wrong-id" => json_reply(json!({"jsonrpc": "2.0", "result": 1, "id": "another"})),
            "/both" => {
                let id = header("x-request-id");
                json_reply(json!({"jsonrpc": "2.0", "result": 1, "error": null, "id": id}))
            }
            _ => Response::new(Full::new(Bytes::from_static(b"passed through"))),
        };
        (seen, reply)
    })
    .await
}

fn json_reply(body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn rpc_error(code: i64, message: &str, data: Option<Value>, id: Value) -> Value {
    let mut error = json!({"code": code, "message": message});
    if let Some(data) = data {
        error["data"] = data;
    }
    json!({"jsonrpc": "2.0", "error": error, "id": id})
}

/// The response object for one request body (JSON-RPC 2.0 §4, §5).
fn answer(body: &[u8]) -> Value {
    let Ok(call) = serde_json::from_slice::<Value>(body) else {
        return rpc_error(-32700, "Parse error", None, Value::Null);
    };
    let valid = call.as_object().is_some_and(|o| {
        o.keys()
            .all(|k| ["jsonrpc", "method", "params", "id"].contains(&k.as_str()))
            && o.get("jsonrpc") == Some(&json!("2.0"))
            && o.get("method").is_some_and(Value::is_string)
            && o.get("id")
                .is_some_and(|id| id.is_string() || id.is_number())
            && o.get("params")
                .is_none_or(|p| p.is_object() || p.is_array())
    });
    if !valid {
        return rpc_error(-32600, "Invalid Request", None, Value::Null);
    }
    let id = call["id"].clone();
    let params = call.get("params").cloned().unwrap_or(json!({}));
    let result = match call["method"].as_str().unwrap_or_default() {
        "users.get" => match params
            .as_object()
            .map(|p| (p.len(), p.get("id").and_then(Value::as_i64)))
        {
            Some((1, Some(7))) => Ok(json!({"id": 7, "name": "Ada"})),
            Some((1, Some(other))) => Err((-32001, "no such user", Some(json!({"id": other})))),
            _ => Err((
                -32602,
                "Invalid params: expected {id: integer}",
                Some(Value::Null),
            )),
        },
        "echo.params" => Ok(params),
        "users.none" => Ok(Value::Null),
        _ => Err((-32601, "Method not found", None)),
    };
    match result {
        Ok(result) => json!({"jsonrpc": "2.0", "result": result, "id": id}),
        Err((code, message, data)) => rpc_error(code, message, data, id),
    }
}

/// The mappings, under the route prefix `{p}`.
const MAPPINGS: &str = r#"[
    { http = "GET {p}/users/{id}", method = "users.get", types = { id = "integer" } },
    { http = "GET {p}/raw-users/{id}", method = "users.get" },
    { http = "POST {p}/users/{id}/notes", method = "echo.params", types = { id = "integer", draft = "boolean", score = "number" } },
    { http = "GET {p}/none", method = "users.none" },
    { http = "DELETE {p}/users/{id}", method = "users.delete" } ]"#;

/// A gateway with the routes `/api` (the mappings, endpoint `/rpc`), `/tuned` (an error
/// table for the server's -32001 and -32601, pass-through of unmatched requests), and
/// `/broken`, `/wrong-id`, `/both` (endpoints that do not answer JSON-RPC 2.0), and `/down` (an upstream
/// where nothing listens).
async fn setup() -> (RpcServer, weir_tests::TestGateway) {
    let server = rpc_server().await;
    let config = |prefix: &str, extra: &str| {
        let mappings = MAPPINGS.replace('\n', " ").replace("{p}", prefix);
        format!("{{ mode = \"json-rpc\", mappings = {mappings}, {extra} }}")
    };
    let routes = [
        route(
            "api",
            "/api/",
            "rpc",
            &config("/api", "endpoint = \"/rpc\""),
            "",
        ),
        route(
            "tuned",
            "/tuned/",
            "rpc",
            &config(
                "/tuned",
                "endpoint = \"/rpc\", unmatched = \"pass\", \
                 error_status = { \"-32001\" = 404, \"-32601\" = 501 }, default_error_status = 503",
            ),
            "",
        ),
        route(
            "broken",
            "/broken/",
            "rpc",
            &config("/broken", "endpoint = \"/broken\""),
            "",
        ),
        route(
            "wrong-id",
            "/wrong-id/",
            "rpc",
            &config("/wrong-id", "endpoint = \"/wrong-id\""),
            "",
        ),
        route(
            "both",
            "/both/",
            "rpc",
            &config("/both", "endpoint = \"/both\""),
            "",
        ),
    ];
    let down: std::net::SocketAddr = ([127, 0, 0, 1], weir_tests::free_port()).into();
    let routes = [
        &routes[..],
        &[route(
            "down",
            "/down/",
            "down",
            &config("/down", "endpoint = \"/rpc\""),
            "",
        )],
    ]
    .concat();
    let upstreams = [upstream("rpc", server.addr, ""), upstream("down", down, "")];
    let gw = gateway(&upstreams, &routes).await;
    (server, gw)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rest_call_becomes_a_json_rpc_call_and_the_result_the_body() {
    let (server, gw) = setup().await;
    let client = TestClient::default();

    let r = client
        .send(weir_tests::get(
            &gw.url("/api/users/7"),
            &[("accept-encoding", "gzip")],
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"id": 7, "name": "Ada"}));
    let seen = server.last();
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/rpc"));
    assert_eq!(seen.content_type, "application/json");
    assert_eq!(
        seen.accept_encoding, "",
        "the filter must be able to read the answer"
    );
    assert_eq!(
        seen.body,
        json!({"jsonrpc": "2.0", "method": "users.get", "params": {"id": 7}, "id": seen.request_id}),
        "a by-name call whose id is the gateway's request id"
    );

    // A null result is a result.
    let r = client.get(&gw.url("/api/none")).await;
    assert_eq!((r.status.as_u16(), r.body.as_ref()), (200, &b"null"[..]));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn params_come_from_the_path_the_query_and_the_body() {
    let (server, gw) = setup().await;
    let client = TestClient::default();
    let r = client
        .send(request(
            "POST",
            &gw.url("/api/users/7/notes?draft=true&score=2.5&tag=a&tag=b&text=query"),
            &[("content-type", "application/json")],
            r#"{"text": "body", "id": "body", "nested": {"k": [1, 2]}}"#,
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.json(),
        json!({"id": 7, "draft": true, "score": 2.5, "tag": ["a", "b"], "text": "query", "nested": {"k": [1, 2]}}),
        "typed path and query values; the path wins over the query, the query over the body"
    );
    assert_eq!(server.last().body["method"], "echo.params");

    // Values that do not have their declared type, and bodies that are not a JSON
    // object, are refused before any call.
    let hits = server.hits();
    for (path, body) in [
        ("/api/users/x/notes", "{}"),
        ("/api/users/7/notes?draft=yes", "{}"),
        ("/api/users/7/notes", "[1, 2]"),
        ("/api/users/7/notes", "{\"text\": "),
    ] {
        let r = client
            .send(request(
                "POST",
                &gw.url(path),
                &[("content-type", "application/json")],
                body,
            ))
            .await;
        assert_eq!(r.status, 400, "{path} {body}");
        assert_eq!(r.json()["error"], "invalid_params", "{path} {body}");
    }
    assert_eq!(server.hits(), hits, "no call for a refused request");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rpc_errors_map_to_statuses_by_the_table() {
    let (server, gw) = setup().await;
    let client = TestClient::default();
    let cases = [
        // -32601 → 404 by default, 501 by the tuned table.
        (
            "DELETE",
            "/api/users/7",
            404,
            "rpc_method_not_found",
            -32601,
        ),
        (
            "DELETE",
            "/tuned/users/7",
            501,
            "rpc_method_not_found",
            -32601,
        ),
        // An untyped id is sent as a string: the server says -32602 → 400.
        ("GET", "/api/raw-users/7", 400, "rpc_invalid_params", -32602),
        // The server's own -32001: not in the default table → 502; tuned → 404.
        ("GET", "/api/users/8", 502, "rpc_error", -32001),
        ("GET", "/tuned/users/8", 404, "rpc_error", -32001),
    ];
    for (method, path, status, code, rpc_code) in cases {
        let r = client.send(request(method, &gw.url(path), &[], "")).await;
        assert_eq!(r.status, status, "{method} {path}: {:?}", r.body);
        let body = r.json();
        assert_eq!(body["error"], code, "{method} {path}");
        assert_eq!(r.header("x-weir-error"), Some(code), "{method} {path}");
        assert_eq!(body["rpc_error"]["code"], rpc_code, "{method} {path}");
        assert_eq!(
            body["message"], body["rpc_error"]["message"],
            "{method} {path}"
        );
        assert!(body["request_id"].is_string(), "{method} {path}");
    }
    let r = client.get(&gw.url("/api/users/8")).await;
    assert_eq!(
        r.json()["rpc_error"]["data"],
        json!({"id": 8}),
        "the error's data is kept"
    );
    let r = client.get(&gw.url("/api/raw-users/7")).await;
    assert_eq!(
        r.json()["rpc_error"],
        json!({"code": -32602, "message": "Invalid params: expected {id: integer}", "data": null}),
        "a null data is data too (§5.1: omitted or a value)"
    );
    assert_eq!(server.hits(), cases.len() + 2);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unmatched_requests_are_refused_or_passed_on() {
    let (server, gw) = setup().await;
    let client = TestClient::default();
    let r = client.get(&gw.url("/api/orders/1")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "no_rpc_mapping");
    let r = client
        .send(request("PUT", &gw.url("/api/users/7"), &[], ""))
        .await;
    assert_eq!(r.status, 404, "the method is part of the mapping");
    assert_eq!(server.hits(), 0, "refused without a call");

    let r = client.get(&gw.url("/tuned/orders/1?x=1")).await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_ref()),
        (200, &b"passed through"[..])
    );
    let seen = server.last();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/tuned/orders/1?x=1")
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_that_is_not_json_rpc_is_a_bad_gateway() {
    let (server, gw) = setup().await;
    let client = TestClient::default();
    // §5: "Either the result member or error member MUST be included, but both members
    // MUST NOT be included" — an `"error": null` beside a result is both.
    for path in ["/broken/users/7", "/wrong-id/users/7", "/both/users/7"] {
        let r = client.get(&gw.url(path)).await;
        assert_eq!(r.status, 502, "{path}");
        assert_eq!(r.json()["error"], "bad_rpc_response", "{path}");
    }
    assert_eq!(server.hits(), 3);

    // The gateway's own error (nothing listens upstream) reaches the client as it is.
    let r = client.get(&gw.url("/down/users/7")).await;
    assert!(r.status.is_server_error(), "{:?}", r.status);
    assert!(r.header("x-weir-error").is_some());
    assert_ne!(r.json()["error"], "bad_rpc_response");
    gw.shutdown().await;
}
