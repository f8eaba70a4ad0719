//! The gateway-wide budget of body bytes held in memory for filters: however many requests
//! buffer at once, together they hold at most `server.limits.max_buffered_bytes`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes held now, shared by every request.
#[derive(Debug, Default)]
pub struct BufferBudget {
    used: AtomicUsize,
}

impl BufferBudget {
    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One request's share of the budget, returned when it is dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<BufferBudget>,
    held: usize,
}

/// The budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget;

impl Reservation {
    /// An empty share of `budget`.
    pub fn new(budget: Arc<BufferBudget>) -> Self {
        Self { budget, held: 0 }
    }

    /// Holds `bytes` more, unless that would take the gateway past `max`.
    pub fn grow(&mut self, bytes: usize, max: usize) -> Result<(), OverBudget> {
        let mut used = self.budget.used.load(Ordering::Relaxed);
        loop {
            let next = used
                .checked_add(bytes)
                .filter(|&n| n <= max)
                .ok_or(OverBudget)?;
            match self.budget.used.compare_exchange_weak(
                used,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.held += bytes;
                    return Ok(());
                }
                Err(now) => used = now,
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held > 0 {
            self.budget.used.fetch_sub(self.held, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_are_returned() {
        let budget = Arc::new(BufferBudget::default());
        let mut a = Reservation::new(budget.clone());
        let mut b = Reservation::new(budget.clone());
        assert_eq!(a.grow(60, 100), Ok(()));
        assert_eq!(b.grow(50, 100), Err(OverBudget));
        assert_eq!(b.grow(40, 100), Ok(()));
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        assert_eq!(b.grow(usize::MAX, usize::MAX), Err(OverBudget));
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
