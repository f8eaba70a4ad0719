//! What the push subsystem counts, shown by `GET /push` and as `weir_push_<name>_total`.

use std::sync::atomic::{AtomicU64, Ordering};

/// A push counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Messages accepted (first publishes of an id).
    Published,
    /// Publishes of an id already accepted.
    Duplicates,
    /// Messages sent on devices' connections, resends included.
    Sent,
    /// Messages sent again after their ack did not come.
    Redelivered,
    /// Messages that expired before their device read them.
    Expired,
    /// Connections closed because their device did not read.
    SlowClosed,
    /// Routing decisions that failed.
    RouterFailures,
    /// Vendor sends the vendor accepted.
    VendorSent,
    /// Vendor sends to be tried again.
    VendorRetried,
    /// Vendor sends given up.
    VendorFailed,
    /// Dead vendor tokens pruned.
    VendorPruned,
}

/// Each counter's name and help text, in [`Count`]'s order.
const TABLE: [(&str, &str); 11] = [
    ("published", "Messages accepted."),
    ("duplicates", "Publishes of a message id already accepted."),
    (
        "sent",
        "Messages sent on devices' connections, resends included.",
    ),
    (
        "redelivered",
        "Messages sent again after their ack did not come.",
    ),
    (
        "expired",
        "Messages that expired before their device read them.",
    ),
    (
        "slow_closed",
        "Connections closed because their device did not read.",
    ),
    ("router_failures", "Routing decisions that failed."),
    ("vendor_sent", "Vendor sends the vendor accepted."),
    ("vendor_retried", "Vendor sends to be tried again."),
    ("vendor_failed", "Vendor sends given up."),
    (
        "vendor_pruned",
        "Dead vendor tokens pruned from their devices.",
    ),
];

/// The counters.
#[derive(Debug, Default)]
pub struct PushCounters([AtomicU64; TABLE.len()]);

impl PushCounters {
    /// Adds `n` to `count`.
    pub fn add(&self, count: Count, n: u64) {
        self.0[count as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Every counter: name, help text, value.
    pub fn all(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        (TABLE.iter().zip(&self.0))
            .map(|(&(name, help), n)| (name, help, n.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_count_has_its_own_name() {
        let counters = PushCounters::default();
        counters.add(Count::VendorPruned, 2);
        counters.add(Count::Published, 1);
        let all: Vec<_> = counters.all().map(|(name, _, n)| (name, n)).collect();
        assert_eq!(all[0], ("published", 1));
        assert_eq!(all[10], ("vendor_pruned", 2));
        assert_eq!(all.iter().map(|(_, n)| n).sum::<u64>(), 3);
    }
}
