//! Admission of client connections: a cap on open connections, in all and per client IP,
//! shared by every worker. A connection beyond a cap is closed as soon as it is accepted —
//! it takes no buffer, no task and no file descriptor for longer than that.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Open connections, counted across workers.
#[derive(Debug, Default)]
pub struct Admission {
    open: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
    refused: AtomicU64,
}

/// An admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    /// Takes a place for a connection from `ip`, unless `max` in all or `max_per_ip` from
    /// that address are open already.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, max: usize, max_per_ip: usize) -> Option<Admitted> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return self.refuse();
        }
        let mut from_ip = self.per_ip.entry(ip).or_insert(0);
        if *from_ip >= max_per_ip {
            drop(from_ip);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return self.refuse();
        }
        *from_ip += 1;
        Some(Admitted {
            admission: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn refuse(&self) -> Option<Admitted> {
        self.refused.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission
            .per_ip
            .remove_if_mut(&self.ip, |_, open| {
                *open -= 1;
                *open == 0
            });
        self.admission.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Backs off after failed `accept` calls (out of file descriptors, say) instead of
/// spinning, and says so once per burst of failures rather than once per failure.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    failures: u32,
    since: Option<Instant>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MOST: Duration = Duration::from_secs(1);

    /// Records a failure; returns how long to pause, and whether this failure opens a burst
    /// (and so should be logged).
    pub fn failed(&mut self) -> (Duration, bool) {
        let first = self.failures == 0;
        if first {
            self.since = Some(Instant::now());
        }
        self.failures = self.failures.saturating_add(1);
        let pause = Self::FIRST
            .saturating_mul(1 << self.failures.min(16).saturating_sub(1))
            .min(Self::MOST);
        (pause, first)
    }

    /// Records a success; returns the burst that it ends (failures, how long), if any.
    pub fn succeeded(&mut self) -> Option<(u32, Duration)> {
        let failures = std::mem::take(&mut self.failures);
        let since = self.since.take()?;
        (failures > 0).then(|| (failures, since.elapsed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_all_and_per_address() {
        let admission = Arc::new(Admission::default());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = admission.admit(a, 3, 2).unwrap();
        let second = admission.admit(a, 3, 2).unwrap();
        assert!(admission.admit(a, 3, 2).is_none(), "per-address cap");
        let third = admission.admit(b, 3, 2).unwrap();
        assert!(admission.admit(b, 3, 2).is_none(), "total cap");
        assert_eq!((admission.open(), admission.refused()), (3, 2));
        drop((first, second));
        assert!(admission.per_ip.get(&a).is_none(), "an address with nothing open is forgotten");
        assert!(admission.admit(a, 3, 2).is_some());
        drop(third);
    }

    #[test]
    fn backs_off_and_logs_once_per_burst() {
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<_> = (0..12).map(|_| backoff.failed()).collect();
        assert!(pauses[0].1 && pauses[1..].iter().all(|(_, log)| !log));
        assert!(pauses.windows(2).all(|w| w[0].0 <= w[1].0), "{pauses:?}");
        assert_eq!(pauses[0].0, Duration::from_millis(5));
        assert_eq!(pauses[11].0, Duration::from_secs(1));
        assert_eq!(backoff.succeeded().map(|(n, _)| n), Some(12));
        assert_eq!(backoff.succeeded(), None);
        assert!(backoff.failed().1, "a new burst is logged again");
    }
}
