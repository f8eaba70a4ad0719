//! Typed parameters (query, path, header): one rule checks one value, and the path
//! template finds the path parameters.

use regex::Regex;

use crate::config::{ParamConfig, ParamType};
use crate::refusal::Violation;

/// A validated parameter rule.
#[derive(Debug)]
pub struct ParamRule {
    kind: ParamType,
    /// Whether the parameter must be present.
    pub required: bool,
    minimum: Option<f64>,
    maximum: Option<f64>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<Regex>,
    values: Vec<String>,
}

/// Patterns larger than this once compiled are refused (the `regex` crate's own default
/// is 10 MiB, too much for a filter instance).
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;

impl ParamRule {
    /// Checks that the keys fit the type.
    pub fn new(config: ParamConfig) -> Result<Self, String> {
        let numeric = matches!(config.kind, ParamType::Integer | ParamType::Number);
        if !numeric && (config.minimum.is_some() || config.maximum.is_some()) {
            return Err("minimum and maximum need type integer or number".into());
        }
        if let (Some(min), Some(max)) = (config.minimum, config.maximum)
            && min > max
        {
            return Err("minimum is greater than maximum".into());
        }
        if let (Some(min), Some(max)) = (config.min_length, config.max_length)
            && min > max
        {
            return Err("min_length is greater than max_length".into());
        }
        let values = match (config.kind, config.values) {
            (ParamType::Enum, Some(values)) if !values.is_empty() => values,
            (ParamType::Enum, _) => return Err("type enum needs values".into()),
            (_, Some(_)) => return Err("values need type enum".into()),
            (_, None) => Vec::new(),
        };
        let pattern = match config.pattern {
            Some(p) => Some(
                regex::RegexBuilder::new(&p)
                    .size_limit(PATTERN_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("pattern: {e}"))?,
            ),
            None => None,
        };
        Ok(Self {
            kind: config.kind,
            required: config.required,
            minimum: config.minimum,
            maximum: config.maximum,
            min_length: config.min_length,
            max_length: config.max_length,
            pattern,
            values,
        })
    }

    /// The first rule `value` breaks, named as the JSON Schema keyword of the same meaning
    /// (`type`, `enum`, `minimum`, `maximum`, `minLength`, `maxLength`, `pattern`).
    pub fn check(&self, field: &str, value: &str) -> Option<Violation> {
        let broke =
            |rule: &'static str, message: String| Some(Violation::new(field, rule, message));
        let number = match self.kind {
            ParamType::String => None,
            ParamType::Integer => match value.parse::<i64>() {
                Ok(n) => Some(n as f64),
                Err(_) => return broke("type", format!("{value:?} is not an integer")),
            },
            ParamType::Number => match value.parse::<f64>() {
                Ok(n) if n.is_finite() => Some(n),
                _ => return broke("type", format!("{value:?} is not a number")),
            },
            ParamType::Boolean => match value {
                "true" | "false" => None,
                _ => return broke("type", format!("{value:?} is not true or false")),
            },
            ParamType::Enum => match self.values.iter().any(|v| v == value) {
                true => None,
                false => {
                    return broke("enum", format!("{value:?} is not one of {:?}", self.values));
                }
            },
        };
        if let (Some(n), Some(min)) = (number, self.minimum)
            && n < min
        {
            return broke("minimum", format!("{value} is less than {min}"));
        }
        if let (Some(n), Some(max)) = (number, self.maximum)
            && n > max
        {
            return broke("maximum", format!("{value} is greater than {max}"));
        }
        let chars = value.chars().count();
        if let Some(min) = self.min_length
            && chars < min
        {
            return broke("minLength", format!("{chars} characters, fewer than {min}"));
        }
        if let Some(max) = self.max_length
            && chars > max
        {
            return broke("maxLength", format!("{chars} characters, more than {max}"));
        }
        if let Some(pattern) = &self.pattern
            && !pattern.is_match(value)
        {
            return broke("pattern", format!("does not match {:?}", pattern.as_str()));
        }
        None
    }
}

/// The checks of the parameters `rules` (named `<section>.<name>`) against the values found
/// by `values_of`: each rule's `required`, and each value present.
pub fn check_all(
    section: &str,
    rules: &[(String, ParamRule)],
    values_of: impl Fn(&str) -> Vec<Result<String, String>>,
    into: &mut Vec<Violation>,
) {
    for (name, rule) in rules {
        let field = format!("{section}.{name}");
        let values = values_of(name);
        if values.is_empty() && rule.required {
            into.push(Violation::new(&field, "required", "is required".into()));
        }
        for value in values {
            let violation = match value {
                Ok(value) => rule.check(&field, &value),
                Err(why) => Some(Violation::new(&field, "type", why)),
            };
            into.extend(violation);
        }
    }
}

/// One segment of a path template.
#[derive(Debug)]
enum Segment {
    Literal(String),
    Param(String, Option<ParamRule>),
}

/// A path template, `/orders/{id}/items/{n}`: literal segments and `{name}` parameters,
/// each a whole segment.
#[derive(Debug)]
pub struct PathTemplate {
    text: String,
    segments: Vec<Segment>,
}

impl PathTemplate {
    /// Parses `template`, attaching `rules` to its parameters; a rule for a name the
    /// template lacks is refused.
    pub fn parse(template: &str, mut rules: Vec<(String, ParamRule)>) -> Result<Self, String> {
        let bad = |why: &str| format!("path: {template:?} {why}");
        let Some(rest) = template.strip_prefix('/') else {
            return Err(bad("must start with /"));
        };
        let mut segments = Vec::new();
        for part in rest.split('/') {
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => {
                    let valid = !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    if !valid {
                        return Err(bad("has a parameter name that is not [A-Za-z0-9_]+"));
                    }
                    let taken = segments
                        .iter()
                        .any(|s| matches!(s, Segment::Param(n, _) if n == name));
                    if taken {
                        return Err(bad(&format!("names {{{name}}} twice")));
                    }
                    let rule = rules
                        .iter()
                        .position(|(n, _)| n == name)
                        .map(|i| rules.swap_remove(i).1);
                    Segment::Param(name.to_string(), rule)
                }
                None if part.contains(['{', '}']) => {
                    return Err(bad("has a brace outside a whole-segment {name}"));
                }
                None => Segment::Literal(part.to_string()),
            };
            segments.push(segment);
        }
        if let Some((name, _)) = rules.first() {
            return Err(format!(
                "path_params.{name}: not a parameter of {template:?}"
            ));
        }
        Ok(Self {
            text: template.to_string(),
            segments,
        })
    }

    /// Checks `path` (without its query) against the template: a path of another shape is
    /// one violation of `path`/`template`; else each parameter's rule.
    pub fn check(&self, path: &str, into: &mut Vec<Violation>) {
        let parts: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        let decoded = |raw: &str| {
            percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map(|s| s.into_owned())
        };
        let shaped = parts.len() == self.segments.len()
            && self.segments.iter().zip(&parts).all(|(s, raw)| match s {
                Segment::Literal(text) => decoded(raw).is_ok_and(|d| d == *text),
                Segment::Param(..) => !raw.is_empty(),
            });
        if !shaped {
            let message = format!("the path does not match {}", self.text);
            into.push(Violation::new("path", "template", message));
            return;
        }
        for (segment, raw) in self.segments.iter().zip(parts) {
            let Segment::Param(name, rule) = segment else {
                continue;
            };
            let field = format!("path.{name}");
            let violation = match decoded(raw) {
                Err(_) => Some(Violation::new(&field, "type", "is not UTF-8".into())),
                Ok(value) => rule.as_ref().and_then(|r| r.check(&field, &value)),
            };
            into.extend(violation);
        }
    }
}
