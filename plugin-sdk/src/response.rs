//! The response side: responses a filter produces, and the upstream's response as a filter
//! sees it.

use std::cell::OnceCell;

use crate::bindings::weir::gateway::types as wit;
use crate::changes::header;
use crate::handle::ResponseHandle;
use crate::{Header, HostError, Request};

/// A response a filter answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<Header>,
    body: Option<Vec<u8>>,
}

impl Response {
    /// An empty response with this status.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: None,
        }
    }

    /// A JSON response with this status and body.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::new(status)
            .header("content-type", "application/json")
            .body(body)
    }

    /// An error response in the gateway's own shape, so that clients parse one format:
    /// `{"error": code, "message": message, "request_id": id}` with `content-type:
    /// application/json` and the code also in `x-weir-error`. `code` is a stable,
    /// machine-readable identifier (`invalid_api_key`); `message` is for people and must not
    /// leak secrets.
    pub fn error(status: u16, code: &str, message: &str, request: &Request) -> Self {
        let body = serde_json::json!({
            "error": code,
            "message": message,
            "request_id": request.request_id(),
        });
        Self::json(status, body.to_string()).header("x-weir-error", code)
    }

    /// The answer when a host call the filter cannot do without fails, in the gateway's
    /// error shape. The code starts with the filter's name (`rate-limit` gives
    /// `rate_limit_…`):
    ///
    /// - `unavailable` (the backend is down): 503 `<filter>_unavailable` with
    ///   `retry-after: 1`, since the request may pass a moment later;
    /// - `access-denied` (the gateway config does not grant `needs`) and `invalid`: 500
    ///   `<filter>_misconfigured`, which an operator has to fix.
    ///
    /// `needs` names what the filter must be granted, for the message (`"the limits
    /// interface"`).
    pub fn host_error(error: &HostError, filter: &str, needs: &str, request: &Request) -> Self {
        let prefix = filter.replace('-', "_");
        match error {
            HostError::Unavailable(_) => Self::error(
                503,
                &format!("{prefix}_unavailable"),
                &format!("{needs} is unavailable"),
                request,
            )
            .header("retry-after", "1"),
            HostError::AccessDenied => Self::error(
                500,
                &format!("{prefix}_misconfigured"),
                &format!("the {filter} filter is not granted {needs}"),
                request,
            ),
            HostError::Invalid(reason) => {
                Self::error(500, &format!("{prefix}_misconfigured"), reason, request)
            }
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(header(name, value));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Its status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Its headers, in order (names lower-case).
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The first value of the header `name` (lower-case) as text, if present and UTF-8.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .and_then(|h| std::str::from_utf8(&h.value).ok())
    }

    /// Its body, if it has one.
    pub fn body_bytes(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }
}

impl From<Response> for wit::Response {
    fn from(r: Response) -> Self {
        wit::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

/// The response as a filter sees it in `on_response`: a handle lent by the gateway for the
/// call, read on demand like [`crate::Request`].
pub struct ResponseView<'a> {
    handle: &'a dyn ResponseHandle,
    status: OnceCell<u16>,
    body: OnceCell<Option<Vec<u8>>>,
}

impl<'a> ResponseView<'a> {
    /// A view of `handle`: the gateway's response, or a [`crate::testing::FakeResponse`].
    pub fn new(handle: &'a dyn ResponseHandle) -> Self {
        Self {
            handle,
            status: OnceCell::new(),
            body: OnceCell::new(),
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        *self.status.get_or_init(|| self.handle.status())
    }

    /// The body, when the filter declared [`crate::Phase::ResponseBody`].
    pub fn body(&self) -> Option<&[u8]> {
        self.body.get_or_init(|| self.handle.body()).as_deref()
    }

    /// The trailers (`grpc-status`, say), when the filter declared
    /// [`crate::Phase::ResponseBody`]; empty otherwise or when there are none.
    pub fn trailers(&self) -> Vec<Header> {
        self.handle.trailers()
    }
}

impl_header_reads!(ResponseView);

impl std::fmt::Debug for ResponseView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseView")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}
