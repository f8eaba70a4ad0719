//! HTTP rules: a method and a path template (`GET /users/{id}`) that a request matches,
//! binding each `{name}` to one path segment (percent-decoded).

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use weir_plugin_sdk::{Request, RequestDecision, Response};

/// What happens to a request that no rule matches.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unmatched {
    /// Answer 404 without calling the upstream (the default).
    #[default]
    Reject,
    /// Send it upstream unchanged.
    Pass,
}

impl Unmatched {
    /// The decision for an unmatched request; `code` names the refusal.
    pub fn decide(self, code: &str, request: &Request<'_>) -> RequestDecision {
        match self {
            Self::Pass => RequestDecision::proceed(),
            Self::Reject => RequestDecision::Respond(Response::error(
                404,
                code,
                "nothing is configured for this method and path",
                request,
            )),
        }
    }
}

/// One segment of a path template.
#[derive(Debug, PartialEq)]
enum Segment {
    /// Must equal the request's segment.
    Literal(String),
    /// Binds the request's segment to this name.
    Var(String),
}

/// A parsed HTTP rule.
#[derive(Debug)]
pub struct Template {
    method: String,
    segments: Vec<Segment>,
}

/// Path variables bound by a match, in template order.
pub type Vars = Vec<(String, String)>;

impl Template {
    /// Parses `"METHOD /path/{var}/..."`.
    pub fn parse(rule: &str) -> Result<Self, String> {
        let (method, path) = rule
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("rule {rule:?}: expected \"METHOD /path\""))?;
        let method = method.to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("rule {rule:?}: invalid method"));
        }
        let path = path.trim();
        let rest = path
            .strip_prefix('/')
            .ok_or_else(|| format!("rule {rule:?}: the path must start with '/'"))?;
        let mut segments = Vec::new();
        for segment in rest.split('/').filter(|s| !s.is_empty()) {
            segments.push(match segment.strip_prefix('{') {
                Some(var) => {
                    let name = var
                        .strip_suffix('}')
                        .filter(|n| !n.is_empty() && !n.contains(['{', '}']))
                        .ok_or_else(|| format!("rule {rule:?}: bad variable {segment:?}"))?;
                    Segment::Var(name.to_string())
                }
                None if segment.contains(['{', '}']) => {
                    return Err(format!("rule {rule:?}: a variable must be a whole segment"));
                }
                None => Segment::Literal(segment.to_string()),
            });
        }
        Ok(Self { method, segments })
    }

    /// The variables if `method` and `path` (without query) match.
    pub fn matches(&self, method: &str, path: &str) -> Option<Vars> {
        if method != self.method {
            return None;
        }
        let mut parts = path.split('/').filter(|s| !s.is_empty());
        let mut vars = Vec::new();
        for segment in &self.segments {
            let part = parts.next()?;
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return None,
                Segment::Var(name) => {
                    let value = percent_decode_str(part).decode_utf8().ok()?;
                    vars.push((name.clone(), value.into_owned()));
                }
            }
        }
        parts.next().is_none().then_some(vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_variables_and_rejects_other_paths() {
        let t = Template::parse("get /users/{id}/posts/{post}").unwrap();
        assert_eq!(
            t.matches("GET", "/users/7/posts/a%20b"),
            Some(vec![
                ("id".into(), "7".into()),
                ("post".into(), "a b".into())
            ])
        );
        assert_eq!(t.matches("POST", "/users/7/posts/1"), None);
        assert_eq!(t.matches("GET", "/users/7/posts"), None);
        assert_eq!(t.matches("GET", "/users/7/posts/1/x"), None);
        assert_eq!(t.matches("GET", "/people/7/posts/1"), None);
    }

    #[test]
    fn refuses_malformed_rules() {
        for rule in ["/users", "GET users", "GET /u/{}", "GET /u/x{id}", "G3T /u"] {
            assert!(Template::parse(rule).is_err(), "{rule}");
        }
    }
}
