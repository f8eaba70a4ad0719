//! What a degraded request is answered with: the configured fallback (a fixed response or
//! the last good one), marked with the degraded header, or the gateway's 503.

use weir_plugin_sdk::prelude::*;

use crate::cache::{Cache, Entry};
use crate::config::{FallbackConfig, StaticConfig, is_token};

/// Why a request is degraded: the marking header's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The circuit is open (or half-open with every probe taken).
    CircuitOpen,
    /// The upstream answered 5xx, could not be reached or timed out.
    UpstreamError,
    /// The gateway is overloaded and the route is not core.
    Shed,
}

impl Reason {
    /// The header value.
    pub fn label(self) -> &'static str {
        match self {
            Self::CircuitOpen => "circuit-open",
            Self::UpstreamError => "upstream-error",
            Self::Shed => "shed",
        }
    }
}

/// A validated fallback.
#[derive(Debug)]
pub enum Fallback {
    /// A fixed response.
    Static(StaticConfig),
    /// The last good response.
    Cache(Cache),
}

impl Fallback {
    /// Validates the `fallback` section.
    pub fn from_config(config: FallbackConfig) -> Result<Self, String> {
        match config {
            FallbackConfig::Static(s) => Ok(Self::Static(checked_static("fallback", s)?)),
            FallbackConfig::Cache(c) => Ok(Self::Cache(Cache::from_config(c)?)),
        }
    }

    /// The fallback for a request whose cache key (for a cache fallback) is `key`; `None`
    /// when a cache fallback has nothing stored and nothing to serve when empty.
    pub fn response(&self, key: Option<&str>) -> Option<Response> {
        match self {
            Self::Static(fixed) => Some(static_response(fixed)),
            Self::Cache(cache) => match key.and_then(|key| cache.load(key)) {
                Some(entry) => Some(entry_response(entry)),
                None => cache.when_empty.as_ref().map(static_response),
            },
        }
    }
}

/// The 503 for a degraded request with no fallback to serve, in the gateway's error shape,
/// with `Retry-After` (RFC 9110 §10.2.3) in seconds.
pub fn unavailable(reason: Reason, retry_after_s: u64, request: &Request) -> Response {
    let (code, message) = match reason {
        Reason::CircuitOpen => (
            "circuit_open",
            "the upstream is failing; the gateway is not calling it for now",
        ),
        Reason::UpstreamError => ("upstream_failed", "the upstream failed"),
        Reason::Shed => (
            "load_shed",
            "the gateway is overloaded and serves core routes only",
        ),
    };
    Response::error(503, code, message, request).header("retry-after", retry_after_s.to_string())
}

/// Marks `response` as degraded for `reason`.
pub fn mark(response: Response, header: &str, reason: Reason) -> Response {
    response.header(header, reason.label())
}

fn static_response(fixed: &StaticConfig) -> Response {
    let mut response = Response::new(fixed.status).body(fixed.body.as_bytes());
    for (name, value) in &fixed.headers {
        response = response.header(name, value.as_bytes());
    }
    response
}

fn entry_response(entry: Entry) -> Response {
    let response = Response::new(entry.status).body(entry.body);
    match entry.content_type {
        Some(content_type) => response.header("content-type", content_type),
        None => response,
    }
}

/// A static response with a real status and headers the gateway can send.
pub fn checked_static(at: &str, s: StaticConfig) -> Result<StaticConfig, String> {
    if !(200..=599).contains(&s.status) {
        return Err(format!("{at}.status must be 200..=599, not {}", s.status));
    }
    for (name, value) in &s.headers {
        if !is_token(name) {
            return Err(format!("{at}.headers: {name:?} is not a header name"));
        }
        // RFC 9110 §5.5: visible ASCII, spaces and tabs (no CR, LF or NUL).
        if !value
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            return Err(format!(
                "{at}.headers.{name}: the value has control characters"
            ));
        }
    }
    Ok(s)
}
