//! The two handles a filter reads through: the request and the response lent by the
//! gateway for a call. [`crate::Request`] and [`crate::ResponseView`] sit on these traits,
//! so that the same filter code runs against the gateway (the generated resources) and
//! against [`crate::testing`] fakes under `cargo test`.

use crate::bindings::weir::gateway::types as wit;
use crate::{Header, Variable};

/// The request's parts, each asked for when read (see the WIT `request` resource).
pub trait RequestHandle {
    /// The method, upper-case.
    fn method(&self) -> String;
    /// The path and query.
    fn path(&self) -> String;
    /// The authority the client addressed, if any.
    fn authority(&self) -> Option<String>;
    /// `http` or `https`.
    fn scheme(&self) -> String;
    /// The first value of a header (case-insensitive name).
    fn header(&self, name: &str) -> Option<Vec<u8>>;
    /// Every value of a header, in order.
    fn header_all(&self, name: &str) -> Vec<Vec<u8>>;
    /// All headers, in order.
    fn headers(&self) -> Vec<Header>;
    /// The body, when the filter declared `request-body`.
    fn body(&self) -> Option<Vec<u8>>;
    /// The client's address, `ip:port`.
    fn client_addr(&self) -> String;
    /// The route that matched.
    fn route(&self) -> String;
    /// The gateway's id for the request.
    fn request_id(&self) -> String;
    /// The last value set for a variable, private ones included.
    fn variable(&self, key: &str) -> Option<String>;
    /// Every variable, in order, private ones included.
    fn variables(&self) -> Vec<Variable>;
    /// The upstream the request goes to.
    fn upstream(&self) -> String;
    /// Changes the method of the request sent upstream; a refused method is an error.
    fn set_method(&self, method: &str) -> Result<(), String>;
}

/// The response's parts, each asked for when read (see the WIT `response-view` resource).
pub trait ResponseHandle {
    /// The status code.
    fn status(&self) -> u16;
    /// The first value of a header (case-insensitive name).
    fn header(&self, name: &str) -> Option<Vec<u8>>;
    /// Every value of a header, in order.
    fn header_all(&self, name: &str) -> Vec<Vec<u8>>;
    /// All headers, in order.
    fn headers(&self) -> Vec<Header>;
    /// The body, when the filter declared `response-body`.
    fn body(&self) -> Option<Vec<u8>>;
    /// The trailers, when the filter declared `response-body`.
    fn trailers(&self) -> Vec<Header>;
}

impl RequestHandle for wit::Request {
    fn method(&self) -> String {
        wit::Request::method(self)
    }
    fn path(&self) -> String {
        wit::Request::path(self)
    }
    fn authority(&self) -> Option<String> {
        wit::Request::authority(self)
    }
    fn scheme(&self) -> String {
        wit::Request::scheme(self)
    }
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        wit::Request::header(self, name)
    }
    fn header_all(&self, name: &str) -> Vec<Vec<u8>> {
        wit::Request::header_all(self, name)
    }
    fn headers(&self) -> Vec<Header> {
        wit::Request::headers(self)
    }
    fn body(&self) -> Option<Vec<u8>> {
        wit::Request::body(self)
    }
    fn client_addr(&self) -> String {
        wit::Request::client_addr(self)
    }
    fn route(&self) -> String {
        wit::Request::route(self)
    }
    fn request_id(&self) -> String {
        wit::Request::request_id(self)
    }
    fn variable(&self, key: &str) -> Option<String> {
        wit::Request::variable(self, key)
    }
    fn variables(&self) -> Vec<Variable> {
        wit::Request::variables(self)
    }
    fn upstream(&self) -> String {
        wit::Request::upstream(self)
    }
    fn set_method(&self, method: &str) -> Result<(), String> {
        wit::Request::set_method(self, method)
    }
}

impl ResponseHandle for wit::ResponseView {
    fn status(&self) -> u16 {
        wit::ResponseView::status(self)
    }
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        wit::ResponseView::header(self, name)
    }
    fn header_all(&self, name: &str) -> Vec<Vec<u8>> {
        wit::ResponseView::header_all(self, name)
    }
    fn headers(&self) -> Vec<Header> {
        wit::ResponseView::headers(self)
    }
    fn body(&self) -> Option<Vec<u8>> {
        wit::ResponseView::body(self)
    }
    fn trailers(&self) -> Vec<Header> {
        wit::ResponseView::trailers(self)
    }
}
