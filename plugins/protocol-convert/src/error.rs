//! Error responses: the gateway's JSON error shape, with the details of the protocol the
//! error came from where there is one.

use serde_json::{Map, Value};
use weir_plugin_sdk::{Request, Response};

/// The gateway's error response (`{"error", "message", "request_id"}`) with `extra` fields
/// added to the body (an RPC error's code, a SOAP fault, a gRPC status).
pub fn with_details(
    status: u16,
    code: &str,
    message: &str,
    request: &Request<'_>,
    extra: Map<String, Value>,
) -> Response {
    let mut body = Map::new();
    body.insert("error".into(), code.into());
    body.insert("message".into(), message.into());
    body.insert("request_id".into(), request.request_id().into());
    body.extend(extra);
    Response::error(status, code, message, request).body(Value::Object(body).to_string())
}
