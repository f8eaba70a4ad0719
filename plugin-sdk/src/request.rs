//! The request side: a view of the request that reads from the gateway on demand, and the
//! changes a filter returns.

use std::cell::OnceCell;

use crate::bindings::weir::gateway::types as wit;
use crate::{Header, Response, Variable};

/// The request as a filter sees it: a handle lent by the gateway for the call. Each part is
/// fetched from the gateway when first asked for, so a filter pays only for what it reads;
/// the scalar parts are then kept for the rest of the call. In `on_response` the headers and
/// body are gone (they went upstream); the method, path, route, client, id and variables
/// remain.
pub struct Request<'a> {
    handle: &'a wit::Request,
    method: OnceCell<String>,
    path: OnceCell<String>,
    authority: OnceCell<Option<String>>,
    scheme: OnceCell<String>,
    client_addr: OnceCell<String>,
    route: OnceCell<String>,
    request_id: OnceCell<String>,
    body: OnceCell<Option<Vec<u8>>>,
}

impl<'a> Request<'a> {
    #[doc(hidden)]
    pub fn new(handle: &'a wit::Request) -> Self {
        Self {
            handle,
            method: OnceCell::new(),
            path: OnceCell::new(),
            authority: OnceCell::new(),
            scheme: OnceCell::new(),
            client_addr: OnceCell::new(),
            route: OnceCell::new(),
            request_id: OnceCell::new(),
            body: OnceCell::new(),
        }
    }

    /// The method, upper-case.
    pub fn method(&self) -> &str {
        self.method.get_or_init(|| self.handle.method())
    }

    /// The path and query (`/a/b?x=1`).
    pub fn path(&self) -> &str {
        self.path.get_or_init(|| self.handle.path())
    }

    /// The path without the query.
    pub fn path_only(&self) -> &str {
        self.path().split('?').next().unwrap_or_default()
    }

    /// The query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.path().split_once('?').map(|(_, q)| q)
    }

    /// The authority the client addressed (`Host` or `:authority`).
    pub fn authority(&self) -> Option<&str> {
        self.authority
            .get_or_init(|| self.handle.authority())
            .as_deref()
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.scheme.get_or_init(|| self.handle.scheme())
    }

    /// The body, when the filter declared [`crate::Phase::RequestBody`].
    pub fn body(&self) -> Option<&[u8]> {
        self.body.get_or_init(|| self.handle.body()).as_deref()
    }

    /// The client's address, `ip:port`.
    pub fn client_addr(&self) -> &str {
        self.client_addr.get_or_init(|| self.handle.client_addr())
    }

    /// The route that matched.
    pub fn route(&self) -> &str {
        self.route.get_or_init(|| self.handle.route())
    }

    /// The gateway's id for this request.
    pub fn request_id(&self) -> &str {
        self.request_id.get_or_init(|| self.handle.request_id())
    }

    /// A variable set by an earlier filter (the last one set wins).
    pub fn variable(&self, key: &str) -> Option<String> {
        self.handle.variable(key)
    }

    /// The name of the upstream the request goes to: the route's, or one an earlier filter
    /// chose.
    pub fn upstream(&self) -> String {
        self.handle.upstream()
    }

    /// Every variable set by earlier filters, in order.
    pub fn variables(&self) -> Vec<Variable> {
        self.handle.variables()
    }
}

impl_header_reads!(Request);

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("route", &self.route())
            .finish_non_exhaustive()
    }
}

/// Changes to the request, built with chained calls:
/// `RequestChanges::new().set_header("x-a", "1").remove_header("cookie")`.
#[derive(Debug, Clone)]
pub struct RequestChanges {
    inner: wit::RequestMutations,
    method: Option<String>,
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
                response_headers: Vec::new(),
            },
            method: None,
        }
    }

    /// Changes the method of the request sent upstream (`POST`, say).
    pub fn set_method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
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

impl RequestChanges {
    /// Sets a header on the response the client will get, replacing existing values,
    /// without a response-phase call (the gateway applies it before the response filters).
    pub fn set_response_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.inner.response_headers.push(header(name, value));
        self
    }
}

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

impl RequestDecision {
    /// The decision as the gateway takes it. A new method is set on the request handle
    /// (the one change that is not part of the mutations record); a method the gateway
    /// refuses becomes a 500, as the filter cannot go on as it meant to.
    #[doc(hidden)]
    pub fn into_action(self, request: &Request<'_>) -> wit::RequestAction {
        match self {
            RequestDecision::Continue(changes) => {
                if let Some(method) = &changes.method
                    && let Err(message) = request.handle.set_method(method.as_str())
                {
                    return wit::RequestAction::Respond(
                        Response::error(500, "filter_failed", &message, request).into(),
                    );
                }
                wit::RequestAction::Continue(changes.inner)
            }
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
