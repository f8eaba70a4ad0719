//! An HttpDNS request's parameters, read from the query string: Tencent's `/d` parameters
//! (`dn`, `type`, `ttl`, `clientip`, `query`, `ip`), `host` as Aliyun's spelling of `dn`,
//! and Weir's own `format`, `kid`, `t` and `s`. Unknown parameters (`id`, `sdk`, `sid`, …)
//! are ignored, as the services ignore them.

use std::net::IpAddr;

use crate::config::httpdns::is_service_name;
use crate::error::{ErrorKind, GatewayError};

/// The address families asked for (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 only (`type` absent or `a`).
    A,
    /// IPv6 only (`aaaa`).
    Aaaa,
    /// Both (`addrs`): IPv4 first.
    Addrs,
}

impl Family {
    /// Whether IPv4 addresses are asked for.
    pub fn v4(self) -> bool {
        self != Self::Aaaa
    }

    /// Whether IPv6 addresses are asked for.
    pub fn v6(self) -> bool {
        self != Self::A
    }
}

/// A request's signature parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureParams {
    /// `kid`: the key id (may be left out when one key is configured).
    pub kid: Option<String>,
    /// `t`: the expiry, Unix seconds.
    pub expiry: Option<String>,
    /// `s`: the hex HMAC-SHA256.
    pub signature: Option<String>,
}

impl SignatureParams {
    /// Whether the request carries any signature parameter.
    pub fn present(&self) -> bool {
        self.expiry.is_some() || self.signature.is_some()
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// `dn` as sent (percent-decoded): what a signature covers.
    pub dn: String,
    /// The names asked for, lowercase, without a trailing dot, in request order.
    pub names: Vec<String>,
    /// `type`.
    pub family: Family,
    /// `ttl=1`: append `,<ttl>` to each text answer part.
    pub ttl: bool,
    /// `clientip=1`: append `|<client ip>` to each text answer line.
    pub clientip: bool,
    /// `query=1` (or a batch): prefix each text answer line with `<name>.:`.
    pub prefixed: bool,
    /// Answer JSON (`format=json`, or `Accept: application/json`) rather than text.
    pub json: bool,
    /// `ip`: the address to answer for instead of the client's, when it is a plain address
    /// (an empty or encrypted value is ignored).
    pub ip: Option<IpAddr>,
    /// `kid`, `t`, `s`.
    pub signature: SignatureParams,
}

fn bad(detail: String) -> GatewayError {
    GatewayError::new(ErrorKind::BadRequest, detail)
}

impl Query {
    /// Parses a query string (the first of a repeated parameter counts); `accepts_json`
    /// when the request's `Accept` names `application/json`. At most `max_names` names.
    pub fn parse(query: &str, accepts_json: bool, max_names: usize) -> Result<Self, GatewayError> {
        let mut dn = None;
        let (mut family, mut format) = (None, None);
        let (mut ttl, mut clientip, mut prefixed, mut ip) = (None, None, None, None);
        let mut signature = SignatureParams::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "dn" | "host" => &mut dn,
                "type" => &mut family,
                "format" => &mut format,
                "ttl" => &mut ttl,
                "clientip" => &mut clientip,
                "query" => &mut prefixed,
                "ip" => &mut ip,
                "kid" => &mut signature.kid,
                "t" => &mut signature.expiry,
                "s" => &mut signature.signature,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value.into_owned());
            }
        }
        let dn = dn.ok_or_else(|| bad("the dn parameter is missing".into()))?;
        let names = names(&dn, max_names)?;
        let family = match family.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("a") => Family::A,
            Some("aaaa") => Family::Aaaa,
            Some("addrs") => Family::Addrs,
            Some(other) => return Err(bad(format!("type {other:?} is not a, aaaa or addrs"))),
        };
        let json = match format.as_deref() {
            None => accepts_json,
            Some("json") => true,
            Some("text") => false,
            Some(other) => return Err(bad(format!("format {other:?} is not json or text"))),
        };
        let on = |flag: Option<String>| flag.as_deref() == Some("1");
        Ok(Self {
            prefixed: on(prefixed) || names.len() > 1,
            names,
            dn,
            family,
            ttl: on(ttl),
            clientip: on(clientip),
            json,
            ip: ip.and_then(|ip| ip.parse().ok()),
            signature,
        })
    }
}

/// The names of a `dn` value: a comma list, each lowercased with its trailing dot gone.
/// The Tencent iOS SDK appends `;<unix expiry>` to the list it encrypts: it is dropped.
fn names(dn: &str, max_names: usize) -> Result<Vec<String>, GatewayError> {
    let list = dn.split_once(';').map_or(dn, |(list, _)| list);
    let count = list.split(',').count();
    if count > max_names {
        return Err(GatewayError::new(
            ErrorKind::TooManyNames,
            format!("{count} names asked, at most {max_names} in one request"),
        ));
    }
    list.split(',')
        .map(|name| {
            let name = name.trim().to_ascii_lowercase();
            let name = name.strip_suffix('.').unwrap_or(&name);
            match is_service_name(name) {
                true => Ok(name.to_string()),
                false => Err(bad(format!("dn: {name:?} is not a name"))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<Query, GatewayError> {
        Query::parse(query, false, 8)
    }

    #[test]
    fn the_tencent_android_sdk_request_is_understood() {
        // DNSPod/httpdns-sdk-android RequestBuilder, HTTPS form; `ip` empty when unset.
        let q = parse("dn=Api.Example.&ip=&clientip=1&ttl=1&id=7&token=x&type=ADDRS&sdk=1_4.9")
            .unwrap();
        assert_eq!(q.names, ["api.example"]);
        assert_eq!(q.family, Family::Addrs);
        assert!(q.ttl && q.clientip && !q.prefixed && !q.json);
        assert_eq!(q.ip, None);
        assert!(!q.signature.present());
    }

    #[test]
    fn a_batch_is_prefixed_and_the_ios_expiry_suffix_dropped() {
        let q = parse("dn=a.example%2Cb.example%3B1767225600&query=0").unwrap();
        assert_eq!(q.names, ["a.example", "b.example"]);
        assert!(q.prefixed, "a batch always names its lines");
        assert_eq!(q.dn, "a.example,b.example;1767225600", "signed as sent");
    }

    #[test]
    fn signature_ip_and_format_are_read() {
        let q = parse("host=a&ip=203.0.113.9&format=json&kid=k1&t=100&s=ab&dn=ignored").unwrap();
        assert_eq!(q.names, ["a"], "the first of dn/host counts");
        assert_eq!(q.ip, "203.0.113.9".parse().ok());
        assert!(q.json);
        assert_eq!(q.signature.kid.as_deref(), Some("k1"));
        assert!(q.signature.present());
        assert!(Query::parse("dn=a", true, 8).unwrap().json);
        assert!(!Query::parse("dn=a&format=text", true, 8).unwrap().json);
    }

    #[test]
    fn malformed_requests_are_refused() {
        let kind = |q: &str| parse(q).map(|_| ()).map_err(|e| e.kind);
        assert_eq!(kind("type=a"), Err(ErrorKind::BadRequest));
        assert_eq!(kind("dn=a,,b"), Err(ErrorKind::BadRequest));
        assert_eq!(kind("dn=a%0Ab"), Err(ErrorKind::BadRequest));
        assert_eq!(kind("dn=a|b"), Err(ErrorKind::BadRequest));
        assert_eq!(kind("dn=a&type=mx"), Err(ErrorKind::BadRequest));
        assert_eq!(kind("dn=a&format=xml"), Err(ErrorKind::BadRequest));
        assert_eq!(kind("dn=a,b,c,d,e,f,g,h,i"), Err(ErrorKind::TooManyNames));
        assert_eq!(
            kind(&format!("dn={}", "a".repeat(254))),
            Err(ErrorKind::BadRequest)
        );
    }
}
