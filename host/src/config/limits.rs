//! `[server.limits]`: what one client may hold of the gateway — connections, time and
//! buffered bytes — each with a default that keeps an idle or trickling client from
//! pinning resources.

use anyhow::bail;
use serde::Deserialize;

/// Connection, timeout and buffering limits of the proxy listeners.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Open client connections, all workers together (default 10 000); beyond it a new
    /// connection is closed at once.
    pub max_connections: usize,
    /// Open client connections from one IP address (default 1 024).
    pub max_connections_per_ip: usize,
    /// Time for a new connection's first bytes: the HTTP/1 request line starts, or the
    /// HTTP/2 preface is complete (default 10 s).
    pub first_byte_timeout_ms: u64,
    /// Time to receive a request's whole header block, HTTP/1 (default 30 s).
    pub header_read_timeout_ms: u64,
    /// A connection with no byte read or written for this long is closed (default 60 s).
    pub idle_timeout_ms: u64,
    /// An HTTP/1.1 keep-alive connection with no request for this long gives back its
    /// buffers and waits for its next request holding only its socket (default 1 s).
    pub idle_release_ms: u64,
    /// HTTP/2 keep-alive ping interval (default 20 s) ...
    pub h2_ping_interval_ms: u64,
    /// ... and how long a ping may go unanswered (default 20 s).
    pub h2_ping_timeout_ms: u64,
    /// Concurrent streams per HTTP/2 connection (default 128).
    pub h2_max_concurrent_streams: u32,
    /// Longest pause between two chunks of a request body (default 30 s); 408 beyond it.
    pub body_idle_timeout_ms: u64,
    /// Longest time to receive a whole request body (default 5 min); 408 beyond it.
    pub body_total_timeout_ms: u64,
    /// Longest pause between two chunks of an upstream's response body (default 60 s).
    pub upstream_body_idle_timeout_ms: u64,
    /// Request and response bodies held in memory for filters, all requests together
    /// (default 256 MiB); a request that would go beyond it is refused with 503.
    pub max_buffered_bytes: usize,
    /// Upgrade protocols spliced through (default `["websocket"]`); others are ignored and
    /// the request is served as plain HTTP/1.1 (RFC 9110 §7.8).
    pub upgrades: Vec<String>,
    /// A spliced (upgraded) connection with no byte either way for this long is closed
    /// (default 5 min).
    pub tunnel_idle_timeout_ms: u64,
    /// The accept backlog of each worker's listening socket (default 1 024; read at start).
    pub listen_backlog: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 1_024,
            first_byte_timeout_ms: 10_000,
            header_read_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            idle_release_ms: 1_000,
            h2_ping_interval_ms: 20_000,
            h2_ping_timeout_ms: 20_000,
            h2_max_concurrent_streams: 128,
            body_idle_timeout_ms: 30_000,
            body_total_timeout_ms: 300_000,
            upstream_body_idle_timeout_ms: 60_000,
            max_buffered_bytes: 256 << 20,
            upgrades: vec!["websocket".to_string()],
            tunnel_idle_timeout_ms: 300_000,
            listen_backlog: 1_024,
        }
    }
}

impl LimitsConfig {
    /// Refuses zeros where zero would mean "never" or "nothing".
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, value) in [
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            ("first_byte_timeout_ms", self.first_byte_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("idle_release_ms", self.idle_release_ms),
            ("h2_ping_interval_ms", self.h2_ping_interval_ms),
            ("h2_ping_timeout_ms", self.h2_ping_timeout_ms),
            (
                "h2_max_concurrent_streams",
                u64::from(self.h2_max_concurrent_streams),
            ),
            ("body_idle_timeout_ms", self.body_idle_timeout_ms),
            ("body_total_timeout_ms", self.body_total_timeout_ms),
            (
                "upstream_body_idle_timeout_ms",
                self.upstream_body_idle_timeout_ms,
            ),
            ("max_buffered_bytes", self.max_buffered_bytes as u64),
            ("tunnel_idle_timeout_ms", self.tunnel_idle_timeout_ms),
            ("listen_backlog", u64::from(self.listen_backlog)),
        ] {
            if value == 0 {
                bail!("server.limits.{name} must be above 0");
            }
        }
        if let Some(bad) = self.upgrades.iter().find(|p| p.eq_ignore_ascii_case("h2c")) {
            bail!("server.limits.upgrades: {bad:?} cannot be spliced (HTTP/2 is served natively)");
        }
        Ok(())
    }
}
