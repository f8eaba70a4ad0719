//! One error type for everything that can end a request early, and the one place where it
//! becomes a response: a small JSON body with a stable code and the request id.

use std::fmt;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::proxy::{ProxyBody, full_body};

/// Where an error came from; the status code follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The client sent something the gateway will not forward.
    Client,
    /// The upstream could not be reached or did not answer properly.
    Upstream,
    /// A filter plugin failed (trap, deadline, memory cap).
    Plugin,
    /// The gateway itself.
    Internal,
}

/// Why a request ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No route matched (404).
    NoRoute,
    /// The body is larger than a filter may buffer (413).
    BodyTooLarge,
    /// The request could not be read or forwarded as sent (400).
    BadRequest,
    /// A filter chose an upstream that does not exist (500).
    UnknownUpstream,
    /// Every target of the upstream is unhealthy (503).
    NoHealthyTarget,
    /// Connecting to or talking with the upstream failed (502).
    UpstreamFailed,
    /// The upstream did not answer in time (504).
    UpstreamTimeout,
    /// A filter trapped or returned something invalid, policy fail-closed (500).
    PluginFailed,
    /// A filter ran past its deadline, policy fail-closed (503).
    PluginTimeout,
    /// The gateway is shutting down or out of a resource (503).
    Unavailable,
}

impl ErrorKind {
    /// The stable code in the JSON body and the `x-weir-error` header.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoRoute => "no_route",
            Self::BodyTooLarge => "body_too_large",
            Self::BadRequest => "bad_request",
            Self::UnknownUpstream => "unknown_upstream",
            Self::NoHealthyTarget => "no_healthy_upstream",
            Self::UpstreamFailed => "upstream_failed",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::PluginFailed => "filter_failed",
            Self::PluginTimeout => "filter_timeout",
            Self::Unavailable => "unavailable",
        }
    }

    /// The response status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::UnknownUpstream | Self::PluginFailed => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NoHealthyTarget | Self::PluginTimeout | Self::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::UpstreamFailed => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Where errors of this kind come from.
    pub fn source(self) -> ErrorSource {
        match self {
            Self::NoRoute | Self::BodyTooLarge | Self::BadRequest => ErrorSource::Client,
            Self::NoHealthyTarget | Self::UpstreamFailed | Self::UpstreamTimeout => {
                ErrorSource::Upstream
            }
            Self::PluginFailed | Self::PluginTimeout | Self::UnknownUpstream => ErrorSource::Plugin,
            Self::Unavailable => ErrorSource::Internal,
        }
    }
}

/// An error that ends a request, with a detail for the log and the client.
#[derive(Debug, Clone)]
pub struct GatewayError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// A human-readable detail; never contains secrets or upstream internals.
    pub detail: String,
}

impl GatewayError {
    /// An error of `kind` with a detail.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// The response the client gets: status from the kind, JSON body with the stable code,
    /// the detail and the request id.
    pub fn into_response(self, request_id: &str) -> Response<ProxyBody> {
        let body = serde_json::json!({
            "error": self.kind.code(),
            "message": self.detail,
            "request_id": request_id,
        });
        let mut response = Response::new(full_body(Bytes::from(body.to_string())));
        *response.status_mut() = self.kind.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-weir-error", HeaderValue::from_static(self.kind.code()));
        if let Ok(id) = HeaderValue::from_str(request_id) {
            headers.insert("x-request-id", id);
        }
        response
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.detail)
    }
}

impl std::error::Error for GatewayError {}
