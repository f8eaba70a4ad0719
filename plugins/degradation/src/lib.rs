//! `degradation`: keeps a route answering when its upstream fails or the gateway is
//! overloaded. A circuit breaker over the gateway's record of upstream calls stops calling
//! a failing upstream (and probes it back to health); while the circuit is open, when the
//! upstream fails, or when a non-core route is shed under load, the request gets a
//! fallback (a fixed response, or the last good response kept in `kv`) marked with
//! `x-weir-degraded`, or a 503 with `Retry-After`.
//!
//! ```json
//! { "breaker": { "sliding_window": "10s", "min_calls": 10, "failure_rate": 0.5, "cool_down": "5s" },
//!   "fallback": { "kind": "cache", "ttl": "5m" },
//!   "shedding": { "class": "non-core", "max_in_flight": 200 } }
//! ```
//! Needs the grants `upstreams` and `clock`, and `kv` for the cache fallback. See
//! `docs/plugins/degradation.md`.

mod breaker;
mod cache;
mod config;
mod fallback;
mod sharing;
mod shedding;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use weir_plugin_sdk::HostError;
use weir_plugin_sdk::host::upstreams::Scope;
use weir_plugin_sdk::prelude::*;

use crate::breaker::{Admission, Breaker};
use crate::cache::Entry;
use crate::config::{Config, ScopeConfig, Settings};
use crate::fallback::{Fallback, Reason};
use crate::sharing::Exchange;

/// What the request phase hands the response phase, in the filter's private context.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Carried {
    /// The circuit's scope name, when the request is a half-open probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probe: Option<String>,
    /// The cache key (the request's headers are gone by the response).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_key: Option<String>,
    /// The request carried `Authorization` (a later filter may remove the header before
    /// the upstream sees it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    authorized: bool,
}

struct Degradation {
    settings: Settings,
}

impl Degradation {
    /// The degraded answer for `reason`: the fallback if there is one to serve, the 503
    /// otherwise; marked either way.
    fn degraded(
        &self,
        reason: Reason,
        key: Option<&str>,
        retry_after_s: u64,
        request: &Request,
    ) -> Response {
        let response = self
            .settings
            .fallback
            .as_ref()
            .and_then(|f| f.response(key))
            .unwrap_or_else(|| fallback::unavailable(reason, retry_after_s, request));
        fallback::mark(response, &self.settings.degraded_header, reason)
    }

    /// The request's cache key, with a cache fallback.
    fn cache_key(&self, request: &Request) -> Option<String> {
        match &self.settings.fallback {
            Some(Fallback::Cache(cache)) => Some(cache::key(&cache.key, request)),
            _ => None,
        }
    }

    /// The answer when the gateway refuses the filter's calls: an interface is not
    /// granted, or the breaker names a scope the gateway does not know.
    fn misconfigured(&self, error: HostError, request: &Request) -> Response {
        let needs = "upstreams (or kv, for the cache fallback)";
        Response::host_error(&error, Self::NAME, needs, request)
    }
}

/// The circuit a breaker watches for `name` (the upstream's or the route's).
fn scope(breaker: &Breaker, name: String) -> Scope {
    match breaker.scope {
        ScopeConfig::Upstream => Scope::Upstream(name),
        ScopeConfig::Route => Scope::Route(name),
    }
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

impl Filter for Degradation {
    type Config = Config;
    const NAME: &'static str = "degradation";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[
        Phase::RequestHeaders,
        Phase::ResponseHeaders,
        Phase::ResponseBody,
    ];

    fn new(config: Config) -> Result<Self, String> {
        Ok(Self {
            settings: Settings::from_config(config)?,
        })
    }

    /// Only the phases the config uses: the body is buffered for the cache fallback only.
    fn phases(&self) -> Vec<Phase> {
        let s = &self.settings;
        let cache = matches!(s.fallback, Some(Fallback::Cache(_)));
        let mut phases = Vec::new();
        if s.breaker.is_some() || s.shedding.is_some() || cache {
            phases.push(Phase::RequestHeaders);
        }
        if s.breaker.is_some() || s.fallback.is_some() {
            phases.push(Phase::ResponseHeaders);
        }
        if cache {
            phases.push(Phase::ResponseBody);
        }
        phases
    }

    fn on_request(&self, request: &Request) -> RequestDecision {
        let key = self.cache_key(request);
        // Shedding first: a shed request costs the overloaded gateway nothing more.
        if let Some(shedding) = &self.settings.shedding
            && shedding.overloaded()
        {
            let retry_after = shedding.retry_after_s;
            return RequestDecision::Respond(self.degraded(
                Reason::Shed,
                key.as_deref(),
                retry_after,
                request,
            ));
        }
        let mut carried = Carried::default();
        if let Some(breaker) = &self.settings.breaker {
            let name = match breaker.scope {
                ScopeConfig::Upstream => request.upstream(),
                ScopeConfig::Route => request.route().to_string(),
            };
            match breaker.admit(&scope(breaker, name.clone())) {
                Ok(Admission::Pass) => {}
                Ok(Admission::Probe) => carried.probe = Some(name),
                Ok(Admission::Refuse { retry_after_ms }) => {
                    return RequestDecision::Respond(self.degraded(
                        Reason::CircuitOpen,
                        key.as_deref(),
                        ceil_secs(retry_after_ms),
                        request,
                    ));
                }
                // The record is the gateway's own memory: it is never unavailable, but if
                // it were, the breaker steps aside rather than take the route down.
                Err(HostError::Unavailable(_)) => {}
                Err(error) => {
                    return RequestDecision::Respond(self.misconfigured(error, request));
                }
            }
        }
        if key.is_some() {
            carried.authorized = request.header_bytes("authorization").is_some();
            carried.cache_key = key;
        }
        match carried == Carried::default() {
            true => RequestDecision::proceed(),
            false => RequestDecision::Continue(RequestChanges::new().set_context(&carried)),
        }
    }

    fn on_response(&self, request: &Request, response: &ResponseView) -> ResponseDecision {
        // A failure is what the gateway records as one: a 5xx, including its own 502, 503
        // and 504 for connect errors, no healthy target and timeouts.
        let failed = response.status() >= 500;
        let carried: Carried = request.context().unwrap_or_default();
        if let Some(breaker) = &self.settings.breaker
            && let Some(name) = carried.probe
        {
            // The circuit moves on the next request if this report is lost.
            let _ = breaker.probe_done(&scope(breaker, name), !failed);
        }
        let key = carried.cache_key;
        match &self.settings.fallback {
            Some(fallback) if failed => match fallback.response(key.as_deref()) {
                Some(answer) => ResponseDecision::Replace(fallback::mark(
                    answer,
                    &self.settings.degraded_header,
                    Reason::UpstreamError,
                )),
                None => ResponseDecision::proceed(),
            },
            Some(Fallback::Cache(cache)) if (200..300).contains(&response.status()) => {
                let (cache_control, vary) = (
                    response.header_all("cache-control"),
                    response.header_all("vary"),
                );
                let exchange = Exchange {
                    authorization: carried.authorized,
                    cache_control: &cache_control,
                    vary: &vary,
                    set_cookie: response.header_bytes("set-cookie").is_some(),
                };
                // Only what a shared cache may store: the entry is served to everyone.
                if let (Some(key), Some(body), Ok(())) =
                    (key, response.body(), cache.shareable(&exchange))
                {
                    let entry = Entry {
                        status: response.status(),
                        content_type: response.header_bytes("content-type"),
                        body: body.to_vec(),
                    };
                    if let Err(error) = cache.store(&key, &entry) {
                        return ResponseDecision::Replace(self.misconfigured(error, request));
                    }
                }
                ResponseDecision::proceed()
            }
            _ => ResponseDecision::proceed(),
        }
    }
}

export_filter!(Degradation);
