//! `http`: outbound requests to the named upstreams a plugin was granted, nothing else.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};

use super::HostState;
use crate::body::{ProxyBody, full_body};
use crate::plugin::bindings::weir::gateway::http::{Host, OutboundRequest};
use crate::plugin::bindings::weir::gateway::types::{Header, HostError, Response};

impl Host for HostState {
    async fn send(
        &mut self,
        request: OutboundRequest,
    ) -> wasmtime::Result<Result<Response, HostError>> {
        if !self.caller.grants.http.contains(&request.upstream) {
            return Ok(Err(HostError::AccessDenied));
        }
        let services = &self.caller.services;
        let Some(upstream) = services.upstreams.get(&request.upstream).cloned() else {
            return Ok(Err(HostError::Invalid(format!(
                "unknown upstream {:?}",
                request.upstream
            ))));
        };
        let built = build(&request);
        let http_request = match built {
            Ok(r) => r,
            Err(e) => return Ok(Err(HostError::Invalid(e))),
        };
        let timeout = request.timeout_ms.map_or(upstream.request_timeout, |ms| {
            Duration::from_millis(u64::from(ms))
        });
        let response = match upstream
            .call(http_request, timeout, services.http_max_response_bytes)
            .await
        {
            Ok(r) => r,
            Err(e) => return Ok(Err(HostError::Unavailable(e.to_string()))),
        };
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| Header {
                name: name.as_str().to_string(),
                value: value.as_bytes().to_vec(),
            })
            .collect();
        Ok(Ok(Response {
            status: response.status().as_u16(),
            headers,
            body: Some(response.into_body().to_vec()),
        }))
    }
}

fn build(request: &OutboundRequest) -> Result<Request<ProxyBody>, String> {
    if !request.path.starts_with('/') {
        return Err(format!("path {:?} must start with /", request.path));
    }
    let method = Method::from_bytes(request.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut builder = Request::builder().method(method).uri(request.path.as_str());
    for h in &request.headers {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_bytes(&h.value).map_err(|e| e.to_string())?;
        builder = builder.header(name, value);
    }
    let body = Bytes::from(request.body.clone().unwrap_or_default());
    builder.body(full_body(body)).map_err(|e| e.to_string())
}
