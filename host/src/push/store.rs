//! What push keeps: devices bound to users, each device's ordered stream of messages with
//! offsets and its ack cursor, and the answer given to each message id. Behind a trait, so
//! that the embedded store (`redb`, the default) and a shared one for a fleet serve the
//! same delivery code.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use super::decision::{Platform, Priority};

/// A registered device, bound to one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// The client's device id.
    pub id: String,
    /// The user it is bound to (the `consumer` an auth filter set).
    pub user: String,
    /// Its platform.
    pub platform: Platform,
    /// The vendor's token for it, if it has a vendor channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The topics it follows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
}

/// A message as stored and delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The publisher's id (the idempotency key).
    pub id: String,
    /// What the publisher sent, as JSON.
    pub payload: serde_json::Value,
    /// Its priority.
    pub priority: Priority,
    /// When it expires, in ms since the Unix epoch.
    pub expires_ms: u64,
    /// Its collapse key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_key: Option<String>,
}

/// Whom a message is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Every device bound to the user.
    User(String),
    /// One device.
    Device(String),
    /// Every device that follows the topic.
    Topic(String),
}

/// A message in a device's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Its offset in the device's stream (from 1, without holes).
    pub offset: u64,
    /// The message.
    pub message: Message,
}

/// What a device has to catch up on.
#[derive(Debug, Default)]
pub struct Backlog {
    /// The messages after the asked offset, in order.
    pub entries: Vec<Stored>,
    /// Offsets after the asked one that are gone unread (expired, or past the history
    /// cap): the client must resync what they held.
    pub lost: Option<(u64, u64)>,
    /// Messages that expired unread and were removed by this read.
    pub expired: u64,
}

/// A message due on a device's vendor channel, claimed for one attempt.
#[derive(Debug, Clone)]
pub struct VendorJob {
    /// The device (with its token).
    pub device: Device,
    /// The message's offset in the device's stream.
    pub offset: u64,
    /// The message.
    pub message: Message,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// What became of a vendor attempt, for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorDone {
    /// Sent, or refused for good: the job is over.
    Finished,
    /// Try again at this time (ms since the Unix epoch).
    RetryAt(u64),
    /// The token is dead: the device's token is pruned and all its vendor jobs end.
    Unregistered,
}

/// A store's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The device is bound to another user.
    Taken,
    /// The store failed (I/O, corruption).
    Failed(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Taken => f.write_str("the device is bound to another user"),
            Self::Failed(e) => write!(f, "push store failed: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Makes a publish's answer from the (device, offset) pairs its message got.
pub type Answer = Box<dyn FnOnce(&[(String, u64)]) -> String + Send>;

/// What one publish stores: the message, the devices whose streams it joins, and how its
/// answer is made and kept.
pub struct Publication {
    /// The message.
    pub message: Message,
    /// The target devices' ids, each marked `true` when it also gets a vendor send.
    pub devices: Vec<(String, bool)>,
    /// How long the answer is kept (at least as long as the message).
    pub keep_ms: u64,
    /// Makes the answer from the offsets the message got.
    pub answer: Answer,
}

/// A store's reply to one call, later.
pub type Reply<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The push store.
pub trait PushStore: Send + Sync {
    /// Registers `device` and binds it to its user (again: its token and topics are
    /// updated); `Taken` when another user holds it.
    fn register(&self, device: Device) -> Reply<'_, ()>;
    /// Unbinds and forgets `device` of `user`, its stream too; false if `user` has no such
    /// device.
    fn unbind(&self, user: String, device: String) -> Reply<'_, bool>;
    /// The devices bound to `user`.
    fn devices(&self, user: String) -> Reply<'_, Vec<Device>>;
    /// One device.
    fn device(&self, id: String) -> Reply<'_, Option<Device>>;
    /// The devices a target names.
    fn targets(&self, target: Target) -> Reply<'_, Vec<Device>>;
    /// The answer given when `id` was first published, if it was.
    fn answer(&self, id: String) -> Reply<'_, Option<String>>;
    /// Appends the publication's message to each of its devices' streams (queueing a
    /// vendor send for those marked `true`) and keeps its answer (made from the offsets
    /// given) for the message id, durably, in one step; if the id was published meanwhile,
    /// appends nothing and returns the first answer.
    fn publish(&self, publication: Publication) -> Reply<'_, String>;
    /// Up to `max` messages of `device` after offset `after`, live at `now_ms`; expired
    /// ones are removed.
    fn backlog(&self, device: String, after: u64, max: usize, now_ms: u64) -> Reply<'_, Backlog>;
    /// Acks every message of `device` up to `offset`; returns the acked offset.
    fn ack(&self, device: String, offset: u64) -> Reply<'_, u64>;
    /// Claims up to `max` vendor jobs due at `now_ms` for `lease_ms` (no other claim gets
    /// them meanwhile); jobs whose message is gone, acked or expired, or whose device has
    /// no token any more, end without being returned.
    fn claim_vendor(&self, now_ms: u64, max: usize, lease_ms: u64) -> Reply<'_, Vec<VendorJob>>;
    /// Records the outcome of a claimed job.
    fn vendor_done(&self, device: String, offset: u64, done: VendorDone) -> Reply<'_, ()>;
    /// Messages kept in devices' streams (not yet acked; `None` where the store cannot
    /// count them cheaply), and vendor sends waiting.
    fn depths(&self) -> Reply<'_, (Option<u64>, u64)>;
    /// Forgets answers kept past their time at `now_ms`.
    fn sweep(&self, now_ms: u64) -> Reply<'_, ()>;
}
