//! Where a sticky key falls: a bucket in `[0, 10000)` (one per basis point) from a stable
//! hash of the key, seeded by the rollout's salt. A key is on the canary when its bucket is
//! below the canary's weight in basis points, so raising the weight only adds buckets to
//! the canary: no user moves back to stable, and only the users in the added buckets move.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Buckets in all: one per basis point of weight.
pub const BUCKETS: u32 = 10_000;

/// The hash seed of a rollout, from its salt: rollouts with different salts slice users
/// independently.
pub fn seed(salt: &str) -> u64 {
    xxh3_64(salt.as_bytes())
}

/// The bucket of `key` in the rollout seeded with `seed`. XXH3 is fixed by its
/// specification (no per-process random key, unlike std's `RandomState`): the same key
/// falls in the same bucket in every instance, after every restart and reload.
pub fn bucket(seed: u64, key: &[u8]) -> u32 {
    // 2^64 mod 10^4 is tiny beside 2^64: the bias of the modulo is about 10^-15.
    (xxh3_64_with_seed(key, seed) % u64::from(BUCKETS)) as u32
}

/// Whether `bucket` is on the canary at `weight` basis points.
pub fn on_canary(bucket: u32, weight: u32) -> bool {
    bucket < weight
}
