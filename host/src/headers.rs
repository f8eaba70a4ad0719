//! Header hygiene on the proxy path: hop-by-hop headers (RFC 9110 §7.6.1) never cross the
//! gateway; `X-Forwarded-*` and a request id are added on the way upstream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::admission::Admitted;
use crate::tls::TlsSession;

/// `x-request-id`.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `traceparent` (W3C Trace Context).
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The fixed hop-by-hop headers; `Connection` may name more.
const HOP_BY_HOP: [&HeaderName; 8] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
/// `Upgrade` goes too; an upgrade the gateway passes through puts it back (`upgrade.rs`).
/// `TE: trailers` stays: it is the one `TE` HTTP/2 allows (RFC 9113 §8.2.2), and gRPC
/// needs it to reach the upstream.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let te_trailers = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"trailers"));
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// The client of a connection, with what the proxy path needs of it computed once per
/// connection rather than per request.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The TCP peer.
    pub addr: SocketAddr,
    /// Its IP address as a header value, for `X-Forwarded-For`.
    pub ip: HeaderValue,
    /// Its `Forwarded` element without a host: `for=192.0.2.1;proto=http`, an IPv6
    /// address bracketed and quoted (RFC 7239 §6).
    pub forwarded: HeaderValue,
    /// The connection's place under the connection caps: whatever outlives the HTTP
    /// connection (an upgraded tunnel, a device's push session) holds it too, so that the
    /// place is given back only when all of them are done.
    pub place: Option<Arc<Admitted>>,
    /// The TLS session the connection runs over; none in clear text.
    pub tls: Option<Arc<TlsSession>>,
}

impl Peer {
    /// Describes a newly accepted connection's peer.
    pub fn new(addr: SocketAddr) -> Self {
        let ip = HeaderValue::from_str(&addr.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
        Self {
            addr,
            ip,
            forwarded: forwarded_element(addr, "http"),
            place: None,
            tls: None,
        }
    }

    /// The peer of a connection that runs over `session`.
    pub fn over_tls(self, session: TlsSession) -> Self {
        Self {
            forwarded: forwarded_element(self.addr, "https"),
            tls: Some(Arc::new(session)),
            ..self
        }
    }

    /// The scheme the client used: `https` over TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The peer, holding its connection's place under the caps.
    pub fn holding(self, place: Arc<Admitted>) -> Self {
        Self {
            place: Some(place),
            ..self
        }
    }
}

/// The `Forwarded` element of a client at `addr` that used `proto`.
fn forwarded_element(addr: SocketAddr, proto: &str) -> HeaderValue {
    let node = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("\"[{ip}]\""),
    };
    HeaderValue::from_str(&format!("for={node};proto={proto}"))
        .unwrap_or(HeaderValue::from_static("for=unknown"))
}

/// Replaces whatever `X-Forwarded-Client-Cert` the client sent (a claim nobody checked)
/// with the identity of the certificate its TLS handshake verified, if any.
pub fn set_client_certificate(headers: &mut HeaderMap, peer: &Peer) {
    headers.remove(&X_FORWARDED_CLIENT_CERT);
    let identity = peer.tls.as_ref().and_then(|tls| tls.client.as_ref());
    if let Some(identity) = identity {
        headers.insert(X_FORWARDED_CLIENT_CERT.clone(), identity.header.clone());
    }
}

/// Adds the forwarding fields: `X-Forwarded-For` and `Forwarded` (RFC 7239 §4) keep every
/// field line the client sent, in order, and append this hop; `X-Forwarded-Proto` and
/// `X-Forwarded-Host` say what this hop saw, replacing whatever the client claimed.
pub fn add_forwarded(headers: &mut HeaderMap, peer: &Peer, host: Option<&str>) {
    let for_value = append_element(headers, &X_FORWARDED_FOR, &peer.ip);
    headers.insert(X_FORWARDED_FOR.clone(), for_value);
    let element = match host {
        // A canonical authority holds no `"` or `\`; a port makes it a quoted-string.
        Some(host) => {
            let mut element = Vec::with_capacity(peer.forwarded.len() + host.len() + 10);
            element.extend_from_slice(peer.forwarded.as_bytes());
            element.extend_from_slice(b";host=\"");
            element.extend_from_slice(host.as_bytes());
            element.push(b'"');
            HeaderValue::from_bytes(&element).unwrap_or_else(|_| peer.forwarded.clone())
        }
        None => peer.forwarded.clone(),
    };
    let forwarded = append_element(headers, &header::FORWARDED, &element);
    headers.insert(header::FORWARDED, forwarded);
    let proto = HeaderValue::from_static(peer.scheme());
    headers.insert(X_FORWARDED_PROTO.clone(), proto);
    if let Some(value) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(X_FORWARDED_HOST.clone(), value);
    }
}

/// Every field line of `name` joined with `, `, then `element`: one list, nothing dropped.
/// With no line before it, `element` alone (no copy).
fn append_element(headers: &HeaderMap, name: &HeaderName, element: &HeaderValue) -> HeaderValue {
    let lines = headers.get_all(name);
    if lines
        .iter()
        .all(|line| line.as_bytes().trim_ascii().is_empty())
    {
        return element.clone();
    }
    let mut list = Vec::new();
    for line in lines {
        let line = line.as_bytes().trim_ascii();
        if !line.is_empty() {
            list.extend_from_slice(line);
            list.extend_from_slice(b", ");
        }
    }
    list.extend_from_slice(element.as_bytes());
    // Lines that were valid values, commas and an element make a valid value.
    HeaderValue::from_bytes(&list).unwrap_or_else(|_| element.clone())
}

/// Generates request ids: a random per-process prefix and a counter, so ids are unique
/// without a syscall or a lock per request.
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self {
            prefix: fastrand::u32(..),
            next: AtomicU64::new(1),
        }
    }
}

impl RequestIds {
    /// The client's id when trusted and well-formed, otherwise a new one.
    pub fn assign(&self, headers: &HeaderMap, trust_client: bool) -> String {
        let client_id = headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok());
        if let Some(id) = client_id.filter(|id| trust_client && !id.is_empty() && id.len() <= 128) {
            return id.to_string();
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // 8 hex digits of prefix, 12 of counter; written by hand, as `format!` costs about
        // 2% of a passthrough request.
        let mut id = String::with_capacity(20);
        push_hex(&mut id, u64::from(self.prefix), 8);
        push_hex(&mut id, n, 12);
        id
    }
}

/// `tracestate` (W3C Trace Context).
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// A W3C trace id: 32 lower-case hex digits, kept inline (no allocation per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId([u8; 32]);

impl TraceId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ever hex digits: from a checked header, or written by `push_hex`.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// A request's place in its W3C trace.
#[derive(Debug, Clone, Copy)]
pub struct TraceContext {
    /// The trace (continued, or started here).
    pub trace_id: TraceId,
    /// The caller's span: the parent id of the `traceparent` the request came with.
    pub parent: Option<u64>,
    /// The span id sent on to the upstream as its parent.
    pub span: u64,
    /// Whether the trace is sampled (its flags' bit 0).
    pub sampled: bool,
}

/// Makes the gateway a hop of the request's W3C trace (Trace Context §3): a valid
/// `traceparent` keeps its trace id and flags and gets the gateway's own span id as the
/// parent of what follows (its `tracestate` kept); none, or an invalid one, starts a new
/// trace, sampled when `sample_new` (and a `tracestate` that came with an invalid one is
/// dropped). Built on the stack: one allocation, the header value's.
pub fn continue_trace(headers: &mut HeaderMap, sample_new: bool) -> TraceContext {
    // `00-<trace: 32>-<span: 16>-<flags: 2>`.
    let mut value = *b"00-00000000000000000000000000000000-0000000000000000-01";
    let incoming = headers.get(&TRACEPARENT).and_then(|v| v.to_str().ok());
    let (parent, sampled) = match incoming.and_then(parse_traceparent) {
        Some((trace, parent, flags)) => {
            value[3..35].copy_from_slice(trace.as_bytes());
            value[53..55].copy_from_slice(flags.as_bytes());
            let sampled = u8::from_str_radix(flags, 16).is_ok_and(|f| f & 1 == 1);
            (u64::from_str_radix(parent, 16).ok(), sampled)
        }
        None => {
            headers.remove(&TRACESTATE);
            write_hex(&mut value[3..19], fastrand::u64(1..));
            write_hex(&mut value[19..35], fastrand::u64(..));
            if !sample_new {
                value[54] = b'0';
            }
            (None, sample_new)
        }
    };
    let span = fastrand::u64(1..);
    write_hex(&mut value[36..52], span);
    if let Ok(value) = HeaderValue::from_bytes(&value) {
        headers.insert(TRACEPARENT.clone(), value);
    }
    let mut trace = [0u8; 32];
    trace.copy_from_slice(&value[3..35]);
    TraceContext {
        trace_id: TraceId(trace),
        parent,
        span,
        sampled,
    }
}

/// Makes `span` the parent id of the `traceparent` in `headers` (a retry is a span of its
/// own).
pub fn set_trace_parent(headers: &mut HeaderMap, span: u64) {
    let Some(current) = headers.get(&TRACEPARENT) else {
        return;
    };
    let mut value = [0u8; 55];
    if current.len() != value.len() {
        return;
    }
    value.copy_from_slice(current.as_bytes());
    write_hex(&mut value[36..52], span);
    if let Ok(value) = HeaderValue::from_bytes(&value) {
        headers.insert(TRACEPARENT.clone(), value);
    }
}

/// Writes the low `out.len()` (at most 16) hex digits of `value` into `out`, zero-padded.
fn write_hex(out: &mut [u8], value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let len = out.len();
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = HEX[((value >> ((len - 1 - i) * 4)) & 0xf) as usize];
    }
}

/// The trace id, parent id and flags of a valid version-00 `traceparent`
/// (`00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero, lower-case hex).
fn parse_traceparent(value: &str) -> Option<(&str, &str, &str)> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    let valid = version == "00"
        && parts.next().is_none()
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && nonzero(trace)
        && nonzero(parent);
    valid.then_some((trace, parent, flags))
}

/// Appends the low `digits` (at most 16) hex digits of `value`, zero-padded.
fn push_hex(out: &mut String, value: u64, digits: usize) {
    let mut buf = [0u8; 16];
    let digits = &mut buf[..digits.min(16)];
    write_hex(digits, value);
    out.extend(digits.iter().map(|&b| char::from(b)));
}

#[cfg(test)]
mod trace_tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_continued_with_the_gateways_span() {
        // The example of W3C Trace Context §3.2.
        let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static(incoming));
        h.insert(&TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        let trace = continue_trace(&mut h, false);
        assert_eq!(trace.trace_id.as_str(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(trace.parent, Some(0xb7ad6b7169203331));
        assert!(
            trace.sampled,
            "the caller's flag, not the gateway's own choice"
        );
        let out = h[&TRACEPARENT].to_str().unwrap().to_string();
        let (trace_id, parent, flags) = parse_traceparent(&out).expect("valid");
        assert_eq!(
            (trace_id, flags),
            ("0af7651916cd43dd8448eb211c80319c", "01")
        );
        assert_eq!(parent, format!("{:016x}", trace.span), "the gateway's span");
        assert_ne!(parent, "b7ad6b7169203331");
        assert_eq!(h[&TRACESTATE], "congo=t61rcWkgMzE");

        // An unsampled caller stays unsampled; a retry's span replaces the parent.
        let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        h.insert(&TRACEPARENT, HeaderValue::from_static(unsampled));
        assert!(!continue_trace(&mut h, true).sampled);
        set_trace_parent(&mut h, 0xabc);
        let out = h[&TRACEPARENT].to_str().unwrap();
        assert_eq!(
            parse_traceparent(out),
            Some(("0af7651916cd43dd8448eb211c80319c", "0000000000000abc", "00"))
        );
    }

    #[test]
    fn an_invalid_or_missing_traceparent_starts_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "garbage",
        ] {
            let mut h = HeaderMap::new();
            h.insert(&TRACEPARENT, HeaderValue::from_str(bad).unwrap());
            h.insert(&TRACESTATE, HeaderValue::from_static("a=b"));
            let trace = continue_trace(&mut h, true);
            let out = h[&TRACEPARENT].to_str().unwrap().to_string();
            assert_eq!(
                parse_traceparent(&out).map(|(t, _, _)| t),
                Some(trace.trace_id.as_str()),
                "{bad}"
            );
            assert!(!bad.contains(trace.trace_id.as_str()), "{bad}: a new trace");
            assert_eq!(trace.parent, None);
            assert!(
                h.get(&TRACESTATE).is_none(),
                "{bad}: its tracestate dropped"
            );
        }
        for sample in [true, false] {
            let mut h = HeaderMap::new();
            let trace = continue_trace(&mut h, sample);
            let id = trace.trace_id.as_str();
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
            let out = h[&TRACEPARENT].to_str().unwrap().to_string();
            let flags = if sample { "01" } else { "00" };
            assert_eq!(
                parse_traceparent(&out).map(|(t, _, f)| (t, f)),
                Some((id, flags))
            );
            assert_eq!(trace.sampled, sample);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_fixed_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn keeps_te_trailers() {
        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("Trailers"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h[header::TE], "trailers");
    }

    #[test]
    fn appends_to_every_forwarding_line() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("10.0.0.2, 10.0.0.3"),
        );
        h.append("forwarded", HeaderValue::from_static("for=192.0.2.43"));
        h.append(
            "forwarded",
            HeaderValue::from_static("for=198.51.100.17;proto=https"),
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        add_forwarded(
            &mut h,
            &Peer::new("127.0.0.9:5000".parse().unwrap()),
            Some("example.com:8080"),
        );
        assert_eq!(
            h["x-forwarded-for"],
            "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.9"
        );
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.43, for=198.51.100.17;proto=https, for=127.0.0.9;proto=http;host=\"example.com:8080\""
        );
        assert_eq!(h["x-forwarded-host"], "example.com:8080");
        assert_eq!(
            h["x-forwarded-proto"], "http",
            "the client's claim is replaced"
        );

        let mut h = HeaderMap::new();
        add_forwarded(
            &mut h,
            &Peer::new("[2001:db8::1]:5000".parse().unwrap()),
            None,
        );
        assert_eq!(h["forwarded"], "for=\"[2001:db8::1]\";proto=http");
        assert_eq!(h["x-forwarded-for"], "2001:db8::1");
    }

    #[test]
    fn request_ids_are_unique_and_client_ids_kept_when_trusted() {
        let ids = RequestIds::default();
        let empty = HeaderMap::new();
        let (a, b) = (ids.assign(&empty, true), ids.assign(&empty, true));
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
        assert_eq!(&a[..8], &format!("{:08x}", ids.prefix));
        assert_eq!(&b[8..], "000000000002");
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc"));
        assert_eq!(ids.assign(&h, true), "abc");
        assert_ne!(ids.assign(&h, false), "abc");
    }
}
