//! Admission of client connections: a cap on open connections, in all and per client IP,
//! shared by every worker. A connection beyond a cap is closed as soon as it is accepted —
//! it takes no buffer, no task and no file descriptor for longer than that.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;

/// Open connections, counted across workers.
#[derive(Debug, Default)]
pub struct Admission {
    open: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
    refused: AtomicU64,
    parked: AtomicUsize,
    parks: AtomicU64,
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

    /// Keep-alive connections parked now: idle, holding their socket and nothing else.
    pub fn parked(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }

    /// Times a keep-alive connection was parked so far.
    pub fn parks(&self) -> u64 {
        self.parks.load(Ordering::Relaxed)
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

impl Admitted {
    /// Counts the connection as parked until the guard is dropped.
    pub fn park(&self) -> ParkedGuard {
        self.admission.parked.fetch_add(1, Ordering::Relaxed);
        self.admission.parks.fetch_add(1, Ordering::Relaxed);
        ParkedGuard(self.admission.clone())
    }
}

/// A parked connection, counted until dropped.
#[derive(Debug)]
pub struct ParkedGuard(Arc<Admission>);

impl Drop for ParkedGuard {
    fn drop(&mut self) {
        self.0.parked.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission.per_ip.remove_if_mut(&self.ip, |_, open| {
            *open -= 1;
            *open == 0
        });
        self.admission.open.fetch_sub(1, Ordering::AcqRel);
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
        assert!(
            admission.per_ip.get(&a).is_none(),
            "an address with nothing open is forgotten"
        );
        assert!(admission.admit(a, 3, 2).is_some());
        drop(third);
    }
}
