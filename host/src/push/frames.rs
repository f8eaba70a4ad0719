//! The client protocol's frames (`docs/push.md`): JSON text frames on a WebSocket, the
//! same JSON as `data:` of server-sent events.

use serde::{Deserialize, Serialize};

use super::store::{Device, Stored};

/// What the gateway sends a device.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    /// The connection is up: the device, and the offset it has acked.
    Hello {
        /// The device id.
        device: &'a str,
        /// Everything up to this offset is acked.
        acked: u64,
    },
    /// A message.
    Message {
        /// Its offset in the device's stream.
        offset: u64,
        /// The publisher's id.
        id: &'a str,
        /// The payload.
        payload: &'a serde_json::Value,
        /// Its priority.
        priority: super::decision::Priority,
        /// When it expires, in ms since the Unix epoch.
        expires_ms: u64,
        /// Its collapse key.
        #[serde(skip_serializing_if = "Option::is_none")]
        collapse_key: Option<&'a str>,
    },
    /// Messages from `from` to `to` are gone unread (expired or past the history cap): the
    /// client should resync what they held.
    Gap {
        /// The first offset lost.
        from: u64,
        /// The last offset lost.
        to: u64,
    },
    /// The answer to an `ack`.
    Acked {
        /// Everything up to this offset is acked.
        acked: u64,
    },
    /// The answer to a `register`: the device is registered and bound.
    Registered {
        /// The device id.
        device: &'a str,
    },
    /// The answer to an `unbind`.
    Unbound {
        /// The device id.
        device: &'a str,
    },
    /// The answer to a `devices` request.
    Devices {
        /// The user's devices.
        devices: &'a [Device],
    },
    /// A refused frame (the connection stays open unless it broke the protocol).
    Error {
        /// A stable code.
        code: &'a str,
        /// What was wrong.
        message: &'a str,
    },
}

impl<'a> ServerFrame<'a> {
    /// The frame of a stored message.
    pub fn message(stored: &'a Stored) -> Self {
        let m = &stored.message;
        Self::Message {
            offset: stored.offset,
            id: &m.id,
            payload: &m.payload,
            priority: m.priority,
            expires_ms: m.expires_ms,
            collapse_key: m.collapse_key.as_deref(),
        }
    }

    /// The frame as JSON text.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The frame as a server-sent event: messages carry their offset as the event id, so
    /// that a reconnecting client's `Last-Event-ID` says where to resume.
    pub fn event(&self) -> String {
        let (name, id) = match self {
            Self::Message { offset, .. } => ("message", Some(*offset)),
            Self::Hello { .. } => ("hello", None),
            Self::Gap { .. } => ("gap", None),
            Self::Acked { .. } => ("acked", None),
            Self::Devices { .. } => ("devices", None),
            Self::Registered { .. } => ("registered", None),
            Self::Unbound { .. } => ("unbound", None),
            Self::Error { .. } => ("error", None),
        };
        let id = id.map(|id| format!("id: {id}\n")).unwrap_or_default();
        format!("{id}event: {name}\ndata: {}\n\n", self.json())
    }
}

/// What a device sends on a WebSocket.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Everything up to `offset` arrived.
    Ack {
        /// The offset.
        offset: u64,
    },
    /// Registers (or updates) a device of the connection's user.
    Register(super::api::Registration),
    /// Unbinds a device of the connection's user.
    Unbind {
        /// The device id.
        device: String,
    },
    /// Lists the user's devices.
    Devices,
}
