//! The embedded backend's answers to the state operations: `kv` reads and writes, and
//! the limiters' takes, on the bounded maps of `mod.rs`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;

use super::super::{Key, RateDecision, RatePolicy, Reply, StateBackend, StateError, Ttl};
use super::{Limiter, LocalBackend, Value};
use crate::time::now_ms;

impl StateBackend for LocalBackend {
    fn get<'a>(&'a self, key: Key<'a>) -> Reply<'a, Option<Vec<u8>>> {
        let now = Instant::now();
        let value = self
            .values
            .get(&key.encoded())
            .filter(|v| v.live(now))
            .map(|v| v.bytes.clone());
        Self::ready(Ok(value))
    }

    fn set<'a>(&'a self, key: Key<'a>, value: Vec<u8>, ttl: Ttl) -> Reply<'a, ()> {
        let encoded = key.encoded();
        let result = self
            .make_room(key, &encoded, encoded.len() + value.len())
            .map(|()| {
                let expires = ttl.map(|t| Instant::now() + t);
                self.store(
                    encoded,
                    Value {
                        bytes: value,
                        expires,
                    },
                );
            });
        Self::ready(result)
    }

    fn delete<'a>(&'a self, key: Key<'a>) -> Reply<'a, bool> {
        let now = Instant::now();
        let removed = self.values.remove(&key.encoded()).is_some_and(|(k, v)| {
            self.forget(&k, &v);
            v.live(now)
        });
        Self::ready(Ok(removed))
    }

    fn incr<'a>(&'a self, key: Key<'a>, delta: i64, ttl: Ttl) -> Reply<'a, i64> {
        let encoded = key.encoded();
        if let Err(e) = self.make_room(key, &encoded, encoded.len() + 20) {
            return Self::ready(Err(e));
        }
        let now = Instant::now();
        let result = match self.values.entry(encoded) {
            Entry::Occupied(mut e) if e.get().live(now) => {
                let current = std::str::from_utf8(&e.get().bytes)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| {
                        StateError::Invalid(format!("value under {:?} is not an integer", key.name))
                    });
                current.and_then(|n| {
                    let next = n
                        .checked_add(delta)
                        .ok_or_else(|| StateError::Invalid("integer overflow".into()))?;
                    let bytes = next.to_string().into_bytes();
                    self.bytes.fetch_add(bytes.len(), Ordering::Relaxed);
                    self.bytes.fetch_sub(e.get().bytes.len(), Ordering::Relaxed);
                    e.get_mut().bytes = bytes;
                    Ok(next)
                })
            }
            Entry::Occupied(mut e) => {
                let bytes = delta.to_string().into_bytes();
                self.bytes.fetch_add(bytes.len(), Ordering::Relaxed);
                self.bytes.fetch_sub(e.get().bytes.len(), Ordering::Relaxed);
                e.insert(Value {
                    bytes,
                    expires: ttl.map(|t| now + t),
                });
                Ok(delta)
            }
            Entry::Vacant(e) => {
                let bytes = delta.to_string().into_bytes();
                self.count_new(e.key(), e.key().len() + bytes.len());
                e.insert(Value {
                    bytes,
                    expires: ttl.map(|t| now + t),
                });
                Ok(delta)
            }
        };
        Self::ready(result)
    }

    fn set_if_absent<'a>(&'a self, key: Key<'a>, value: Vec<u8>, ttl: Ttl) -> Reply<'a, bool> {
        let encoded = key.encoded();
        let now = Instant::now();
        if self.values.get(&encoded).is_some_and(|v| v.live(now)) {
            return Self::ready(Ok(false));
        }
        if let Err(e) = self.make_room(key, &encoded, encoded.len() + value.len()) {
            return Self::ready(Err(e));
        }
        let value = Value {
            bytes: value,
            expires: ttl.map(|t| now + t),
        };
        let stored = match self.values.entry(encoded) {
            Entry::Occupied(e) if e.get().live(now) => false,
            Entry::Occupied(mut e) => {
                self.bytes.fetch_add(value.bytes.len(), Ordering::Relaxed);
                self.bytes.fetch_sub(e.get().bytes.len(), Ordering::Relaxed);
                e.insert(value);
                true
            }
            Entry::Vacant(e) => {
                self.count_new(e.key(), e.key().len() + value.bytes.len());
                e.insert(value);
                true
            }
        };
        Self::ready(Ok(stored))
    }

    fn take<'a>(&'a self, key: Key<'a>, policy: RatePolicy, cost: u64) -> Reply<'a, RateDecision> {
        let encoded = key.encoded();
        self.fit_limiter(&encoded);
        let idle_ttl = Duration::from_millis(policy.window_ms.saturating_mul(2).max(1000));
        let mut limiter = self.limiters.entry(encoded).or_insert_with(|| Limiter {
            state: None,
            expires: Instant::now() + idle_ttl,
        });
        let decision = policy.take(&mut limiter.state, cost, now_ms());
        limiter.expires = Instant::now() + idle_ttl;
        Self::ready(Ok(decision))
    }

    fn name(&self) -> &'static str {
        "local"
    }
}
