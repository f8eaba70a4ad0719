//! Test filter. It stamps `x-tester-version` (the crate version) on every response and,
//! as its config says, mutates the request, answers it itself, reads the body, or counts
//! requests through the `kv` host interface.

use std::collections::BTreeMap;

use serde::Deserialize;
use weir_plugin_sdk::host::{kv, log};
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
    /// Write a log line per request through the `log` import.
    #[serde(default)]
    log: bool,
}

struct Tester {
    config: Config,
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
            log::log(log::Level::Info, &format!("tester saw {}", request.path()));
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
        if let Some(path) = &self.config.rewrite_path {
            changes = changes.set_path(path.clone());
        }
        if self.config.uppercase_body {
            let body = request.body().unwrap_or_default().to_ascii_uppercase();
            changes = changes.set_body(body);
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
        ResponseDecision::Continue(changes)
    }
}

export_filter!(Tester);
