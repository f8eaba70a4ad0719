//! The built-in demo upstream: an echo service, so that the example config works with no
//! other server. `GET /hello` answers a fixed text (for benchmarks); `/health` answers
//! `ok`; anything else is echoed back as JSON (method, path, headers, body).

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::proxy::{ProxyBody, full_body};

/// The largest request body the echo service reads.
const MAX_ECHO_BODY: usize = 64 << 10;

/// Serves one request of the demo upstream.
pub async fn handle(
    request: Request<Incoming>,
    _client: crate::headers::Peer,
) -> Response<ProxyBody> {
    match request.uri().path() {
        "/hello" => text(Bytes::from_static(b"hello from the weir demo upstream\n")),
        "/health" => text(Bytes::from_static(b"ok\n")),
        _ => echo(request).await,
    }
}

fn text(body: Bytes) -> Response<ProxyBody> {
    let mut response = Response::new(full_body(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

async fn echo(request: Request<Incoming>) -> Response<ProxyBody> {
    let (parts, body) = request.into_parts();
    let body = http_body_util::Limited::new(body, MAX_ECHO_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
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
    let mut response = Response::new(full_body(Bytes::from(json.to_string())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
