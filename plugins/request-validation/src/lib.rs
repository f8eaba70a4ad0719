//! `request-validation`: refuses requests that break the route's contract before the
//! upstream sees them: the body against a JSON Schema (draft 2020-12, compiled once by
//! `boon`), typed query, path and header parameters, the body's size and media type.
//! A refusal names each field and the rule it broke:
//!
//! ```json
//! {"error": "invalid_request", "message": "/items/0/qty: must be >=1, but got 0",
//!  "request_id": "…", "errors": [{"field": "/items/0/qty", "rule": "minimum",
//!  "message": "must be >=1, but got 0"}]}
//! ```
//!
//! 400 `invalid_request` for broken rules (and a body that is not JSON), 413
//! `body_too_large`, 415 `unsupported_media_type`, 411 `length_required`. The body is
//! buffered only when `body_schema` is given. See `docs/plugins/request-validation.md`.

mod body;
mod config;
mod params;
mod refusal;
#[cfg(test)]
mod suite;
#[cfg(test)]
mod tests;

use weir_plugin_sdk::prelude::*;

use crate::config::{Config, Settings, content_type_allowed};
use crate::refusal::{Kind, Violation, respond};

/// The filter: its rules, compiled.
struct RequestValidation {
    settings: Settings,
}

/// What a request says of its body in its headers.
struct DeclaredBody {
    /// `Content-Length`, when given and a number.
    length: Option<u64>,
    /// Whether it carries a body at all (a length above 0, or `Transfer-Encoding`).
    present: bool,
}

impl DeclaredBody {
    fn of(request: &Request) -> Self {
        let length = request
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let chunked = request.header_bytes("transfer-encoding").is_some();
        Self {
            length,
            present: chunked || length.is_some_and(|n| n > 0),
        }
    }
}

impl RequestValidation {
    /// The refusal `request` earns, if any: a body too large or of the wrong type first
    /// (nothing else is worth reading then), else every broken rule.
    fn judge(&self, request: &Request) -> Option<(Kind, Vec<Violation>)> {
        let s = &self.settings;
        let declared = DeclaredBody::of(request);
        let buffered = request.body();
        if let Some(max) = s.max_body_bytes {
            let size = buffered.map(|b| b.len() as u64).or(declared.length);
            if let Some(size) = size.filter(|&n| n > max) {
                let message = format!("the body is {size} bytes, more than the {max} allowed");
                let violation = Violation::new("", "max_body_bytes", message);
                return Some((Kind::TooLarge, vec![violation]));
            }
            if size.is_none() && declared.present {
                let message = "a body without Content-Length cannot be measured here".into();
                let violation = Violation::new("header.content-length", "required", message);
                return Some((Kind::LengthRequired, vec![violation]));
            }
        }
        let has_body = declared.present || buffered.is_some_and(|b| !b.is_empty());
        if !s.content_types.is_empty() && has_body {
            let given = request.header("content-type");
            if !content_type_allowed(&s.content_types, given.as_deref()) {
                let (rule, message) = match given {
                    None => ("required", "is required with a body".to_string()),
                    Some(t) => ("enum", format!("{t:?} is not one of {:?}", s.content_types)),
                };
                let violation = Violation::new("header.content-type", rule, message);
                return Some((Kind::MediaType, vec![violation]));
            }
        }
        let mut violations = Vec::new();
        self.check_parameters(request, &mut violations);
        self.check_body(request, &mut violations);
        (!violations.is_empty()).then_some((Kind::Invalid, violations))
    }

    /// The path template's parameters, the query's and the headers'.
    fn check_parameters(&self, request: &Request, into: &mut Vec<Violation>) {
        let s = &self.settings;
        if let Some(template) = &s.path {
            template.check(request.path_only(), into);
        }
        if !s.query.is_empty() {
            let query = request.query().unwrap_or_default();
            let pairs: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
            let values_of = |name: &str| {
                let found = pairs.iter().filter(|(n, _)| n == name);
                found.map(|(_, v)| Ok(v.to_string())).collect()
            };
            params::check_all("query", &s.query, values_of, into);
        }
        let values_of = |name: &str| {
            let values = request.header_all(name).into_iter();
            values
                .map(|v| String::from_utf8(v).map_err(|_| "is not UTF-8".to_string()))
                .collect()
        };
        params::check_all("header", &s.headers, values_of, into);
    }

    /// The body against the schema, for the methods that carry one.
    fn check_body(&self, request: &Request, into: &mut Vec<Violation>) {
        let s = &self.settings;
        let Some(schema) = &s.body else {
            return;
        };
        if !s.body_methods.iter().any(|m| m == request.method()) {
            return;
        }
        let body = request.body().unwrap_or_default();
        if body.is_empty() {
            into.push(Violation::new(
                "",
                "required",
                "a JSON body is required".into(),
            ));
            return;
        }
        match serde_json::from_slice(body) {
            Ok(value) => schema.validate(&value, s.max_errors, into),
            Err(e) => into.push(Violation::new("", "json", format!("not JSON: {e}"))),
        }
    }
}

impl Filter for RequestValidation {
    type Config = Config;
    const NAME: &'static str = "request-validation";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::RequestHeaders, Phase::RequestBody];

    /// The body is buffered only when a schema checks it.
    fn phases(&self) -> Vec<Phase> {
        match self.settings.body {
            Some(_) => Self::PHASES.to_vec(),
            None => vec![Phase::RequestHeaders],
        }
    }

    fn new(config: Config) -> Result<Self, String> {
        Ok(Self {
            settings: Settings::from_config(config)?,
        })
    }

    fn on_request(&self, request: &Request) -> RequestDecision {
        match self.judge(request) {
            None => RequestDecision::proceed(),
            Some((kind, violations)) => RequestDecision::Respond(respond(
                kind,
                &violations,
                self.settings.max_errors,
                request,
            )),
        }
    }
}

export_filter!(RequestValidation);
