//! Target health: active checks (a GET or a TCP connect every interval, thresholds in both
//! directions) and passive ejection (failures in a row take a target out for a while). The
//! state of a target outlives config reloads: it is keyed by upstream name and address.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;

use crate::config::{HealthCheckConfig, HealthCheckKind, PassiveConfig, millis};
use crate::time::now_ms;

use super::Upstream;

/// The live state of one target.
#[derive(Debug)]
pub struct TargetHealth {
    healthy: AtomicBool,
    check_streak: AtomicU32,
    consecutive_failures: AtomicU32,
    ejected_until_ms: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
}

impl Default for TargetHealth {
    fn default() -> Self {
        Self {
            healthy: AtomicBool::new(true),
            check_streak: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }
}

impl TargetHealth {
    /// Healthy by the active checks and not ejected.
    pub fn is_available(&self, now_ms: u64) -> bool {
        self.healthy.load(Ordering::Relaxed)
            && self.ejected_until_ms.load(Ordering::Relaxed) <= now_ms
    }

    /// Healthy by the active checks.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Whether passive ejection has the target out now.
    pub fn is_ejected(&self, now_ms: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now_ms
    }

    /// Requests in flight to this target.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests sent and failed, since start.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// Marks a request as started; the guard marks it finished.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Records a request's outcome for passive ejection.
    pub fn record(&self, ok: bool, passive: &PassiveConfig) {
        if ok {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            return;
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if passive.consecutive_failures > 0 && failures >= passive.consecutive_failures {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            self.ejected_until_ms.store(
                now_ms().saturating_add(passive.ejection_ms),
                Ordering::Relaxed,
            );
            tracing::warn!(
                failures,
                ejection_ms = passive.ejection_ms,
                "target ejected"
            );
        }
    }

    /// Records an active check; flips health after the thresholds.
    fn record_check(&self, ok: bool, config: &HealthCheckConfig) -> Option<bool> {
        let healthy = self.healthy.load(Ordering::Relaxed);
        if ok == healthy {
            self.check_streak.store(0, Ordering::Relaxed);
            return None;
        }
        let streak = self.check_streak.fetch_add(1, Ordering::Relaxed) + 1;
        let threshold = if ok {
            config.healthy_threshold
        } else {
            config.unhealthy_threshold
        };
        if streak >= threshold.max(1) {
            self.check_streak.store(0, Ordering::Relaxed);
            self.healthy.store(ok, Ordering::Relaxed);
            return Some(ok);
        }
        None
    }
}

/// Decrements a target's in-flight count when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<TargetHealth>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Target health by upstream name and address, kept across snapshots.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    targets: DashMap<(String, SocketAddr), Arc<TargetHealth>>,
}

impl HealthRegistry {
    /// The state of a target, created healthy on first sight.
    pub fn get(&self, upstream: &str, addr: SocketAddr) -> Arc<TargetHealth> {
        self.targets
            .entry((upstream.to_string(), addr))
            .or_default()
            .clone()
    }

    /// Forgets targets that are not in `keep`.
    pub fn retain(&self, keep: &[(String, SocketAddr)]) {
        self.targets.retain(|k, _| keep.contains(k));
    }
}

/// Runs active checks for an upstream until the upstream is dropped (its snapshot replaced
/// and its last request done).
pub fn spawn_checks(upstream: &Arc<Upstream>) {
    let Some(config) = upstream.health_check.clone() else {
        return;
    };
    let weak: Weak<Upstream> = Arc::downgrade(upstream);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(millis(config.interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(upstream) = weak.upgrade() else {
                return;
            };
            let checks = upstream.targets.iter().map(|target| {
                let upstream = upstream.clone();
                let config = config.clone();
                let target = target.clone();
                async move {
                    let timeout = millis(config.timeout_ms);
                    let ok = match config.kind {
                        HealthCheckKind::Http => {
                            upstream.probe(&target, &config.path, timeout).await
                        }
                        HealthCheckKind::Tcp => {
                            let connect = tokio::net::TcpStream::connect(target.addr);
                            matches!(tokio::time::timeout(timeout, connect).await, Ok(Ok(_)))
                        }
                    };
                    if let Some(now_healthy) = target.health.record_check(ok, &config) {
                        tracing::warn!(
                            upstream = %upstream.name,
                            target = %target.addr,
                            healthy = now_healthy,
                            "health check changed target state"
                        );
                    }
                }
            });
            futures_join_all(checks).await;
        }
    });
}

/// Runs futures concurrently and waits for all (a tiny join_all without another crate).
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}
