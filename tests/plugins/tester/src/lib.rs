//! Test filter. It stamps `x-tester-version` (the crate version) on every response and,
//! as its config says, mutates the request, answers it itself, reads the body, or counts
//! requests through the `kv` host interface, or keeps a private context.

use std::collections::BTreeMap;

use serde::Deserialize;
use weir_plugin_sdk::host::kv;
use weir_plugin_sdk::prelude::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Headers set on the upstream request.
    #[serde(default)]
    set_request_headers: BTreeMap<String, String>,
    /// A new path for the upstream request.
    rewrite_path: Option<String>,
    /// Answer 403 when this request header is present.
    deny_if_header: Option<String>,
    /// Upper-case the request body (asks for the `request-body` phase).
    #[serde(default)]
    uppercase_body: bool,
    /// Count requests in `kv` and report the count in `x-count`.
    #[serde(default)]
    count: bool,
    /// Run the `kv` call the request's `x-kv-*` headers describe and report its answer
    /// in `x-kv` (see [`Tester::kv_op`]).
    #[serde(default)]
    kv_ops: bool,
    /// Write a log line per request through the `log` import.
    #[serde(default)]
    log: bool,
    /// Keep this text as the private context in `on-request` and append what
    /// `on-response` reads back to `x-context`.
    context: Option<String>,
    /// Tell the upstream what the filter sees of the connection: the scheme in
    /// `x-tester-scheme`, the client certificate's field in `x-tester-client-cert`.
    #[serde(default)]
    report_connection: bool,
}

struct Tester {
    config: Config,
}

impl Tester {
    /// `x-kv-op` (`get`, `set`, `set-if-absent`, `incr`, `delete`) on `x-kv-key`, with a
    /// value of `x-kv-size` bytes (or `x-kv-value`) and `x-kv-ttl` ms; the answer as text
    /// (`Debug` of an error).
    fn kv_op(request: &Request) -> Option<String> {
        let op = request.header("x-kv-op")?;
        let key = request.header("x-kv-key").unwrap_or_default();
        let value = match request.header("x-kv-size").and_then(|n| n.parse().ok()) {
            Some(size) => vec![b'x'; size],
            None => request.header_bytes("x-kv-value").unwrap_or_default(),
        };
        let ttl = request.header("x-kv-ttl").and_then(|t| t.parse().ok());
        let answer = match op.as_str() {
            "get" => kv::get(&key).map(|v| match v {
                Some(v) => format!("some:{}", String::from_utf8_lossy(&v)),
                None => "none".into(),
            }),
            "set" => kv::set(&key, &value, ttl).map(|()| "ok".into()),
            "set-if-absent" => kv::set_if_absent(&key, &value, ttl).map(|b| b.to_string()),
            "incr" => kv::incr(&key, 1, ttl).map(|n| n.to_string()),
            "delete" => kv::delete(&key).map(|b| b.to_string()),
            _ => return Some("unknown op".into()),
        };
        Some(answer.unwrap_or_else(|e| format!("{e:?}")))
    }
}

impl Filter for Tester {
    type Config = Config;
    const NAME: &'static str = "tester";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::RequestHeaders, Phase::ResponseHeaders];

    fn new(config: Config) -> Result<Self, String> {
        Ok(Self { config })
    }

    fn phases(&self) -> Vec<Phase> {
        let mut phases = Self::PHASES.to_vec();
        if self.config.uppercase_body {
            phases.push(Phase::RequestBody);
        }
        phases
    }

    fn on_request(&self, request: &Request) -> RequestDecision {
        if self.config.log {
            weir_plugin_sdk::log!(Info, "tester saw {}", request.path());
        }
        if let Some(name) = &self.config.deny_if_header
            && request.header(name).is_some()
        {
            return RequestDecision::Respond(
                Response::json(403, r#"{"error":"denied_by_tester"}"#)
                    .header("x-tester-version", Self::VERSION),
            );
        }
        let mut changes = RequestChanges::new().set_variable("tester.seen", request.path());
        for (name, value) in &self.config.set_request_headers {
            changes = changes.set_header(name, value.as_bytes());
        }
        if self.config.report_connection {
            let cert = request.header("x-forwarded-client-cert");
            changes = changes
                .set_header("x-tester-scheme", request.scheme().as_bytes())
                .set_header("x-tester-client-cert", cert.as_deref().unwrap_or("none"));
        }
        if let Some(path) = &self.config.rewrite_path {
            changes = changes.set_path(path.clone());
        }
        if self.config.uppercase_body {
            let body = request.body().unwrap_or_default().to_ascii_uppercase();
            changes = changes.set_body(body);
        }
        if self.config.kv_ops
            && let Some(answer) = Self::kv_op(request)
        {
            changes = changes.set_variable("tester.kv", answer);
        }
        if let Some(context) = &self.config.context {
            changes = changes.set_context(context);
        }
        if self.config.count {
            match kv::incr("requests", 1, None) {
                Ok(n) => changes = changes.set_variable("tester.count", n.to_string()),
                Err(e) => changes = changes.set_variable("tester.count", format!("{e:?}")),
            }
        }
        RequestDecision::Continue(changes)
    }

    fn on_response(&self, request: &Request, _response: &ResponseView) -> ResponseDecision {
        let mut changes = ResponseChanges::new().set_header("x-tester-version", Self::VERSION);
        if let Some(count) = request.variable("tester.count") {
            changes = changes.set_header("x-count", count.as_bytes());
        }
        if let Some(answer) = request.variable("tester.kv") {
            changes = changes.set_header("x-kv", answer.as_bytes());
        }
        if self.config.context.is_some() {
            let context = request.context::<String>().unwrap_or_else(|| "none".into());
            changes = changes.append_header("x-context", context.as_bytes());
        }
        ResponseDecision::Continue(changes)
    }
}

export_filter!(Tester);
