//! `rate-limit`: limits requests per client IP, consumer, header or route, with one or
//! more limits per route (token bucket, sliding or fixed window). The arithmetic runs in
//! the gateway's `limits` interface, so a budget holds under concurrency and, with the
//! Redis backend, across gateway instances. Refused requests get 429 with `Retry-After`;
//! every response can carry the IETF `RateLimit-Policy` and `RateLimit` fields.
//!
//! ```json
//! { "limits": [ { "limit": 10, "window": "1s" },
//!               { "limit": 1000, "window": "1h", "algorithm": "sliding_window" } ],
//!   "key": ["consumer"], "trusted_proxies": ["10.0.0.0/8"] }
//! ```
//! Needs the grant `limits`. See `docs/plugins/rate-limit.md`.

mod config;
mod fields;
mod key;
#[cfg(test)]
mod tests;

use weir_plugin_sdk::HostError;
use weir_plugin_sdk::host::limits::{self, Decision};
use weir_plugin_sdk::prelude::*;

use crate::config::{Config, OnUnavailable, Settings};

struct RateLimit {
    settings: Settings,
}

impl RateLimit {
    /// Takes the request's cost from each limit, shortest window first, stopping at the
    /// first refusal (so that a request the burst limit refuses does not spend the long
    /// windows). The decisions come back in config order; `None` for a limit not reached.
    fn take_all(&self, request: &Request) -> Result<Vec<Option<Decision>>, HostError> {
        let s = &self.settings;
        let key = key::caller_key(&s.key, request, &s.trusted);
        let namespace = s.namespace.as_deref().unwrap_or(request.route());
        let mut decisions = vec![None; s.limits.len()];
        for &i in &s.evaluation_order {
            let limit = &s.limits[i];
            let budget = format!("{namespace}/{}/{key}", limit.name);
            let decision = limits::take(&budget, limit.policy, s.cost)?;
            let allowed = decision.allowed;
            decisions[i] = Some(decision);
            if !allowed {
                break;
            }
        }
        Ok(decisions)
    }

    fn refuse(&self, request: &Request, decisions: &[Option<Decision>]) -> RequestDecision {
        let retry_after = decisions
            .iter()
            .flatten()
            .filter(|d| !d.allowed)
            .map(|d| fields::ceil_secs(d.retry_after_ms).max(1))
            .max()
            .unwrap_or(1);
        let mut response = Response::error(429, "rate_limited", "too many requests", request)
            .header("retry-after", retry_after.to_string());
        if self.settings.headers {
            response = response
                .header("ratelimit-policy", self.settings.policy_field.as_str())
                .header(
                    "ratelimit",
                    fields::remaining_field(&self.settings.limits, decisions),
                );
        }
        RequestDecision::Respond(response)
    }

    /// The answer when the `limits` interface fails: through, when the config allows it
    /// while the backend is down; else the SDK's answer (503 `rate_limit_unavailable`, 500
    /// `rate_limit_misconfigured`).
    fn backend_failed(&self, request: &Request, error: HostError) -> RequestDecision {
        match error {
            HostError::Unavailable(_) if self.settings.on_unavailable == OnUnavailable::Allow => {
                RequestDecision::proceed()
            }
            error => RequestDecision::Respond(Response::host_error(
                &error,
                Self::NAME,
                "the limits interface",
                request,
            )),
        }
    }
}

impl Filter for RateLimit {
    type Config = Config;
    const NAME: &'static str = "rate-limit";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    // The fields go on the response through `set_response_header`: no response phase.
    const PHASES: &'static [Phase] = &[Phase::RequestHeaders];

    fn new(config: Config) -> Result<Self, String> {
        Ok(Self {
            settings: Settings::from_config(config)?,
        })
    }

    fn on_request(&self, request: &Request) -> RequestDecision {
        let decisions = match self.take_all(request) {
            Ok(decisions) => decisions,
            Err(error) => return self.backend_failed(request, error),
        };
        if decisions.iter().flatten().any(|d| !d.allowed) {
            return self.refuse(request, &decisions);
        }
        match self.settings.headers {
            true => RequestDecision::Continue(
                RequestChanges::new()
                    .set_response_header("ratelimit-policy", self.settings.policy_field.as_str())
                    .set_response_header(
                        "ratelimit",
                        fields::remaining_field(&self.settings.limits, &decisions),
                    ),
            ),
            false => RequestDecision::proceed(),
        }
    }
}

export_filter!(RateLimit);
