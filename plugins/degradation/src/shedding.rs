//! Load shedding: whether the gateway is too loaded to serve a non-core route.

use weir_plugin_sdk::host::upstreams;

use crate::config::Shedding;

impl Shedding {
    /// Whether to shed now: more requests in flight gateway-wide than `max_in_flight` (this
    /// one included), or a recent upstream latency above `max_latency_ms`.
    pub fn overloaded(&self) -> bool {
        let load = upstreams::load();
        self.max_in_flight.is_some_and(|max| load.in_flight > max)
            || self.max_latency_ms.is_some_and(|max| load.latency_ms > max)
    }
}
