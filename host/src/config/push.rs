//! `[push]`: where accepted messages are kept and the bounds of delivery; and a route's
//! `push` endpoint. Every value has a documented default (`docs/configuration.md`).

use std::path::PathBuf;

use serde::Deserialize;

/// `[push]`. Changing `store` or `history` needs a restart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
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
    /// Vendor channels: APNs, FCM, Huawei Push Kit, Xiaomi Mi Push.
    pub vendors: VendorsConfig,
    /// Where a pruned token is reported: a `POST` of JSON to a named upstream.
    pub feedback: Option<FeedbackConfig>,
    /// Attempts at a vendor send before it is given up (default 10).
    pub vendor_max_attempts: u32,
    /// The time one vendor call may take, in ms (default 10 000).
    pub vendor_timeout_ms: u64,
    /// Vendor calls in flight at once (default 32).
    pub vendor_concurrency: usize,
    /// The first wait before a vendor send is tried again, in ms (default 1000); it
    /// doubles with each attempt, up to 5 minutes, unless the vendor says `Retry-After`.
    pub vendor_retry_ms: u64,
}

/// `[push.vendors]`: the vendor channels configured; a device whose platform has none is
/// served by its long connection only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct VendorsConfig {
    /// Apple Push Notification service (HTTP/2, token-based).
    pub apns: Option<ApnsConfig>,
    /// Firebase Cloud Messaging, HTTP v1.
    pub fcm: Option<FcmConfig>,
    /// Huawei Push Kit.
    pub hms: Option<HmsConfig>,
    /// Xiaomi Mi Push.
    pub mi: Option<MiConfig>,
}

/// `[push.vendors.apns]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsConfig {
    /// The named upstream (`api.push.apple.com:443`, TLS, protocol `h2`).
    pub upstream: String,
    /// The Apple developer team id (the provider token's `iss`).
    pub team_id: String,
    /// The signing key's id (the provider token's `kid`).
    pub key_id: String,
    /// The secret holding the signing key (the `.p8` PEM, EC P-256).
    pub key: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// `apns-push-type` (default `alert`).
    #[serde(default = "alert")]
    pub push_type: String,
}

fn alert() -> String {
    "alert".into()
}

/// `[push.vendors.fcm]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FcmConfig {
    /// The named upstream (`fcm.googleapis.com:443`, TLS).
    pub upstream: String,
    /// The named upstream of the service account's `token_uri` (`oauth2.googleapis.com`).
    pub token_upstream: String,
    /// The Firebase project id.
    pub project_id: String,
    /// The secret holding the service-account JSON (`client_email`, `private_key`,
    /// `token_uri`).
    pub service_account: String,
}

/// `[push.vendors.hms]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HmsConfig {
    /// The named upstream (`push-api.cloud.huawei.com:443`, TLS).
    pub upstream: String,
    /// The named upstream of the OAuth server (`oauth-login.cloud.huawei.com`).
    pub token_upstream: String,
    /// The app id (the OAuth client id).
    pub app_id: String,
    /// The secret holding the app secret (the OAuth client secret).
    pub client_secret: String,
}

/// `[push.vendors.mi]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MiConfig {
    /// The named upstream (`api.xmpush.xiaomi.com:443`, TLS).
    pub upstream: String,
    /// The secret holding the app secret (`Authorization: key=`).
    pub app_secret: String,
    /// The app's package name (`restricted_package_name`).
    pub package_name: String,
}

/// `[push.feedback]`: pruned tokens are reported here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackConfig {
    /// The named upstream.
    pub upstream: String,
    /// The path (default `/`).
    #[serde(default = "root")]
    pub path: String,
}

fn root() -> String {
    "/".into()
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
            vendors: VendorsConfig::default(),
            feedback: None,
            vendor_max_attempts: 10,
            vendor_timeout_ms: 10_000,
            vendor_concurrency: 32,
            vendor_retry_ms: 1000,
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
            ("vendor_max_attempts", u64::from(self.vendor_max_attempts)),
            ("vendor_timeout_ms", self.vendor_timeout_ms),
            ("vendor_concurrency", self.vendor_concurrency as u64),
            ("vendor_retry_ms", self.vendor_retry_ms),
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

    /// The named upstreams and secrets the vendor channels and the feedback hook use, for
    /// the config's cross-checks: (what, upstream names, secret names).
    pub fn references(&self) -> (Vec<Reference<'_>>, Vec<Reference<'_>>) {
        let v = &self.vendors;
        let mut upstreams = Vec::new();
        let mut secrets = Vec::new();
        if let Some(c) = &v.apns {
            upstreams.push(("push.vendors.apns.upstream", c.upstream.as_str()));
            secrets.push(("push.vendors.apns.key", c.key.as_str()));
        }
        if let Some(c) = &v.fcm {
            upstreams.push(("push.vendors.fcm.upstream", c.upstream.as_str()));
            upstreams.push(("push.vendors.fcm.token_upstream", c.token_upstream.as_str()));
            secrets.push((
                "push.vendors.fcm.service_account",
                c.service_account.as_str(),
            ));
        }
        if let Some(c) = &v.hms {
            upstreams.push(("push.vendors.hms.upstream", c.upstream.as_str()));
            upstreams.push(("push.vendors.hms.token_upstream", c.token_upstream.as_str()));
            secrets.push(("push.vendors.hms.client_secret", c.client_secret.as_str()));
        }
        if let Some(c) = &v.mi {
            upstreams.push(("push.vendors.mi.upstream", c.upstream.as_str()));
            secrets.push(("push.vendors.mi.app_secret", c.app_secret.as_str()));
        }
        if let Some(f) = &self.feedback {
            upstreams.push(("push.feedback.upstream", f.upstream.as_str()));
        }
        (upstreams, secrets)
    }
}

/// A name the push config refers to: (the key that holds it, the name).
pub type Reference<'a> = (&'static str, &'a str);

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
