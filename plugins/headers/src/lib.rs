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
use weir_plugin_sdk::prelude::*;

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
    /// Adds these edits to `changes`; `present` tells whether a header is already there.
    fn apply<C: HeaderChanges>(&self, mut changes: C, present: impl Fn(&str) -> bool) -> C {
        for name in &self.remove {
            changes = changes.remove_header(name);
        }
        for (name, value) in &self.set {
            changes = changes.set_header(name, value.as_bytes());
        }
        for (name, value) in &self.append {
            changes = changes.append_header(name, value.as_bytes());
        }
        for (name, value) in self.add.iter().filter(|(name, _)| !present(name)) {
            changes = changes.set_header(name, value.as_bytes());
        }
        changes
    }

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
        let present = |name: &str| request.header_bytes(name).is_some();
        RequestDecision::Continue(self.config.request.apply(RequestChanges::new(), present))
    }

    fn on_response(&self, _request: &Request, response: &ResponseView) -> ResponseDecision {
        let present = |name: &str| response.header(name).is_some();
        ResponseDecision::Continue(self.config.response.apply(ResponseChanges::new(), present))
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

export_filter!(Headers);

#[cfg(test)]
mod tests {
    use weir_plugin_sdk::testing::{FakeRequest, FakeResponse};

    use super::*;

    fn headers(config: serde_json::Value) -> Result<Headers, String> {
        Headers::new(serde_json::from_value(config).map_err(|e| e.to_string())?)
    }

    #[test]
    fn request_edits_remove_set_append_and_add_only_when_absent() {
        let filter = headers(serde_json::json!({ "request": {
            "remove": ["Cookie"], "set": {"x-env": "prod"},
            "append": {"x-tag": "b"}, "add": {"x-present": "no", "x-absent": "yes"} } }))
        .unwrap();
        let request = FakeRequest::get("/")
            .header("cookie", "a=1")
            .header("x-tag", "a")
            .header("x-present", "kept");
        let decision = filter.on_request(&request.view());
        let changes = decision.changes().unwrap();
        assert_eq!(changes.removed_headers(), ["cookie"]);
        assert_eq!(changes.set_header_value("x-env"), Some("prod"));
        assert_eq!(changes.set_header_value("x-absent"), Some("yes"));
        assert_eq!(changes.set_header_value("x-present"), None);
        let after = request.apply(changes);
        let tags = after.view().header_all("x-tag");
        assert_eq!(tags, [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(after.view().header("cookie"), None);
        assert_eq!(after.view().header("x-present").as_deref(), Some("kept"));
    }

    #[test]
    fn response_edits_apply_to_the_response() {
        let filter = headers(serde_json::json!({ "response": {
            "set": {"x-served-by": "weir"}, "add": {"cache-control": "no-store"} } }))
        .unwrap();
        let request = FakeRequest::get("/").in_response_phase();
        let cached = FakeResponse::new(200).header("cache-control", "max-age=60");
        let decision = filter.on_response(&request.view(), &cached.view());
        let changes = decision.changes().unwrap();
        assert_eq!(changes.set_header_value("x-served-by"), Some("weir"));
        assert_eq!(changes.set_header_value("cache-control"), None);
        let bare = FakeResponse::new(200);
        let decision = filter.on_response(&request.view(), &bare.view());
        let changes = decision.changes().unwrap();
        assert_eq!(changes.set_header_value("cache-control"), Some("no-store"));
    }

    #[test]
    fn the_filter_takes_part_only_in_the_directions_it_edits() {
        let request_only = headers(serde_json::json!({ "request": { "remove": ["a"] } }));
        assert_eq!(request_only.unwrap().phases(), [Phase::RequestHeaders]);
        let response_only = headers(serde_json::json!({ "response": { "set": {"a": "1"} } }));
        assert_eq!(response_only.unwrap().phases(), [Phase::ResponseHeaders]);
        assert!(headers(serde_json::json!({})).unwrap().phases().is_empty());
    }

    #[test]
    fn names_that_are_not_tokens_and_unknown_keys_are_refused() {
        for bad in ["", "x y", "x:y", "é"] {
            let config = serde_json::json!({ "request": { "set": { bad: "v" } } });
            let error = headers(config).err().expect(bad);
            assert!(error.contains("invalid header name"), "{error}");
        }
        assert!(headers(serde_json::json!({ "request": { "rename": {} } })).is_err());
    }
}
