//! The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-09), both Lists
//! of Structured Field Items (RFC 9651) named by policy:
//! `RateLimit-Policy: "10-per-1s";q=10;w=1` and `RateLimit: "10-per-1s";r=3;t=1`.

use std::fmt::Write;

use weir_plugin_sdk::host::limits::Decision;

use crate::config::Limit;

/// An sf-string: quoted, with `"` and `\` escaped (names are printable ASCII, checked at
/// config time).
fn sf_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Whole seconds, rounded up (the fields carry integers).
pub fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// `RateLimit-Policy`: every limit with its quota `q` and window `w` in seconds.
pub fn policy_field(limits: &[Limit]) -> String {
    let mut out = String::new();
    for limit in limits {
        if !out.is_empty() {
            out.push_str(", ");
        }
        sf_string(&mut out, &limit.name);
        let _ = write!(
            out,
            ";q={};w={}",
            limit.policy.limit,
            ceil_secs(limit.policy.window_ms).max(1)
        );
    }
    out
}

/// `RateLimit`: for each limit the request reached, what remains `r` and the seconds `t`
/// until it is whole.
pub fn remaining_field(limits: &[Limit], decisions: &[Option<Decision>]) -> String {
    let mut out = String::new();
    for (limit, decision) in limits.iter().zip(decisions) {
        let Some(decision) = decision else {
            continue;
        };
        if !out.is_empty() {
            out.push_str(", ");
        }
        sf_string(&mut out, &limit.name);
        let _ = write!(
            out,
            ";r={};t={}",
            decision.remaining,
            ceil_secs(decision.reset_ms)
        );
    }
    out
}
