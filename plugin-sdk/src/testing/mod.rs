//! Running a filter's logic natively, under `cargo test`: a [`FakeRequest`] and a
//! [`FakeResponse`] to hand it, and a [`FakeHost`] that answers its host calls (clock, kv,
//! secrets, limits, http, upstreams, log).
//!
//! ```ignore
//! use weir_plugin_sdk::testing::{FakeHost, FakeRequest};
//!
//! let host = FakeHost::new().secret("api-key", b"k1").install();
//! let filter = MyFilter::new(config).unwrap();
//! let request = FakeRequest::get("/users/7").header("x-api-key", "k1");
//! let decision = filter.on_request(&request.view());
//! assert_eq!(decision.changes().unwrap().variable("consumer"), Some("ann"));
//! ```
//!
//! A request that went on carries the filter's changes into the response phase with
//! [`FakeRequest::apply`] and [`FakeRequest::in_response_phase`], so that what
//! `on_request` kept (variables, the private context) reaches `on_response`.

mod host;
mod upstreams;

use std::cell::RefCell;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use host::with_installed;
pub use host::{FakeHost, Installed};

use crate::{
    Filter, Header, HeaderChanges, Request, RequestChanges, RequestHandle, Response,
    ResponseHandle, ResponseView, Variable,
};

/// Setters of text parts of a [`FakeRequest`]: `name => field;`, each with its doc.
macro_rules! text_setters {
    ($($(#[$doc:meta])* $name:ident => $field:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: &str) -> Self {
                self.$field = value.to_string();
                self
            }
        )*
    };
}

/// The header and body builders of a fake (request or response).
macro_rules! fake_builders {
    () => {
        /// Adds a header line (several lines of one name are kept in order).
        pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
            self.headers.push(crate::changes::header(name, value));
            self
        }

        /// Sets the body, as the gateway lends it to a filter that declared the body phase.
        pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
            self.body = Some(body.into());
            self
        }
    };
}

/// The header and body reads of a fake (request or response): from its `headers` and
/// `body` fields, names compared in any case.
macro_rules! fake_reads {
    () => {
        fn header(&self, name: &str) -> Option<Vec<u8>> {
            all(&self.headers, name).into_iter().next()
        }
        fn header_all(&self, name: &str) -> Vec<Vec<u8>> {
            all(&self.headers, name)
        }
        fn headers(&self) -> Vec<Header> {
            self.headers.clone()
        }
        fn body(&self) -> Option<Vec<u8>> {
            self.body.clone()
        }
    };
}

/// A request to hand a filter: built with chained calls, read through [`FakeRequest::view`].
#[derive(Debug, Clone)]
pub struct FakeRequest {
    method: RefCell<String>,
    path: String,
    authority: Option<String>,
    scheme: String,
    headers: Vec<Header>,
    body: Option<Vec<u8>>,
    client_addr: String,
    route: String,
    request_id: String,
    variables: Vec<Variable>,
    upstream: String,
}

impl FakeRequest {
    /// A request with this method and path (and query): `http`, authority `example.com`,
    /// from `192.0.2.1:50000`, on route `route` to upstream `upstream`, id `req-1`.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: RefCell::new(method.to_ascii_uppercase()),
            path: path.to_string(),
            authority: Some("example.com".to_string()),
            scheme: "http".to_string(),
            headers: Vec::new(),
            body: None,
            client_addr: "192.0.2.1:50000".to_string(),
            route: "route".to_string(),
            request_id: "req-1".to_string(),
            variables: Vec::new(),
            upstream: "upstream".to_string(),
        }
    }

    /// A `GET` of `path`.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// A `POST` of `path`.
    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    fake_builders!();

    /// Sets the authority; `None` for a request without one.
    pub fn authority(mut self, authority: Option<&str>) -> Self {
        self.authority = authority.map(str::to_string);
        self
    }

    text_setters! {
        /// Sets the scheme.
        scheme => scheme;
        /// Sets the client's address (`ip:port`).
        client => client_addr;
        /// Sets the route's name.
        route => route;
        /// Sets the request id.
        id => request_id;
        /// Sets the upstream the request goes to.
        upstream => upstream;
    }

    /// Adds a variable, as an earlier filter would have set it.
    pub fn variable(mut self, key: &str, value: &str) -> Self {
        self.variables.push(Variable {
            key: key.to_string(),
            value: value.to_string(),
        });
        self
    }

    /// The view a filter reads.
    pub fn view(&self) -> Request<'_> {
        Request::new(self)
    }

    /// The request as the next filter (and the upstream) sees it after `changes`: headers
    /// removed, set and appended, and the new method, path, body, upstream and variables.
    pub fn apply(&self, changes: &RequestChanges) -> Self {
        let mut next = self.clone();
        for name in changes.removed_headers() {
            next.headers.retain(|h| &h.name != name);
        }
        for header in changes.set_headers() {
            next.headers.retain(|h| h.name != header.name);
            next.headers.push(header.clone());
        }
        next.headers
            .extend(changes.appended_headers().iter().cloned());
        if let Some(method) = changes.method() {
            *next.method.borrow_mut() = method.to_string();
        }
        if let Some(path) = changes.path() {
            next.path = path.to_string();
        }
        if let Some(body) = changes.body() {
            next.body = Some(body.to_vec());
        }
        if let Some(upstream) = changes.upstream() {
            next.upstream = upstream.to_string();
        }
        next.variables.extend(changes.variables().iter().cloned());
        next
    }

    /// The request as `on_response` sees it: its headers and body are gone (they went
    /// upstream).
    pub fn in_response_phase(&self) -> Self {
        Self {
            headers: Vec::new(),
            body: None,
            ..self.clone()
        }
    }
}

/// `filter`'s refusal of `request`, checked to have `status` and the error `code` (its
/// `x-weir-error` header); panics if the filter lets the request through.
pub fn refused<F: Filter>(filter: &F, request: &FakeRequest, status: u16, code: &str) -> Response {
    let decision = filter.on_request(&request.view());
    let response = decision.response().expect("refused").clone();
    assert_eq!(response.status(), status);
    assert_eq!(response.header_value("x-weir-error"), Some(code));
    response
}

impl RequestHandle for FakeRequest {
    fn method(&self) -> String {
        self.method.borrow().clone()
    }
    fn path(&self) -> String {
        self.path.clone()
    }
    fn authority(&self) -> Option<String> {
        self.authority.clone()
    }
    fn scheme(&self) -> String {
        self.scheme.clone()
    }
    fake_reads!();
    fn client_addr(&self) -> String {
        self.client_addr.clone()
    }
    fn route(&self) -> String {
        self.route.clone()
    }
    fn request_id(&self) -> String {
        self.request_id.clone()
    }
    fn variable(&self, key: &str) -> Option<String> {
        let found = self.variables.iter().rev().find(|v| v.key == key);
        found.map(|v| v.value.clone())
    }
    fn variables(&self) -> Vec<Variable> {
        self.variables.clone()
    }
    fn upstream(&self) -> String {
        self.upstream.clone()
    }
    /// Refuses what the gateway refuses: a method that is not an HTTP token.
    fn set_method(&self, method: &str) -> Result<(), String> {
        if method.is_empty()
            || !method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!("invalid method {method:?}"));
        }
        *self.method.borrow_mut() = method.to_string();
        Ok(())
    }
}

/// A response to hand a filter's `on_response`.
#[derive(Debug, Clone)]
pub struct FakeResponse {
    status: u16,
    headers: Vec<Header>,
    body: Option<Vec<u8>>,
    trailers: Vec<Header>,
}

impl FakeResponse {
    /// A response with this status, no headers and no body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: None,
            trailers: Vec::new(),
        }
    }

    fake_builders!();

    /// Adds a trailer.
    pub fn trailer(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.trailers.push(crate::changes::header(name, value));
        self
    }

    /// The view a filter reads.
    pub fn view(&self) -> ResponseView<'_> {
        ResponseView::new(self)
    }
}

impl ResponseHandle for FakeResponse {
    fn status(&self) -> u16 {
        self.status
    }
    fake_reads!();
    fn trailers(&self) -> Vec<Header> {
        self.trailers.clone()
    }
}

/// Every value of the header `name` (any case), in order.
fn all(headers: &[Header], name: &str) -> Vec<Vec<u8>> {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .filter(|h| h.name == name)
        .map(|h| h.value.clone())
        .collect()
}
