//! Accepting connections when `accept` fails (out of file descriptors, say): back off
//! instead of spinning, and say so once per burst of failures.

use std::time::{Duration, Instant};

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

    /// Accepts the next connection from `listener`, pausing after each failure and logging
    /// the start and the end of each burst of them.
    pub async fn accept(
        &mut self,
        listener: &tokio::net::TcpListener,
    ) -> (tokio::net::TcpStream, std::net::SocketAddr) {
        loop {
            match listener.accept().await {
                Ok(accepted) => {
                    if let Some((failures, lasted)) = self.succeeded() {
                        let lasted_ms = lasted.as_millis() as u64;
                        tracing::warn!(failures, lasted_ms, "accept works again");
                    }
                    return accepted;
                }
                Err(e) => {
                    let (pause, first) = self.failed();
                    if first {
                        tracing::warn!(error = %e, "accept failed; backing off");
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
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
