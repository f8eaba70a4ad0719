//! Load shedding: whether the gateway is too loaded to serve a non-core route.

use weir_plugin_sdk::duration;
use weir_plugin_sdk::host::upstreams;

use crate::config::{RouteClass, SheddingConfig};

/// Validated shedding of a non-core route (a core route needs nothing at run time).
#[derive(Debug)]
pub struct Shedding {
    /// In-flight limit.
    pub max_in_flight: Option<u32>,
    /// Latency limit, in ms.
    pub max_latency_ms: Option<u32>,
    /// `Retry-After` of a shed 503.
    pub retry_after_s: u64,
}

impl Shedding {
    /// Validates the `shedding` section; `None` for a core route.
    pub fn from_config(c: SheddingConfig) -> Result<Option<Self>, String> {
        if c.class == RouteClass::Core {
            return Ok(None);
        }
        if c.max_in_flight.is_none() && c.max_latency.is_none() {
            return Err(
                "shedding: a non-core route needs max_in_flight or max_latency".to_string(),
            );
        }
        Ok(Some(Self {
            max_in_flight: c.max_in_flight,
            max_latency_ms: c.max_latency.map(duration::millis_u32),
            retry_after_s: duration::ceil_secs(c.retry_after),
        }))
    }

    /// Whether to shed now: more requests in flight gateway-wide than `max_in_flight` (this
    /// one included), or a recent upstream latency above `max_latency_ms`.
    pub fn overloaded(&self) -> bool {
        let load = upstreams::load();
        self.max_in_flight.is_some_and(|max| load.in_flight > max)
            || self.max_latency_ms.is_some_and(|max| load.latency_ms > max)
    }
}
