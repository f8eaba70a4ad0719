//! Component values of a request: HTTP fields (RFC 9421 §2.1) and derived components
//! (RFC 9421 §2.2). Values are bytes, because header values may hold octets that are not
//! UTF-8.

use weir_plugin_sdk::Request;

/// The derived components this filter computes (RFC 9421 §2.2); `derived` knows each.
pub const DERIVED: &[&str] = &[
    "@method",
    "@target-uri",
    "@authority",
    "@scheme",
    "@request-target",
    "@path",
    "@query",
];

/// The canonical value of a field (RFC 9421 §2.1): every instance's value with leading and
/// trailing whitespace removed, in order, joined with `", "`; `None` when absent.
pub fn field(request: &Request, name: &str) -> Option<Vec<u8>> {
    let values = request.header_all(name);
    let mut values = values.iter().map(|v| v.trim_ascii());
    let mut out = values.next()?.to_vec();
    for value in values {
        out.extend_from_slice(b", ");
        out.extend_from_slice(value);
    }
    Some(out)
}

/// The value of a derived component (RFC 9421 §2.2); `None` when the request has no value
/// for it or the name is not one this filter derives.
pub fn derived(request: &Request, name: &str) -> Option<String> {
    match name {
        // §2.2.1
        "@method" => Some(request.method().to_string()),
        // §2.2.2
        "@target-uri" => Some(format!(
            "{}://{}{}",
            request.scheme().to_ascii_lowercase(),
            request.authority()?,
            request.path()
        )),
        // §2.2.3
        "@authority" => request.authority().map(|a| authority(request.scheme(), a)),
        // §2.2.4
        "@scheme" => Some(request.scheme().to_ascii_lowercase()),
        // §2.2.5: the origin form as received
        "@request-target" => Some(request.path().to_string()),
        // §2.2.6: an empty path is "/"
        "@path" => Some(match request.path_only() {
            "" => "/".to_string(),
            path => path.to_string(),
        }),
        // §2.2.7: "?" and the query, or "?" alone
        "@query" => Some(format!("?{}", request.query().unwrap_or_default())),
        _ => None,
    }
}

/// The authority normalised per RFC 9110 §4.2.3 as §2.2.3 asks: lower-case, and without
/// the scheme's default port.
fn authority(scheme: &str, authority: &str) -> String {
    let authority = authority.to_ascii_lowercase();
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return authority,
    };
    match authority.strip_suffix(default_port) {
        Some(host) => host.to_string(),
        None => authority,
    }
}
