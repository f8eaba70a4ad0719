//! `bot-rules`: refuses naive bots and noisy clients. A request whose User-Agent matches
//! `deny_user_agents`, that has no User-Agent, or that lacks a header every browser sends
//! (`require_headers`) is refused with 403 `bot_denied`; `allow_user_agents` exempts known
//! monitors from those rules. A per-client `budget` (grant `limits`) answers 429
//! `rate_limited` with `Retry-After` past its limit, and with `escalation` (grant `kv`)
//! `strikes` such refusals deny the client for `deny_for`: 403 `bot_denied` until it ends.
//! The client is the peer, or behind `trusted_proxies` the forwarded client (the rule of
//! `rate-limit`).
//!
//! ```json
//! { "deny_user_agents": ["curl/", "python-requests"], "require_headers": ["browser"],
//!   "budget": { "limit": 60, "window": "1m" },
//!   "escalation": { "strikes": 5, "window": "10m", "deny_for": "15m" } }
//! ```
//! See `docs/plugins/bot-rules.md`, which says what it does not catch.

mod agent;
mod budget;
mod config;
#[cfg(test)]
mod tests;

use weir_plugin_sdk::HostError;
use weir_plugin_sdk::prelude::*;

use crate::budget::{Budget, Keys, Verdict};
use crate::config::{Config, OnUnavailable, Settings};

/// The filter: its rules, compiled.
struct BotRules {
    settings: Settings,
}

impl BotRules {
    /// The budget's verdict on `request`.
    fn judge_budget(&self, budget: &Budget, request: &Request) -> Result<Verdict, HostError> {
        let s = &self.settings;
        let client = s.trusted.of(request).map(|ip| ip.to_string());
        let client = client.as_deref().unwrap_or(request.client_addr());
        let namespace = s.namespace.as_deref().unwrap_or(request.route());
        budget::judge(budget, s.escalation.as_ref(), &Keys::new(namespace, client))
    }

    /// The answer when `limits` or `kv` fails: through, when the config allows it while
    /// the backend is down; else the SDK's answer (503 `bot_rules_unavailable`, 500
    /// `bot_rules_misconfigured`).
    fn backend_failed(&self, request: &Request, error: HostError) -> RequestDecision {
        match error {
            HostError::Unavailable(_) if self.settings.on_unavailable == OnUnavailable::Allow => {
                RequestDecision::proceed()
            }
            error => RequestDecision::Respond(Response::host_error(
                &error,
                Self::NAME,
                "the limits and kv interfaces",
                request,
            )),
        }
    }
}

/// 403 `bot_denied`.
fn denied(why: &str, request: &Request) -> RequestDecision {
    RequestDecision::Respond(Response::error(403, "bot_denied", why, request))
}

impl Filter for BotRules {
    type Config = Config;
    const NAME: &'static str = "bot-rules";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::RequestHeaders];

    fn new(config: Config) -> Result<Self, String> {
        Ok(Self {
            settings: Settings::from_config(config)?,
        })
    }

    fn on_request(&self, request: &Request) -> RequestDecision {
        // The rules without state first: an obvious bot costs no host call.
        if let Some(why) = self.settings.agent.refusal(request) {
            return denied(&why, request);
        }
        let Some(budget) = &self.settings.budget else {
            return RequestDecision::proceed();
        };
        match self.judge_budget(budget, request) {
            Ok(Verdict::Pass) => RequestDecision::proceed(),
            Ok(Verdict::OverBudget(retry_after)) => RequestDecision::Respond(
                Response::error(429, "rate_limited", "too many requests", request)
                    .header("retry-after", retry_after.to_string()),
            ),
            Ok(Verdict::Denied) => denied(
                "the client is denied for a while after too many requests",
                request,
            ),
            Err(error) => self.backend_failed(request, error),
        }
    }
}

export_filter!(BotRules);
