//! The rules that need no state: who the request says it is (User-Agent) and the headers
//! a browser always sends.

use regex_lite::{Regex, RegexBuilder};
use weir_plugin_sdk::Request;

/// What `"browser"` in `require_headers` stands for: the headers every browser sends on
/// every request (the Fetch standard's request headers; `sec-fetch-*` only over HTTPS, so
/// not in the preset).
pub const BROWSER_HEADERS: [&str; 3] = ["accept", "accept-language", "accept-encoding"];

/// A compiled pattern larger than this is refused (`regex-lite`'s default allows 10 MiB).
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;

/// The User-Agent and header rules.
#[derive(Debug)]
pub struct AgentRules {
    deny: Vec<Regex>,
    allow: Vec<Regex>,
    require: Vec<String>,
    deny_empty: bool,
}

/// Compiles `patterns` case-insensitively; `key` names the list in the error.
fn patterns(key: &str, patterns: &[String]) -> Result<Vec<Regex>, String> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            RegexBuilder::new(p)
                .case_insensitive(true)
                .size_limit(PATTERN_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("{key}[{i}]: {e}"))
        })
        .collect()
}

impl AgentRules {
    /// Compiles the lists; `require` is header names or `"browser"`.
    pub fn new(
        deny: &[String],
        allow: &[String],
        require: &[String],
        deny_empty: bool,
    ) -> Result<Self, String> {
        let mut names: Vec<String> = Vec::new();
        for name in require {
            let name = name.trim().to_ascii_lowercase();
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !valid {
                return Err(format!("require_headers: {name:?} is not a header name"));
            }
            match name.as_str() {
                "browser" => names.extend(BROWSER_HEADERS.map(String::from)),
                _ => names.push(name),
            }
        }
        names.sort();
        names.dedup();
        Ok(Self {
            deny: patterns("deny_user_agents", deny)?,
            allow: patterns("allow_user_agents", allow)?,
            require: names,
            deny_empty,
        })
    }

    /// Whether no rule can refuse anything.
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.require.is_empty() && !self.deny_empty
    }

    /// Why `request` is refused, if it is. An agent on the allow list passes these rules
    /// (not the budget: a User-Agent costs nothing to forge).
    pub fn refusal(&self, request: &Request) -> Option<String> {
        let agent = request.header_bytes("user-agent");
        let agent = agent.as_deref().map(String::from_utf8_lossy);
        let agent = agent.as_deref().map(str::trim).unwrap_or_default();
        if agent.is_empty() && self.deny_empty {
            return Some("a request without a User-Agent is refused".into());
        }
        if self.allow.iter().any(|p| p.is_match(agent)) {
            return None;
        }
        if self.deny.iter().any(|p| p.is_match(agent)) {
            return Some("the User-Agent is denied".into());
        }
        let missing = self
            .require
            .iter()
            .find(|name| request.header_bytes(name).is_none_or(|v| v.is_empty()))?;
        Some(format!("the {missing} header is missing"))
    }
}
