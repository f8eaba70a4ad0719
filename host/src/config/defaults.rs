//! The defaults of config fields that serde fills in; each is documented on its field.

use std::net::SocketAddr;

pub(super) fn admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}
pub(super) fn yes() -> bool {
    true
}
pub(super) fn shutdown_grace_ms() -> u64 {
    30_000
}
pub(super) fn keep_generations() -> usize {
    10
}
pub(super) fn log_repeat_interval_ms() -> u64 {
    10_000
}
pub(super) fn deadline_ms() -> u64 {
    20
}
pub(super) fn memory_mib() -> u64 {
    32
}
pub(super) fn max_body_bytes() -> usize {
    1 << 20
}
pub(super) fn pool_max_idle() -> usize {
    64
}
pub(super) fn max_instances() -> u32 {
    1000
}
pub(super) fn max_memory_mib() -> u64 {
    512
}
pub(super) fn redis_timeout_ms() -> u64 {
    100
}
pub(super) fn redis_key_prefix() -> String {
    "weir:".to_string()
}
pub(super) fn redis_probe_interval_ms() -> u64 {
    500
}
pub(super) fn weight() -> u32 {
    1
}
pub(super) fn connect_timeout_ms() -> u64 {
    1_000
}
pub(super) fn request_timeout_ms() -> u64 {
    30_000
}
pub(super) fn pool_idle_per_target() -> usize {
    256
}
pub(super) fn pool_idle_timeout_ms() -> u64 {
    90_000
}
pub(super) fn health_path() -> String {
    "/health".to_string()
}
pub(super) fn health_interval_ms() -> u64 {
    2_000
}
pub(super) fn healthy_threshold() -> u32 {
    2
}
pub(super) fn unhealthy_threshold() -> u32 {
    3
}
pub(super) fn consecutive_failures() -> u32 {
    5
}
pub(super) fn ejection_ms() -> u64 {
    10_000
}

/// How long a request waits for a place under an upstream's `max_requests`.
pub(super) fn pending_timeout_ms() -> u64 {
    1000
}
