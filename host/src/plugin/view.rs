//! The request and response lent to a filter for one call: the gateway's own values,
//! which the generated bindings name as the `request` and `response-view` resources
//! (`imports/view.rs` answers a filter's questions about them).

use std::net::SocketAddr;

use bytes::Bytes;
use http::HeaderMap;

/// Variables set by filters, in the order they were set (a later one wins on reading).
pub type Variables = Vec<(String, String)>;

/// The request a filter is called with.
#[derive(Debug)]
pub struct RequestView {
    /// Method, URI and headers (no headers in `on-response`: they went upstream).
    pub parts: http::request::Parts,
    /// The buffered body, for filters that declared `request-body`.
    pub body: Option<Bytes>,
    /// The authority the client addressed.
    pub authority: Option<String>,
    /// The TCP peer.
    pub client: SocketAddr,
    /// `https` over TLS, else `http`.
    pub scheme: &'static str,
    /// The request id.
    pub request_id: String,
    /// Variables set by the filters so far.
    pub variables: Variables,
    /// The upstream an earlier filter chose, if one did (otherwise the route's).
    pub upstream: Option<String>,
}

/// The response `on-response` is called with.
#[derive(Debug)]
pub struct ResponseView {
    /// Status and headers.
    pub parts: http::response::Parts,
    /// The buffered body, for filters that declared `response-body`.
    pub body: Option<Bytes>,
    /// The trailers that followed the buffered body, if any.
    pub trailers: Option<HeaderMap>,
}
