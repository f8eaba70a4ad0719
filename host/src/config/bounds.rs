//! Upper and lower bounds of the numbers in a config, checked when it loads: a value that
//! would panic (a zero interval), overflow (a weight times the ring's points per weight) or
//! allocate without bound (a huge weight, a million workers) is refused with its key named,
//! instead of taking the gateway down later.

use anyhow::bail;

use super::{Config, UpstreamConfig, UpstreamProtocol};

/// The largest target weight.
pub const MAX_WEIGHT: u32 = 10_000;
/// The longest duration any `*_ms` setting may have: one day.
pub const MAX_MS: u64 = 24 * 60 * 60 * 1000;
/// The most proxy worker threads.
pub const MAX_WORKERS: usize = 1024;
/// The most memory a 32-bit Wasm instance can address, in MiB.
pub const MAX_MEMORY_MIB: u64 = 4096;

/// Checks every bounded number of `config`.
pub fn validate(config: &Config) -> anyhow::Result<()> {
    let server = &config.server;
    if server.workers.is_some_and(|n| n > MAX_WORKERS) {
        bail!("server.workers must be at most {MAX_WORKERS}");
    }
    duration("server.shutdown_grace_ms", server.shutdown_grace_ms, 0)?;
    duration(
        "server.log_repeat_interval_ms",
        server.log_repeat_interval_ms,
        0,
    )?;
    let runtime = &config.runtime;
    duration("runtime.deadline_ms", runtime.deadline_ms, 1)?;
    if runtime.max_memory_mib > MAX_MEMORY_MIB {
        bail!(
            "runtime.max_memory_mib must be at most {MAX_MEMORY_MIB} (a Wasm instance addresses 4 GiB)"
        );
    }
    for (name, upstream) in &config.upstreams {
        validate_upstream(name, upstream)?;
    }
    // A cap and its wait: a bulkhead's, or an upstream's `max_requests`.
    let upstream_caps = (config.upstreams.iter()).filter_map(|(name, u)| {
        let keys = (
            format!("upstreams.{name}.max_requests"),
            format!("upstreams.{name}.pending_timeout_ms"),
        );
        Some((keys, u.bulkhead()?))
    });
    let caps = (config.bulkheads.iter())
        .map(|(name, b)| {
            let keys = (
                format!("bulkheads.{name}.max_concurrent"),
                format!("bulkheads.{name}.queue_timeout_ms"),
            );
            (keys, *b)
        })
        .chain(upstream_caps);
    for ((cap, wait), bulkhead) in caps {
        if bulkhead.max_concurrent == 0 {
            bail!("{cap} must be at least 1");
        }
        duration(&wait, bulkhead.queue_timeout_ms, 1)?;
    }
    for route in &config.routes {
        if let Some(ms) = route.timeout_ms {
            duration(&format!("route {:?}: timeout_ms", route.name), ms, 1)?;
        }
        if let Some(retry) = &route.retry {
            retry.validate(&route.name)?;
        }
        if let Some(deprecated) = &route.deprecated {
            deprecated.fields(&route.name)?;
        }
        for filter in &route.filters {
            if let Some(ms) = filter.deadline_ms {
                let key = format!(
                    "route {:?}: plugin {:?}: deadline_ms",
                    route.name, filter.plugin
                );
                duration(&key, ms, 1)?;
            }
        }
    }
    Ok(())
}

fn validate_upstream(name: &str, upstream: &UpstreamConfig) -> anyhow::Result<()> {
    if upstream.targets.is_empty() {
        bail!("upstream {name:?} has no targets");
    }
    match (upstream.protocol, &upstream.tls) {
        (UpstreamProtocol::H2, None) => {
            bail!("upstream {name:?}: protocol \"h2\" is HTTP/2 over TLS and needs [tls]")
        }
        (UpstreamProtocol::H2c, Some(_)) => {
            bail!("upstream {name:?}: h2c is cleartext; over TLS use protocol \"h2\"")
        }
        _ => {}
    }
    if upstream.targets.iter().all(|t| t.weight() == 0) {
        bail!("upstream {name:?}: all target weights are 0");
    }
    if let Some(t) = upstream.targets.iter().find(|t| t.weight() > MAX_WEIGHT) {
        bail!(
            "upstream {name:?}: target {:?}: weight {} is above the maximum {MAX_WEIGHT}",
            t.address(),
            t.weight()
        );
    }
    let key = |field: &str| format!("upstream {name:?}: {field}");
    duration(&key("connect_timeout_ms"), upstream.connect_timeout_ms, 1)?;
    duration(&key("request_timeout_ms"), upstream.request_timeout_ms, 1)?;
    duration(
        &key("pool_idle_timeout_ms"),
        upstream.pool_idle_timeout_ms,
        0,
    )?;
    duration(&key("passive.ejection_ms"), upstream.passive.ejection_ms, 0)?;
    if let Some(check) = &upstream.health_check {
        duration(&key("health_check.interval_ms"), check.interval_ms, 1)?;
        duration(&key("health_check.timeout_ms"), check.timeout_ms, 1)?;
        if !check.path.starts_with('/') {
            bail!(
                "{}: {:?} must start with /",
                key("health_check.path"),
                check.path
            );
        }
    }
    Ok(())
}

/// A duration in milliseconds must lie in `min..=MAX_MS`.
pub(super) fn duration(key: &str, ms: u64, min: u64) -> anyhow::Result<()> {
    if ms < min {
        bail!("{key} must be at least {min} ms");
    }
    if ms > MAX_MS {
        bail!("{key} must be at most {MAX_MS} ms (one day)");
    }
    Ok(())
}
