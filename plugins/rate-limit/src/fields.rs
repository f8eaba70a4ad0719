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

/// Appends one List member (RFC 9651 §4.1.1: members separated by ", "): the name as an
/// sf-string with its integer parameters.
fn member(out: &mut String, name: &str, parameters: [(char, u64); 2]) {
    if !out.is_empty() {
        out.push_str(", ");
    }
    sf_string(out, name);
    for (key, value) in parameters {
        let _ = write!(out, ";{key}={value}");
    }
}

/// `RateLimit-Policy`: every limit with its quota `q` and window `w` in seconds.
pub fn policy_field(limits: &[Limit]) -> String {
    let mut out = String::new();
    for limit in limits {
        let window = ceil_secs(limit.policy.window_ms).max(1);
        member(
            &mut out,
            &limit.name,
            [('q', limit.policy.limit), ('w', window)],
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
        let reset = ceil_secs(decision.reset_ms);
        member(
            &mut out,
            &limit.name,
            [('r', decision.remaining), ('t', reset)],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use weir_plugin_sdk::host::limits::{Algorithm, Policy};

    use super::*;

    fn limit(name: &str, limit: u64, window_s: u64) -> Limit {
        Limit {
            name: name.to_string(),
            policy: Policy {
                algorithm: Algorithm::FixedWindow,
                limit,
                window_ms: window_s * 1000,
            },
        }
    }

    fn decision(remaining: u64, reset_ms: u64) -> Decision {
        Decision {
            allowed: true,
            remaining,
            reset_ms,
            retry_after_ms: 0,
        }
    }

    /// draft-ietf-httpapi-ratelimit-headers-09 §3 (`RateLimit-Policy`): the example of a
    /// burst and a daily policy. The draft prints the members without a space after the
    /// comma; RFC 9651 §4.1.1 serialises a List with ", ", and parsers take both.
    #[test]
    fn the_policy_field_of_the_draft_example() {
        let limits = [limit("burst", 100, 60), limit("daily", 1000, 86400)];
        assert_eq!(
            policy_field(&limits),
            r#""burst";q=100;w=60, "daily";q=1000;w=86400"#
        );
    }

    /// draft-ietf-httpapi-ratelimit-headers-09 §4 (`RateLimit`): 50 left in "default",
    /// whole again in 30 seconds.
    #[test]
    fn the_remaining_field_of_the_draft_example() {
        let limits = [limit("default", 100, 60)];
        let field = remaining_field(&limits, &[Some(decision(50, 30_000))]);
        assert_eq!(field, r#""default";r=50;t=30"#);
    }

    #[test]
    fn limits_not_reached_are_left_out_and_times_round_up() {
        let limits = [limit("a", 1, 1), limit("b", 2, 1)];
        let field = remaining_field(&limits, &[None, Some(decision(0, 1))]);
        assert_eq!(field, r#""b";r=0;t=1"#);
        // A sub-second window is announced as one second.
        let fast = [Limit {
            policy: Policy {
                window_ms: 250,
                ..limit("fast", 5, 1).policy
            },
            ..limit("fast", 5, 1)
        }];
        assert_eq!(policy_field(&fast), r#""fast";q=5;w=1"#);
        // sf-string escapes (RFC 9651 §4.1.6).
        assert_eq!(
            policy_field(&[limit(r#"a"b\c"#, 1, 1)]),
            r#""a\"b\\c";q=1;w=1"#
        );
    }
}
