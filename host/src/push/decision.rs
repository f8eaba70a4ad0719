//! The push-routing decision: what is known of a message and a device when the gateway
//! asks where the message goes, and the answer. The push-routing filter (a Wasm component,
//! `plugin::router`) implements [`PushRouter`]; [`DefaultPolicy`] is the policy the bundled
//! `push-routing` plugin documents, used where a publish route configures no router.

use std::future::Future;
use std::pin::Pin;

/// A device's platform: the gateway's own long connections, or a vendor's push channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// WebSocket or SSE through the gateway only.
    Ws,
    /// Apple Push Notification service.
    Apns,
    /// Firebase Cloud Messaging.
    Fcm,
    /// Huawei Push Kit.
    Hms,
    /// Xiaomi Mi Push.
    Mi,
}

/// How urgent a message is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Delivered when convenient (the default).
    #[default]
    Normal,
    /// Worth waking a device for.
    High,
}

/// What the router sees of a message.
#[derive(Debug, Clone)]
pub struct MessageFacts {
    /// The publisher's message id.
    pub id: String,
    /// Its priority.
    pub priority: Priority,
    /// Milliseconds it has left to live.
    pub ttl_ms: u64,
    /// The collapse key, if any.
    pub collapse_key: Option<String>,
    /// The payload's size.
    pub payload_bytes: u32,
}

/// What the router sees of a device.
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    /// The device id.
    pub id: String,
    /// The user it is bound to.
    pub user: String,
    /// Its platform.
    pub platform: Platform,
    /// Whether it holds a live connection to this gateway now.
    pub online: bool,
    /// Whether it registered a vendor token.
    pub has_token: bool,
}

/// Where a message goes for one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// The device's live connection (it is also kept until acked).
    Live,
    /// The device's vendor channel.
    Vendor,
    /// The offline queue: delivered when the device connects.
    Queue,
    /// Nowhere.
    Drop,
}

/// A future the router answers with: a delivery, or why it could not decide.
pub type Decided<'a> = Pin<Box<dyn Future<Output = Result<Delivery, String>> + Send + 'a>>;

/// Decides where a message goes for a device.
pub trait PushRouter: Send + Sync {
    /// The delivery of `message` to `device`.
    fn decide<'a>(&'a self, message: &'a MessageFacts, device: &'a DeviceFacts) -> Decided<'a>;
}

/// Live connection first; a vendor channel for an offline device with a token when the
/// message is high priority; else the queue.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultPolicy;

impl DefaultPolicy {
    /// The policy's answer.
    pub fn delivery(message: &MessageFacts, device: &DeviceFacts) -> Delivery {
        if device.online {
            Delivery::Live
        } else if device.platform != Platform::Ws
            && device.has_token
            && message.priority == Priority::High
        {
            Delivery::Vendor
        } else {
            Delivery::Queue
        }
    }
}

impl PushRouter for DefaultPolicy {
    fn decide<'a>(&'a self, message: &'a MessageFacts, device: &'a DeviceFacts) -> Decided<'a> {
        let delivery = Self::delivery(message, device);
        Box::pin(async move { Ok(delivery) })
    }
}

/// A router whose failures fall back to [`DefaultPolicy`] (a router configured
/// `failure = "fail_open"`); a plain router's failures keep the message in the queue.
pub struct FailOpen<R>(pub R);

impl<R: PushRouter> PushRouter for FailOpen<R> {
    fn decide<'a>(&'a self, message: &'a MessageFacts, device: &'a DeviceFacts) -> Decided<'a> {
        Box::pin(async move {
            match self.0.decide(message, device).await {
                Ok(delivery) => Ok(delivery),
                Err(reason) => {
                    tracing::warn!(message = %message.id, device = %device.id, %reason, "push routing failed; the default policy decides");
                    Ok(DefaultPolicy::delivery(message, device))
                }
            }
        })
    }
}
