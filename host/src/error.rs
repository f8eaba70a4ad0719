//! One error type for everything that can end a request early, and the one place where it
//! becomes a response: a small JSON body with a stable code and the request id.

use std::fmt;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{ProxyBody, full_body};

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
    /// The client did not send its request (body) in time (408).
    RequestTimeout,
    /// The client broke off its request body (400; it is not there to read it).
    ClientAborted,
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
    /// The route's bulkhead is full (503, with `Retry-After`).
    Overloaded,
    /// An HttpDNS request asks for more names than `httpdns.max_names` (400).
    TooManyNames,
    /// An HttpDNS resolver that requires signatures got an unsigned request (403).
    SignatureRequired,
    /// An HttpDNS request's signature does not verify, names an unknown key, or its
    /// expiry is too far ahead (403).
    InvalidSignature,
    /// An HttpDNS request's signature has expired (403).
    SignatureExpired,
    /// A buffered route knows no such ticket (404).
    UnknownTicket,
}

impl ErrorKind {
    /// The stable code in the JSON body and the `x-weir-error` header.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoRoute => "no_route",
            Self::BodyTooLarge => "body_too_large",
            Self::BadRequest => "bad_request",
            Self::RequestTimeout => "request_timeout",
            Self::ClientAborted => "client_aborted",
            Self::UnknownUpstream => "unknown_upstream",
            Self::NoHealthyTarget => "no_healthy_upstream",
            Self::UpstreamFailed => "upstream_failed",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::PluginFailed => "filter_failed",
            Self::PluginTimeout => "filter_timeout",
            Self::Unavailable => "unavailable",
            Self::Overloaded => "overloaded",
            Self::TooManyNames => "too_many_names",
            Self::SignatureRequired => "signature_required",
            Self::InvalidSignature => "invalid_signature",
            Self::SignatureExpired => "signature_expired",
            Self::UnknownTicket => "unknown_ticket",
        }
    }

    /// The response status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::NoRoute | Self::UnknownTicket => StatusCode::NOT_FOUND,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadRequest | Self::ClientAborted | Self::TooManyNames => StatusCode::BAD_REQUEST,
            Self::SignatureRequired | Self::InvalidSignature | Self::SignatureExpired => {
                StatusCode::FORBIDDEN
            }
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnknownUpstream | Self::PluginFailed => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NoHealthyTarget | Self::PluginTimeout | Self::Unavailable | Self::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::UpstreamFailed => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// What the client is told of an error that is not its own; the detail goes to the log.
    fn public_message(self) -> &'static str {
        match self {
            Self::UnknownUpstream | Self::PluginFailed => "a filter failed",
            Self::PluginTimeout => "a filter did not finish in time",
            Self::NoHealthyTarget => "no healthy upstream target",
            Self::UpstreamFailed => "the upstream could not be reached or answered badly",
            Self::UpstreamTimeout => "the upstream did not answer in time",
            Self::Unavailable => "the gateway cannot take this request now",
            Self::Overloaded => "the route has as many requests as it takes; try again later",
            Self::NoRoute
            | Self::BodyTooLarge
            | Self::BadRequest
            | Self::RequestTimeout
            | Self::ClientAborted
            | Self::TooManyNames
            | Self::SignatureRequired
            | Self::InvalidSignature
            | Self::SignatureExpired
            | Self::UnknownTicket => "the request was refused",
        }
    }

    /// Where errors of this kind come from.
    pub fn source(self) -> ErrorSource {
        match self {
            Self::NoRoute
            | Self::BodyTooLarge
            | Self::BadRequest
            | Self::RequestTimeout
            | Self::ClientAborted
            | Self::TooManyNames
            | Self::SignatureRequired
            | Self::InvalidSignature
            | Self::SignatureExpired
            | Self::UnknownTicket => ErrorSource::Client,
            Self::NoHealthyTarget | Self::UpstreamFailed | Self::UpstreamTimeout => {
                ErrorSource::Upstream
            }
            Self::PluginFailed | Self::PluginTimeout | Self::UnknownUpstream => ErrorSource::Plugin,
            Self::Unavailable | Self::Overloaded => ErrorSource::Internal,
        }
    }
}

/// An error that ends a request, with a detail for the log and the client.
#[derive(Debug, Clone)]
pub struct GatewayError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// A human-readable detail for the log. The client sees it only for its own mistakes;
    /// otherwise it gets the kind's fixed message (no upstream or plugin internals).
    pub detail: String,
    /// When the client may try again, in seconds (`Retry-After`).
    pub retry_after: Option<u64>,
    /// The request never reached the upstream (no connection could be opened): trying it
    /// again cannot apply it twice.
    pub unsent: bool,
}

impl GatewayError {
    /// An error of `kind` with a detail.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            retry_after: None,
            unsent: false,
        }
    }

    /// The same error, marked as one whose request never reached the upstream.
    pub fn unsent(mut self) -> Self {
        self.unsent = true;
        self
    }

    /// The same error, telling the client to try again after `secs` seconds.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The response the client gets: status from the kind, JSON body with the stable code,
    /// a message and the request id.
    pub fn into_response(self, request_id: &str) -> Response<ProxyBody> {
        let message = match self.kind.source() {
            ErrorSource::Client => self.detail.as_str(),
            _ => self.kind.public_message(),
        };
        let body = serde_json::json!({
            "error": self.kind.code(),
            "message": message,
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
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, secs.into());
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

/// Why a filter call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The call ran past its deadline (or its wall-clock stop) and was stopped.
    Deadline,
    /// The instance tried to grow its memory past its cap.
    Memory,
    /// The plugin trapped (a panic, an abort, a bad host call) or returned something the
    /// gateway cannot use.
    Trap,
    /// A fresh instance could not be created or configured.
    Instantiate,
    /// The plugin returned more than `[runtime.results]` allows.
    Oversized,
    /// The filter is backed off after failing in a row: it was not run.
    BackedOff,
}

impl FailureKind {
    /// Every kind, in metrics order.
    pub const ALL: [Self; 6] = [
        Self::Deadline,
        Self::Memory,
        Self::Trap,
        Self::Instantiate,
        Self::Oversized,
        Self::BackedOff,
    ];

    /// A label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::Memory => "memory",
            Self::Trap => "trap",
            Self::Instantiate => "instantiate",
            Self::Oversized => "oversized",
            Self::BackedOff => "backed_off",
        }
    }
}
