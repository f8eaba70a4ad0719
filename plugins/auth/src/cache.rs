//! A small bounded cache with per-entry expiry, keyed by the SHA-256 of a credential so
//! that no credential is kept in memory. It lives in one instance's memory and is lost with
//! the instance.

use std::cell::RefCell;
use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Values under credential digests, each until its own expiry (ms since the epoch).
pub struct Cache<V> {
    capacity: usize,
    entries: RefCell<HashMap<[u8; 32], (V, u64)>>,
}

impl<V: Clone> Cache<V> {
    /// An empty cache that holds at most `capacity` entries (0 caches nothing).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: RefCell::new(HashMap::new()),
        }
    }

    /// The value under `key` if it has not expired at `now_ms`.
    pub fn get(&self, key: &[u8; 32], now_ms: u64) -> Option<V> {
        let mut entries = self.entries.borrow_mut();
        match entries.get(key) {
            Some((value, expires)) if *expires > now_ms => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` under `key` until `expires_ms`. When full, expired entries go first,
    /// then the one closest to expiry.
    pub fn insert(&self, key: [u8; 32], value: V, expires_ms: u64, now_ms: u64) {
        if self.capacity == 0 || expires_ms <= now_ms {
            return;
        }
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, expires)| *expires > now_ms);
            if entries.len() >= self.capacity {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(k, _)| *k);
                if let Some(k) = soonest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key, (value, expires_ms));
    }
}
