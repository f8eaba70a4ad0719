//! What a filter decided, in the gateway's own `http` types. The WIT result is converted
//! here, once, right after the call and its bounds check; nothing outside `plugin/` sees a
//! generated type. A header, status or path the gateway cannot send fails the call.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Response, StatusCode};

use super::bindings;
use super::context;
use super::failure::{FailureKind, FilterFailure};
use super::view::Variables;
use crate::body::{ProxyBody, full_body};

/// What `on-request` decided.
pub enum RequestAction {
    /// Go on, with these changes to the request.
    Continue(RequestChanges),
    /// Answer the client with this response; the upstream is not called.
    Respond(Response<ProxyBody>),
}

/// What `on-response` decided.
pub enum ResponseAction {
    /// Go on, with these changes to the response.
    Continue(ResponseChanges),
    /// Send this response instead.
    Replace(Response<ProxyBody>),
}

/// Header removals, sets and appends, applied in that order.
#[derive(Debug, Default)]
pub struct HeaderEdits {
    remove: Vec<String>,
    set: Vec<(HeaderName, HeaderValue)>,
    append: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderEdits {
    /// Applies the edits to `headers`.
    pub fn apply(self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name.as_str());
        }
        for (name, value) in self.set {
            headers.insert(name, value);
        }
        for (name, value) in self.append {
            headers.append(name, value);
        }
    }

    fn from_wit(
        remove: Vec<String>,
        set: Vec<bindings::Header>,
        append: Vec<bindings::Header>,
    ) -> Result<Self, FilterFailure> {
        Ok(Self {
            remove,
            set: headers(set)?,
            append: headers(append)?,
        })
    }
}

/// The changes `on-request` asked for.
#[derive(Debug, Default)]
pub struct RequestChanges {
    /// Header edits.
    pub headers: HeaderEdits,
    /// A new path (and query).
    pub path: Option<PathAndQuery>,
    /// A new body (the length headers are dropped with the old one).
    pub body: Option<Bytes>,
    /// The upstream to send the request to instead of the route's.
    pub upstream: Option<String>,
    /// Variables to set.
    pub variables: Variables,
    /// Headers to set on the response, whatever answers.
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
}

/// The changes `on-response` asked for.
#[derive(Debug, Default)]
pub struct ResponseChanges {
    /// A new status.
    pub status: Option<StatusCode>,
    /// Header edits.
    pub headers: HeaderEdits,
    /// A new body (the length headers are dropped with the old one).
    pub body: Option<Bytes>,
}

impl ResponseChanges {
    /// Applies the changes to `response`.
    pub fn apply(self, response: &mut Response<ProxyBody>) {
        if let Some(status) = self.status {
            *response.status_mut() = status;
        }
        self.headers.apply(response.headers_mut());
        if let Some(body) = self.body {
            strip_length(response.headers_mut());
            *response.body_mut() = full_body(body);
        }
    }
}

impl RequestAction {
    /// The action a filter returned; variables under the private-context prefix are
    /// stored under `context_key`, the filter's own.
    pub(super) fn from_wit(
        action: bindings::RequestAction,
        context_key: &str,
    ) -> Result<Self, FilterFailure> {
        Ok(match action {
            bindings::RequestAction::Continue(m) => Self::Continue(RequestChanges {
                headers: HeaderEdits::from_wit(m.remove_headers, m.set_headers, m.append_headers)?,
                path: m.path.map(path).transpose()?,
                body: m.body.map(Bytes::from),
                upstream: m.upstream,
                variables: (m.variables.into_iter())
                    .map(|v| (context::stored_key(v.key, context_key), v.value))
                    .collect(),
                response_headers: headers(m.response_headers)?,
            }),
            bindings::RequestAction::Respond(r) => Self::Respond(response(r)?),
        })
    }
}

impl ResponseAction {
    pub(super) fn from_wit(action: bindings::ResponseAction) -> Result<Self, FilterFailure> {
        Ok(match action {
            bindings::ResponseAction::Continue(m) => Self::Continue(ResponseChanges {
                status: m.status.map(status).transpose()?,
                headers: HeaderEdits::from_wit(m.remove_headers, m.set_headers, m.append_headers)?,
                body: m.body.map(Bytes::from),
            }),
            bindings::ResponseAction::Replace(r) => Self::Replace(response(r)?),
        })
    }
}

/// Drops the length headers of a message whose body is replaced: the new length follows
/// from the new body.
pub fn strip_length(headers: &mut HeaderMap) {
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::TRANSFER_ENCODING);
}

/// A filter produced something the gateway cannot send.
fn invalid(what: String) -> FilterFailure {
    FilterFailure {
        kind: FailureKind::Trap,
        message: what,
    }
}

fn headers(list: Vec<bindings::Header>) -> Result<Vec<(HeaderName, HeaderValue)>, FilterFailure> {
    list.into_iter().map(parse_header).collect()
}

/// A filter's header as an HTTP header; an invalid name or value fails the filter.
fn parse_header(h: bindings::Header) -> Result<(HeaderName, HeaderValue), FilterFailure> {
    let name = HeaderName::from_bytes(h.name.as_bytes())
        .map_err(|_| invalid(format!("invalid header name {:?}", h.name)))?;
    let value = HeaderValue::from_bytes(&h.value)
        .map_err(|_| invalid(format!("invalid value for header {name}")))?;
    Ok((name, value))
}

fn status(code: u16) -> Result<StatusCode, FilterFailure> {
    StatusCode::from_u16(code).map_err(|_| invalid(format!("invalid status {code}")))
}

fn path(path: String) -> Result<PathAndQuery, FilterFailure> {
    if !path.starts_with('/') {
        return Err(invalid(format!(
            "rewritten path {path:?} must start with /"
        )));
    }
    PathAndQuery::try_from(path.as_str())
        .map_err(|_| invalid(format!("invalid rewritten path {path:?}")))
}

/// A response a filter produced, as an HTTP response.
fn response(r: bindings::Response) -> Result<Response<ProxyBody>, FilterFailure> {
    let status = status(r.status)?;
    let mut response = Response::new(full_body(Bytes::from(r.body.unwrap_or_default())));
    *response.status_mut() = status;
    for (name, value) in headers(r.headers)? {
        response.headers_mut().append(name, value);
    }
    strip_length(response.headers_mut());
    Ok(response)
}
