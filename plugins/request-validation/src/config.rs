//! The filter's config, as operators write it, and its validation into [`Settings`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::body::BodySchema;
use crate::params::{ParamRule, PathTemplate};

/// The config as written in the gateway config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A JSON Schema (draft 2020-12) for the body: a table, or a string of JSON text.
    pub body_schema: Option<Value>,
    /// The methods whose body is required and validated (default POST, PUT, PATCH).
    #[serde(default = "default_body_methods")]
    pub body_methods: Vec<String>,
    /// The largest body accepted, in bytes (default: the gateway's buffer limit).
    pub max_body_bytes: Option<u64>,
    /// The media types a request with a body may carry (default: any).
    #[serde(default)]
    pub content_types: Vec<String>,
    /// Query parameters by name.
    #[serde(default)]
    pub query: BTreeMap<String, ParamConfig>,
    /// A path template, `/orders/{id}`; its `{name}` segments are path parameters.
    pub path: Option<String>,
    /// Rules for the template's path parameters by name (default: any text).
    #[serde(default)]
    pub path_params: BTreeMap<String, ParamConfig>,
    /// Header rules by name (any case).
    #[serde(default)]
    pub headers: BTreeMap<String, ParamConfig>,
    /// At most this many errors in a refusal (default 10).
    #[serde(default = "default_max_errors")]
    pub max_errors: usize,
    /// Whether `format` (`email`, `date-time`, …) is asserted, not only annotated (default
    /// false, as draft 2020-12 says).
    #[serde(default)]
    pub format_assertions: bool,
}

/// One parameter's rule, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamConfig {
    /// `string` (default), `integer`, `number`, `boolean` or `enum`.
    #[serde(rename = "type", default)]
    pub kind: ParamType,
    /// Whether the parameter must be present (default false; path parameters always are).
    #[serde(default)]
    pub required: bool,
    /// The smallest value (`integer` and `number`).
    pub minimum: Option<f64>,
    /// The largest value (`integer` and `number`).
    pub maximum: Option<f64>,
    /// The fewest characters.
    pub min_length: Option<usize>,
    /// The most characters.
    pub max_length: Option<usize>,
    /// A regular expression the value must match somewhere (anchor it with `^…$`).
    pub pattern: Option<String>,
    /// The values allowed (`enum`).
    pub values: Option<Vec<String>>,
}

/// The parameter types.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Any text.
    #[default]
    String,
    /// An integer that fits in 64 bits, `-12`.
    Integer,
    /// A finite decimal number, `-1.5e3`.
    Number,
    /// `true` or `false`.
    Boolean,
    /// One of `values`.
    Enum,
}

fn default_body_methods() -> Vec<String> {
    ["POST", "PUT", "PATCH"].map(String::from).to_vec()
}

fn default_max_errors() -> usize {
    10
}

/// The validated config.
pub struct Settings {
    /// The compiled body schema.
    pub body: Option<BodySchema>,
    /// Upper-case methods whose body is validated.
    pub body_methods: Vec<String>,
    /// The body cap.
    pub max_body_bytes: Option<u64>,
    /// Lower-case media types (`type/subtype` or `type/*`); empty: any.
    pub content_types: Vec<String>,
    /// Query rules.
    pub query: Vec<(String, ParamRule)>,
    /// The path template and its parameters' rules.
    pub path: Option<PathTemplate>,
    /// Header rules, names lower-case.
    pub headers: Vec<(String, ParamRule)>,
    /// The cap on errors per refusal.
    pub max_errors: usize,
}

impl Settings {
    /// Validates `config`; an error names the key at fault.
    pub fn from_config(config: Config) -> Result<Self, String> {
        if config.max_errors == 0 {
            return Err("max_errors must be at least 1".into());
        }
        if config.max_body_bytes == Some(0) {
            return Err("max_body_bytes must be at least 1".into());
        }
        let body = match config.body_schema {
            Some(schema) => Some(
                BodySchema::compile(schema, config.format_assertions)
                    .map_err(|e| format!("body_schema: {e}"))?,
            ),
            None => None,
        };
        let content_types = config
            .content_types
            .iter()
            .map(|t| media_type(t).map_err(|e| format!("content_types: {e}")))
            .collect::<Result<_, _>>()?;
        let body_methods = config
            .body_methods
            .iter()
            .map(
                |m| match m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                    true => Err(format!("body_methods: {m:?} is not a method")),
                    false => Ok(m.to_ascii_uppercase()),
                },
            )
            .collect::<Result<_, _>>()?;
        let rules = |section: &str, map: BTreeMap<String, ParamConfig>, lower: bool| {
            map.into_iter()
                .map(|(name, rule)| {
                    let rule =
                        ParamRule::new(rule).map_err(|e| format!("{section}.{name}: {e}"))?;
                    let name = if lower {
                        name.to_ascii_lowercase()
                    } else {
                        name
                    };
                    Ok((name, rule))
                })
                .collect::<Result<Vec<_>, String>>()
        };
        let query = rules("query", config.query, false)?;
        let headers = rules("headers", config.headers, true)?;
        let path_params = rules("path_params", config.path_params, false)?;
        let path = match config.path {
            Some(template) => Some(PathTemplate::parse(&template, path_params)?),
            None if !path_params.is_empty() => {
                return Err("path_params: give the path template in `path`".into());
            }
            None => None,
        };
        let settings = Self {
            body,
            body_methods,
            max_body_bytes: config.max_body_bytes,
            content_types,
            query,
            path,
            headers,
            max_errors: config.max_errors,
        };
        if settings.checks_nothing() {
            return Err(
                "give body_schema, max_body_bytes, content_types, query, path or \
                        headers: an empty filter validates nothing"
                    .into(),
            );
        }
        Ok(settings)
    }

    fn checks_nothing(&self) -> bool {
        self.body.is_none()
            && self.max_body_bytes.is_none()
            && self.content_types.is_empty()
            && self.query.is_empty()
            && self.path.is_none()
            && self.headers.is_empty()
    }
}

/// A media type as configured, `application/json` or `text/*`, lower-cased.
fn media_type(text: &str) -> Result<String, String> {
    let lower = text.trim().to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
    };
    match lower.split_once('/') {
        Some((kind, sub)) if token(kind) && token(sub) && kind != "*" => Ok(lower),
        _ => Err(format!("{text:?} is not a media type (type/subtype)")),
    }
}

/// Whether the request's `Content-Type` value is one of `allowed` (`type/*` matches any
/// subtype); parameters such as `charset` are ignored.
pub fn content_type_allowed(allowed: &[String], header: Option<&str>) -> bool {
    let Some(header) = header else {
        return false;
    };
    let essence = header.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    let Some((kind, _)) = essence.split_once('/') else {
        return false;
    };
    allowed
        .iter()
        .any(|a| *a == essence || a.strip_suffix("/*").is_some_and(|k| k == kind))
}
