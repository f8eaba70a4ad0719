//! Which responses the last-good cache may keep: only those a shared cache may store
//! (RFC 9111 §3), since the cache serves every client of the route. A stored response is
//! later served to whoever asks with the same key, so anything personal stays out.

/// What decides whether a response may be shared, read from the request and the response.
#[derive(Debug, Default)]
pub struct Exchange<'a> {
    /// The request carried `Authorization`.
    pub authorization: bool,
    /// Every `Cache-Control` field line of the response.
    pub cache_control: &'a [Vec<u8>],
    /// Every `Vary` field line of the response.
    pub vary: &'a [Vec<u8>],
    /// The response sets a cookie.
    pub set_cookie: bool,
}

/// Why a response is not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotShared {
    /// `Cache-Control: no-store` (RFC 9111 §5.2.2.5).
    NoStore,
    /// `Cache-Control: private` (RFC 9111 §5.2.2.7).
    Private,
    /// It sets a cookie: a session, someone's own.
    SetCookie,
    /// The request was authorized, and the response does not say it may be shared
    /// (RFC 9111 §3.5) nor the config that authorized responses are stored.
    Authorized,
    /// `Vary: *`, or it varies on a header that is not part of the cache key.
    Varies(String),
}

/// The names in comma-separated field lines, lower case, each without its `=value`
/// (`Cache-Control` directives, RFC 9111 §5.2; `Vary` field names, RFC 9110 §12.5.5).
fn names(lines: &[Vec<u8>]) -> Vec<String> {
    lines
        .iter()
        .flat_map(|line| line.split(|&b| b == b','))
        .map(|item| {
            let name = item.split(|&b| b == b'=').next().unwrap_or_default();
            String::from_utf8_lossy(name).trim().to_ascii_lowercase()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// Whether the response may be stored for everyone: `store_authorized` lets responses to
/// authorized requests in; `keyed_headers` are the (lower-case) request headers in the
/// cache key, which a `Vary` may name.
pub fn check(
    exchange: &Exchange<'_>,
    store_authorized: bool,
    keyed_headers: &[&str],
) -> Result<(), NotShared> {
    let directives = names(exchange.cache_control);
    let has = |name: &str| directives.iter().any(|d| d == name);
    if has("no-store") {
        return Err(NotShared::NoStore);
    }
    if has("private") {
        return Err(NotShared::Private);
    }
    if exchange.set_cookie {
        return Err(NotShared::SetCookie);
    }
    let says_shared = has("public") || has("s-maxage") || has("must-revalidate");
    if exchange.authorization && !store_authorized && !says_shared {
        return Err(NotShared::Authorized);
    }
    for name in names(exchange.vary) {
        if name == "*" || !keyed_headers.contains(&name.as_str()) {
            return Err(NotShared::Varies(name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(values: &[&str]) -> Vec<Vec<u8>> {
        values.iter().map(|v| v.as_bytes().to_vec()).collect()
    }

    fn verdict(
        cache_control: &[&str],
        vary: &[&str],
        auth: bool,
        cookie: bool,
    ) -> Result<(), NotShared> {
        let (cc, vary) = (lines(cache_control), lines(vary));
        let exchange = Exchange {
            authorization: auth,
            cache_control: &cc,
            vary: &vary,
            set_cookie: cookie,
        };
        check(&exchange, false, &["accept-language"])
    }

    #[test]
    fn a_plain_public_response_is_stored() {
        assert_eq!(verdict(&[], &[], false, false), Ok(()));
        assert_eq!(
            verdict(&["max-age=60"], &["Accept-Language"], false, false),
            Ok(())
        );
    }

    #[test]
    fn personal_responses_are_not_stored() {
        assert_eq!(
            verdict(&["no-store"], &[], false, false),
            Err(NotShared::NoStore)
        );
        // Any line, any case, any position, with or without arguments.
        assert_eq!(
            verdict(
                &["max-age=60", "Max-Age=1, PRIVATE=\"x\""],
                &[],
                false,
                false
            ),
            Err(NotShared::Private)
        );
        assert_eq!(verdict(&[], &[], false, true), Err(NotShared::SetCookie));
        assert_eq!(
            verdict(&["public"], &[], false, true),
            Err(NotShared::SetCookie)
        );
    }

    #[test]
    fn authorized_requests_are_stored_only_when_the_response_or_config_says_so() {
        assert_eq!(verdict(&[], &[], true, false), Err(NotShared::Authorized));
        assert_eq!(
            verdict(&["max-age=5"], &[], true, false),
            Err(NotShared::Authorized)
        );
        assert_eq!(verdict(&["public"], &[], true, false), Ok(()));
        assert_eq!(verdict(&["s-maxage=5"], &[], true, false), Ok(()));
        let exchange = Exchange {
            authorization: true,
            ..Exchange::default()
        };
        assert_eq!(check(&exchange, true, &[]), Ok(()));
    }

    #[test]
    fn a_response_varying_outside_the_key_is_not_stored() {
        assert_eq!(
            verdict(&[], &["*"], false, false),
            Err(NotShared::Varies("*".into()))
        );
        assert_eq!(
            verdict(&[], &["accept-language, Cookie"], false, false),
            Err(NotShared::Varies("cookie".into()))
        );
    }
}
