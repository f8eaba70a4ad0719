//! A key id to its HMAC key, through the `secrets` host interface.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use weir_plugin_sdk::HostError;
use weir_plugin_sdk::host::secrets;

use crate::config::{KeySource, SecretEncoding};
use crate::rejection::Rejection;

/// The longest key id tried against `secret_pattern`.
const MAX_PATTERN_KEY_ID: usize = 128;

/// Keys kept per instance. Secrets are fixed for an instance's life (a config change
/// configures new instances), so a key read once stays valid; only found keys are kept.
const MAX_CACHED_KEYS: usize = 1024;

/// The keys this instance has read, by key id.
#[derive(Debug, Default)]
pub struct KeyCache(RefCell<HashMap<String, Rc<[u8]>>>);

impl KeyCache {
    /// A cache holding every key listed in `source.names`, read now: a listed key whose
    /// secret is missing, not granted or not valid base64 refuses the config, instead of
    /// failing every request that uses it.
    pub fn preloaded(source: &KeySource) -> Result<Self, String> {
        let cache = Self::default();
        for (key_id, secret) in &source.names {
            cache.get(source, key_id).map_err(|_| {
                format!(
                    "keys.{key_id}: secret {secret:?} is not defined, not granted \
                     (secrets:{secret}) or not in the configured encoding"
                )
            })?;
        }
        Ok(cache)
    }

    /// The key for `key_id`, read through `source` the first time.
    pub fn get(&self, source: &KeySource, key_id: &str) -> Result<Rc<[u8]>, Rejection> {
        if let Some(key) = self.0.borrow().get(key_id) {
            return Ok(key.clone());
        }
        let key: Rc<[u8]> = source.key(key_id)?.into();
        let mut cache = self.0.borrow_mut();
        if cache.len() < MAX_CACHED_KEYS {
            cache.insert(key_id.to_string(), key.clone());
        }
        Ok(key)
    }
}

impl KeySource {
    /// The key for `key_id`: from its secret in `keys`, else from the secret named by
    /// `secret_pattern`.
    pub fn key(&self, key_id: &str) -> Result<Vec<u8>, Rejection> {
        let (name, listed) = match (self.names.get(key_id), &self.pattern) {
            (Some(name), _) => (name.clone(), true),
            (None, Some((prefix, suffix))) if pattern_safe(key_id) => {
                (format!("{prefix}{key_id}{suffix}"), false)
            }
            _ => return Err(Rejection::UnknownKey),
        };
        let secret = match secrets::get(&name) {
            Ok(Some(secret)) => secret,
            // A listed key whose secret is missing or not granted is a config mistake;
            // through the pattern, it only means that no such key exists.
            Ok(None) | Err(HostError::AccessDenied) if !listed => {
                return Err(Rejection::UnknownKey);
            }
            Ok(None) | Err(_) => return Err(Rejection::KeyUnavailable),
        };
        match self.encoding {
            SecretEncoding::Raw => Ok(secret),
            SecretEncoding::Base64 => STANDARD
                .decode(secret.trim_ascii())
                .map_err(|_| Rejection::KeyUnavailable),
        }
    }
}

/// Whether a key id may be put into a secret name: short, and only letters, digits, `.`,
/// `_` and `-`.
fn pattern_safe(key_id: &str) -> bool {
    !key_id.is_empty()
        && key_id.len() <= MAX_PATTERN_KEY_ID
        && key_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
