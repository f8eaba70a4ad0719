//! The last-good-response cache: which requests share an entry, and how an entry is kept
//! in `kv` (status, content type, body).

use std::fmt::Write;

use sha2::{Digest, Sha256};
use weir_plugin_sdk::host::kv;
use weir_plugin_sdk::{HostError, Request};

use crate::config::{CacheConfig, StaticConfig};
use crate::fallback::checked_static;
use crate::sharing::{self, Exchange, NotShared};

/// One part of the cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// The request method.
    Method,
    /// The path, without the query.
    Path,
    /// The query string (empty when there is none).
    Query,
    /// A request header's value (empty when absent).
    Header(String),
}

impl KeyPart {
    /// Parses `method`, `path`, `query` or `header:<name>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "method" => Ok(Self::Method),
            "path" => Ok(Self::Path),
            "query" => Ok(Self::Query),
            _ => match text.strip_prefix("header:") {
                Some(name) if !name.is_empty() => Ok(Self::Header(name.to_ascii_lowercase())),
                _ => Err(format!(
                    "fallback.key: unknown part {text:?} (method, path, query, header:<name>)"
                )),
            },
        }
    }
}

/// The entry key of `request`: the SHA-256 of the route and each part as `len:value`, so
/// that no value can be crafted to look like another combination, and a long URL does not
/// make a long key.
pub fn key(parts: &[KeyPart], request: &Request) -> String {
    let mut hash = Sha256::new();
    let mut add = |value: &[u8]| {
        hash.update(value.len().to_string());
        hash.update(b":");
        hash.update(value);
    };
    add(request.route().as_bytes());
    for part in parts {
        match part {
            KeyPart::Method => add(request.method().as_bytes()),
            KeyPart::Path => add(request.path_only().as_bytes()),
            KeyPart::Query => add(request.query().unwrap_or_default().as_bytes()),
            KeyPart::Header(name) => add(&request.header_bytes(name).unwrap_or_default()),
        }
    }
    let mut key = String::from("last-good/");
    for byte in hash.finalize() {
        let _ = write!(key, "{byte:02x}");
    }
    key
}

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its status.
    pub status: u16,
    /// Its content type, if it had one.
    pub content_type: Option<Vec<u8>>,
    /// Its body.
    pub body: Vec<u8>,
}

impl Entry {
    /// The stored form: status (2 bytes), content-type length (2 bytes, `0xffff` for none),
    /// the content type, the body. `None` when the content type is too long to store.
    fn encode(&self) -> Option<Vec<u8>> {
        let (len, content_type) = match &self.content_type {
            None => (u16::MAX, &[][..]),
            Some(ct) => (
                u16::try_from(ct.len()).ok().filter(|&l| l < u16::MAX)?,
                &ct[..],
            ),
        };
        let mut bytes = Vec::with_capacity(4 + content_type.len() + self.body.len());
        bytes.extend_from_slice(&self.status.to_be_bytes());
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(content_type);
        bytes.extend_from_slice(&self.body);
        Some(bytes)
    }

    /// Reads the stored form back; `None` for bytes that are not an entry.
    fn decode(bytes: &[u8]) -> Option<Self> {
        let status = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
        let len = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
        let rest = bytes.get(4..)?;
        let (content_type, body) = match len {
            u16::MAX => (None, rest),
            len => {
                let (ct, body) = rest.split_at_checked(usize::from(len))?;
                (Some(ct.to_vec()), body)
            }
        };
        Some(Self {
            status,
            content_type,
            body: body.to_vec(),
        })
    }
}

/// A validated cache fallback.
#[derive(Debug)]
pub struct Cache {
    /// TTL of a stored response, in ms.
    pub ttl_ms: u64,
    /// The key's parts.
    pub key: Vec<KeyPart>,
    /// The largest body stored.
    pub max_body_bytes: usize,
    /// Whether responses to authorized requests may be stored without saying so.
    pub store_authorized: bool,
    /// Served when nothing is stored.
    pub when_empty: Option<StaticConfig>,
}

impl Cache {
    /// Validates a `kind = "cache"` fallback.
    pub fn from_config(c: CacheConfig) -> Result<Self, String> {
        let ttl_ms = weir_plugin_sdk::duration::millis(c.ttl);
        if ttl_ms == 0 {
            return Err("fallback.ttl (ttl_ms) must be at least 1ms".to_string());
        }
        let key = c
            .key
            .iter()
            .map(|k| KeyPart::parse(k))
            .collect::<Result<Vec<_>, _>>()?;
        let when_empty = c
            .when_empty
            .map(|s| checked_static("fallback.when_empty", s))
            .transpose()?;
        Ok(Self {
            ttl_ms,
            key,
            max_body_bytes: c.max_body_bytes,
            store_authorized: c.store_authorized,
            when_empty,
        })
    }

    /// Stores `entry` under `key` for the TTL, unless its body is too large. A store the
    /// backend cannot take (Redis down) only means an older or no fallback later; the
    /// error returned is the one that needs the operator: `kv` is not granted.
    pub fn store(&self, key: &str, entry: &Entry) -> Result<(), HostError> {
        let Some(bytes) = entry
            .encode()
            .filter(|_| entry.body.len() <= self.max_body_bytes)
        else {
            return Ok(());
        };
        match kv::set(key, &bytes, Some(self.ttl_ms)) {
            Err(HostError::AccessDenied) => Err(HostError::AccessDenied),
            _ => Ok(()),
        }
    }

    /// Whether `exchange` may be stored for every client with the same key.
    pub fn shareable(&self, exchange: &Exchange<'_>) -> Result<(), NotShared> {
        let keyed: Vec<&str> = self
            .key
            .iter()
            .filter_map(|part| match part {
                KeyPart::Header(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        sharing::check(exchange, self.store_authorized, &keyed)
    }

    /// The entry stored under `key`, if any (and readable).
    pub fn load(&self, key: &str) -> Option<Entry> {
        kv::get(key).ok().flatten().and_then(|b| Entry::decode(&b))
    }
}
