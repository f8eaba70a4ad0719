//! The demo upstream the `weir` binary serves (`server.demo_upstream`, `weir demo-upstream`):
//! an echo service, so that the example config works with no other server. It is not part
//! of the gateway library. `GET /hello` answers a fixed text (for benchmarks); `/health` answers
//! `ok`; `POST /rpc` is a JSON-RPC 2.0 service (`users.get`); `POST /soap` answers a SOAP
//! envelope that quotes the request; `weir.demo.Greeter/SayHello` is a gRPC method (h2c);
//! anything else is echoed back as JSON (method, path, headers, body).

#![forbid(unsafe_code)]

mod grpc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// The largest request body the echo service reads.
const MAX_ECHO_BODY: usize = 64 << 10;

/// A reply body: held in full, with the trailers that follow it (a gRPC reply's
/// `grpc-status`).
#[derive(Debug, Default)]
pub struct Reply {
    /// The body.
    pub data: Bytes,
    /// The trailers, if any.
    pub trailers: Option<HeaderMap>,
}

impl From<Bytes> for Reply {
    fn from(data: Bytes) -> Self {
        Self {
            data,
            trailers: None,
        }
    }
}

/// Serves one request of the demo upstream.
pub async fn handle(request: Request<Incoming>) -> Response<Reply> {
    match request.uri().path() {
        "/hello" => with_type(&b"hello from the weir demo upstream\n"[..], "text/plain"),
        "/health" => with_type(&b"ok\n"[..], "text/plain"),
        "/rpc" => json_rpc(read_body(request.into_body()).await),
        "/soap" => soap(read_body(request.into_body()).await),
        grpc::SAY_HELLO => grpc::say_hello(&read_body(request.into_body()).await),
        _ => echo(request).await,
    }
}

async fn read_body(body: Incoming) -> Bytes {
    http_body_util::Limited::new(body, MAX_ECHO_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default()
}

fn with_type(body: impl Into<Bytes>, content_type: &'static str) -> Response<Reply> {
    let mut response = Response::new(Reply::from(body.into()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The demo's users, by id.
const USERS: [(u64, &str); 3] = [(1, "Ada Lovelace"), (2, "Alan Turing"), (3, "Grace Hopper")];

/// A JSON-RPC 2.0 service with one method, `users.get` (`{"id": n}`), and the standard
/// errors; an unknown user is the application error -32001.
fn json_rpc(body: Bytes) -> Response<Reply> {
    use serde_json::{Value, json};
    let reply = |id: &Value, outcome: Result<Value, (i64, &str)>| {
        let mut reply = json!({ "jsonrpc": "2.0", "id": id });
        match outcome {
            Ok(result) => reply["result"] = result,
            Err((code, message)) => reply["error"] = json!({ "code": code, "message": message }),
        }
        with_type(reply.to_string(), "application/json")
    };
    let Ok(call) = serde_json::from_slice::<Value>(&body) else {
        return reply(&Value::Null, Err((-32700, "Parse error")));
    };
    let id = call.get("id").cloned().unwrap_or(Value::Null);
    if call.get("jsonrpc") != Some(&json!("2.0")) {
        return reply(&id, Err((-32600, "Invalid Request")));
    }
    match call.get("method").and_then(Value::as_str) {
        Some("users.get") => {
            let wanted = call.pointer("/params/id").and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            });
            let Some(wanted) = wanted else {
                return reply(&id, Err((-32602, "Invalid params: id must be a number")));
            };
            match USERS.iter().find(|(user, _)| *user == wanted) {
                Some((user, name)) => reply(&id, Ok(json!({ "id": user, "name": name }))),
                None => reply(&id, Err((-32001, "no such user"))),
            }
        }
        Some(_) => reply(&id, Err((-32601, "Method not found"))),
        None => reply(&id, Err((-32600, "Invalid Request"))),
    }
}

/// A SOAP 1.1 service that answers every call with an envelope quoting the request.
fn soap(body: Bytes) -> Response<Reply> {
    let quoted = String::from_utf8_lossy(&body)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let envelope = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
         <soap:Body><EchoResponse><received>{quoted}</received><bytes>{}</bytes></EchoResponse>\
         </soap:Body></soap:Envelope>",
        body.len()
    );
    with_type(envelope, "text/xml; charset=utf-8")
}

async fn echo(request: Request<Incoming>) -> Response<Reply> {
    let (parts, body) = request.into_parts();
    let body = read_body(body).await;
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    with_type(json.to_string(), "application/json")
}
