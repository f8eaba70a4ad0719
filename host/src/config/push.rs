//! `[push]`: where accepted messages are kept and the bounds of delivery; and a route's
//! `push` endpoint. Every value has a documented default (`docs/configuration.md`).

use std::path::PathBuf;

use serde::Deserialize;

/// `[push]`. Changing `store` needs a restart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// The embedded store's file (default `<config dir>/.weir-push.redb`).
    pub store: Option<PathBuf>,
    /// The largest payload a publish may carry, in bytes of JSON (default 4096).
    pub max_payload_bytes: usize,
    /// The TTL of a message published without one, in ms (default 86 400 000, a day).
    pub default_ttl_ms: u64,
    /// The longest TTL a publish may ask for, in ms (default 2 419 200 000, 28 days).
    pub max_ttl_ms: u64,
    /// Messages kept per device; past it the oldest unacked ones are lost, and a device
    /// that resumes before them is told (default 1000).
    pub history: u64,
    /// Messages sent on a connection and not yet acked, at most (default 64): the
    /// per-connection queue.
    pub window: usize,
    /// How long a sent message waits for its ack before it is sent again, in ms (default
    /// 10 000); doubled after each resend, up to `max_redeliver_ms`.
    pub ack_timeout_ms: u64,
    /// The longest wait between resends, in ms (default 60 000).
    pub max_redeliver_ms: u64,
    /// How long a write to a device may wait on a connection that does not read before
    /// the connection is closed, in ms (default 10 000).
    pub send_timeout_ms: u64,
    /// A ping (WebSocket) or comment (SSE) after this long without traffic, in ms
    /// (default 30 000); a WebSocket client silent for twice as long is closed.
    pub keepalive_ms: u64,
    /// How long the answer to a message id is kept for a repeated publish, at least, in
    /// ms (default 86 400 000); a message's own TTL extends it.
    pub idempotency_ms: u64,
    /// The largest WebSocket message a device may send, in bytes (default 16 384).
    pub max_frame_bytes: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            store: None,
            max_payload_bytes: 4096,
            default_ttl_ms: 86_400_000,
            max_ttl_ms: 2_419_200_000,
            history: 1000,
            window: 64,
            ack_timeout_ms: 10_000,
            max_redeliver_ms: 60_000,
            send_timeout_ms: 10_000,
            keepalive_ms: 30_000,
            idempotency_ms: 86_400_000,
            max_frame_bytes: 16 << 10,
        }
    }
}

impl PushConfig {
    /// Refuses values that cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            ("max_payload_bytes", self.max_payload_bytes as u64),
            ("max_ttl_ms", self.max_ttl_ms),
            ("history", self.history),
            ("window", self.window as u64),
            ("ack_timeout_ms", self.ack_timeout_ms),
            ("send_timeout_ms", self.send_timeout_ms),
            ("keepalive_ms", self.keepalive_ms),
            ("max_frame_bytes", self.max_frame_bytes as u64),
        ];
        for (name, value) in positive {
            anyhow::ensure!(value > 0, "push.{name} must be positive");
        }
        anyhow::ensure!(
            self.default_ttl_ms <= self.max_ttl_ms,
            "push.default_ttl_ms is above push.max_ttl_ms"
        );
        anyhow::ensure!(
            self.max_redeliver_ms >= self.ack_timeout_ms,
            "push.max_redeliver_ms is below push.ack_timeout_ms"
        );
        Ok(())
    }
}

/// What a push route serves instead of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushEndpoint {
    /// Devices' long connections: WebSocket, or SSE for `Accept: text/event-stream`.
    Connect,
    /// `POST` a message.
    Publish,
    /// Register (`POST`), list (`GET`) and unbind (`DELETE`) the caller's devices, and ack
    /// (`POST` with `ack`) for SSE clients.
    Devices,
}
