//! One authority per request (RFC 9112 §3.2, RFC 9113 §8.3.1): the `Host` field, the
//! absolute-form target and HTTP/2's `:authority` must agree, a request carries one `Host`
//! at most, and an HTTP/1.1 request carries one at least. The authority is kept in one
//! canonical spelling — lower case, no trailing dot on the name — for routing and for the
//! upstream's `Host`.

use http::header::{self, HeaderMap};
use http::{Uri, Version};

/// Why the request's authority was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorityError {
    /// More than one `Host` field.
    SeveralHosts,
    /// An HTTP/1.1 request without `Host`.
    MissingHost,
    /// `Host` is not a valid authority (or carries user information).
    Malformed,
    /// `Host` and the target's authority (or `:authority`) differ.
    Disagree,
}

impl AuthorityError {
    /// A short reason for the client.
    pub fn reason(self) -> &'static str {
        match self {
            Self::SeveralHosts => "more than one Host field",
            Self::MissingHost => "an HTTP/1.1 request needs a Host field",
            Self::Malformed => "the Host is not a valid authority",
            Self::Disagree => "Host and the request target's authority differ",
        }
    }
}

/// The request's authority in canonical form (`host` or `host:port`), `None` when an
/// HTTP/1.0 request named none.
pub fn request_authority(
    uri: &Uri,
    headers: &HeaderMap,
    version: Version,
) -> Result<Option<String>, AuthorityError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(AuthorityError::SeveralHosts);
    }
    let from_header = match host {
        None => None,
        Some(value) => {
            let text = value.to_str().map_err(|_| AuthorityError::Malformed)?;
            Some(canonical(text)?)
        }
    };
    let from_target = match uri.authority() {
        None => None,
        Some(authority) => Some(canonical(authority.as_str())?),
    };
    match (from_target, from_header) {
        (Some(target), Some(header)) if target != header => Err(AuthorityError::Disagree),
        (Some(authority), _) | (None, Some(authority)) => Ok(Some(authority)),
        (None, None) if version == Version::HTTP_11 => Err(AuthorityError::MissingHost),
        (None, None) => Ok(None),
    }
}

/// `Host: Example.COM.:8080` → `example.com:8080` (RFC 3986 §3.2.2–3.2.3: a reg-name or
/// a bracketed IP literal, then an optional port); user information and anything else is
/// refused. Checked by hand: this runs on every request, and needs no copy but the result.
fn canonical(text: &str) -> Result<String, AuthorityError> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (literal, after) = rest.split_once(']').ok_or(AuthorityError::Malformed)?;
            let literal_ok = !literal.is_empty()
                && literal
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
            if !literal_ok {
                return Err(AuthorityError::Malformed);
            }
            (&text[..literal.len() + 2], after)
        }
        None => match text.split_once(':') {
            Some((host, _)) => (host, &text[host.len()..]),
            None => (text, ""),
        },
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => {
            !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())
        }
    };
    let host_ok = host.starts_with('[') || (!host.is_empty() && host.bytes().all(is_reg_name_byte));
    if !port_ok || !host_ok {
        return Err(AuthorityError::Malformed);
    }
    let host = host
        .strip_suffix('.')
        .filter(|h| !h.is_empty())
        .unwrap_or(host);
    let mut out = String::with_capacity(host.len() + port.len());
    out.push_str(host);
    out.make_ascii_lowercase();
    out.push_str(port);
    Ok(out)
}

/// RFC 3986 §3.2.2 `reg-name`: unreserved, percent-encoded and sub-delims characters.
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// The host part of a canonical authority, without the port (and without the brackets of
/// an IPv6 literal).
pub fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn authority(
        uri: &str,
        hosts: &[&str],
        version: Version,
    ) -> Result<Option<String>, AuthorityError> {
        let mut headers = HeaderMap::new();
        for host in hosts {
            headers.append(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        request_authority(&uri.parse().unwrap(), &headers, version)
    }

    #[test]
    fn one_canonical_authority() {
        let v11 = Version::HTTP_11;
        assert_eq!(
            authority("/", &["Example.COM."], v11),
            Ok(Some("example.com".into()))
        );
        assert_eq!(
            authority("http://a.example:81/x", &["A.example:81"], v11),
            Ok(Some("a.example:81".into()))
        );
        assert_eq!(
            authority("http://a.example/x", &["b.example"], v11),
            Err(AuthorityError::Disagree)
        );
        assert_eq!(
            authority("/", &["a", "a"], v11),
            Err(AuthorityError::SeveralHosts)
        );
        assert_eq!(authority("/", &[], v11), Err(AuthorityError::MissingHost));
        assert_eq!(authority("/", &[], Version::HTTP_10), Ok(None));
        assert_eq!(
            authority("/", &["u@a.example"], v11),
            Err(AuthorityError::Malformed)
        );
        assert_eq!(
            authority("/", &["a b"], v11),
            Err(AuthorityError::Malformed)
        );
        assert_eq!(
            authority("/", &["[::1]:8080"], v11),
            Ok(Some("[::1]:8080".into()))
        );
    }

    #[test]
    fn host_without_port() {
        assert_eq!(host_of("example.com:8080"), "example.com");
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("[::1]:80"), "::1");
    }
}
