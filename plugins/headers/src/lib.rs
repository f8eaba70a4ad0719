//! `headers`: adds, sets, appends and removes request and response headers, configured per
//! route (the job of Kong's request- and response-transformer).
//!
//! ```json
//! { "request":  { "remove": ["cookie"], "set": {"x-env": "prod"}, "add": {"x-tag": "a"} },
//!   "response": { "set": {"x-served-by": "weir"}, "append": {"vary": "accept"} } }
//! ```
//! Per direction, changes apply in the order remove, set (replace), append (another value),
//! add (only when absent). The filter takes part only in the directions its config uses.

use std::collections::BTreeMap;

use serde::Deserialize;
use weir_plugin_sdk::{
    Filter, Phase, Request, RequestChanges, RequestDecision, ResponseChanges, ResponseDecision,
    ResponseView, export_filter,
};

/// The changes for one direction.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Edits {
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    append: BTreeMap<String, String>,
    #[serde(default)]
    add: BTreeMap<String, String>,
}

impl Edits {
    fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.set.is_empty()
            && self.append.is_empty()
            && self.add.is_empty()
    }
}

/// The filter's config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    request: Edits,
    #[serde(default)]
    response: Edits,
}

struct Headers {
    config: Config,
}

impl Filter for Headers {
    type Config = Config;
    const NAME: &'static str = "headers";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::RequestHeaders, Phase::ResponseHeaders];

    fn new(config: Config) -> Result<Self, String> {
        let names = [&config.request, &config.response]
            .into_iter()
            .flat_map(|e| {
                e.remove
                    .iter()
                    .chain(e.set.keys())
                    .chain(e.append.keys())
                    .chain(e.add.keys())
            });
        for name in names {
            if name.is_empty() || !name.bytes().all(is_token_char) {
                return Err(format!("invalid header name {name:?}"));
            }
        }
        Ok(Self { config })
    }

    fn phases(&self) -> Vec<Phase> {
        let mut phases = Vec::new();
        if !self.config.request.is_empty() {
            phases.push(Phase::RequestHeaders);
        }
        if !self.config.response.is_empty() {
            phases.push(Phase::ResponseHeaders);
        }
        phases
    }

    fn on_request(&self, request: &Request) -> RequestDecision {
        let edits = &self.config.request;
        let mut changes = RequestChanges::new();
        for name in &edits.remove {
            changes = changes.remove_header(name);
        }
        for (name, value) in &edits.set {
            changes = changes.set_header(name, value.as_bytes());
        }
        for (name, value) in &edits.append {
            changes = changes.append_header(name, value.as_bytes());
        }
        for (name, value) in &edits.add {
            if request.header_bytes(name).is_none() {
                changes = changes.set_header(name, value.as_bytes());
            }
        }
        RequestDecision::Continue(changes)
    }

    fn on_response(&self, _request: &Request, response: &ResponseView) -> ResponseDecision {
        let edits = &self.config.response;
        let mut changes = ResponseChanges::new();
        for name in &edits.remove {
            changes = changes.remove_header(name);
        }
        for (name, value) in &edits.set {
            changes = changes.set_header(name, value.as_bytes());
        }
        for (name, value) in &edits.append {
            changes = changes.append_header(name, value.as_bytes());
        }
        for (name, value) in &edits.add {
            if response.header(name).is_none() {
                changes = changes.set_header(name, value.as_bytes());
            }
        }
        ResponseDecision::Continue(changes)
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

export_filter!(Headers);
