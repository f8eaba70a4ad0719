//! `protocol-convert`: lets HTTP+JSON clients call upstreams that speak another protocol,
//! and the other way round. One mode per configured filter:
//!
//! - `json-rpc`: REST calls (`GET /users/{id}`) become JSON-RPC 2.0 calls; the `result`
//!   comes back as the body, an `error` as an HTTP status.
//! - `xml`: JSON ↔ XML (optionally in a SOAP 1.1/1.2 envelope) in either direction.
//! - `grpc`: JSON ↔ unary gRPC by the proto3 JSON mapping, with a descriptor set file.
//!
//! A converted request asks for an answer without `content-encoding` (the filter must read
//! it) and keeps the call (RPC method, gRPC method path or XML root) in the filter's
//! private context, so that the response phase converts the answer to that call only; an
//! error response of the gateway (marked `x-weir-error`) passes unchanged. See
//! docs/plugins/protocol-convert.md.

mod error;
mod grpc;
mod jsonrpc;
mod media;
mod params;
mod template;
mod xml;

#[cfg(test)]
mod tests;

use serde::Deserialize;
use weir_plugin_sdk::prelude::*;

/// The filter's config: the mode and that mode's keys.
#[derive(Debug, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
enum Config {
    JsonRpc(jsonrpc::Config),
    Xml(xml::Config),
    Grpc(grpc::Config),
}

/// The configured conversion.
enum ProtocolConvert {
    JsonRpc(jsonrpc::JsonRpc),
    Xml(xml::Xml),
    Grpc(grpc::Grpc),
}

impl Filter for ProtocolConvert {
    type Config = Config;
    const NAME: &'static str = "protocol-convert";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::RequestBody, Phase::ResponseBody];

    fn new(config: Config) -> Result<Self, String> {
        Ok(match config {
            Config::JsonRpc(c) => Self::JsonRpc(jsonrpc::JsonRpc::new(c)?),
            Config::Xml(c) => Self::Xml(xml::Xml::new(c)?),
            Config::Grpc(c) => Self::Grpc(grpc::Grpc::new(c)?),
        })
    }

    fn on_request(&self, request: &Request<'_>) -> RequestDecision {
        match self {
            Self::JsonRpc(m) => m.on_request(request),
            Self::Xml(m) => m.on_request(request),
            Self::Grpc(m) => m.on_request(request),
        }
    }

    fn on_response(&self, request: &Request<'_>, response: &ResponseView<'_>) -> ResponseDecision {
        let Some(call) = request.context::<String>() else {
            return ResponseDecision::proceed();
        };
        if response.header("x-weir-error").is_some() {
            // The gateway's own error (the upstream cannot be reached, say) or an earlier
            // filter's: an HTTP error already, in the gateway's shape.
            return ResponseDecision::proceed();
        }
        match self {
            Self::JsonRpc(m) => m.on_response(&call, request, response),
            Self::Xml(m) => m.on_response(request, response),
            Self::Grpc(m) => m.on_response(&call, request, response),
        }
    }
}

export_filter!(ProtocolConvert);
