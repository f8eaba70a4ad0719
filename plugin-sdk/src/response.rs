//! The response side: responses a filter produces, the upstream's response as a filter
//! sees it, and the changes a filter returns.

use std::cell::OnceCell;

use crate::Header;
use crate::bindings::weir::gateway::types as wit;
use crate::request::header;

/// A response a filter answers with.
#[derive(Debug, Clone)]
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
    pub fn error(status: u16, code: &str, message: &str, request: &crate::Request) -> Self {
        let body = serde_json::json!({
            "error": code,
            "message": message,
            "request_id": request.request_id(),
        });
        Self::json(status, body.to_string()).header("x-weir-error", code)
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
    handle: &'a wit::ResponseView,
    status: OnceCell<u16>,
    body: OnceCell<Option<Vec<u8>>>,
}

impl<'a> ResponseView<'a> {
    #[doc(hidden)]
    pub fn new(handle: &'a wit::ResponseView) -> Self {
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
    pub fn trailers(&self) -> Vec<crate::Header> {
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

/// Changes to the response, built with chained calls.
#[derive(Debug, Clone)]
pub struct ResponseChanges {
    inner: wit::ResponseMutations,
}

impl Default for ResponseChanges {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseChanges {
    /// No changes.
    pub fn new() -> Self {
        Self {
            inner: wit::ResponseMutations {
                status: None,
                remove_headers: Vec::new(),
                set_headers: Vec::new(),
                append_headers: Vec::new(),
                body: None,
            },
        }
    }

    /// Changes the status code.
    pub fn set_status(mut self, status: u16) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// Replaces the body.
    pub fn set_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = Some(body.into());
        self
    }
}

impl_header_changes!(ResponseChanges);

/// What a filter decides about a response.
#[derive(Debug, Clone)]
pub enum ResponseDecision {
    /// Send it on with these changes.
    Continue(ResponseChanges),
    /// Send this response instead.
    Replace(Response),
}

impl ResponseDecision {
    /// Send it on unchanged.
    pub fn proceed() -> Self {
        Self::Continue(ResponseChanges::new())
    }
}

impl From<ResponseDecision> for wit::ResponseAction {
    fn from(decision: ResponseDecision) -> Self {
        match decision {
            ResponseDecision::Continue(changes) => wit::ResponseAction::Continue(changes.inner),
            ResponseDecision::Replace(response) => wit::ResponseAction::Replace(response.into()),
        }
    }
}
