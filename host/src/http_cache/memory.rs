//! The first level: entries in the gateway's memory, bounded by bytes. The key space is
//! split over shards (one lock each, held for a map operation only); a shard that is over
//! its share of the bytes lets its least recently used entries go.

use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use hashlink::LinkedHashMap;

/// How many shards the entries are spread over.
const SHARDS: usize = 16;

/// One stored value and when it goes.
struct Stored {
    value: Bytes,
    expires: Instant,
}

/// One shard: its entries from least to most recently used, and their bytes.
#[derive(Default)]
struct Shard {
    entries: LinkedHashMap<String, Stored>,
    bytes: usize,
}

impl Shard {
    fn remove(&mut self, key: &str) -> bool {
        match self.entries.remove(key) {
            Some(gone) => {
                self.bytes -= cost(key, &gone.value);
                true
            }
            None => false,
        }
    }
}

/// The shard of `key`: FNV-1a, so that a key always lands in the same shard.
fn shard_of(key: &str) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (hash % SHARDS as u64) as usize
}

/// A shard's lock; a panic elsewhere while it was held leaves a map that is still whole.
fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What an entry costs its shard: its key and value (the bookkeeping is small beside them).
fn cost(key: &str, value: &Bytes) -> usize {
    key.len() + value.len() + 64
}

/// The memory level.
pub(super) struct MemoryLevel {
    shards: Vec<Mutex<Shard>>,
    /// Bytes one shard may hold.
    shard_bytes: usize,
}

impl MemoryLevel {
    /// A level holding at most `max_bytes` (keys and values together).
    pub(super) fn new(max_bytes: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_bytes: max_bytes / SHARDS,
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
        lock(&self.shards[shard_of(key)])
    }

    /// The value under `key`, if present and not expired; it becomes the most recently
    /// used.
    pub(super) fn get(&self, key: &str, now: Instant) -> Option<Bytes> {
        let mut shard = self.shard(key);
        match shard.entries.to_back(key) {
            Some(stored) if stored.expires > now => Some(stored.value.clone()),
            Some(_) => {
                shard.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` under `key` until `expires`, letting the least recently used entries
    /// of its shard go to make room. A value larger than a shard is not kept.
    pub(super) fn put(&self, key: &str, value: Bytes, expires: Instant) {
        let size = cost(key, &value);
        let mut shard = self.shard(key);
        shard.remove(key);
        if size > self.shard_bytes {
            return;
        }
        while shard.bytes + size > self.shard_bytes {
            let Some((old_key, old)) = shard.entries.pop_front() else {
                break;
            };
            shard.bytes -= cost(&old_key, &old.value);
        }
        shard.bytes += size;
        let stored = Stored { value, expires };
        shard.entries.insert(key.to_string(), stored);
    }

    /// Removes `key`; true if it was there.
    pub(super) fn remove(&self, key: &str) -> bool {
        self.shard(key).remove(key)
    }

    /// Removes every key `matches` accepts; how many went.
    pub(super) fn remove_matching(&self, matches: impl Fn(&str) -> bool) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut shard = lock(shard);
            let doomed: Vec<String> = (shard.entries.keys())
                .filter(|key| matches(key))
                .cloned()
                .collect();
            for key in doomed {
                removed += usize::from(shard.remove(&key));
            }
        }
        removed
    }

    /// Entries and bytes held now.
    pub(super) fn usage(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), shard| {
            let shard = lock(shard);
            (n + shard.entries.len(), b + shard.bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn later(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn the_least_recently_used_go_first_when_a_shard_runs_out_of_bytes() {
        // Each entry costs 64 + 2 (key) + 100: a shard of 400 bytes holds two.
        let level = MemoryLevel::new(SHARDS * 400);
        let value = Bytes::from(vec![b'x'; 100]);
        let keys: Vec<String> = (10..1000)
            .map(|i| i.to_string())
            .filter(|k| shard_of(k) == 0)
            .take(3)
            .collect();
        level.put(&keys[0], value.clone(), later(60_000));
        level.put(&keys[1], value.clone(), later(60_000));
        // Reading the first makes the second the least recently used.
        assert_eq!(level.get(&keys[0], Instant::now()), Some(value.clone()));
        level.put(&keys[2], value.clone(), later(60_000));
        assert!(level.get(&keys[1], Instant::now()).is_none(), "evicted");
        assert!(level.get(&keys[0], Instant::now()).is_some());
        assert!(level.get(&keys[2], Instant::now()).is_some());
        assert_eq!(level.usage(), (2, 2 * 166));
        // Too large for a shard: not kept, and nothing else is pushed out for it.
        level.put("big", Bytes::from(vec![0; 500]), later(60_000));
        assert_eq!(level.usage(), (2, 2 * 166));
    }

    #[test]
    fn expired_entries_read_as_absent_and_purges_match_by_key() {
        let level = MemoryLevel::new(1 << 20);
        level.put("GET:a/1", Bytes::from_static(b"1"), later(60_000));
        level.put("GET:a/2", Bytes::from_static(b"2"), later(60_000));
        level.put("GET:b/1", Bytes::from_static(b"3"), Instant::now());
        assert!(
            level
                .get("GET:b/1", Instant::now() + Duration::from_millis(1))
                .is_none()
        );
        assert_eq!(level.remove_matching(|k| k.starts_with("GET:a/")), 2);
        assert_eq!(level.usage(), (0, 0));
        assert!(!level.remove("GET:a/1"));
    }
}
