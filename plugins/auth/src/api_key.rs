//! API keys, from a header or a query parameter, mapped to consumers. Keys are kept only as
//! SHA-256 digests; a presented key is looked up by its digest, which a client cannot
//! steer, so the lookup's timing tells nothing about the stored keys.

use std::collections::HashMap;

use serde::Deserialize;
use weir_plugin_sdk::host::secrets;
use weir_plugin_sdk::prelude::*;

use crate::cache::sha256;
use crate::credential::{self, is_header_name};
use crate::identity::Identity;

/// `api_key` in the filter config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The header that carries the key.
    #[serde(default = "default_header")]
    header: String,
    /// The query parameter that carries the key, if keys may come in the query.
    #[serde(default)]
    query: Option<String>,
    /// Keys given as digests.
    #[serde(default)]
    keys: Vec<KeyEntry>,
    /// A secret that lists plain keys per consumer.
    #[serde(default)]
    secret: Option<String>,
}

fn default_header() -> String {
    "x-api-key".into()
}

/// One key in the config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    consumer: String,
    /// Lower- or upper-case hex of the key's SHA-256.
    sha256: String,
    #[serde(default)]
    username: Option<String>,
}

/// Where a presented key was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// In the header.
    Header,
    /// In the query parameter.
    Query,
}

/// The configured keys.
pub struct ApiKeys {
    header: String,
    query: Option<String>,
    /// Consumers by the SHA-256 of their key. Looking a key up by its digest leaks nothing
    /// usable through timing: a client cannot steer the digest of what it sends.
    keys: HashMap<[u8; 32], Identity>,
}

impl ApiKeys {
    /// Builds the key table from the config and the secret it names.
    pub fn new(config: ApiKeyConfig) -> Result<Self, String> {
        let header = config.header.to_ascii_lowercase();
        if !is_header_name(&header) {
            return Err(format!("api_key.header {header:?} is not a header name"));
        }
        if config.query.as_deref() == Some("") {
            return Err("api_key.query must not be empty".into());
        }
        let mut keys = Vec::new();
        for entry in config.keys {
            let digest = hex::decode(entry.sha256.trim())
                .ok()
                .and_then(|d| <[u8; 32]>::try_from(d).ok())
                .ok_or_else(|| {
                    format!(
                        "api_key.keys: the sha256 of consumer {:?} is not 64 hex digits",
                        entry.consumer
                    )
                })?;
            let identity = Identity {
                username: entry.username,
                ..Identity::new(entry.consumer)
            };
            keys.push((digest, identity));
        }
        if let Some(name) = &config.secret {
            let text = secrets::require_text(name)?;
            for (consumer, key) in
                parse_secret(&text).map_err(|e| format!("secret {name:?}: {e}"))?
            {
                keys.push((sha256(key.as_bytes()), Identity::new(consumer)));
            }
        }
        let mut by_digest = HashMap::with_capacity(keys.len());
        for (digest, identity) in keys {
            if identity.id.is_empty() {
                return Err("api_key: a consumer id is empty".into());
            }
            let consumer = identity.id.clone();
            if by_digest.insert(digest, identity).is_some() {
                return Err(format!(
                    "api_key: a key of consumer {consumer:?} is also given to another entry"
                ));
            }
        }
        let keys = by_digest;
        if keys.is_empty() {
            return Err("api_key: no keys (give `keys` or `secret`)".into());
        }
        Ok(Self {
            header,
            query: config.query,
            keys,
        })
    }

    /// The header that carries keys.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The query parameter that carries keys, if any.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The key presented in `request`: the header first, then the query parameter.
    pub fn presented(&self, request: &Request) -> Option<(String, KeySource)> {
        if let Some(value) = request.header(&self.header) {
            return Some((value.trim().to_string(), KeySource::Header));
        }
        let name = self.query.as_deref()?;
        credential::query_param(request, name).map(|value| (value, KeySource::Query))
    }

    /// The consumer that owns `key`, found by the key's SHA-256.
    pub fn lookup(&self, key: &str) -> Option<Identity> {
        self.keys.get(&sha256(key.as_bytes())).cloned()
    }
}

/// Parses the keys secret: a JSON object `{"consumer": "key"}` (or a list of keys per
/// consumer), or lines `consumer=key` with blank lines and `#` comments ignored.
fn parse_secret(text: &str) -> Result<Vec<(String, String)>, String> {
    if text.trim_start().starts_with('{') {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Keys {
            One(String),
            Many(Vec<String>),
        }
        let map: std::collections::BTreeMap<String, Keys> =
            serde_json::from_str(text).map_err(|e| format!("not a JSON object of keys: {e}"))?;
        return Ok(map
            .into_iter()
            .flat_map(|(consumer, keys)| {
                let keys = match keys {
                    Keys::One(key) => vec![key],
                    Keys::Many(keys) => keys,
                };
                keys.into_iter().map(move |key| (consumer.clone(), key))
            })
            .collect());
    }
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((consumer, key)) if !key.trim().is_empty() => {
                pairs.push((consumer.trim().to_string(), key.trim().to_string()));
            }
            _ => return Err(format!("line {} is not `consumer=key`", n + 1)),
        }
    }
    Ok(pairs)
}
