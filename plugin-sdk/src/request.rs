//! The request side: a read-only view of the request, and the changes a filter returns.

use crate::bindings::weir::gateway::types as wit;
use crate::{Header, Response, Variable, find_header};

/// The request as a filter sees it. In `on_response` the headers and body are empty: only
/// the summary (method, path, route, client, id, variables) is known.
#[derive(Debug, Clone)]
pub struct Request {
    inner: wit::Request,
}

impl Request {
    /// The method, upper-case.
    pub fn method(&self) -> &str {
        &self.inner.method
    }

    /// The path and query (`/a/b?x=1`).
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The path without the query.
    pub fn path_only(&self) -> &str {
        self.inner.path.split('?').next().unwrap_or_default()
    }

    /// The query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.inner.path.split_once('?').map(|(_, q)| q)
    }

    /// The authority the client addressed (`Host` or `:authority`).
    pub fn authority(&self) -> Option<&str> {
        self.inner.authority.as_deref()
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        &self.inner.scheme
    }

    /// The first value of a header as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of a header as bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.inner.headers, name).map(|h| h.value.as_slice())
    }

    /// All headers, in order.
    pub fn headers(&self) -> &[Header] {
        &self.inner.headers
    }

    /// The body, when the filter declared [`crate::Phase::RequestBody`].
    pub fn body(&self) -> Option<&[u8]> {
        self.inner.body.as_deref()
    }

    /// The client's address, `ip:port`.
    pub fn client_addr(&self) -> &str {
        &self.inner.client_addr
    }

    /// The route that matched.
    pub fn route(&self) -> &str {
        &self.inner.route
    }

    /// The gateway's id for this request.
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// A variable set by an earlier filter (the last one set wins).
    pub fn variable(&self, key: &str) -> Option<&str> {
        self.inner
            .variables
            .iter()
            .rev()
            .find(|v| v.key == key)
            .map(|v| v.value.as_str())
    }
}

impl From<wit::Request> for Request {
    fn from(inner: wit::Request) -> Self {
        Self { inner }
    }
}

impl From<wit::RequestSummary> for Request {
    fn from(s: wit::RequestSummary) -> Self {
        Self {
            inner: wit::Request {
                method: s.method,
                path: s.path,
                authority: s.authority,
                scheme: String::new(),
                headers: Vec::new(),
                body: None,
                client_addr: s.client_addr,
                route: s.route,
                request_id: s.request_id,
                variables: s.variables,
            },
        }
    }
}

/// Changes to the request, built with chained calls:
/// `RequestChanges::new().set_header("x-a", "1").remove_header("cookie")`.
#[derive(Debug, Clone)]
pub struct RequestChanges {
    inner: wit::RequestMutations,
}

impl Default for RequestChanges {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestChanges {
    /// No changes.
    pub fn new() -> Self {
        Self {
            inner: wit::RequestMutations {
                remove_headers: Vec::new(),
                set_headers: Vec::new(),
                append_headers: Vec::new(),
                path: None,
                body: None,
                upstream: None,
                variables: Vec::new(),
            },
        }
    }

    /// Rewrites the path and query sent upstream.
    pub fn set_path(mut self, path: impl Into<String>) -> Self {
        self.inner.path = Some(path.into());
        self
    }

    /// Replaces the request body.
    pub fn set_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = Some(body.into());
        self
    }

    /// Sends the request to another named upstream.
    pub fn set_upstream(mut self, upstream: impl Into<String>) -> Self {
        self.inner.upstream = Some(upstream.into());
        self
    }

    /// Hands a variable to later filters and the access log.
    pub fn set_variable(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.variables.push(Variable {
            key: key.into(),
            value: value.into(),
        });
        self
    }
}

impl_header_changes!(RequestChanges);

/// What a filter decides about a request.
#[derive(Debug, Clone)]
pub enum RequestDecision {
    /// Go on with these changes.
    Continue(RequestChanges),
    /// Answer the client now.
    Respond(Response),
}

impl RequestDecision {
    /// Go on unchanged.
    pub fn proceed() -> Self {
        Self::Continue(RequestChanges::new())
    }

    /// The answer given when a request reaches an instance that was never configured,
    /// which the gateway never does; kept total so that the export cannot panic.
    #[doc(hidden)]
    pub fn not_configured() -> Self {
        Self::Respond(Response::json(500, r#"{"error":"filter_not_configured"}"#))
    }
}

impl From<RequestDecision> for wit::RequestAction {
    fn from(decision: RequestDecision) -> Self {
        match decision {
            RequestDecision::Continue(changes) => wit::RequestAction::Continue(changes.inner),
            RequestDecision::Respond(response) => wit::RequestAction::Respond(response.into()),
        }
    }
}

/// Builds a header with a lower-case name.
pub(crate) fn header(name: &str, value: impl Into<Vec<u8>>) -> Header {
    Header {
        name: name.to_ascii_lowercase(),
        value: value.into(),
    }
}
