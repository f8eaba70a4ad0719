//! The parts of RFC 9110/9111 the filter applies itself: `Cache-Control` directives the
//! policy crate does not expose (RFC 5861's stale windows, the revalidation directives),
//! `Vary` matching against a stored entry, and conditional requests answered from the
//! cache (RFC 9110 §13.1.1–§13.1.3 with the weak comparison of §8.8.3.2).

use std::time::SystemTime;

use weir_plugin_sdk::Request;

use crate::entry::Entry;

/// The value of `directive` in `Cache-Control` field values: `None` when absent,
/// `Some(None)` when present without a value.
pub fn directive<'a>(values: &'a [Vec<u8>], directive: &str) -> Option<Option<&'a str>> {
    values
        .iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|d| {
            let (name, value) = match d.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (d, None),
            };
            name.eq_ignore_ascii_case(directive).then_some(value)
        })
}

/// A directive's delta-seconds in ms, if present and well-formed.
pub fn seconds_ms(values: &[Vec<u8>], name: &str) -> Option<u64> {
    let seconds: u64 = directive(values, name)??.parse().ok()?;
    Some(seconds.saturating_mul(1000))
}

/// Whether a response's directives forbid serving it stale (RFC 9111 §5.2.2.2, §5.2.2.8,
/// §5.2.2.4: `no-cache` means revalidate every time).
pub fn must_revalidate(values: &[Vec<u8>]) -> bool {
    ["must-revalidate", "proxy-revalidate", "no-cache"]
        .iter()
        .any(|d| directive(values, d).is_some())
}

/// Whether a request asks the cache not to answer from storage (`no-cache`, `max-age=0`,
/// or `Pragma: no-cache` without `Cache-Control`, RFC 9111 §5.2.1, §5.4).
pub fn request_no_cache(request: &Request<'_>) -> bool {
    let cc = request.header_all("cache-control");
    if cc.is_empty() {
        return request
            .header("pragma")
            .is_some_and(|p| p.to_ascii_lowercase().contains("no-cache"));
    }
    directive(&cc, "no-cache").is_some() || directive(&cc, "max-age") == Some(Some("0"))
}

/// Whether `request` carries the values `entry` was stored for, for every field its
/// `Vary` names (RFC 9111 §4.1).
pub fn vary_matches(entry: &Entry, request: &Request<'_>) -> bool {
    entry
        .vary
        .iter()
        .all(|(name, stored)| request.header_bytes(name).as_deref() == stored.as_deref())
}

/// The entity tags of an `If-None-Match` value; `None` for `*`.
fn tags(value: &str) -> Option<Vec<&str>> {
    if value.trim() == "*" {
        return None;
    }
    Some(value.split(',').map(str::trim).collect())
}

/// Whether two entity tags match by the weak comparison (RFC 9110 §8.8.3.2).
fn weak_match(a: &str, b: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    opaque(a) == opaque(b)
}

/// Whether a GET or HEAD with these preconditions (`If-None-Match`, else
/// `If-Modified-Since`) is answered `304 Not Modified` by `entry` (RFC 9110 §13.1.2,
/// §13.1.3).
pub fn not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    entry: &Entry,
) -> bool {
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    if let Some(inm) = if_none_match {
        let Some(etag) = entry.header("etag").map(text) else {
            return false;
        };
        return match tags(inm) {
            None => true,
            Some(tags) => tags.iter().any(|t| weak_match(t, &etag)),
        };
    }
    let (Some(ims), Some(modified)) = (if_modified_since, entry.header("last-modified")) else {
        return false;
    };
    let parse = |s: &str| httpdate::parse_http_date(s.trim()).ok();
    match (parse(ims), parse(&text(modified))) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// `ms` since the Unix epoch as a time.
pub fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: &str) -> Vec<Vec<u8>> {
        vec![v.as_bytes().to_vec()]
    }

    #[test]
    fn directives_are_read_with_and_without_values() {
        let cc = values("public, max-age=60, stale-while-revalidate=30, stale-if-error=\"600\"");
        assert_eq!(seconds_ms(&cc, "stale-while-revalidate"), Some(30_000));
        assert_eq!(seconds_ms(&cc, "stale-if-error"), Some(600_000));
        assert_eq!(directive(&cc, "public"), Some(None));
        assert_eq!(directive(&cc, "private"), None);
        assert!(!must_revalidate(&cc));
        assert!(must_revalidate(&values("max-age=5, Must-Revalidate")));
        assert!(must_revalidate(&values("no-cache")));
        assert_eq!(
            seconds_ms(&values("stale-if-error=soon"), "stale-if-error"),
            None
        );
    }

    fn entry(headers: &[(&str, &str)]) -> Entry {
        Entry {
            status: 200,
            headers: (headers.iter())
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            response_ms: 0,
            initial_age_s: 0,
            fresh_until_ms: 0,
            stale_while_revalidate_ms: 0,
            stale_if_error_ms: 0,
            vary: Vec::new(),
            policy: Vec::new(),
            body: Vec::new(),
        }
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison_and_wins_over_if_modified_since() {
        // RFC 9110 §8.8.3.2's table: W/"1" and "1" match weakly.
        let e = entry(&[
            ("etag", "\"1\""),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        assert!(not_modified(Some("W/\"1\""), None, &e));
        assert!(not_modified(Some("\"0\", \"1\""), None, &e));
        assert!(not_modified(Some("*"), None, &e));
        assert!(!not_modified(
            Some("\"2\""),
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            &e
        ));
        assert!(not_modified(
            None,
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            &e
        ));
        assert!(!not_modified(
            None,
            Some("Sun, 06 Nov 1994 08:49:36 GMT"),
            &e
        ));
        assert!(!not_modified(None, Some("yesterday"), &e));
        assert!(
            !not_modified(Some("*"), None, &entry(&[])),
            "no tag to match"
        );
    }
}
