//! The `grpc` mode: gRPC-JSON transcoding. A JSON request (a POST to `/pkg.Service/Method`,
//! or one that matches an HTTP rule) becomes a unary gRPC call with the message encoded
//! from the JSON by the proto3 JSON mapping; the reply message comes back as JSON, a
//! non-OK `grpc-status` as an HTTP error. Descriptors come from a descriptor set file.

mod frame;
mod status;

use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, Kind, MethodDescriptor, SerializeOptions,
    ServiceDescriptor,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use weir_plugin_sdk::prelude::*;

use crate::error;
use crate::media::essence;
use crate::params::{self, Invalid};
use crate::template::{Template, Unmatched, Vars};
use status::Status;

/// The `grpc` mode's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The descriptor set file (a binary `FileDescriptorSet`), in a directory granted with
    /// `files:<dir>`.
    descriptor: String,
    /// The service's full name (`package.Service`).
    service: String,
    /// HTTP rules besides the canonical `POST /package.Service/Method`.
    #[serde(default)]
    rules: Vec<RuleConfig>,
    /// What happens to a request that matches no method.
    #[serde(default)]
    unmatched: Unmatched,
    /// Write fields that hold their default value (the mapping omits them).
    #[serde(default)]
    emit_defaults: bool,
    /// Write the proto field names (`display_name`) instead of lowerCamelCase.
    #[serde(default)]
    proto_field_names: bool,
}

/// An HTTP rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    /// `"GET /v1/users/{id}"`: each variable names a field of the request message.
    http: String,
    /// The method's name in the service (`GetUser`).
    method: String,
}

/// The `grpc` mode.
pub struct Grpc {
    service: ServiceDescriptor,
    rules: Vec<(Template, MethodDescriptor)>,
    unmatched: Unmatched,
    output: SerializeOptions,
}

/// A routed request: the method it calls, and the path variables of its rule.
type Routed = (MethodDescriptor, Vars);

/// `/package.Service/Method`, the call's HTTP/2 path.
fn call_path(method: &MethodDescriptor) -> String {
    format!("/{}/{}", method.parent_service().full_name(), method.name())
}

impl Grpc {
    /// Reads the descriptor set and checks the service and rules.
    pub fn new(config: Config) -> Result<Self, String> {
        let bytes = std::fs::read(&config.descriptor)
            .map_err(|e| format!("grpc: cannot read {:?}: {e}", config.descriptor))?;
        let pool = DescriptorPool::decode(bytes.as_slice())
            .map_err(|e| format!("grpc: {:?} is not a descriptor set: {e}", config.descriptor))?;
        let service = pool.get_service_by_name(&config.service).ok_or_else(|| {
            format!(
                "grpc: no service {:?} in the descriptor set",
                config.service
            )
        })?;
        let rules = config
            .rules
            .iter()
            .map(|rule| {
                let method = service
                    .methods()
                    .find(|m| m.name() == rule.method)
                    .filter(is_unary)
                    .ok_or_else(|| {
                        format!(
                            "grpc: {:?} is not a unary method of {}",
                            rule.method, config.service
                        )
                    })?;
                Ok((Template::parse(&rule.http)?, method))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            service,
            rules,
            unmatched: config.unmatched,
            output: SerializeOptions::new()
                .skip_default_fields(!config.emit_defaults)
                .use_proto_field_name(config.proto_field_names),
        })
    }

    /// Encodes a matching request as a gRPC call; a gRPC client's call (`application/grpc`,
    /// `application/grpc+...`) is already one and goes on unchanged, and so does its reply.
    pub fn on_request(&self, request: &Request<'_>) -> RequestDecision {
        let content_type = essence(request.header("content-type").as_deref());
        if content_type
            .is_some_and(|t| t == "application/grpc" || t.starts_with("application/grpc+"))
        {
            return RequestDecision::proceed();
        }
        let (method, vars) = match self.route(request) {
            Ok(Some(found)) => found,
            Ok(None) => return self.unmatched.decide("no_grpc_mapping", request),
            Err(refused) => return RequestDecision::Respond(refused),
        };
        let input = method.input();
        let typed = |name: &str, text: String| {
            let field = input
                .get_field_by_name(name)
                .or_else(|| input.get_field_by_json_name(name));
            match field.map(|f| f.kind()) {
                // The mapping reads integers, floats and enums from strings, but not booleans.
                Some(Kind::Bool) => text
                    .parse::<bool>()
                    .map(Value::Bool)
                    .map_err(|_| Invalid(format!("field {name:?} must be true or false"))),
                _ => Ok(Value::String(text)),
            }
        };
        let args = match params::collect(request.body(), request.query(), vars, typed) {
            Ok(args) => args,
            Err(Invalid(message)) => return reject(400, "invalid_message", &message, request),
        };
        let message = match DynamicMessage::deserialize_with_options(
            input,
            Value::Object(args),
            &DeserializeOptions::new(),
        ) {
            Ok(message) => message,
            Err(e) => return reject(400, "invalid_message", &e.to_string(), request),
        };
        let framed = match frame::encode(&message.encode_to_vec()) {
            Ok(framed) => framed,
            Err(message) => return reject(413, "message_too_large", &message, request),
        };
        let path = call_path(&method);
        RequestDecision::Continue(
            RequestChanges::new()
                .set_method("POST")
                .set_path(path.as_str())
                .set_body(framed)
                .remove_header("accept")
                .remove_header("accept-encoding")
                .set_header("content-type", "application/grpc")
                .set_header("te", "trailers")
                .set_context(&path),
        )
    }

    /// The method a request calls, with its path variables: the canonical path first,
    /// then the rules. An error is the answer to the client.
    fn route(&self, request: &Request<'_>) -> Result<Option<Routed>, Response> {
        let path = request.path_only();
        let canonical = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .filter(|(service, _)| *service == self.service.full_name());
        if let Some((_, name)) = canonical {
            let Some(method) = self.service.methods().find(|m| m.name() == name) else {
                let message = format!("{} has no method {name:?}", self.service.full_name());
                return Err(Response::error(
                    404,
                    "unknown_grpc_method",
                    &message,
                    request,
                ));
            };
            if !is_unary(&method) {
                let message = format!("{} is a streaming method", method.name());
                return Err(Response::error(
                    501,
                    "streaming_not_supported",
                    &message,
                    request,
                ));
            }
            if request.method() != "POST" {
                let message = "a gRPC method is called with POST";
                return Err(Response::error(405, "method_not_allowed", message, request));
            }
            return Ok(Some((method, Vars::new())));
        }
        Ok(self.rules.iter().find_map(|(rule, method)| {
            let vars = rule.matches(request.method(), path)?;
            Some((method.clone(), vars))
        }))
    }

    /// Decodes the reply of the call `path`, or maps its status.
    pub fn on_response(
        &self,
        path: &str,
        request: &Request<'_>,
        response: &ResponseView<'_>,
    ) -> ResponseDecision {
        let Some(method) = self.service.methods().find(|m| call_path(m) == path) else {
            return ResponseDecision::proceed();
        };
        let bad_reply = |message: String| {
            ResponseDecision::Replace(Response::error(502, "bad_grpc_response", &message, request))
        };
        let answer = || format!("the upstream's answer (HTTP {})", response.status());
        if !is_grpc_proto(response.header("content-type").as_deref()) {
            return bad_reply(format!("{} is not gRPC with protobuf messages", answer()));
        }
        // The status is in the trailers, or in the headers of a trailers-only reply.
        let trailers = response.trailers();
        let trailer = |name: &str| {
            trailers
                .iter()
                .find(|h| h.name == name)
                .map(|h| h.value.clone())
                .or_else(|| response.header_bytes(name))
        };
        let Some(status) = trailer("grpc-status").as_deref().and_then(Status::parse) else {
            return bad_reply(format!("{} has no valid grpc-status", answer()));
        };
        if !status.is_ok() {
            let message = trailer("grpc-message")
                .map(|m| {
                    percent_encoding::percent_decode(&m)
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .unwrap_or_default();
            return ResponseDecision::Replace(status_response(status, &message, request));
        }
        match self.decode(&method, response.body().unwrap_or_default()) {
            Ok(json) => ResponseDecision::Replace(Response::json(200, json)),
            Err(why) => bad_reply(format!("the reply of {path} cannot be read: {why}")),
        }
    }

    /// The reply message as JSON.
    fn decode(&self, method: &MethodDescriptor, body: &[u8]) -> Result<Vec<u8>, String> {
        let message = DynamicMessage::decode(method.output(), frame::decode(body)?)
            .map_err(|e| e.to_string())?;
        let mut json = Vec::new();
        message
            .serialize_with_options(&mut serde_json::Serializer::new(&mut json), &self.output)
            .map_err(|e| e.to_string())?;
        Ok(json)
    }
}

/// Whether a content type is gRPC's with protobuf messages: `application/grpc` or
/// `application/grpc+proto` (PROTOCOL-HTTP2.md, "Content-Type"), parameters aside.
fn is_grpc_proto(content_type: Option<&str>) -> bool {
    essence(content_type).is_some_and(|t| t == "application/grpc" || t == "application/grpc+proto")
}

/// Whether a method is unary (no streaming either way).
fn is_unary(method: &MethodDescriptor) -> bool {
    !method.is_client_streaming() && !method.is_server_streaming()
}

/// Answers the client at once, without calling the upstream.
fn reject(status: u16, code: &str, message: &str, request: &Request<'_>) -> RequestDecision {
    RequestDecision::Respond(Response::error(status, code, message, request))
}

/// The error response for a non-OK status: the gateway's shape, with the code's name in
/// lower case as the error code, and `grpc_code`/`grpc_status`.
fn status_response(status: Status, message: &str, request: &Request<'_>) -> Response {
    let code = status.name().to_ascii_lowercase();
    let extra = Map::from_iter([
        ("grpc_code".to_string(), Value::from(status.code())),
        ("grpc_status".to_string(), Value::from(status.name())),
    ]);
    let message = match message {
        "" => status.name(),
        message => message,
    };
    error::with_details(status.http_status(), &code, message, request, extra)
}
