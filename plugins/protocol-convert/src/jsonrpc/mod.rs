//! REST → JSON-RPC 2.0 (<https://www.jsonrpc.org/specification>): a request that matches a
//! mapping becomes `POST <endpoint>` with a request object (§4) whose `params` are by name
//! (§4.2) and whose `id` is the gateway's request id; the response object (§5) turns back
//! into HTTP: its `result` is the body, its `error` (§5.1) a status from the error table.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use weir_plugin_sdk::prelude::*;

use crate::error;
use crate::params::{self, Invalid};
use crate::template::{Template, Unmatched};

/// The `json-rpc` mode's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The JSON-RPC endpoint's path on the upstream.
    #[serde(default = "default_endpoint")]
    endpoint: String,
    /// The REST calls and the methods they become.
    mappings: Vec<MappingConfig>,
    /// What happens to a request no mapping matches.
    #[serde(default)]
    unmatched: Unmatched,
    /// HTTP status per JSON-RPC error code (keys are the codes as text), over the defaults.
    #[serde(default)]
    error_status: BTreeMap<String, u16>,
    /// The status of an error code that is in no table.
    #[serde(default = "default_error_status")]
    default_error_status: u16,
}

fn default_endpoint() -> String {
    "/".into()
}

fn default_error_status() -> u16 {
    502
}

/// One REST call and the method it becomes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingConfig {
    /// `"GET /users/{id}"`.
    http: String,
    /// The JSON-RPC method.
    method: String,
    /// The JSON type of path and query parameters (text by default).
    #[serde(default)]
    types: BTreeMap<String, ParamType>,
}

/// The JSON type a path or query value becomes.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
}

impl ParamType {
    /// `text` as this type.
    fn convert(self, name: &str, text: String) -> Result<Value, Invalid> {
        let expected = match self {
            Self::String => "text",
            Self::Integer => "an integer",
            Self::Number => "a number",
            Self::Boolean => "true or false",
        };
        let bad = || Invalid(format!("parameter {name:?} must be {expected}"));
        Ok(match self {
            Self::String => Value::String(text),
            Self::Integer => text.parse::<i64>().map_err(|_| bad())?.into(),
            Self::Number => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .ok_or_else(bad)?
                .into(),
            Self::Boolean => text.parse::<bool>().map_err(|_| bad())?.into(),
        })
    }
}

/// A parsed mapping.
struct Mapping {
    rule: Template,
    method: String,
    types: BTreeMap<String, ParamType>,
}

/// The `json-rpc` mode.
pub struct JsonRpc {
    endpoint: String,
    mappings: Vec<Mapping>,
    unmatched: Unmatched,
    error_status: BTreeMap<i64, u16>,
    default_error_status: u16,
}

/// The default error table: a missing method is a missing resource, bad params a bad
/// request; anything else is the upstream's failure.
const DEFAULT_ERROR_STATUS: [(i64, u16); 5] = [
    (-32700, 502),
    (-32600, 400),
    (-32601, 404),
    (-32602, 400),
    (-32603, 502),
];

impl JsonRpc {
    /// Checks the config.
    pub fn new(config: Config) -> Result<Self, String> {
        if !config.endpoint.starts_with('/') {
            return Err("json-rpc: endpoint must start with '/'".into());
        }
        let mappings = config
            .mappings
            .into_iter()
            .map(|m| {
                Ok(Mapping {
                    rule: Template::parse(&m.http)?,
                    method: m.method,
                    types: m.types,
                })
            })
            .collect::<Result<_, String>>()?;
        let mut error_status: BTreeMap<i64, u16> = DEFAULT_ERROR_STATUS.into();
        for (code, status) in config.error_status {
            let code = code
                .trim()
                .parse()
                .map_err(|_| format!("json-rpc: error_status key {code:?} is not an integer"))?;
            error_status.insert(code, status);
        }
        let statuses = error_status.values().chain([&config.default_error_status]);
        if let Some(bad) = statuses.into_iter().find(|s| !(400..=599).contains(*s)) {
            return Err(format!("json-rpc: error status {bad} is not a 4xx or 5xx"));
        }
        Ok(Self {
            endpoint: config.endpoint,
            mappings,
            unmatched: config.unmatched,
            error_status,
            default_error_status: config.default_error_status,
        })
    }

    /// Turns a matching request into a JSON-RPC call.
    pub fn on_request(&self, request: &Request<'_>) -> RequestDecision {
        let found = self.mappings.iter().find_map(|m| {
            let vars = m.rule.matches(request.method(), request.path_only())?;
            Some((m, vars))
        });
        let Some((mapping, vars)) = found else {
            return self.unmatched.decide("no_rpc_mapping", request);
        };
        let typed = |name: &str, text: String| match mapping.types.get(name) {
            Some(t) => t.convert(name, text),
            None => Ok(Value::String(text)),
        };
        let params = match params::collect(request.body(), request.query(), vars, typed) {
            Ok(params) => params,
            Err(Invalid(message)) => {
                return RequestDecision::Respond(Response::error(
                    400,
                    "invalid_params",
                    &message,
                    request,
                ));
            }
        };
        let call = json!({
            "jsonrpc": "2.0",
            "method": mapping.method,
            "params": params,
            "id": request.request_id(),
        });
        RequestDecision::Continue(
            RequestChanges::new()
                .set_method("POST")
                .set_path(self.endpoint.as_str())
                .set_body(call.to_string())
                .set_header("content-type", "application/json")
                .set_header("accept", "application/json")
                .remove_header("accept-encoding")
                .set_context(&mapping.method),
        )
    }

    /// Turns the JSON-RPC response into the REST answer.
    pub fn on_response(
        &self,
        method: &str,
        request: &Request<'_>,
        response: &ResponseView<'_>,
    ) -> ResponseDecision {
        let answer = match parse_response(response.body().unwrap_or_default(), request) {
            Ok(answer) => answer,
            Err(why) => {
                let message = format!(
                    "the upstream's answer to {method} (HTTP {}) is not a JSON-RPC 2.0 response: {why}",
                    response.status()
                );
                return ResponseDecision::Replace(Response::error(
                    502,
                    "bad_rpc_response",
                    &message,
                    request,
                ));
            }
        };
        ResponseDecision::Replace(match answer {
            Ok(result) => Response::json(200, result.to_string()),
            Err(rpc) => self.error_response(rpc, request),
        })
    }

    /// The HTTP error for an RPC error object.
    fn error_response(&self, rpc: RpcError, request: &Request<'_>) -> Response {
        let status = self
            .error_status
            .get(&rpc.code)
            .copied()
            .unwrap_or(self.default_error_status);
        let code = match rpc.code {
            -32700 => "rpc_parse_error",
            -32600 => "rpc_invalid_request",
            -32601 => "rpc_method_not_found",
            -32602 => "rpc_invalid_params",
            -32603 => "rpc_internal_error",
            _ => "rpc_error",
        };
        let mut detail = Map::new();
        detail.insert("code".into(), rpc.code.into());
        detail.insert("message".into(), rpc.message.as_str().into());
        if let Some(data) = rpc.data {
            detail.insert("data".into(), data);
        }
        let extra = Map::from_iter([("rpc_error".to_string(), Value::Object(detail))]);
        error::with_details(status, code, &rpc.message, request, extra)
    }
}

#[cfg(test)]
mod tests;

/// An error object (§5.1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RpcError {
    code: i64,
    message: String,
    #[serde(default, deserialize_with = "present")]
    data: Option<Value>,
}

/// A response object (§5): exactly one of `result` and `error`, `id` ours (or null on an
/// error about a request the server could not read).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RpcResponse {
    jsonrpc: String,
    #[serde(default, deserialize_with = "present")]
    result: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    error: Option<RpcError>,
    id: Value,
}

/// Keeps a member that is present apart from a missing one: `"result": null` is a valid
/// result, `"data": null` data, and `"error": null` is an error member that is not an error
/// object (§5 forbids it beside a result), not a missing one.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// The result, or the error object, of a response to this request.
fn parse_response(body: &[u8], request: &Request<'_>) -> Result<Result<Value, RpcError>, String> {
    let response: RpcResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if response.jsonrpc != "2.0" {
        return Err("\"jsonrpc\" is not \"2.0\"".into());
    }
    let ours = response.id.as_str() == Some(request.request_id());
    match (response.result, response.error) {
        (Some(result), None) if ours => Ok(Ok(result)),
        (None, Some(error)) if ours || response.id.is_null() => Ok(Err(error)),
        (Some(_), Some(_)) | (None, None) => Err("it needs exactly one of result and error".into()),
        _ => Err("its id is not the request's".into()),
    }
}
