//! Load-balancing policies. Each picks among the targets that are available now (healthy
//! and not ejected); every structure is built when the config loads and read lock-free.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::LbPolicy;

use super::Target;

/// Virtual nodes per unit of weight on the consistent-hash ring.
const RING_POINTS_PER_WEIGHT: u32 = 160;
/// Longest weighted-round-robin schedule; larger weight sums are scaled down.
const MAX_SCHEDULE: u32 = 4096;
/// Most points on a consistent-hash ring (16 MiB of them); larger weight sums are scaled
/// down, each target keeping at least one point.
const MAX_RING_POINTS: u64 = 1 << 20;

/// A policy with its precomputed state.
#[derive(Debug)]
pub enum Balancer {
    /// Each target in turn.
    RoundRobin(AtomicUsize),
    /// A smooth weighted schedule (nginx's algorithm, unrolled at load time).
    WeightedRoundRobin {
        /// Target indices in schedule order.
        schedule: Vec<usize>,
        /// The next position.
        next: AtomicUsize,
    },
    /// Fewest in flight, relative to weight; ties rotate.
    LeastConnections(AtomicUsize),
    /// Weighted random.
    Random,
    /// A hash ring of `(point, target index)`, sorted by point.
    ConsistentHash(Vec<(u64, usize)>),
}

/// Which targets a pick may return.
#[derive(Debug, Clone, Copy)]
pub struct Eligible<'a> {
    /// Now, against which ejections end.
    pub now_ms: u64,
    /// Indexes not to pick (tried already).
    pub skip: &'a [usize],
    /// Health and ejections ignored: no target is available, and the upstream spreads its
    /// requests over all of them rather than refuse them (panic routing).
    pub in_panic: bool,
}

impl Balancer {
    /// Builds the policy's state for these targets.
    pub fn new(policy: LbPolicy, targets: &[std::sync::Arc<Target>]) -> Self {
        match policy {
            LbPolicy::RoundRobin => Self::RoundRobin(AtomicUsize::new(0)),
            LbPolicy::WeightedRoundRobin => Self::WeightedRoundRobin {
                schedule: smooth_schedule(&targets.iter().map(|t| t.weight).collect::<Vec<_>>()),
                next: AtomicUsize::new(0),
            },
            LbPolicy::LeastConnections => Self::LeastConnections(AtomicUsize::new(0)),
            LbPolicy::Random => Self::Random,
            LbPolicy::ConsistentHash => Self::ConsistentHash(ring(targets)),
        }
    }

    /// Picks a target index among the `eligible`; `hash_key` is asked for only by
    /// consistent hashing. `None` when no target is eligible.
    pub fn pick(
        &self,
        targets: &[std::sync::Arc<Target>],
        hash_key: impl FnOnce() -> Vec<u8>,
        eligible: Eligible<'_>,
    ) -> Option<usize> {
        let n = targets.len();
        let Eligible {
            now_ms,
            skip,
            in_panic,
        } = eligible;
        let available = |i: usize| {
            targets[i].weight > 0
                && (in_panic || targets[i].health.is_available(now_ms))
                && !skip.contains(&i)
        };
        match self {
            Self::RoundRobin(next) => {
                let start = next.fetch_add(1, Ordering::Relaxed);
                (0..n).map(|k| (start + k) % n).find(|&i| available(i))
            }
            Self::WeightedRoundRobin { schedule, next } => {
                let start = next.fetch_add(1, Ordering::Relaxed);
                let len = schedule.len();
                (0..len)
                    .map(|k| schedule[(start + k) % len])
                    .find(|&i| available(i))
            }
            Self::LeastConnections(rotate) => {
                let start = rotate.fetch_add(1, Ordering::Relaxed);
                let mut best: Option<(usize, u64, u64)> = None;
                for i in (0..n).map(|k| (start + k) % n).filter(|&i| available(i)) {
                    let load = targets[i].health.in_flight() as u64;
                    let weight = u64::from(targets[i].weight);
                    // load_i / weight_i < load_b / weight_b, without division.
                    if best.is_none_or(|(_, bl, bw)| load * bw < bl * weight) {
                        best = Some((i, load, weight));
                    }
                }
                best.map(|(i, _, _)| i)
            }
            Self::Random => {
                let total: u64 = (0..n)
                    .filter(|&i| available(i))
                    .map(|i| u64::from(targets[i].weight))
                    .sum();
                if total == 0 {
                    return None;
                }
                let mut point = fastrand::u64(..total);
                (0..n).filter(|&i| available(i)).find(|&i| {
                    let w = u64::from(targets[i].weight);
                    if point < w {
                        true
                    } else {
                        point -= w;
                        false
                    }
                })
            }
            Self::ConsistentHash(ring) => {
                if ring.is_empty() {
                    return None;
                }
                let h = fnv1a(&hash_key());
                let start = ring.partition_point(|&(p, _)| p < h);
                (0..ring.len())
                    .map(|k| ring[(start + k) % ring.len()].1)
                    .find(|&i| available(i))
            }
        }
    }
}

/// nginx's smooth weighted round robin, run for one full cycle: each step every target
/// gains its weight, the largest is picked and loses the total.
fn smooth_schedule(weights: &[u32]) -> Vec<usize> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let scale = total.div_ceil(u64::from(MAX_SCHEDULE)).max(1);
    let weights: Vec<i64> = weights
        .iter()
        .map(|&w| {
            if w == 0 {
                0
            } else {
                (u64::from(w) / scale).max(1) as i64
            }
        })
        .collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&weights) {
            *c += w;
        }
        let Some((best, _)) = current
            .iter()
            .enumerate()
            .max_by_key(|&(i, c)| (*c, -(i as i64)))
        else {
            break;
        };
        current[best] -= total;
        schedule.push(best);
    }
    schedule
}

fn ring(targets: &[std::sync::Arc<Target>]) -> Vec<(u64, usize)> {
    let points = ring_points(&targets.iter().map(|t| t.weight).collect::<Vec<_>>());
    let mut ring = Vec::with_capacity(points.iter().map(|&p| p as usize).sum());
    for ((i, t), points) in targets.iter().enumerate().zip(points) {
        for v in 0..points {
            ring.push((fnv1a(format!("{}#{v}", t.addr).as_bytes()), i));
        }
    }
    ring.sort_unstable();
    ring
}

/// The points of each target on the ring: `RING_POINTS_PER_WEIGHT` per unit of weight,
/// scaled down so that the ring holds at most about `MAX_RING_POINTS`.
fn ring_points(weights: &[u32]) -> Vec<u64> {
    let wanted = |w: u32| u64::from(w) * u64::from(RING_POINTS_PER_WEIGHT);
    let total: u64 = weights.iter().map(|&w| wanted(w)).sum();
    let scale = total.div_ceil(MAX_RING_POINTS).max(1);
    weights
        .iter()
        .map(|&w| match w {
            0 => 0,
            w => (wanted(w) / scale).max(1),
        })
        .collect()
}

/// FNV-1a, 64-bit: stable across processes and versions, so every gateway instance maps a
/// key to the same target.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV mixes its last bytes poorly; finish with a murmur-style avalanche.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_schedule_interleaves_by_weight() {
        let s = smooth_schedule(&[5, 1, 1]);
        assert_eq!(s, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn the_ring_stays_bounded_whatever_the_weights() {
        assert_eq!(ring_points(&[1, 2, 0]), vec![160, 320, 0]);
        let huge = ring_points(&[u32::MAX; 64]);
        let total: u64 = huge.iter().sum();
        assert!(total <= MAX_RING_POINTS + 64, "{total}");
        assert!(huge.iter().all(|&p| p == huge[0] && p > 0));
    }

    #[test]
    fn smooth_schedule_scales_huge_weights() {
        let s = smooth_schedule(&[100_000, 100_000]);
        assert!(s.len() <= MAX_SCHEDULE as usize + 2);
        assert_eq!(s.iter().filter(|&&i| i == 0).count(), s.len() / 2);
    }
}
