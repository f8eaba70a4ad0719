//! The second level: entries in Redis, shared by every instance of the fleet, and the
//! purges that every instance must apply.
//!
//! Key layout under the configured prefix: `cache:<key>` an entry (8 bytes of the time it
//! was stored, ms since the Unix epoch, big-endian, then the value), expiring with it;
//! `cache:purges` a hash of the purges of the last `cache.max_ttl_ms` (field `k <key>` or
//! `p <prefix>`, value the purge's time); `cache:purge` the channel a purge is announced
//! on (`<time> <field>`). A purge is a tombstone, not a deletion: the entries of a prefix
//! cannot be found in a cluster without scanning every node, and a key's name is stored
//! once per namespace. An entry stored before a purge that names it reads as absent. Every instance keeps the purges
//! in memory (read again on each subscription) and drops matching entries of its memory
//! level when one is announced.

use std::sync::{Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::AsyncCommands;

use super::{ResponseCache, names};
use crate::redis_link::{RedisClient, RedisFailure};

/// Purges kept in memory (the oldest go first beyond this).
const MAX_PURGES: usize = 4096;

/// The longest pause between two attempts to subscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A purge: every entry whose name is `name` (or starts with it, for a prefix), stored
/// at or before `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    /// The key's name, or the prefix of the names.
    pub name: String,
    /// Whether `name` is a prefix.
    pub prefix: bool,
    /// When it was made, in ms since the Unix epoch.
    pub at_ms: u64,
}

impl Purge {
    /// Whether the purge names the entry named `name`.
    pub(super) fn names(&self, name: &str) -> bool {
        if self.prefix {
            name.starts_with(&self.name)
        } else {
            name == self.name
        }
    }

    /// Whether the entry named `name`, stored at `stored_ms`, is gone by this purge.
    fn covers(&self, name: &str, stored_ms: u64) -> bool {
        stored_ms <= self.at_ms && self.names(name)
    }

    /// The purge's field in the hash (and its announcement after the time).
    fn field(&self) -> String {
        format!("{} {}", if self.prefix { 'p' } else { 'k' }, self.name)
    }

    fn parse(field: &str, at_ms: u64) -> Option<Self> {
        let (kind, name) = field.split_once(' ')?;
        let prefix = match kind {
            "p" => true,
            "k" => false,
            _ => return None,
        };
        Some(Self {
            name: name.to_string(),
            prefix,
            at_ms,
        })
    }
}

/// An entry found in Redis.
pub(super) struct Found {
    pub(super) value: Bytes,
    /// How long Redis keeps it still.
    pub(super) ttl: Duration,
}

/// The Redis level.
pub(super) struct SharedLevel {
    redis: RedisClient,
    /// The purges of the last `max_ttl`, newest last.
    purges: Mutex<Vec<Purge>>,
    max_ttl: Duration,
}

impl SharedLevel {
    pub(super) fn new(redis: RedisClient, max_ttl: Duration) -> Self {
        Self {
            redis,
            purges: Mutex::default(),
            max_ttl,
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}cache:{key}", self.redis.prefix())
    }

    fn purges(&self) -> std::sync::MutexGuard<'_, Vec<Purge>> {
        self.purges.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry under `key`, unless a purge covers it.
    pub(super) async fn get(&self, key: &str) -> Result<Option<Found>, RedisFailure> {
        let redis_key = self.key(key);
        let (stored, ttl_ms): (Option<Vec<u8>>, i64) = self
            .redis
            .call(true, |mut c| {
                let redis_key = redis_key.clone();
                async move {
                    redis::pipe()
                        .get(&redis_key)
                        .pttl(&redis_key)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        let (Some(stored), Ok(ttl_ms)) = (stored, u64::try_from(ttl_ms)) else {
            return Ok(None);
        };
        let Some((at, value)) = stored.split_first_chunk::<8>() else {
            return Ok(None);
        };
        let stored_ms = u64::from_be_bytes(*at);
        let name = names::name_of(key);
        if self.purges().iter().any(|p| p.covers(name, stored_ms)) {
            return Ok(None);
        }
        Ok(Some(Found {
            value: Bytes::copy_from_slice(value),
            ttl: Duration::from_millis(ttl_ms),
        }))
    }

    /// Stores `value` under `key` for `ttl`.
    pub(super) async fn put(
        &self,
        key: &str,
        value: &[u8],
        stored_ms: u64,
        ttl: Duration,
    ) -> Result<(), RedisFailure> {
        let mut stored = Vec::with_capacity(8 + value.len());
        stored.extend_from_slice(&stored_ms.to_be_bytes());
        stored.extend_from_slice(value);
        let (redis_key, ms) = (self.key(key), ttl.as_millis().max(1) as u64);
        self.redis
            .call(true, |mut c| {
                let (redis_key, stored) = (redis_key.clone(), stored.clone());
                async move { c.pset_ex::<_, _, ()>(redis_key, stored, ms).await }
            })
            .await
    }

    /// Deletes the entry under `key`; true if it was there.
    pub(super) async fn delete(&self, key: &str) -> Result<bool, RedisFailure> {
        let redis_key = self.key(key);
        let n: u64 = self
            .redis
            .call(true, |mut c| {
                let redis_key = redis_key.clone();
                async move { c.del(redis_key).await }
            })
            .await?;
        Ok(n > 0)
    }

    /// Records `purge` for every instance and announces it.
    pub(super) async fn purge(&self, purge: &Purge) -> Result<(), RedisFailure> {
        let (hash, channel) = (
            format!("{}cache:purges", self.redis.prefix()),
            format!("{}cache:purge", self.redis.prefix()),
        );
        let (field, at_ms, ttl) = (purge.field(), purge.at_ms, self.max_ttl.as_secs().max(1));
        self.redis
            .call(true, |mut c| {
                let (hash, field) = (hash.clone(), field.clone());
                async move {
                    redis::pipe()
                        .hset(&hash, &field, at_ms)
                        .ignore()
                        .expire(&hash, ttl as i64)
                        .ignore()
                        .query_async::<()>(&mut c)
                        .await
                }
            })
            .await?;
        self.remember(purge.clone());
        let announcement = format!("{at_ms} {field}");
        self.redis
            .call(true, |mut c| {
                let (channel, announcement) = (channel.clone(), announcement.clone());
                async move { c.publish::<_, _, ()>(channel, announcement).await }
            })
            .await
    }

    /// Keeps `purge` (once), dropping the oldest beyond the bound.
    fn remember(&self, purge: Purge) {
        let mut purges = self.purges();
        if !purges.contains(&purge) {
            purges.push(purge);
        }
        let excess = purges.len().saturating_sub(MAX_PURGES);
        purges.drain(..excess);
    }

    /// Reads every recorded purge again (after a subscription: announcements may have
    /// been missed meanwhile).
    async fn reload(&self, now_ms: u64) -> Result<Vec<Purge>, RedisFailure> {
        let hash = format!("{}cache:purges", self.redis.prefix());
        let fields: Vec<(String, u64)> = self
            .redis
            .call(true, |mut c| {
                let hash = hash.clone();
                async move { c.hgetall(hash).await }
            })
            .await?;
        let oldest = now_ms.saturating_sub(self.max_ttl.as_millis() as u64);
        let mut purges: Vec<Purge> = (fields.iter())
            .filter(|(_, at)| *at >= oldest)
            .filter_map(|(field, at)| Purge::parse(field, *at))
            .collect();
        purges.sort_by_key(|p| p.at_ms);
        let excess = purges.len().saturating_sub(MAX_PURGES);
        purges.drain(..excess);
        *self.purges() = purges.clone();
        Ok(purges)
    }
}

/// Follows the purges announced by every instance, for as long as the cache lives:
/// subscribes (again after a failure, with a growing pause), reads the recorded purges
/// on each subscription, and applies each to the memory level.
pub(super) async fn follow_purges(cache: Weak<ResponseCache>) {
    let mut attempt = 0usize;
    loop {
        let Some(shared) = cache.upgrade().and_then(|c| c.shared_client()) else {
            return;
        };
        let channel = format!("{}cache:purge", shared.redis.prefix());
        match shared.redis.pubsub(attempt).await {
            Ok(pubsub) => {
                let (mut sink, mut lines) = pubsub.split();
                if sink.subscribe(&channel).await.is_ok() {
                    attempt = 0;
                    drop(shared);
                    if let Some(cache) = cache.upgrade()
                        && let Some(shared) = cache.shared_client()
                    {
                        match shared.reload(crate::time::now_ms()).await {
                            Ok(purges) => {
                                for purge in &purges {
                                    cache.apply(purge);
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "cache: reading the purges failed")
                            }
                        }
                    }
                    while let Some(line) = lines.next().await {
                        let Some(cache) = cache.upgrade() else { return };
                        let text: String = line.get_payload().unwrap_or_default();
                        let purge = text
                            .split_once(' ')
                            .and_then(|(at, field)| Purge::parse(field, at.parse().ok()?));
                        if let (Some(purge), Some(shared)) = (purge, cache.shared_client()) {
                            cache.apply(&purge);
                            shared.remember(purge);
                        }
                    }
                    tracing::warn!("cache: the purge subscription ended; subscribing again");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cache: subscribing to purges failed"),
        }
        attempt += 1;
        let pause = Duration::from_millis(50u64 << attempt.min(6)).min(MAX_BACKOFF);
        tokio::time::sleep(pause).await;
    }
}
