//! Finding credentials in a request: the `Authorization` header (RFC 9110 §11.6.2) and
//! query parameters (`application/x-www-form-urlencoded`).

use weir_plugin_sdk::prelude::*;

/// The credentials of the `Authorization` header: the scheme, lower-cased (schemes are
/// case-insensitive, RFC 9110 §11.1), and what follows it.
pub fn authorization(request: &Request<'_>) -> Option<(String, String)> {
    let value = request.header("authorization")?;
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    Some((scheme.to_ascii_lowercase(), rest.trim_start().to_string()))
}

/// The first value of the query parameter `name`, decoded.
pub fn query_param(request: &Request, name: &str) -> Option<String> {
    form_urlencoded::parse(request.query()?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// `path` (with its query) without any `name` parameter; the other parameters are kept
/// byte for byte.
pub fn without_query_param(path: &str, name: &str) -> String {
    let Some((path_only, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let raw_name = pair.split('=').next().unwrap_or_default();
            form_urlencoded::parse(raw_name.as_bytes())
                .next()
                .is_none_or(|(key, _)| key != name)
        })
        .collect();
    if kept.is_empty() {
        path_only.to_string()
    } else {
        format!("{path_only}?{}", kept.join("&"))
    }
}

/// Whether `name` is an HTTP field name (RFC 9110 §5.1: a token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
